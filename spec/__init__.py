"""The deployment spec and the bundle format: pure data (pydantic, no aws_cdk) that ``cdk synth``, the command
line and the rehearsal all read, so every rule has one definition.

``models`` (the spec as a whole, ``load_spec``), ``environment`` (per-environment settings), ``rollout`` (policy,
alias, hotfix), ``alarms`` (rollout alarms as data), ``catalog`` (every metric and function variable, from
``functions/catalog.py``), ``bundle`` (a model as the user hands it over).
"""
