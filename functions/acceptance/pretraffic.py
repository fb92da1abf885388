"""CodeDeploy pre-traffic hook: the acceptance gate, run against the new version before it gets any traffic.

CodeDeploy does not say which version is new, so its ARN arrives in this function's environment
(NEW_VERSION_ARN). The new version is invoked directly, never through the alias, with API Gateway events:
exactly what users will send. Whatever happens, even a crash of this code, the hook reports to CodeDeploy;
a hook that never reports stalls the deployment for an hour. When the gate cannot run, it fails closed.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools import Logger

from .codedeploy import FAILED, SUCCEEDED, LambdaInvoker, aws_client, hook_ids, report
from .criteria import AcceptanceCriteria
from .gate import AcceptanceCase, Verdict, evaluate, parse_cases, served_signature

logger = Logger(service="modelrail-acceptance")


def handler(event: dict[str, Any], context: Any, *, clients: Mapping[str, Any] | None = None) -> dict[str, str]:
    clients = clients or {}
    deployment_id, execution_id = hook_ids(event)
    status = FAILED
    try:
        seconds_left = (lambda: context.get_remaining_time_in_millis() / 1000) if context else None
        verdict = run_gate(os.environ, clients, seconds_left)
        status = SUCCEEDED if verdict.passed else FAILED
        logger.info(
            "acceptance verdict",
            extra={"deployment_id": deployment_id, "status": status, "verdict": verdict.to_dict()},
        )
    except Exception:
        logger.exception(
            "acceptance gate could not run: failing the deployment", extra={"deployment_id": deployment_id}
        )
    finally:
        report(clients.get("codedeploy") or aws_client("codedeploy"), deployment_id, execution_id, status, logger)
    return {"status": status}


def run_gate(environ: Mapping[str, str], clients: Mapping[str, Any], seconds_left: Any = None) -> Verdict:
    version_arn = environ["NEW_VERSION_ARN"]
    model = environ["MODEL_NAME"]
    criteria = AcceptanceCriteria.model_validate_json(environ.get("ACCEPTANCE_CRITERIA") or "{}")
    lambda_client = clients.get("lambda") or aws_client("lambda")
    cases = _acceptance_cases(environ, clients)
    baseline = _baseline_metadata(lambda_client, version_arn, environ.get("ALIAS_NAME", "live"), model)
    return evaluate(
        model,
        LambdaInvoker(lambda_client, version_arn),
        cases,
        criteria,
        baseline_metadata=baseline,
        seconds_left=seconds_left,
    )


def _acceptance_cases(environ: Mapping[str, str], clients: Mapping[str, Any]) -> list[AcceptanceCase]:
    uri = environ.get("ACCEPTANCE_URI")
    if not uri:
        return []
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    body = (clients.get("s3") or aws_client("s3")).get_object(Bucket=bucket, Key=key)["Body"].read()
    digest = hashlib.sha256(body).hexdigest()
    if digest != environ.get("ACCEPTANCE_SHA256"):
        raise ValueError(f"acceptance set {uri} has sha256 {digest}, expected {environ.get('ACCEPTANCE_SHA256')}")
    return parse_cases(body.decode("utf-8"), uri)


def _baseline_metadata(lambda_client: Any, version_arn: str, alias: str, model: str) -> dict[str, Any] | None:
    """The signature of the version the alias serves now (the one being replaced), if it is another one."""
    function_arn, _, new_version = version_arn.rpartition(":")
    current = lambda_client.get_alias(FunctionName=function_arn, Name=alias)["FunctionVersion"]
    if current in (new_version, "$LATEST"):
        return None
    return served_signature(LambdaInvoker(lambda_client, f"{function_arn}:{current}"), model)
