"""``modelrail validate``: the acceptance gate run locally, by the same code as the pre-traffic hook.

The bundle is deployed on the embedded AWS and served by a real Lambda worker, so the gate sees exactly
what the deployed function would answer; ``--against`` serves the bundle it would replace as well, for the
signature check.
"""

from __future__ import annotations

import json
from typing import Any

from functions.acceptance.events import response_body, rest_proxy_event
from functions.acceptance.gate import Verdict, evaluate
from infra.bundle import ModelBundle

from .local.environment import LocalCloud


def validate(bundle: ModelBundle, against: ModelBundle | None = None) -> Verdict:
    with LocalCloud() as cloud:
        baseline_metadata: dict[str, Any] | None = None
        if against is not None:
            baseline = cloud.start_worker(cloud.deploy(against), "1")
            answer = baseline.invoke(rest_proxy_event("GET", f"/v2/models/{against.name}")).response
            baseline_metadata = json.loads(response_body(answer)) if answer.get("statusCode") == 200 else None
            baseline.stop()
        candidate = cloud.start_worker(cloud.deploy(bundle), "2" if against is not None else "1")
        return evaluate(
            bundle.name,
            lambda event: candidate.invoke(event).response,
            bundle.acceptance_cases(),
            bundle.settings.acceptance,
            baseline_metadata=baseline_metadata,
        )
