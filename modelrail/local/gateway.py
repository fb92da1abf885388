"""LocalGateway: HTTP on loopback in front of Lambda workers, as API Gateway's REST proxy integration.

Each request becomes the event API Gateway would send (``resource`` ``/{proxy+}``, a stage, base64 for
binary bodies) and the handler's answer becomes the HTTP response. Requests go to the model the path names
(``/v2/models/{name}/...``, ``/v1/models/{name}...``); server-wide routes (``/v2``, ``/v2/health/*``) are
answered for all models at once, since locally one port serves several models.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import urlsplit

from functions.acceptance.events import response_body, response_headers, rest_proxy_event
from functions.inference.protocol import BINARY_MEDIA_TYPES

from .worker import Invocation, WorkerError

# Lambda's synchronous invocation payload limit: API Gateway cannot hand a larger request to the function.
MAX_EVENT_BYTES = 6 * 1024 * 1024
_MODEL_PATH = re.compile(r"^/v[12]/models/(?P<name>[^/:]+)")


class Target(Protocol):
    """Whatever answers for one model: a single worker, or an alias that splits traffic between versions."""

    def invoke(self, event: dict[str, Any]) -> Invocation: ...


Observer = Callable[[str, dict[str, Any], Invocation], None]


class LocalGateway:
    def __init__(
        self, targets: dict[str, Target], *, host: str = "127.0.0.1", port: int = 0, observer: Observer | None = None
    ) -> None:
        self.targets = targets
        self.observer = observer
        handler = type("_BoundHandler", (_RequestHandler,), {"gateway": self})
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> LocalGateway:
        self._thread = threading.Thread(target=self._server.serve_forever, name="local-gateway", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join()

    def handle(
        self, method: str, raw_path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        path = urlsplit(raw_path).path.rstrip("/") or "/"
        if len(body) > MAX_EVENT_BYTES:
            return _error(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"request body is {len(body)} bytes; the limit is {MAX_EVENT_BYTES} (Lambda's payload limit)",
            )
        match = _MODEL_PATH.match(path)
        if match:
            name = match["name"]
            target = self.targets.get(name)
            if target is None:
                served = ", ".join(sorted(self.targets)) or "none"
                return _error(HTTPStatus.NOT_FOUND, f"model '{name}' is not served here; models: {served}")
            return self._invoke(
                name, target, rest_proxy_event(method, raw_path, headers, body, binary_media_types=BINARY_MEDIA_TYPES)
            )
        if path in ("/v2", "/v2/health/live", "/v2/health/ready"):
            return self._server_wide(method, raw_path, headers, body)
        return _error(HTTPStatus.NOT_FOUND, f"no route {path}; see GET /v2 and /v2/models/{{name}}")

    def _invoke(self, name: str, target: Target, event: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        try:
            invocation = target.invoke(event)
        except WorkerError as exc:
            return _error(HTTPStatus.BAD_GATEWAY, f"model '{name}': {exc}")
        if self.observer:
            self.observer(name, event, invocation)
        return _http_response(invocation.response)

    def _server_wide(
        self, method: str, raw_path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        answers = {
            name: self._invoke(
                name, target, rest_proxy_event(method, raw_path, headers, body, binary_media_types=BINARY_MEDIA_TYPES)
            )
            for name, target in self.targets.items()
        }
        path = urlsplit(raw_path).path.rstrip("/")
        if path == "/v2":
            any_answer = next(iter(answers.values()), None)
            if any_answer is None:
                return _error(HTTPStatus.SERVICE_UNAVAILABLE, "no models are served")
            status, _headers_out, payload = any_answer
            document = json.loads(payload)
            document["models"] = sorted(answers)
            return status, {"content-type": "application/json"}, json.dumps(document).encode()
        key = "live" if path.endswith("live") else "ready"
        states = {name: answer[0] == 200 for name, answer in answers.items()}
        ok = bool(states) and all(states.values())
        document = {key: ok, "models": states}
        return (200 if ok else 503), {"content-type": "application/json"}, json.dumps(document).encode()


def _http_response(response: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    return int(response.get("statusCode", 502)), response_headers(response), response_body(response)


def _error(status: HTTPStatus, message: str) -> tuple[int, dict[str, str], bytes]:
    return int(status), {"content-type": "application/json"}, json.dumps({"error": message}).encode()


class _RequestHandler(BaseHTTPRequestHandler):
    gateway: LocalGateway
    protocol_version = "HTTP/1.1"
    server_version = "modelrail-local-gateway"

    def _serve(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, out_headers, payload = self.gateway.handle(self.command, self.path, headers, body)
        self.send_response(status)
        for key, value in out_headers.items():
            if key.lower() not in ("content-length", "connection"):
                self.send_header(key, value)
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

    def log_message(self, format: str, *args: Any) -> None:  # access logs go through the observer instead
        pass
