"""The pre-traffic hook CodeDeploy runs before shifting traffic to a new version (the acceptance gate)."""
