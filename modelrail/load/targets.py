"""Where a load run sends its requests: an OIP URL over HTTP(S) (open, SigV4-signed for IAM, or with an API key),
or a Lambda function version invoked directly (the memory sweep: API Gateway routes only to the alias live).

Each target answers ``send(body) -> Answer``; an HTTP target keeps one keep-alive connection per thread.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import ssl
import threading
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

from functions.acceptance.events import response_body, response_headers, rest_proxy_event

JSON = "application/json"


@dataclass
class Answer:
    """One request's outcome: the HTTP status (None when none came), the headers the load report reads, and
    for a failure without a status, its kind ("timeout" or "connection")."""

    status: int | None
    headers: dict[str, str] = field(default_factory=dict)
    failure: str | None = None
    detail: str | None = None
    billed_ms: float | None = None  # Lambda's billed duration, when invoked directly with its log tail


class Target(Protocol):
    description: str

    def send(self, body: bytes) -> Answer: ...

    def close(self) -> None: ...


class RequestSigner(Protocol):
    def headers(self, method: str, url: str, body: bytes, headers: dict[str, str]) -> dict[str, str]: ...


class SigV4Signer:
    """Signs each request for API Gateway's IAM authorization (service ``execute-api``) with botocore's SigV4Auth,
    from the session's current credentials (refreshable ones renew themselves)."""

    def __init__(self, credentials: Any, region: str) -> None:
        self.credentials = credentials
        self.region = region

    def headers(self, method: str, url: str, body: bytes, headers: dict[str, str]) -> dict[str, str]:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        request = AWSRequest(method=method, url=url, data=body, headers=dict(headers))
        SigV4Auth(self.credentials.get_frozen_credentials(), "execute-api", self.region).add_auth(request)
        return dict(request.headers.items())


class HttpTarget:
    """POST to ``url`` (an infer URL); ``signer`` signs each request, ``headers`` go on every request."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 29.0,
        signer: RequestSigner | None = None,
        headers: dict[str, str] | None = None,
        description: str | None = None,
    ) -> None:
        address = urlsplit(url)
        if address.scheme not in ("http", "https") or not address.hostname:
            raise ValueError(f"--url {url!r}: expected http(s)://host[:port]/v2/models/NAME/infer")
        self.url = url
        self.scheme = address.scheme
        self.host = address.hostname
        self.port = address.port
        self.path = address.path + (f"?{address.query}" if address.query else "")
        self.timeout_s = timeout_s
        self.signer = signer
        self.headers = {"content-type": JSON, **(headers or {})}
        self.description = description or url
        self._local = threading.local()
        self._connections: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def _connection(self) -> http.client.HTTPConnection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            if self.scheme == "https":
                connection = http.client.HTTPSConnection(
                    self.host, self.port, timeout=self.timeout_s, context=ssl.create_default_context()
                )
            else:
                connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection

    def _drop(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    def send(self, body: bytes) -> Answer:
        headers = dict(self.headers)
        if self.signer is not None:
            headers = self.signer.headers("POST", self.url, body, headers)
        try:
            connection = self._connection()
            connection.request("POST", self.path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
            # An error's own message (the OIP error JSON names the input at fault) is the report's example.
            detail = data[:300].decode(errors="replace") if response.status >= 400 else None
            answer = Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, detail=detail)
            if response.will_close:
                self._drop()
            return answer
        except TimeoutError as exc:
            self._drop()
            return Answer(None, failure="timeout", detail=str(exc) or "timed out")
        except (OSError, http.client.HTTPException) as exc:
            self._drop()
            return Answer(None, failure="connection", detail=f"{type(exc).__name__}: {exc}")

    def close(self) -> None:
        with self._lock:
            for connection in self._connections:
                connection.close()


_BILLED = re.compile(r"Billed Duration: (?P<ms>[\d.]+) ms")


class LambdaVersionTarget:
    """Invokes one function version directly with the REST proxy event API Gateway would send for POST ``path``,
    asking for the log tail so that each answer carries Lambda's own billed duration."""

    def __init__(self, client: Any, function: str, version: str, path: str) -> None:
        self.client = client
        self.function = function
        self.version = version
        self.path = path
        self.description = f"{function}:{version} (invoked directly)"

    def send(self, body: bytes) -> Answer:
        event = rest_proxy_event("POST", self.path, {"content-type": JSON}, body)
        try:
            result = self.client.invoke(
                FunctionName=self.function,
                Qualifier=self.version,
                Payload=json.dumps(event).encode(),
                LogType="Tail",
            )
        except Exception as exc:  # botocore's ClientError (429 TooManyRequests, ...), connection errors
            response = getattr(exc, "response", {}) or {}
            status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
            return Answer(status, failure=None if status else "connection", detail=f"{type(exc).__name__}: {exc}")
        tail = base64.b64decode(result.get("LogResult") or "").decode(errors="replace")
        billed = _BILLED.search(tail)
        billed_ms = float(billed["ms"]) if billed else None
        payload = json.loads(result["Payload"].read() or b"{}")
        if result.get("FunctionError") or "statusCode" not in payload:
            return Answer(502, detail=str(payload)[:200], billed_ms=billed_ms)
        status = int(payload["statusCode"])
        detail = response_body(payload)[:300].decode(errors="replace") if status >= 400 else None
        return Answer(status, response_headers(payload), detail=detail, billed_ms=billed_ms)

    def close(self) -> None:
        pass
