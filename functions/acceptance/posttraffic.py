"""CodeDeploy post-traffic hook: after the shift, the alias must answer, ready, with the new version.

It asks the alias (as users reach it) several times for the model's readiness; each answer must be HTTP 200 and
name the new version in x-model-version. Like the pre-traffic hook, it checks the deployment targets the version
in its environment, and always reports to CodeDeploy exactly once, failing closed, before its own timeout.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from .catalog import Env
from .codedeploy import (
    FAILED,
    MIN_CALL_SECONDS,
    SUCCEEDED,
    Deadline,
    DeadlineBoundLambda,
    LambdaInvoker,
    check_target_version,
    client,
    hook_ids,
    hook_logger,
    report,
)
from .events import response_headers, rest_proxy_event

logger = hook_logger()
PROBES = 10


def handler(event: dict[str, Any], context: Any, *, clients: Mapping[str, Any] | None = None) -> dict[str, str]:
    deadline = Deadline.of(context)
    clients = dict(clients or {})
    deployment_id, execution_id = hook_ids(event)
    status = FAILED
    try:
        new_version = os.environ[Env.NEW_VERSION_ARN.name].rpartition(":")[2]
        check_target_version(client(clients, "codedeploy"), deployment_id, os.environ[Env.NEW_VERSION_ARN.name], logger)
        lambda_client = clients.get("lambda") or DeadlineBoundLambda(deadline)
        served = check_alias(os.environ, lambda_client, deadline.for_work)
        status = SUCCEEDED if served == [new_version] * PROBES else FAILED
        logger.info("post-traffic check", extra={"expected": new_version, "served": served, "status": status})
    except Exception:
        logger.exception("post-traffic check could not run: failing the deployment")
    finally:
        try:
            report(client(clients, "codedeploy"), deployment_id, execution_id, status, logger, deadline)
        except Exception:
            logger.exception("could not report to CodeDeploy", extra={"deployment_id": deployment_id})
    return {"status": status}


def check_alias(
    environ: Mapping[str, str], lambda_client: Any, seconds_left: Callable[[], float] | None = None
) -> list[str]:
    """What each of PROBES readiness requests to the alias answered: the version it names when the answer is
    HTTP 200, otherwise the status and that version; fewer than PROBES entries when time ran out."""
    function_arn = environ[Env.NEW_VERSION_ARN.name].rpartition(":")[0]
    invoke = LambdaInvoker(lambda_client, f"{function_arn}:{environ.get(Env.ALIAS_NAME.name, 'live')}")
    path = f"/v2/models/{environ[Env.MODEL_NAME.name]}/ready"
    served = []
    for _ in range(PROBES):
        if seconds_left is not None and seconds_left() < MIN_CALL_SECONDS:
            break
        response = invoke(rest_proxy_event("GET", path))
        version = response_headers(response).get("x-model-version", "?")
        status = int(response.get("statusCode", 502))
        served.append(version if status == 200 else f"HTTP {status} from version {version}")
    return served
