"""The first deploy's acceptance gate: a CloudFormation custom resource run by the pre-traffic hook's function.

A stack's first deploy creates the alias directly, with no CodeDeploy deployment and so no pre-traffic hook. This
custom resource (created before the alias) runs the same gate on the version named by its ``VersionArn``
property: a failing gate answers FAILED and the stack's creation stops before any traffic. Update and Delete answer
SUCCESS at once: later deploys are gated by CodeDeploy's hook. It always answers the pre-signed ResponseURL, even
on its own crash, before its own timeout: a custom resource that never answers stalls the stack for an hour.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from .catalog import Env
from .codedeploy import UNBOUNDED, Deadline, hook_logger

SUCCESS = "SUCCESS"
FAILED = "FAILED"
MAX_RESPONSE_BYTES = 4096  # CloudFormation's limit on the whole response body
logger = hook_logger()


def is_custom_resource_event(event: Any) -> bool:
    return isinstance(event, dict) and "RequestType" in event and "ResponseURL" in event


def handler(event: dict[str, Any], context: Any, *, clients: Mapping[str, Any] | None = None) -> dict[str, str]:
    event = event if isinstance(event, dict) else {}
    deadline = Deadline.of(context)
    status, reason, data = FAILED, "the acceptance gate did not finish", {}
    physical_id = str(event.get("PhysicalResourceId") or "")
    try:
        request_type = event["RequestType"]
        if request_type in ("Update", "Delete"):
            status, reason = SUCCESS, f"{request_type}: later versions are gated by CodeDeploy's pre-traffic hook"
        elif request_type == "Create":
            version_arn = event.get("ResourceProperties", {}).get("VersionArn")
            if not isinstance(version_arn, str) or version_arn.count(":") != 7:
                raise ValueError(
                    f"ResourceProperties.VersionArn is {version_arn!r}: expected a function version's ARN "
                    "(arn:aws:lambda:<region>:<account>:function:<name>:<version>)"
                )
            physical_id = f"modelrail-acceptance-gate:{version_arn}"
            from .pretraffic import run_gate

            verdict = run_gate({**os.environ, Env.NEW_VERSION_ARN.name: version_arn}, dict(clients or {}), deadline)
            logger.info("acceptance verdict (first deploy)", extra={"verdict": verdict.to_dict()})
            data = {"Passed": str(verdict.passed).lower(), "Version": version_arn.rpartition(":")[2]}
            if verdict.passed:
                status, reason = SUCCESS, f"acceptance gate passed for {version_arn}"
            else:
                status, reason = FAILED, _failure_reason(version_arn, verdict)
        else:
            raise ValueError(f"RequestType is {request_type!r}: expected Create, Update or Delete")
    except Exception as exc:
        logger.exception("first-deploy gate could not run: answering FAILED")
        status, reason = FAILED, f"the acceptance gate could not run: {type(exc).__name__}: {exc}"
    finally:
        answered = respond(event, status, reason, physical_id or _fallback_id(event), data, deadline)
    return {"Status": status, "Reason": reason, "Answered": str(answered).lower()}


def _failure_reason(version_arn: str, verdict: Any) -> str:
    details = [f"{c.name}: {c.measured} (threshold {c.threshold}) {c.detail}".rstrip() for c in verdict.criteria]
    failing = [d for d, c in zip(details, verdict.criteria, strict=True) if not c.passed]
    return f"acceptance gate failed for {version_arn}: {', '.join(verdict.failing())}. " + "; ".join(failing)


def _fallback_id(event: dict[str, Any]) -> str:
    return f"modelrail-acceptance-gate:{event.get('LogicalResourceId', 'unknown')}"


def response_body(event: dict[str, Any], status: str, reason: str, physical_id: str, data: dict[str, str]) -> bytes:
    """The response document, its Reason truncated so that the whole body fits CloudFormation's 4096 bytes."""
    fields = {
        "Status": status,
        "PhysicalResourceId": physical_id[:1024],
        "StackId": event.get("StackId", ""),
        "RequestId": event.get("RequestId", ""),
        "LogicalResourceId": event.get("LogicalResourceId", ""),
        "Data": data,
    }
    marker = " [truncated]"
    while True:
        body = json.dumps({**fields, "Reason": reason}).encode()
        over = len(body) - MAX_RESPONSE_BYTES
        if over <= 0 or not reason:
            return body
        # Each character cut shortens the JSON by at least one byte (escapes are longer, never shorter).
        reason = reason[: max(0, len(reason) - over - len(marker))] + marker if len(reason) > len(marker) else ""


def respond(
    event: dict[str, Any],
    status: str,
    reason: str,
    physical_id: str,
    data: dict[str, str],
    deadline: Deadline = UNBOUNDED,
) -> bool:
    """PUT the response to the pre-signed ResponseURL (S3), retried while time is left. True when it landed."""
    url = str(event.get("ResponseURL") or "")
    if not url.startswith(("https://", "http://")):
        logger.error("custom resource event without an http(s) ResponseURL: nobody to answer", extra={"url": url})
        return False
    body = response_body(event, status, reason, physical_id, data)
    attempt = 0
    while True:
        attempt += 1
        left = deadline.remaining()
        # The pre-signed URL was signed without a content type: send none (as AWS's cfn-response module does).
        request = urllib.request.Request(
            url, data=body, method="PUT", headers={"Content-Type": "", "Content-Length": str(len(body))}
        )
        try:
            with urllib.request.urlopen(request, timeout=max(0.5, min(10.0, left - 0.5))) as answer:
                logger.info("answered CloudFormation", extra={"status": status, "http_status": answer.status})
                return True
        except Exception as exc:
            client_error = isinstance(exc, urllib.error.HTTPError) and 400 <= exc.code < 500
            pause = min(2.0, 0.25 * 2**attempt)
            if client_error or attempt >= 8 or deadline.remaining() - pause < 1.0:
                logger.exception("could not answer CloudFormation: the stack waits for its timeout")
                return False
            logger.warning("answer to CloudFormation failed, retrying", extra={"error": str(exc), "attempt": attempt})
            time.sleep(pause)
