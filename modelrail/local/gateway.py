"""LocalGateway: HTTP on loopback in front of Lambda workers, as API Gateway's REST proxy integration.

Each request becomes the event API Gateway would send (``resource`` ``/{proxy+}``, a stage, base64 for
binary bodies) and the handler's answer becomes the HTTP response. Requests go to the model the path names
(``/v2/models/{name}/...``, ``/v1/models/{name}...``); server-wide routes (``/v2``, ``/v2/health/*``) are
answered for all models at once, since locally one port serves several models, except ``/v2/health/live``,
which the gateway answers itself as API Gateway's MOCK integration does in AWS.

It is an HTTP/1.1 server that real clients can lean on: keep-alive without Nagle stalls, read timeouts for
stalled requests, bodies over Lambda's payload limit refused from their headers, chunked bodies, JSON errors.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
import socket
import sys
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol, cast
from urllib.parse import urlsplit

from functions.acceptance.events import response_body, response_headers, rest_proxy_event
from functions.inference.protocol import BINARY_MEDIA_TYPES

from .worker import Invocation, WorkerError

# Lambda's synchronous invocation payload limit: API Gateway cannot hand a larger request to the function.
MAX_EVENT_BYTES = 6 * 1024 * 1024
_MODEL_PATH = re.compile(r"^/v[12]/models/(?P<name>[^/:]+)")
# The methods an API Gateway REST API's ANY method passes on to the proxy integration.
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # RFC 9110's method token
_CHUNK_SIZE = re.compile(rb"^[0-9A-Fa-f]{1,16}$")
_log = logging.getLogger(__name__)


class Target(Protocol):
    """Whatever answers for one model: a single worker, or an alias that splits traffic between versions."""

    def invoke(self, event: dict[str, Any]) -> Invocation: ...


Observer = Callable[[str, dict[str, Any], Invocation], None]


class LocalGateway:
    """``read_timeout_s``: how long a request's line, headers or body may stall before the gateway gives up
    (408 for a body, a closed connection for headers); ``idle_timeout_s``: how long a kept-alive connection may
    wait for its next request."""

    def __init__(
        self,
        targets: dict[str, Target],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        observer: Observer | None = None,
        read_timeout_s: float = 10.0,
        idle_timeout_s: float = 60.0,
    ) -> None:
        self.targets = targets
        self.observer = observer
        handler = type(
            "_BoundHandler",
            (_RequestHandler,),
            {"gateway": self, "timeout": read_timeout_s, "idle_timeout_s": idle_timeout_s},
        )
        self._server = _Server((host, port), handler)
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
        if self._thread:  # shutdown() waits for serve_forever(), which only start() runs
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
        if path == "/v2/health/live":
            # In AWS this route is API Gateway's MOCK integration: it never reaches (or costs) a function.
            return 200, {"content-type": "application/json"}, json.dumps({"live": True}).encode()
        if path in ("/v2", "/v2/health/ready"):
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
        states = {name: answer[0] == 200 for name, answer in answers.items()}
        ok = bool(states) and all(states.values())
        document = {"ready": ok, "models": states}
        return (200 if ok else 503), {"content-type": "application/json"}, json.dumps(document).encode()


def _http_response(response: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    return int(response.get("statusCode", 502)), response_headers(response), response_body(response)


def _error(status: HTTPStatus, message: str) -> tuple[int, dict[str, str], bytes]:
    return int(status), {"content-type": "application/json"}, json.dumps({"error": message}).encode()


class _Refusal(Exception):
    """A request the gateway answers itself, without reading the rest of it; the connection closes after."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog is 5: a burst of clients connecting while every thread is busy accepting
    # would otherwise wait for SYN retries (1 s, 3 s, ...) or fail.
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return  # the client went away or stalled: nothing to report
        super().handle_error(request, client_address)


class _RequestHandler(BaseHTTPRequestHandler):
    gateway: LocalGateway
    # ``timeout`` (set by LocalGateway) is the socket timeout while a request's line, headers or body arrive.
    raw_requestline: bytes
    idle_timeout_s: float  # how long a kept-alive connection may wait for its next request
    protocol_version = "HTTP/1.1"
    server_version = "modelrail-local-gateway"
    # Each response leaves in one write (flushed once by handle_one_request): headers and body written apart
    # make the body wait for the client's delayed ACK (Nagle), ~40 ms on every keep-alive request.
    wbufsize = 64 * 1024

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._linger = False

    def finish(self) -> None:
        super().finish()
        if self._linger:
            # Closing with unread input makes the kernel send a reset, which can destroy the error answer
            # before the client reads it: stop writing, then discard what the client still sends, briefly.
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_WR)
                self.connection.settimeout(0.5)
                deadline = time.monotonic() + 2
                while time.monotonic() < deadline and self.connection.recv(65536):
                    pass

    def handle_one_request(self) -> None:
        # Between requests the connection is idle, not stalled: wait for the next one's first byte longer.
        self.connection.settimeout(self.idle_timeout_s)
        try:
            if not cast(io.BufferedReader, self.rfile).peek(1):
                self.close_connection = True
                return
        except (TimeoutError, ConnectionError):
            self.close_connection = True
            return
        self.connection.settimeout(self.timeout)
        super().handle_one_request()

    def parse_request(self) -> bool:
        words = self.raw_requestline.split()
        if len(words) == 2:  # HTTP/0.9
            self.command, self.request_version = "", self.protocol_version
            self.send_error(HTTPStatus.BAD_REQUEST, "the request line has no HTTP version (HTTP/1.1 expected)")
            return False
        if not super().parse_request():
            return False
        if self.command not in _METHODS:
            if not _TOKEN.match(self.command or ""):
                self.send_error(HTTPStatus.BAD_REQUEST, f"invalid method {self.command!r} in the request line")
            else:
                self.send_error(
                    HTTPStatus.METHOD_NOT_ALLOWED,
                    f"method {self.command} is not served; use one of {', '.join(_METHODS)}",
                )
            return False
        return True

    def handle_expect_100(self) -> bool:
        # Refuse a body from its headers alone, before the client sends it.
        try:
            self._body_length()
        except _Refusal as refusal:
            self._reply(*_error(refusal.status, str(refusal)), close=True)
            return False
        self.send_response_only(HTTPStatus.CONTINUE)
        self.end_headers()
        self.wfile.flush()
        return True

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The standard library's errors (bad request line, headers too long), as the API's JSON errors."""
        short, _ = self.responses.get(code, ("error", ""))
        text = message or short
        if explain and explain != text:
            text = f"{text}: {explain}"
        self.log_error("code %d, message %s", code, text)
        if self.request_version not in ("HTTP/1.0", "HTTP/1.1"):
            # A request line without a (known) version would get an HTTP/0.9 answer: no status line, no headers.
            self.request_version = self.protocol_version
        self._reply(*_error(HTTPStatus(code), text), close=True)

    def _serve(self) -> None:
        try:
            body = self._read_body()
        except _Refusal as refusal:
            self._reply(*_error(refusal.status, str(refusal)), close=True)
            return
        except TimeoutError:
            framing = self.headers.get("content-length")
            framing = f"Content-Length: {framing}" if framing else "chunked"
            message = f"the request body ({framing}) did not arrive within {self.timeout:g} s"
            self._reply(*_error(HTTPStatus.REQUEST_TIMEOUT, message), close=True)
            return
        if body is None:  # the client closed the connection in the middle of its body
            self.close_connection = True
            return
        headers = {k.lower(): v for k, v in self.headers.items() if k.lower() != "transfer-encoding"}
        try:
            status, out_headers, payload = self.gateway.handle(self.command, self.path, headers, body)
        except Exception as exc:  # a fault of the local environment itself: say so rather than drop the connection
            _log.exception("local gateway failed on %s %s", self.command, self.path)
            status, out_headers, payload = _error(
                HTTPStatus.INTERNAL_SERVER_ERROR, f"local gateway error: {type(exc).__name__}: {exc}"
            )
        self._reply(status, out_headers, payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

    def _body_length(self) -> int | None:
        """The body's declared length (None for chunked); refuses bad framing and bodies over the limit."""
        encoding = self.headers.get("transfer-encoding")
        lengths = self.headers.get_all("content-length") or []
        if encoding is not None:
            if lengths:
                raise _Refusal(HTTPStatus.BAD_REQUEST, "a request has Transfer-Encoding or Content-Length, not both")
            if encoding.strip().lower() != "chunked":
                raise _Refusal(
                    HTTPStatus.NOT_IMPLEMENTED,
                    f"Transfer-Encoding: {encoding} is not supported; send the body with Content-Length or chunked",
                )
            return None
        if not lengths:
            return 0
        if len({v.strip() for v in lengths}) > 1 or not lengths[0].strip().isdigit():
            value = ", ".join(lengths)
            raise _Refusal(
                HTTPStatus.BAD_REQUEST, f"header Content-Length: {value!r} is not a byte count (a non-negative integer)"
            )
        length = int(lengths[0])
        if length > MAX_EVENT_BYTES:
            raise _Refusal(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, _too_large(f"{length} bytes"))
        return length

    def _read_body(self) -> bytes | None:
        """The whole body, or None when the client closed before sending it all."""
        length = self._body_length()
        if length is None:
            return self._read_chunked()
        body = self.rfile.read(length) if length else b""
        return body if len(body) == length else None

    def _read_chunked(self) -> bytes | None:
        body = bytearray()
        while True:
            line = self.rfile.readline(1024)
            if not line:
                return None
            size_field = line.split(b";", 1)[0].strip()
            if not line.endswith(b"\n") or not _CHUNK_SIZE.match(size_field):
                raise _Refusal(HTTPStatus.BAD_REQUEST, f"chunked body: bad chunk size line {line[:40]!r}")
            size = int(size_field, 16)
            if size == 0:
                break
            if len(body) + size > MAX_EVENT_BYTES:
                raise _Refusal(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, _too_large(f"over {MAX_EVENT_BYTES} bytes"))
            chunk = self.rfile.read(size)
            if len(chunk) < size:
                return None
            body += chunk
            if self.rfile.readline(3).rstrip(b"\r\n"):
                raise _Refusal(HTTPStatus.BAD_REQUEST, "chunked body: a chunk is longer than its size line says")
        for _ in range(100):  # trailer fields, which the event has no place for, up to the blank line
            line = self.rfile.readline(8192)
            if not line:
                return None
            if line in (b"\r\n", b"\n"):
                return bytes(body)
        raise _Refusal(HTTPStatus.BAD_REQUEST, "chunked body: more than 100 trailer lines")

    def _reply(self, status: int, headers: dict[str, str], payload: bytes, *, close: bool = False) -> None:
        if close:
            self.close_connection = True
            self._linger = True
        self.send_response(status)
        for key, value in headers.items():
            if key.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(key, value)
        self.send_header("content-length", str(len(payload)))
        if close:
            self.send_header("connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)
        self.wfile.flush()

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # access logs go through the observer instead

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _too_large(size: str) -> str:
    return f"request body is {size}; the limit is {MAX_EVENT_BYTES} (Lambda's payload limit)"
