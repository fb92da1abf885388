"""LambdaWorker: one Lambda execution environment as a process of its own, with its own environment.

Like Lambda, it imports the handler once (the cold start, with the function's environment variables) and then
runs one invocation at a time. What the handler prints (structured logs, EMF metrics) comes back with each
invocation, as CloudWatch Logs would receive it.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import multiprocessing
import os
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

HANDLER = "functions.inference.handler.lambda_handler"
_spawn = multiprocessing.get_context("spawn")


@dataclass
class Invocation:
    response: dict[str, Any]
    logs: list[str] = field(default_factory=list)
    duration_ms: float = 0.0


class LambdaContext:
    """The attributes of Lambda's context object that handlers and Powertools read."""

    def __init__(self, function_name: str, version: str, memory_mb: int, timeout_s: float) -> None:
        self.function_name = function_name
        self.function_version = version
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:000000000000:function:{function_name}:{version}"
        self.memory_limit_in_mb = memory_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = f"local/{version}"
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class WorkerError(RuntimeError):
    """The execution environment failed outside the handler (crashed at import or died)."""


class _Capture(io.TextIOBase):
    """The process's stdout: collects lines between two :meth:`take` calls (loggers keep a reference to it)."""

    def __init__(self) -> None:
        self._parts: list[str] = []

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._parts.append(text)
        return len(text)

    def take(self) -> list[str]:
        text, self._parts = "".join(self._parts), []
        return text.splitlines()


def _run(conn: Connection, environment: dict[str, str], handler_path: str, function_name: str) -> None:
    os.environ.update(environment)
    version = environment.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
    memory_mb = int(environment.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024"))
    timeout_s = float(environment.get("MODELRAIL_TIMEOUT_S", "30"))
    capture = _Capture()
    sys.stdout = capture
    try:
        module_name, _, attribute = handler_path.rpartition(".")
        handler = getattr(importlib.import_module(module_name), attribute)
    except BaseException as exc:  # an init error, as Lambda reports Runtime.ImportModuleError
        conn.send(("init_error", f"{type(exc).__name__}: {exc}", capture.take()))
        return
    conn.send(("ready", None, capture.take()))
    while True:
        try:
            event = conn.recv()
        except EOFError:
            return
        if event is None:
            return
        started = time.perf_counter()
        context = LambdaContext(function_name, version, memory_mb, timeout_s)
        try:
            response = handler(event, context)
        except Exception as exc:  # an unhandled error, as API Gateway shows it: 502
            response = {
                "statusCode": 502,
                "headers": {"content-type": "application/json"},
                "body": json.dumps({"error": f"function error: {type(exc).__name__}: {exc}"}),
            }
        duration = (time.perf_counter() - started) * 1000
        conn.send(("ok", (response, duration), capture.take()))


class LambdaWorker:
    """Start with :meth:`start`; :meth:`invoke` is safe from many threads (one invocation at a time)."""

    def __init__(self, function_name: str, environment: dict[str, str], handler: str = HANDLER) -> None:
        self.function_name = function_name
        self.environment = environment
        self.version = environment.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.handler = handler
        self.init_logs: list[str] = []
        self._lock = threading.Lock()
        self._conn: Connection | None = None
        self._process: Any = None

    def start(self, timeout_s: float = 120.0) -> LambdaWorker:
        parent, child = _spawn.Pipe()
        self._process = _spawn.Process(
            target=_run,
            args=(child, self.environment, self.handler, self.function_name),
            daemon=True,
            name=f"lambda:{self.function_name}:{self.version}",
        )
        self._process.start()
        child.close()
        self._conn = parent
        if not parent.poll(timeout_s):
            self.stop()
            raise WorkerError(f"{self.function_name}:{self.version} did not initialise within {timeout_s:.0f}s")
        status, detail, logs = parent.recv()
        self.init_logs = logs
        if status != "ready":
            self.stop()
            raise WorkerError(f"{self.function_name}:{self.version} failed to initialise: {detail}")
        return self

    def invoke(self, event: dict[str, Any]) -> Invocation:
        with self._lock:
            if self._conn is None:
                raise WorkerError(f"{self.function_name}:{self.version} is not running")
            try:
                self._conn.send(event)
                _, (response, duration), logs = self._conn.recv()
            except (EOFError, OSError) as exc:
                raise WorkerError(f"{self.function_name}:{self.version} died: {exc}") from exc
        return Invocation(response, logs, duration)

    def stop(self) -> None:
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(OSError):
                    self._conn.send(None)
                self._conn.close()
                self._conn = None
            if self._process is not None:
                self._process.join(timeout=5)
                if self._process.is_alive():
                    self._process.kill()
                    self._process.join()
                self._process = None
