"""``modelrail validate``: the acceptance gate run locally, by the same code as the pre-traffic hook.

The bundle is deployed on the embedded AWS and served by a real Lambda worker, so the gate sees exactly
what the deployed function would answer; ``--against`` serves the bundle it would replace as well, for the
signature check.
"""

from __future__ import annotations

from typing import Any

from functions.acceptance.gate import Unanswered, Verdict, evaluate, served_signature
from spec.bundle import ModelBundle

from .local.environment import LocalCloud


def validate(bundle: ModelBundle, against: ModelBundle | None = None) -> Verdict:
    with LocalCloud() as cloud:
        baseline_metadata: dict[str, Any] | Unanswered | None = None
        if against is not None:
            baseline = cloud.start_worker(cloud.deploy(against), "1")
            baseline_metadata = served_signature(lambda event: baseline.invoke(event).response, against.name)
            baseline.stop()
        candidate = cloud.start_worker(cloud.deploy(bundle), "2" if against is not None else "1")
        return evaluate(
            bundle.name,
            lambda event: candidate.invoke(event).response,
            bundle.acceptance_cases(),
            bundle.settings.acceptance,
            baseline_metadata=baseline_metadata,
        )
