"""What both CodeDeploy hooks share: reporting their status, and invoking a function version directly."""

from __future__ import annotations

import json
from typing import Any

SUCCEEDED = "Succeeded"
FAILED = "Failed"


def aws_client(service: str) -> Any:
    # boto3 is imported here: the Lambda runtime provides it, and tests hand in their own clients.
    import boto3

    return boto3.client(service)


def hook_ids(event: Any) -> tuple[str | None, str | None]:
    if not isinstance(event, dict):
        return None, None
    return event.get("DeploymentId"), event.get("LifecycleEventHookExecutionId")


def report(codedeploy: Any, deployment_id: str | None, execution_id: str | None, status: str, logger: Any) -> None:
    """PutLifecycleEventHookExecutionStatus, or a loud log line when the event was not CodeDeploy's."""
    if not deployment_id or not execution_id:
        logger.error("not a CodeDeploy lifecycle event: nothing to report", extra={"status": status})
        return
    codedeploy.put_lifecycle_event_hook_execution_status(
        deploymentId=deployment_id, lifecycleEventHookExecutionId=execution_id, status=status
    )
    logger.info("reported to CodeDeploy", extra={"deployment_id": deployment_id, "status": status})


class LambdaInvoker:
    """Invoke one function version (or alias) with an API Gateway event; a function error reads as a 502."""

    def __init__(self, client: Any, qualified_arn: str) -> None:
        self.client = client
        self.arn = qualified_arn

    def __call__(self, event: dict[str, Any]) -> dict[str, Any]:
        response = self.client.invoke(
            FunctionName=self.arn, InvocationType="RequestResponse", Payload=json.dumps(event).encode()
        )
        payload = json.loads(response["Payload"].read() or b"{}")
        if response.get("FunctionError"):
            message = payload.get("errorMessage", "unknown") if isinstance(payload, dict) else str(payload)
            return {"statusCode": 502, "body": json.dumps({"error": f"function error: {message}"})}
        return payload
