"""What the hooks share, on the standard library alone (boto3 is imported when a client is made): the time left
in this invocation, status reports that land, the deployment's target version, and invoking a function version.

Nothing here may fail to import: a hook module that cannot be imported never reports, and CodeDeploy then waits
an hour for it.
"""

from __future__ import annotations

import json
import logging
import math
import random
import re
import time
from collections.abc import Callable, MutableMapping
from typing import Any

SUCCEEDED = "Succeeded"
FAILED = "Failed"
REPORT_RESERVE_SECONDS = 15.0  # kept back from the gate's work so the status report, retried, still lands
MIN_CALL_SECONDS = 1.0  # a call is not started with less time than this left for work
LAMBDA_CALL_CEILING_SECONDS = 45.0  # the inference function's 29 s timeout plus a cold start's init
_RETRYABLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "LimitExceededException",
        "SlowDown",
        "InternalError",
        "InternalFailure",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)


def hook_logger() -> Any:
    """Powertools' structured logger when the layer provides it; the standard library's otherwise, so that a
    broken layer still leaves a hook that logs and reports."""
    try:
        from aws_lambda_powertools import Logger

        return Logger(service="modelrail-acceptance")
    except Exception:  # the layer is what is broken: log with what the runtime always has
        logger = logging.getLogger("modelrail-acceptance")
        logger.setLevel(logging.INFO)
        return logger


class Deadline:
    """The time left in this invocation (Lambda's ``context.get_remaining_time_in_millis``), and the part of it
    that work may use: a reserve is kept for reporting the outcome."""

    def __init__(self, remaining_ms: Callable[[], float] | None, reserve_seconds: float = 0.0) -> None:
        self._remaining_ms = remaining_ms
        self.reserve = reserve_seconds

    @classmethod
    def of(cls, context: Any) -> Deadline:
        """The reserve is REPORT_RESERVE_SECONDS, or a fifth of the time there is when that is shorter."""
        getter = getattr(context, "get_remaining_time_in_millis", None)
        if not callable(getter):
            return cls(None)
        try:
            initial = float(getter()) / 1000
        except Exception:
            return cls(None)
        return cls(getter, min(REPORT_RESERVE_SECONDS, initial / 5))

    def remaining(self) -> float:
        """Seconds until Lambda stops this invocation (infinite outside Lambda)."""
        if self._remaining_ms is None:
            return math.inf
        try:
            return float(self._remaining_ms()) / 1000
        except Exception:
            return math.inf

    def for_work(self) -> float:
        """Seconds that calls may still take, the report's reserve left aside."""
        return self.remaining() - self.reserve


UNBOUNDED = Deadline(None)


class OutOfTime(TimeoutError):
    """A call was not started: the time left before the report's reserve is too short for it."""


def aws_client(service: str, *, connect_timeout: float = 3.0, read_timeout: float = 10.0, attempts: int = 3) -> Any:
    """A boto3 client whose calls are bounded: ``attempts`` in botocore's standard retry mode, each at most
    ``connect_timeout`` + ``read_timeout`` seconds (botocore's default would wait 60 s per read)."""
    # boto3 is imported here: the Lambda runtime provides it, and tests hand in their own clients.
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"mode": "standard", "total_max_attempts": attempts},
    )
    return boto3.client(service, config=config)


# CodeDeploy's calls answer in well under a second; short timeouts keep a report, retried, inside the reserve.
_CLIENT_SETTINGS: dict[str, dict[str, Any]] = {"codedeploy": {"connect_timeout": 2.0, "read_timeout": 3.0}}
_REPORT_ATTEMPT_SECONDS = 5.0  # one HTTP attempt of the CodeDeploy client at most: connect + read


def client(clients: MutableMapping[str, Any], service: str) -> Any:
    """The client handed in (tests) or one made once per invocation."""
    if clients.get(service) is None:
        clients[service] = aws_client(service, **_CLIENT_SETTINGS.get(service, {}))
    return clients[service]


class DeadlineBoundLambda:
    """A Lambda client whose calls never outlive the deadline: each is made with a client whose timeouts fit in
    the time left for work. A synchronous Invoke waits for the function, so the client's read timeout is how long
    we wait for a version that hangs (the SDK's 60 s default would outlive a hook near its end); a timed-out Invoke
    is not retried, as a retry would run the function again."""

    def __init__(self, deadline: Deadline, make: Callable[[float, float], Any] | None = None) -> None:
        self.deadline = deadline
        self._make = make or (
            lambda connect, read: aws_client("lambda", connect_timeout=connect, read_timeout=read, attempts=1)
        )
        self._client: Any = None
        self._timeout = math.inf

    def _current(self) -> Any:
        left = self.deadline.for_work()
        if left < MIN_CALL_SECONDS:
            raise OutOfTime(f"{left:.1f} s left before the report's reserve: no call started")
        # Whole seconds, so that near the end a new client is made at most once a second.
        timeout = float(math.floor(min(LAMBDA_CALL_CEILING_SECONDS, left)))
        if self._client is None or timeout < self._timeout:
            connect = min(3.0, timeout / 4)
            self._client, self._timeout = self._make(connect, timeout - connect), timeout
        return self._client

    def __getattr__(self, operation: str) -> Any:
        return getattr(self._current(), operation)


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ClientError ("" for anything else)."""
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


def _retryable(exc: Exception) -> bool:
    if error_code(exc) in _RETRYABLE_CODES:
        return True
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return status == 429 or status >= 500
    # botocore's connection errors: the request may not have reached CodeDeploy
    return any(cls.__name__ in ("HTTPClientError", "ConnectionError") for cls in type(exc).__mro__)


def hook_ids(event: Any) -> tuple[str | None, str | None]:
    if not isinstance(event, dict):
        return None, None
    return event.get("DeploymentId"), event.get("LifecycleEventHookExecutionId")


def report(
    codedeploy: Any,
    deployment_id: str | None,
    execution_id: str | None,
    status: str,
    logger: Any,
    deadline: Deadline = UNBOUNDED,
) -> bool:
    """PutLifecycleEventHookExecutionStatus, retried with backoff while time is left; a loud log line when the
    event was not CodeDeploy's or the report cannot land. True when CodeDeploy has the status."""
    if not deployment_id or not execution_id:
        logger.error("not a CodeDeploy lifecycle event: nothing to report", extra={"status": status})
        return False
    attempt = 0
    while True:
        attempt += 1
        try:
            codedeploy.put_lifecycle_event_hook_execution_status(
                deploymentId=deployment_id, lifecycleEventHookExecutionId=execution_id, status=status
            )
            logger.info(
                "reported to CodeDeploy", extra={"deployment_id": deployment_id, "status": status, "attempt": attempt}
            )
            return True
        except Exception as exc:
            if error_code(exc) == "LifecycleEventAlreadyCompletedException":
                # An earlier attempt landed although its answer was lost: the status is CodeDeploy's already.
                logger.warning("CodeDeploy already has this hook's status", extra={"deployment_id": deployment_id})
                return True
            pause = random.uniform(0, min(4.0, 0.25 * 2**attempt))  # full jitter, as the SDKs back off
            left = deadline.remaining()
            # botocore's standard mode has already retried; this loop is the last resort, while a further
            # attempt still ends before Lambda stops the hook.
            if not _retryable(exc) or attempt >= 12 or left - pause < _REPORT_ATTEMPT_SECONDS:
                logger.exception(
                    "could not report to CodeDeploy: the deployment waits for its hook timeout",
                    extra={"deployment_id": deployment_id, "status": status, "attempt": attempt, "seconds_left": left},
                )
                return False
            logger.warning(
                "report to CodeDeploy failed, retrying",
                extra={"deployment_id": deployment_id, "error": f"{type(exc).__name__}: {exc}", "attempt": attempt},
            )
            time.sleep(pause)


class StaleHook(RuntimeError):
    """The deployment shifts the alias to another version than the one this hook was built to judge."""


def appspec_target_version(content: str) -> str:
    """The TargetVersion of a Lambda AppSpec (JSON, or YAML), whose keys CodeDeploy reads case-insensitively.

    PyYAML is not in the Lambda runtime, so YAML is read for this one field; JSON is parsed properly.
    """
    found: set[str] = set()
    try:
        document = json.loads(content)
    except ValueError:
        document = None
    if isinstance(document, dict):
        resources = next((v for k, v in document.items() if k.lower() == "resources"), None)
        for resource in resources if isinstance(resources, list) else []:
            for spec in resource.values() if isinstance(resource, dict) else []:
                properties = _get(spec, "properties")
                found |= {str(v) for k, v in properties.items() if k.lower() == "targetversion"}
    else:
        found = set(re.findall(r"""(?i)["']?\btargetversion["']?\s*:\s*["']?([^"'\s,}\]#]+)""", content))
    if len(found) != 1:
        raise ValueError(f"the deployment's AppSpec names {sorted(found) or 'no'} TargetVersion; expected exactly one")
    return found.pop()


def _get(document: Any, key: str) -> dict[str, Any]:
    """A mapping's value under ``key`` in any case, when it is a mapping itself."""
    if isinstance(document, dict):
        value = next((v for k, v in document.items() if k.lower() == key), None)
        if isinstance(value, dict):
            return value
    return {}


def deployment_target_version(codedeploy: Any, deployment_id: str) -> str:
    """The version the deployment shifts the alias to, from its AppSpec (GetDeployment's revision)."""
    revision = codedeploy.get_deployment(deploymentId=deployment_id)["deploymentInfo"].get("revision") or {}
    content = (revision.get("appSpecContent") or revision.get("string") or {}).get("content")
    if not content:
        raise ValueError(
            f"deployment {deployment_id} carries no AppSpec (revisionType {revision.get('revisionType')!r})"
        )
    return appspec_target_version(content)


def check_target_version(codedeploy: Any, deployment_id: str | None, version_arn: str, logger: Any) -> None:
    """Raise StaleHook when the deployment shifts to another version than NEW_VERSION_ARN's: an environment left
    from an earlier deploy would gate the wrong version."""
    if not deployment_id:
        return  # not CodeDeploy's event: there is no deployment to compare with, and nothing will be reported
    expected = version_arn.rpartition(":")[2]
    target = deployment_target_version(codedeploy, deployment_id)
    if target != expected:
        raise StaleHook(
            f"deployment {deployment_id} shifts the alias to version {target}, but this hook's NEW_VERSION_ARN "
            f"names version {expected}: a stale hook environment would judge the wrong version"
        )
    logger.info("deployment targets the version under test", extra={"deployment_id": deployment_id, "version": target})


def _error_response(status: int, message: str) -> dict[str, Any]:
    return {"statusCode": status, "body": json.dumps({"error": message})}


class LambdaInvoker:
    """Invoke one function version (or alias) with an API Gateway event. What stops an answer reads as an error
    answer of that request: a function error as a 502, an Invoke that timed out or was not started in time as a
    504, an API error (throttling, access) with its HTTP status."""

    def __init__(self, client: Any, qualified_arn: str) -> None:
        self.client = client
        self.arn = qualified_arn

    def __call__(self, event: dict[str, Any]) -> dict[str, Any]:
        answer, throttled = self._invoke(event)
        for pause in (0.2, 0.4):
            # A throttled Invoke never ran the function: worth another try (the client itself does not retry,
            # as a retried timeout would run it twice).
            if not throttled:
                break
            time.sleep(pause)
            answer, throttled = self._invoke(event)
        return answer

    def _invoke(self, event: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """The proxy response, and whether Lambda throttled the Invoke."""
        try:
            response = self.client.invoke(
                FunctionName=self.arn, InvocationType="RequestResponse", Payload=json.dumps(event).encode()
            )
            payload = json.loads(response["Payload"].read() or b"{}")
        except OutOfTime as exc:
            return _error_response(504, f"not invoked: {exc}"), False
        except Exception as exc:
            names = {cls.__name__ for cls in type(exc).__mro__}
            if names & {"ReadTimeoutError", "ConnectTimeoutError", "TimeoutError"}:
                # The function may still be running; what counts is that this request got no answer in time.
                message = f"no answer from {self.arn} before the timeout ({type(exc).__name__})"
                return _error_response(504, message), False
            code = error_code(exc)
            if code:
                status = int(getattr(exc, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode") or 502)
                # Lambda's throttling of Invoke (concurrency, request rate): TooManyRequestsException, HTTP 429.
                throttled = code == "TooManyRequestsException"
                return _error_response(status, f"Invoke {self.arn} failed: {code}: {exc}"), throttled
            return _error_response(502, f"Invoke {self.arn} failed: {type(exc).__name__}: {exc}"), False
        if response.get("FunctionError"):
            message = payload.get("errorMessage", "unknown") if isinstance(payload, dict) else str(payload)
            return _error_response(502, f"function error: {message}"), False
        if not isinstance(payload, dict):
            return _error_response(502, f"not a proxy response: {payload!r}"), False
        return payload, False
