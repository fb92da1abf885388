"""LambdaWorker: one Lambda execution environment as a process of its own, with its own environment.

Like Lambda, it imports the handler once (the cold start, with the function's environment variables) and then
runs one invocation at a time. What the handler prints (structured logs, EMF metrics) comes back with each
invocation, as CloudWatch Logs would receive it.
"""

from __future__ import annotations

import contextlib
import datetime
import importlib
import io
import json
import multiprocessing
import os
import signal
import sys
import threading
import time
import types
import uuid
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

HANDLER = "functions.inference.handler.lambda_handler"
# The function's timeout, as the execution environment's MODELRAIL_TIMEOUT_S (the local environment sets it to the
# deployment's timeout_seconds); without it, spec.environment.FunctionSettings' default, what infra deploys.
TIMEOUT_VARIABLE = "MODELRAIL_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 29.0
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


def _run(
    conn: Connection,
    environment: dict[str, str],
    handler_path: str,
    function_name: str,
    role: str | None = None,
    clock: tuple[float, float, float] | None = None,
) -> None:
    # Ctrl-C reaches every process of the terminal's group: the worker leaves stopping to its parent, which stops
    # it after the gateway (so what data capture holds is sent, and no request is cut off).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.update(environment)
    version = environment.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
    memory_mb = int(environment.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024"))
    timeout_s = float(environment.get(TIMEOUT_VARIABLE, DEFAULT_TIMEOUT_S))
    capture = _Capture()
    sys.stdout = capture
    try:
        if role is not None:  # the function's role, checked on each S3 call the handler makes
            from .permissions import enforce

            enforce(Path(role), function_name)
        module_name, _, attribute = handler_path.rpartition(".")
        handler = getattr(importlib.import_module(module_name), attribute)
        if clock is not None:
            _run_on(clock)
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
            _flush_capture()
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


def _flush_capture() -> None:
    """A stopping worker sends what data capture still holds, so the last requests before ``serve --capture``
    stops reach the capture folder. (In AWS, a shut-down environment loses at most ``flush_seconds`` of records.)"""
    capture = sys.modules.get("functions.inference.capture")
    if capture is not None:
        with contextlib.suppress(Exception):
            capture.DataCapture.flush_all()


# The function code that reads the wall clock for what time compression must scale: data capture stamps each
# record with the time (the monitor's window is measured in it) and flushes its buffer every few seconds.
CLOCKED_MODULES = ("functions.inference.capture",)


def _run_on(clock: tuple[float, float, float]) -> None:
    """Give the clocked modules the rehearsal's clock: (monotonic start, scale, epoch) of a RehearsalClock."""
    start, scale, epoch = clock

    def rehearsed() -> float:
        return (time.monotonic() - start) * scale

    class RehearsedDatetime(datetime.datetime):
        @classmethod
        def now(cls, tz: datetime.tzinfo | None = None) -> datetime.datetime:  # type: ignore[override]
            return datetime.datetime.fromtimestamp(epoch + rehearsed(), tz)

    class RehearsedTime(types.ModuleType):
        def __getattr__(self, name: str) -> Any:
            return getattr(time, name)

        @staticmethod
        def monotonic() -> float:
            return rehearsed()

        @staticmethod
        def time() -> float:
            return epoch + rehearsed()

    for name in CLOCKED_MODULES:
        module = sys.modules.get(name) or importlib.import_module(name)
        if not hasattr(module, "datetime") or not hasattr(module, "time"):
            raise RuntimeError(f"{name} no longer reads the clock as 'datetime' and 'time': update CLOCKED_MODULES")
        module.datetime = RehearsedDatetime  # type: ignore[attr-defined]
        module.time = RehearsedTime("time")  # type: ignore[attr-defined]


class LambdaWorker:
    """Start with :meth:`start`; :meth:`invoke` is safe from many threads (one invocation at a time).

    The worker is supervised as Lambda supervises execution environments: when its process dies (killed, out
    of memory, a crash in native code), the invocation it was running is a function error, and a new process
    with the same environment (a new cold start) takes the next invocations.
    """

    def __init__(
        self,
        function_name: str,
        environment: dict[str, str],
        handler: str = HANDLER,
        *,
        role: Path | None = None,
        clock: tuple[float, float, float] | None = None,
    ) -> None:
        """``clock``: a RehearsalClock's anchor, for a function that runs in rehearsed time (see CLOCKED_MODULES)."""
        self.function_name = function_name
        self.clock = clock
        self.role = role  # the role document its S3 calls are checked against (modelrail.local.permissions)
        self.environment = environment
        self.version = environment.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.timeout_s = float(environment.get(TIMEOUT_VARIABLE, DEFAULT_TIMEOUT_S))
        self.handler = handler
        self.init_logs: list[str] = []
        self.replacements = 0  # execution environments started after the first one died
        self._lock = threading.Lock()
        self._conn: Connection | None = None
        self._process: Any = None
        self._init_timeout_s = 120.0
        self._stopped = threading.Event()
        self._watcher: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        """The current execution environment's process id (None while there is none)."""
        process = self._process
        return process.pid if process is not None else None

    def start(self, timeout_s: float = 120.0) -> LambdaWorker:
        self._init_timeout_s = timeout_s
        with self._lock:
            self._spawn()
        self._watcher = threading.Thread(target=self._watch, name=f"watch:{self.function_name}:{self.version}")
        self._watcher.daemon = True
        self._watcher.start()
        return self

    def _spawn(self) -> None:
        """A new execution environment, initialised (the caller holds the lock); WorkerError on an init failure."""
        parent, child = _spawn.Pipe()
        process = _spawn.Process(
            target=_run,
            args=(
                child,
                self.environment,
                self.handler,
                self.function_name,
                str(self.role) if self.role else None,
                self.clock,
            ),
            daemon=True,
            name=f"lambda:{self.function_name}:{self.version}",
        )
        process.start()
        child.close()
        name = f"{self.function_name}:{self.version}"
        try:
            if not parent.poll(self._init_timeout_s):
                raise WorkerError(f"{name} did not initialise within {self._init_timeout_s:.0f}s")
            try:
                status, detail, logs = parent.recv()
            except (EOFError, OSError) as exc:
                raise WorkerError(f"{name} died while initialising (exit code {process.exitcode})") from exc
            self.init_logs = logs
            if status != "ready":
                raise WorkerError(f"{name} failed to initialise: {detail}")
        except WorkerError:
            parent.close()
            _end(process)
            raise
        self._conn, self._process = parent, process

    def _replace(self) -> None:
        """Discard the dead environment and start a new one (the caller holds the lock)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._process is not None:
            _end(self._process)
            self._process = None
        if self._stopped.is_set():
            return
        self.replacements += 1
        self._spawn()

    def _watch(self) -> None:
        """Replace a process that dies between invocations before the next one arrives."""
        while not self._stopped.is_set():
            process = self._process
            if process is None:  # a replacement failed to initialise: the next invocation tries again
                self._stopped.wait(0.5)
                continue
            if not wait([process.sentinel], timeout=0.5):
                continue
            with self._lock:
                if self._process is process and not self._stopped.is_set():
                    with contextlib.suppress(WorkerError):  # the next invocation tries again, and reports it
                        self._replace()

    def invoke(self, event: dict[str, Any]) -> Invocation:
        name = f"{self.function_name}:{self.version}"
        with self._lock:
            if self._stopped.is_set():
                raise WorkerError(f"{name} is not running")
            if self._process is None or not self._process.is_alive():
                try:
                    self._replace()  # a cold start for this invocation, as Lambda would start a new environment
                except WorkerError as exc:
                    return _function_error("Runtime.InitError", str(exc), 0.0)
            assert self._conn is not None
            assert self._process is not None
            started = time.perf_counter()
            try:
                self._conn.send(event)
                if not self._conn.poll(self.timeout_s):
                    # Lambda stops an invocation at the function's timeout, reports "Task timed out after N.00
                    # seconds" (error type Sandbox.Timedout), counts it in Errors, and resets the execution
                    # environment: https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html
                    # ("Failures during the invoke phase"). The watcher (or the next invocation) cold-starts its
                    # replacement.
                    self._process.kill()
                    self._process.join(timeout=5)
                    message = f"Task timed out after {self.timeout_s:.2f} seconds"
                    return _function_error("Sandbox.Timedout", message, self.timeout_s * 1000)
                _, (response, duration), logs = self._conn.recv()
            except (EOFError, OSError):
                # The process died during the invocation: Lambda reports Runtime.ExitError as a function error.
                # The watcher (or the next invocation) starts its replacement; this answer need not wait for it.
                elapsed = (time.perf_counter() - started) * 1000
                self._process.join(timeout=1)
                code = self._process.exitcode
                cause = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
                return _function_error("Runtime.ExitError", f"{name} exited during the invocation ({cause})", elapsed)
        return Invocation(response, logs, duration)

    def stop(self) -> None:
        self._stopped.set()
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(OSError):
                    self._conn.send(None)
                self._conn.close()
                self._conn = None
            if self._process is not None:
                _end(self._process)
                self._process = None
        if self._watcher is not None and self._watcher is not threading.current_thread():
            self._watcher.join(timeout=5)


def _end(process: Any) -> None:
    process.join(timeout=5)
    if process.is_alive():
        process.kill()
        process.join()


def _function_error(error_type: str, message: str, duration_ms: float) -> Invocation:
    """What API Gateway makes of a function error: a 502; the log line is the one Lambda writes."""
    response = {
        "statusCode": 502,
        "headers": {"content-type": "application/json"},
        "body": json.dumps({"error": f"function error: {error_type}: {message}"}),
    }
    return Invocation(response, [f"Error: {message} {error_type}"], duration_ms)
