"""Placeholder pre-traffic hook: reports Succeeded for every deployment, whatever happens.

The acceptance gate (its own issue) will invoke the new version, named by NEW_VERSION_ARN in this function's
environment because CodeDeploy does not say which version is new. Until then the one rule that matters holds:
the hook always calls PutLifecycleEventHookExecutionStatus, even when it fails itself; otherwise CodeDeploy waits
an hour before giving up on the deployment.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from typing import Any

logger = logging.getLogger("modelrail.acceptance")
logger.setLevel(logging.INFO)

SUCCEEDED = "Succeeded"


def _codedeploy() -> Any:
    # Imported lazily: the Lambda runtime provides boto3, and tests inject their own client.
    import boto3

    return boto3.client("codedeploy")


def handler(event: dict[str, Any], context: Any = None, *, client: Any = None) -> dict[str, str]:
    deployment_id = event.get("DeploymentId") if isinstance(event, dict) else None
    execution_id = event.get("LifecycleEventHookExecutionId") if isinstance(event, dict) else None
    status = SUCCEEDED
    try:
        status = check(os.environ)
    except Exception:
        # Placeholder policy: a fault of the hook itself never blocks a rollout; the alarms still watch it.
        logger.exception("acceptance hook failed; reporting %s anyway", SUCCEEDED)
        status = SUCCEEDED
    finally:
        if deployment_id and execution_id:
            (client or _codedeploy()).put_lifecycle_event_hook_execution_status(
                deploymentId=deployment_id, lifecycleEventHookExecutionId=execution_id, status=status
            )
        else:
            logger.error(
                "not a CodeDeploy lifecycle event (no DeploymentId/LifecycleEventHookExecutionId): %s",
                json.dumps(event, default=str)[:1000],
            )
    return {"status": status}


def check(environ: Mapping[str, str]) -> str:
    """The gate's verdict for the new version. Placeholder: it names the version and lets it through."""
    version_arn = environ["NEW_VERSION_ARN"]
    logger.info(json.dumps({"message": "pre-traffic hook", "model": environ.get("MODEL_NAME"), "version": version_arn}))
    return SUCCEEDED
