"""CodeDeploy post-traffic hook: after the shift, the alias must answer with the new version.

It asks the alias (as users reach it) several times; each answer's x-model-version must be the new version.
Like the pre-traffic hook, it always reports to CodeDeploy, failing closed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools import Logger

from .codedeploy import FAILED, SUCCEEDED, LambdaInvoker, aws_client, hook_ids, report
from .events import response_headers, rest_proxy_event

logger = Logger(service="modelrail-acceptance")
PROBES = 10


def handler(event: dict[str, Any], context: Any, *, clients: Mapping[str, Any] | None = None) -> dict[str, str]:
    clients = clients or {}
    deployment_id, execution_id = hook_ids(event)
    status = FAILED
    try:
        served = check_alias(os.environ, clients.get("lambda") or aws_client("lambda"))
        new_version = os.environ["NEW_VERSION_ARN"].rpartition(":")[2]
        status = SUCCEEDED if served == [new_version] * PROBES else FAILED
        logger.info("post-traffic check", extra={"expected": new_version, "served": served, "status": status})
    except Exception:
        logger.exception("post-traffic check could not run: failing the deployment")
    finally:
        report(clients.get("codedeploy") or aws_client("codedeploy"), deployment_id, execution_id, status, logger)
    return {"status": status}


def check_alias(environ: Mapping[str, str], lambda_client: Any) -> list[str]:
    """The version named by each of PROBES answers of the alias to a readiness request."""
    function_arn = environ["NEW_VERSION_ARN"].rpartition(":")[0]
    invoke = LambdaInvoker(lambda_client, f"{function_arn}:{environ.get('ALIAS_NAME', 'live')}")
    path = f"/v2/models/{environ['MODEL_NAME']}/ready"
    return [response_headers(invoke(rest_proxy_event("GET", path))).get("x-model-version", "?") for _ in range(PROBES)]
