"""Helpers shared by the test tiers: canonical events, calling a handler as API Gateway would, reading EMF."""

from __future__ import annotations

import base64
import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from functions.acceptance.events import response_body, response_headers

EVENTS = Path(__file__).parent / "events"


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / f"{name}.json").read_text())


class Context:
    function_name = "modelrail-test"
    function_version = "1"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:modelrail-test:live"
    aws_request_id = "00000000-0000-0000-0000-000000000001"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def error(self) -> str:
        return str(self.body.get("error", ""))


def rest_event(
    method: str,
    path: str,
    body: Any = None,
    *,
    content_type: str | None = "application/json",
    base64_body: bool = False,
) -> dict[str, Any]:
    """The canonical API Gateway REST proxy event, re-aimed at ``method path`` with ``body``."""
    event = copy.deepcopy(load_event("apigw_rest_proxy"))
    event["httpMethod"] = event["requestContext"]["httpMethod"] = method
    event["path"] = path
    event["pathParameters"] = {"proxy": path.lstrip("/")}
    event["requestContext"]["path"] = f"/{event['requestContext']['stage']}{path}"
    for headers in (event["headers"], event["multiValueHeaders"]):
        headers.pop("Content-Type")
    if content_type is not None:
        event["headers"]["Content-Type"] = content_type
        event["multiValueHeaders"]["Content-Type"] = [content_type]
    if body is None:
        event["body"] = None
    else:
        raw = body if isinstance(body, str | bytes) else json.dumps(body)
        raw_bytes = raw.encode() if isinstance(raw, str) else raw
        event["body"] = base64.b64encode(raw_bytes).decode() if base64_body else raw_bytes.decode()
    event["isBase64Encoded"] = base64_body
    return event


def answer_of(response: dict[str, Any]) -> Answer:
    return Answer(response["statusCode"], response_headers(response), json.loads(response_body(response) or b"{}"))


def emf_records(printed: str) -> list[dict[str, Any]]:
    """The CloudWatch Embedded Metric Format records among what a handler printed."""
    records = []
    for line in printed.splitlines():
        if line.startswith('{"_aws"'):
            records.append(json.loads(line))
    return records


def metric_values(printed: str, name: str) -> list[float]:
    values: list[float] = []
    for record in emf_records(printed):
        if name in record:
            value = record[name]
            values.extend(value if isinstance(value, list) else [value])
    return values
