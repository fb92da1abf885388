"""LocalLambdaApi: the two Lambda API calls the monitor's paired canary analysis makes, answered by the rehearsal.

``GetAlias`` reads the rehearsed alias ``live`` (its version, and the routing config while a deployment shifts it)
and ``Invoke`` of ``<function>:<version>`` runs that version's worker, outside the alias (not user traffic), as
Lambda would: within the function's concurrency, so it may be throttled (429 TooManyRequestsException). moto's
Lambda cannot run our function without Docker; the monitor's real boto3 client reaches this server through
``AWS_ENDPOINT_URL_LAMBDA`` (boto3's service-specific endpoint variable), over the REST paths of the Lambda API
reference (``GET /2015-03-31/functions/{FunctionName}/aliases/{Name}``,
``POST /2015-03-31/functions/{FunctionName}/invocations``).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .alias import INVOKE_THROTTLED_STATUS, INVOKE_THROTTLED_TYPE, Throttled, WeightedAlias

ENDPOINT_VARIABLE = "AWS_ENDPOINT_URL_LAMBDA"
_PREFIX = "/2015-03-31/functions/"


class LocalLambdaApi:
    def __init__(self, alias: WeightedAlias, alias_name: str = "live") -> None:
        self.alias = alias
        self.alias_name = alias_name
        self.invocations: dict[str, int] = {}  # by version: the monitor's paired invokes
        self._lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: Any) -> None:  # quiet: the rehearsal's view is the output
                pass

            def do_GET(self) -> None:
                self._answer(*api.get(self.path))

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                self._answer(*api.post(self.path, body))

            def _answer(self, status: int, document: Any, headers: dict[str, str]) -> None:
                data = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> LocalLambdaApi:
        self._thread = threading.Thread(target=self._server.serve_forever, name="local-lambda-api", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _function(self, path: str) -> tuple[str, str | None, str]:
        """(function name, qualifier, the rest of the path) of a Lambda API path."""
        url = urlsplit(path)
        rest = url.path.removeprefix(_PREFIX)
        name, _, tail = rest.partition("/")
        name = unquote(name).rsplit(":function:", 1)[-1]  # a name, or an ARN
        qualifier = parse_qs(url.query).get("Qualifier", [None])[0]
        if ":" in name:
            name, qualifier = name.split(":", 1)
        return name, qualifier, tail

    def _unknown(self, name: str) -> tuple[int, dict[str, Any], dict[str, str]]:
        message = f"Function not found: {name} (the rehearsal's function is {self.alias.function_name})"
        return 404, {"Type": "User", "message": message}, {"x-amzn-errortype": "ResourceNotFoundException"}

    def get(self, path: str) -> tuple[int, dict[str, Any], dict[str, str]]:
        name, _, tail = self._function(path)
        if name != self.alias.function_name or tail != f"aliases/{self.alias_name}":
            return self._unknown(f"{name}/{tail}")
        weights = self.alias.weights()
        primary = self.alias.primary or "1"
        others = {v: w for v, w in weights.items() if v != primary}
        document: dict[str, Any] = {
            "AliasArn": f"arn:aws:lambda:us-east-1:000000000000:function:{name}:{self.alias_name}",
            "Name": self.alias_name,
            "FunctionVersion": primary,
        }
        if others:
            document["RoutingConfig"] = {"AdditionalVersionWeights": others}
        return 200, document, {}

    def post(self, path: str, body: bytes) -> tuple[int, Any, dict[str, str]]:
        name, qualifier, tail = self._function(path)
        worker = self.alias.workers.get(qualifier or "")
        if name != self.alias.function_name or tail != "invocations" or worker is None:
            return self._unknown(f"{name}:{qualifier}")
        with self._lock:
            self.invocations[worker.version] = self.invocations.get(worker.version, 0) + 1
        invocation = self.alias.invoke_version(worker.version, json.loads(body or b"{}"))
        if isinstance(invocation, Throttled):  # the function's concurrency is the users' too: Lambda's 429
            return INVOKE_THROTTLED_STATUS, invocation.response, {"x-amzn-errortype": INVOKE_THROTTLED_TYPE}
        return 200, invocation.response, {"x-amz-executed-version": worker.version}
