"""An execution environment whose cold start met a fault: it imports, answers 503 naming the fault, and heals.

S3 is moto in-process, wrapped so that GetObject fails the way real S3 and real networks do; the service's
clock is a fake one, so the retry schedule is exercised without sleeping.
"""

from __future__ import annotations

import errno
import hashlib
import io
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    ReadTimeoutError,
    ResponseStreamingError,
)
from botocore.response import StreamingBody
from urllib3.exceptions import IncompleteRead, ProtocolError

from functions.inference import service as service_module
from functions.inference import store as store_module
from tests.functional.conftest import IRIS, Function, cold_start, upload
from tests.utils import Context, metric_values, rest_event

pytestmark = pytest.mark.functional

ROW = {"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}


def client_error(code: str, status: int, message: str) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}, "GetObject"
    )


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class BrokenBody:
    """A GetObject body that delivers ``good`` bytes of the artifact, then fails with ``error``."""

    def __init__(self, body: Any, good: int, error: BaseException) -> None:
        self.data = body.read()
        self.good = good
        self.error = error
        self.closed = False

    def iter_chunks(self, chunk_size: int) -> Iterator[bytes]:
        yield self.data[: self.good]
        raise self.error

    def close(self) -> None:
        self.closed = True


Fault = BaseException | Callable[[dict[str, Any]], dict[str, Any]]


class FaultyS3:
    """moto's S3 client, except that the next GetObject calls meet ``faults`` in turn (an exception to raise,
    or a function that breaks the response), then S3 recovers."""

    def __init__(self, real: Any, faults: list[Fault]) -> None:
        self.real = real
        self.faults = list(faults)
        self.calls = 0

    def get_object(self, **kwargs: Any) -> dict[str, Any]:
        self.calls += 1
        if not self.faults:
            return self.real.get_object(**kwargs)
        fault = self.faults.pop(0)
        if isinstance(fault, BaseException):
            raise fault
        return fault(self.real.get_object(**kwargs))


def broken_stream(error: BaseException) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def breaks(response: dict[str, Any]) -> dict[str, Any]:
        return {**response, "Body": BrokenBody(response["Body"], 100, error)}

    return breaks


class Environment:
    def __init__(self, function: Function, s3: FaultyS3, clock: Clock, cache: Path) -> None:
        self.function = function
        self.s3 = s3
        self.clock = clock
        self.cache = cache


@pytest.fixture
def start(s3: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[..., Environment]:
    """start(faults, **env) -> a cold-started handler whose S3 meets ``faults`` first."""

    def _start(faults: list[Fault], **env: str) -> Environment:
        uri, sha256 = upload(s3, IRIS, "iris")
        faulty = FaultyS3(s3, faults)
        clock = Clock()
        original = service_module.InferenceService.from_environment

        def from_environment(environ: Any, **kwargs: Any) -> Any:
            return original(environ, s3_factory=lambda: faulty, clock=clock, **kwargs)

        monkeypatch.setattr(service_module.InferenceService, "from_environment", from_environment)
        cache = tmp_path / "cache"
        module = cold_start(
            monkeypatch,
            {
                "MODEL_NAME": "iris",
                "MODEL_URI": uri,
                "MODEL_SHA256": sha256,
                "AWS_LAMBDA_FUNCTION_VERSION": "1",
                "MODEL_CACHE_DIR": str(cache),
                **env,
            },
        )
        return Environment(Function(module, "iris"), faulty, clock, cache)

    return _start


# S3's own advice is to retry InternalError and SlowDown ("Amazon S3 error best practices", S3 User Guide);
# an AccessDenied can be a role whose policy has not propagated yet, or a missing key read without
# s3:ListBucket ("Troubleshoot access denied (403 Forbidden) errors in Amazon S3"). botocore's own retries
# have given up by the time the store sees these.
S3_FAULTS = {
    "internal-error": (client_error("InternalError", 500, "We encountered an internal error"), "InternalError"),
    "slow-down": (client_error("SlowDown", 503, "Please reduce your request rate."), "SlowDown"),
    "access-denied": (client_error("AccessDenied", 403, "Access Denied"), "AccessDenied"),
    "connection": (EndpointConnectionError(endpoint_url="https://s3.amazonaws.com"), "EndpointConnectionError"),
}


@pytest.mark.parametrize("fault", S3_FAULTS.values(), ids=S3_FAULTS.keys())
def test_failed_fetch_is_retried_and_the_environment_heals(
    start: Callable[..., Environment], capsys: Any, fault: tuple[BaseException, str]
) -> None:
    error, named = fault
    env = start([error, error])
    function = env.function
    capsys.readouterr()

    first = function.infer(ROW)
    assert first.status == 503
    assert named in first.error
    assert "retrying in 1 s" in first.error
    assert first.headers["retry-after"] == "1"
    assert metric_values(capsys.readouterr().out, "Unavailable") == [1.0]

    # Before the backoff elapses a request answers at once, without asking S3 again.
    calls = env.s3.calls
    assert function.infer(ROW).status == 503
    assert env.s3.calls == calls
    ready = function.call("GET", "/v2/models/iris/ready")
    assert ready.status == 503
    assert named in ready.body["error"]
    assert function.call("GET", "/v2/health/ready").status == 503

    env.clock.advance(1)
    second = function.infer(ROW)  # S3 fails once more: the next attempt waits twice as long
    assert second.status == 503
    assert "retrying in 2 s" in second.error
    assert metric_values(capsys.readouterr().out, "ArtifactFetchRetries") == [1.0]

    env.clock.advance(2)
    healed = function.infer(ROW)
    assert healed.status == 200
    assert healed.body["outputs"][0]["data"] == [0]
    printed = capsys.readouterr().out
    assert metric_values(printed, "ArtifactFetchRetries") == [1.0]
    assert metric_values(printed, "Unavailable") == [0.0]
    assert metric_values(printed, "ColdStart") == []  # the same environment, not a new cold start
    assert function.call("GET", "/v2/health/ready").status == 200
    assert function.call("GET", "/v2/models/iris/ready").body == {"name": "iris", "ready": True}


def test_backoff_doubles_to_a_minute_and_readiness_checks_drive_it(
    start: Callable[..., Environment], caplog: Any
) -> None:
    slow_down = client_error("SlowDown", 503, "Please reduce your request rate.")
    env = start([slow_down] * 9)
    caplog.set_level(logging.INFO)

    announced = []
    for _ in range(9):
        answer = env.function.call("GET", "/v2/health/ready")
        assert answer.status == 503
        announced.append(int(answer.body["error"].rsplit("retrying in ", 1)[1].split(" ")[0]))
        env.clock.advance(announced[-1])

    assert announced == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert env.function.call("GET", "/v2/health/ready").status == 200
    attempts = [(r.getMessage(), r.attempt) for r in caplog.records if r.getMessage().startswith("model ")]
    assert attempts[-1] == ("model loaded", 10)
    assert [n for message, n in attempts if message == "model not served"] == list(range(1, 10))


STREAM_FAULTS = {
    "incomplete-read": (
        ResponseStreamingError(error=ProtocolError("Connection broken: IncompleteRead", IncompleteRead(100, 3000))),
        "ResponseStreamingError",
    ),
    "read-timeout": (
        ReadTimeoutError(endpoint_url="https://s3.amazonaws.com", error="Read timed out."),
        "ReadTimeoutError",
    ),
    "connection-reset": (ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"), "ConnectionResetError"),
}


@pytest.mark.parametrize("fault", STREAM_FAULTS.values(), ids=STREAM_FAULTS.keys())
def test_stream_broken_mid_download_is_the_cause_and_leaves_no_partial_file(
    start: Callable[..., Environment], capsys: Any, fault: tuple[BaseException, str]
) -> None:
    error, named = fault
    env = start([broken_stream(error)])  # the import itself must not raise
    capsys.readouterr()

    answer = env.function.infer(ROW)

    assert answer.status == 503
    assert named in answer.error
    assert "failed after 100 bytes" in answer.error
    assert metric_values(capsys.readouterr().out, "Unavailable") == [1.0]
    assert list(env.cache.iterdir()) == []
    env.clock.advance(1)
    assert env.function.infer(ROW).status == 200


def test_full_disk_while_writing_is_the_cause_and_leaves_no_partial_file(
    start: Callable[..., Environment], monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    real_fdopen = os.fdopen
    full = {"disk": True}

    class FullDisk(io.BufferedWriter):
        def write(self, data: Any) -> int:
            if full["disk"]:
                super().write(bytes(data)[:100])  # what fitted stays in the file: it must still be removed
                raise OSError(errno.ENOSPC, "No space left on device")
            return super().write(data)

    def fdopen(fd: int, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if mode == "wb":
            return FullDisk(io.FileIO(fd, "wb"))
        return real_fdopen(fd, mode, *args, **kwargs)

    monkeypatch.setattr(store_module, "os", type("os", (), {"fdopen": staticmethod(fdopen)}))
    env = start([])
    capsys.readouterr()

    answer = env.function.infer(ROW)

    assert answer.status == 503
    assert "No space left on device" in answer.error
    assert str(env.cache) in answer.error
    assert metric_values(capsys.readouterr().out, "Unavailable") == [1.0]
    assert list(env.cache.iterdir()) == []
    full["disk"] = False
    env.clock.advance(1)
    assert env.function.infer(ROW).status == 200


def test_a_retry_that_meets_a_tampered_artifact_refuses_it_for_good(start: Callable[..., Environment]) -> None:
    # Retrying is safe because every download is checked against the pinned digest again; a mismatch is final
    # (the bytes under the key are not the pinned ones: downloading them again would only be refused again).
    def tampered(response: dict[str, Any]) -> dict[str, Any]:
        data = response["Body"].read() + b"\x00"
        return {**response, "Body": StreamingBody(io.BytesIO(data), len(data)), "ContentLength": len(data)}

    reset = ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")
    env = start([broken_stream(reset), tampered])
    env.clock.advance(1)

    answer = env.function.infer(ROW)
    env.clock.advance(3600)
    again = env.function.infer(ROW)

    assert answer.status == again.status == 503
    assert "refusing to serve it" in again.error
    assert "retrying" not in again.error
    assert "retry-after" not in again.headers
    assert env.s3.calls == 2  # the cold start's and one retry: never downloaded again
    assert list(env.cache.iterdir()) == []


@pytest.mark.parametrize("written", ["{sha}\n", "  {sha}  ", "{upper}\r\n"], ids=["sha256sum", "spaces", "crlf"])
def test_pinned_digest_with_surrounding_whitespace_serves(start: Callable[..., Environment], written: str) -> None:
    # MODEL_SHA256 set from `sha256sum` output or read from a file ends in a newline; it was refused as a
    # mismatch that printed the same digest twice.
    sha = hashlib.sha256(IRIS.read_bytes()).hexdigest()
    env = start([], MODEL_SHA256=written.format(sha=sha, upper=sha.upper()))

    answer = env.function.infer(ROW)

    assert answer.status == 200, answer.error


def test_head_on_a_readiness_route_answers_without_a_body(start: Callable[..., Environment]) -> None:
    env = start([client_error("SlowDown", 503, "Please reduce your request rate.")])

    response = env.function.module.lambda_handler(rest_event("HEAD", "/v2/models/iris/ready", None), Context())

    assert response["statusCode"] == 503
    assert response["body"] == ""
