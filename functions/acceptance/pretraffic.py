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
    from .criteria import AcceptanceCriteria
    from .gate import AcceptanceCase, Verdict
    from .replay import Unavailable

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
    """The gate on NEW_VERSION_ARN, against the version the alias serves now: its signature, and its captured
    requests replayed (CAPTURE_BUCKET); calls end before ``deadline``'s reserve (a Lambda client handed in, as in
    tests, is used as it is)."""
    from .criteria import AcceptanceCriteria
    from .gate import evaluate, served_signature

    version_arn = environ[Env.NEW_VERSION_ARN.name]
    model = environ[Env.MODEL_NAME.name]
    criteria = AcceptanceCriteria.model_validate_json(environ.get(Env.ACCEPTANCE_CRITERIA.name) or "{}")
    if clients.get("lambda") is None:
        clients["lambda"] = DeadlineBoundLambda(deadline)
    lambda_client = clients["lambda"]
    cases = _acceptance_cases(environ, clients)
    function_arn = version_arn.rpartition(":")[0]
    current = _current_version(lambda_client, version_arn, environ.get(Env.ALIAS_NAME.name, "live"))
    baseline = (
        None if current is None else served_signature(LambdaInvoker(lambda_client, f"{function_arn}:{current}"), model)
    )
    replay_records = _replay_records(environ, clients, model, current, criteria, deadline)
    return evaluate(
        model,
        LambdaInvoker(lambda_client, version_arn),
        cases,
        criteria,
        baseline_metadata=baseline,
        seconds_left=deadline.for_work,
        replay_records=replay_records,
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


def _current_version(lambda_client: Any, version_arn: str, alias: str) -> str | None:
    """The version the alias serves now (the one being replaced). None only on a first deploy: the alias does not
    exist yet, or already names the new version (or $LATEST)."""
    function_arn, _, new_version = version_arn.rpartition(":")
    try:
        current = str(lambda_client.get_alias(FunctionName=function_arn, Name=alias)["FunctionVersion"])
    except Exception as exc:
        if error_code(exc) == "ResourceNotFoundException":
            logger.info("alias does not exist yet: a first deploy, no previous version", extra={"alias": alias})
            return None
        raise
    return None if current in (new_version, "$LATEST") else current


def _replay_records(
    environ: Mapping[str, str],
    clients: MutableMapping[str, Any],
    model: str,
    current: str | None,
    criteria: AcceptanceCriteria,
    deadline: Deadline,
) -> list[dict[str, Any]] | Unavailable:
    """The replaced version's newest captured requests, or why there are none to replay."""
    from .replay import Unavailable, read_capture

    if current is None:
        return Unavailable("first deploy: no version has served this model, so nothing was captured")
    excluded = [n.strip() for n in environ.get(Env.CAPTURE_EXCLUDE_INPUTS.name, "").split(",") if n.strip()]
    if excluded:
        return Unavailable(
            f"the bundle's capture_exclude_inputs {excluded} are never captured: requests cannot be rebuilt"
        )
    bucket = environ.get(Env.CAPTURE_BUCKET.name)
    if not bucket:
        return Unavailable("data capture is off in this environment (monitoring.capture): nothing was captured")
    try:
        return read_capture(
            client(clients, "s3"), bucket, model, current, criteria.replay, seconds_left=deadline.for_work
        )
    except Exception as exc:  # the gate fails closed: a replay that could not read is not a replay that passed
        logger.exception("could not read captured requests", extra={"bucket": bucket, "model": model})
        return Unavailable(
            f"could not read captured requests from s3://{bucket}: {type(exc).__name__}: {exc}", fail=True
        )
