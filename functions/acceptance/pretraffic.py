"""CodeDeploy pre-traffic hook: the acceptance gate, run against the new version before it gets any traffic.

CodeDeploy does not say which version is new, so its ARN arrives in this function's environment
(NEW_VERSION_ARN), checked against the deployment's AppSpec (a stale environment would judge the wrong version).
The new version is invoked directly, never through the alias, with API Gateway events: exactly what users will
send. Whatever happens, even a crash of this code or a broken layer, the hook reports to CodeDeploy exactly once,
before its own timeout; a hook that never reports stalls the deployment for an hour. When the gate cannot run,
it fails closed.

The same function is the first deploy's gate: a CloudFormation custom resource event goes to ``firstdeploy``.
Only the standard library and the reporting code are imported here; the gate (numpy, pydantic) is imported
when it runs, inside the handler's ``try``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

from . import firstdeploy
from .catalog import Env
from .codedeploy import (
    FAILED,
    SUCCEEDED,
    UNBOUNDED,
    Deadline,
    DeadlineBoundLambda,
    LambdaInvoker,
    check_target_version,
    client,
    error_code,
    hook_ids,
    hook_logger,
    report,
)

if TYPE_CHECKING:
    from .gate import AcceptanceCase, Unanswered, Verdict

logger = hook_logger()


def handler(event: dict[str, Any], context: Any, *, clients: Mapping[str, Any] | None = None) -> dict[str, str]:
    if firstdeploy.is_custom_resource_event(event):
        return firstdeploy.handler(event, context, clients=clients)
    deadline = Deadline.of(context)
    clients = dict(clients or {})
    deployment_id, execution_id = hook_ids(event)
    status = FAILED
    try:
        check_target_version(client(clients, "codedeploy"), deployment_id, os.environ[Env.NEW_VERSION_ARN.name], logger)
        verdict = run_gate(os.environ, clients, deadline)
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
        try:
            report(client(clients, "codedeploy"), deployment_id, execution_id, status, logger, deadline)
        except Exception:  # no client can be made: say so, as loudly as possible
            logger.exception("could not report to CodeDeploy", extra={"deployment_id": deployment_id})
    return {"status": status}


def run_gate(environ: Mapping[str, str], clients: MutableMapping[str, Any], deadline: Deadline = UNBOUNDED) -> Verdict:
    """The gate on NEW_VERSION_ARN, against the version the alias serves now; calls end before ``deadline``'s
    reserve (a Lambda client handed in, as in tests, is used as it is)."""
    from .criteria import AcceptanceCriteria
    from .gate import evaluate

    version_arn = environ[Env.NEW_VERSION_ARN.name]
    model = environ[Env.MODEL_NAME.name]
    criteria = AcceptanceCriteria.model_validate_json(environ.get(Env.ACCEPTANCE_CRITERIA.name) or "{}")
    if clients.get("lambda") is None:
        clients["lambda"] = DeadlineBoundLambda(deadline)
    lambda_client = clients["lambda"]
    cases = _acceptance_cases(environ, clients)
    baseline = _baseline_metadata(lambda_client, version_arn, environ.get(Env.ALIAS_NAME.name, "live"), model)
    return evaluate(
        model,
        LambdaInvoker(lambda_client, version_arn),
        cases,
        criteria,
        baseline_metadata=baseline,
        seconds_left=deadline.for_work,
    )


def _acceptance_cases(environ: Mapping[str, str], clients: MutableMapping[str, Any]) -> list[AcceptanceCase]:
    from .gate import parse_cases

    uri = environ.get(Env.ACCEPTANCE_URI.name)
    if not uri:
        return []
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    body = client(clients, "s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    digest = hashlib.sha256(body).hexdigest()
    expected = environ.get(Env.ACCEPTANCE_SHA256.name)
    if digest != expected:
        raise ValueError(f"acceptance set {uri} has sha256 {digest}, expected {expected}")
    return parse_cases(body.decode("utf-8"), uri)


def _baseline_metadata(
    lambda_client: Any, version_arn: str, alias: str, model: str
) -> dict[str, Any] | Unanswered | None:
    """The signature of the version the alias serves now (the one being replaced). None only on a first deploy:
    the alias does not exist yet, or already names the new version (or $LATEST)."""
    from .gate import served_signature

    function_arn, _, new_version = version_arn.rpartition(":")
    try:
        current = lambda_client.get_alias(FunctionName=function_arn, Name=alias)["FunctionVersion"]
    except Exception as exc:
        if error_code(exc) == "ResourceNotFoundException":
            logger.info("alias does not exist yet: a first deploy, no previous version", extra={"alias": alias})
            return None
        raise
    if current in (new_version, "$LATEST"):
        return None
    return served_signature(LambdaInvoker(lambda_client, f"{function_arn}:{current}"), model)
