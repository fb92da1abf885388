"""API Gateway REST proxy events, so that whoever invokes a function directly sends what users' requests become."""

from __future__ import annotations

import base64
import time
import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

STAGE = "live"


def rest_proxy_event(
    method: str,
    raw_path: str,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    *,
    stage: str = STAGE,
    binary_media_types: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The event API Gateway's REST proxy integration sends for one HTTP request.

    As API Gateway does, the body is base64-encoded when its content type is one of the API's binary media
    types, and otherwise passed on as UTF-8 text (where bytes that are not UTF-8 do not survive).
    """
    headers = headers or {}
    url = urlsplit(raw_path)
    query = parse_qs(url.query, keep_blank_values=True)
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    media_type = content_type.split(";", 1)[0].strip().lower()
    binary = bool(body) and ("*/*" in binary_media_types or media_type in binary_media_types)
    if binary:
        text: str | None = base64.b64encode(body).decode()
    else:
        text = body.decode("utf-8", errors="replace") if body else None
    request_id = str(uuid.uuid4())
    return {
        "resource": "/{proxy+}",
        "path": url.path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": {"proxy": url.path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "resourcePath": "/{proxy+}",
            "httpMethod": method,
            "path": f"/{stage}{url.path}",
            "stage": stage,
            "requestId": request_id,
            "extendedRequestId": request_id,
            "requestTimeEpoch": int(time.time() * 1000),
            "protocol": "HTTP/1.1",
            "accountId": "000000000000",
            "apiId": "local",
            "identity": {"sourceIp": "127.0.0.1", "userAgent": headers.get("user-agent", "")},
        },
        "body": text,
        "isBase64Encoded": binary,
    }


def response_headers(response: dict[str, Any]) -> dict[str, str]:
    """A proxy response's headers, lower-cased, single- and multi-value forms merged."""
    headers = {
        k.lower(): ", ".join(str(v) for v in values) for k, values in (response.get("multiValueHeaders") or {}).items()
    }
    headers.update({k.lower(): str(v) for k, v in (response.get("headers") or {}).items()})
    return headers


def response_body(response: dict[str, Any]) -> bytes:
    body = response.get("body") or ""
    return base64.b64decode(body) if response.get("isBase64Encoded") else body.encode()
