"""The local gateway and its workers under what real clients do: keep-alive, odd framing, stalls, crashes."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from modelrail.local.environment import LocalEnvironment
from modelrail.local.gateway import MAX_EVENT_BYTES, LocalGateway
from modelrail.local.worker import Invocation, LambdaWorker
from modelrail.rehearsal.alias import WeightedAlias
from modelrail.rehearsal.clock import RehearsalClock
from modelrail.rehearsal.metrics import MetricStore
from spec.bundle import ModelBundle

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
IRIS = ROOT / "models" / "iris"
ONE_ROW = {"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """A function for the dying-worker tests: it dies with SIGKILL mid-invocation when asked to (as an
    out-of-memory kill does), runs past its timeout when asked to, and otherwise answers with the process that
    served it."""
    if event.get("body") == "die":
        os.kill(os.getpid(), signal.SIGKILL)
    if event.get("body") == "outlast":  # far past any timeout the tests give it: only a stop ends it in time
        time.sleep(30)
    return {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": json.dumps(os.getpid())}


class EchoFunction:
    """A gateway target that counts its invocations and answers with the size of the body it received."""

    def __init__(self) -> None:
        self.invocations = 0

    def invoke(self, event: dict[str, Any]) -> Invocation:
        self.invocations += 1
        body = {"bytes": len(event["body"] or "")}
        return Invocation(
            {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": json.dumps(body)}
        )


@pytest.fixture
def echo() -> Iterator[tuple[LocalGateway, EchoFunction]]:
    function = EchoFunction()
    gateway = LocalGateway({"echo": function}, read_timeout_s=0.5).start()
    yield gateway, function
    gateway.stop()


@pytest.fixture(scope="module")
def iris() -> Iterator[LocalEnvironment]:
    with LocalEnvironment([ModelBundle.load(IRIS)]) as env:
        yield env


def exchange(url: str, raw: bytes, *, wait_s: float = 10.0) -> tuple[int, dict[str, Any], bool]:
    """Send raw bytes, read the answer until the server closes: (status, JSON body, closed by the server)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=wait_s) as sock:
        sock.sendall(raw)
        received = b""
        closed = False
        while True:
            try:
                part = sock.recv(65536)
            except TimeoutError:
                break
            if not part:
                closed = True
                break
            received += part
            head, _, body = received.partition(b"\r\n\r\n")
            length = next(
                (
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                ),
                None,
            )
            if length is not None and len(body) >= length and b"connection: close" not in head.lower():
                break  # a whole keep-alive answer
    assert received, "the server dropped the connection without an answer"
    head, _, body = received.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body), closed


# Keep-alive latency.


def test_keep_alive_requests_are_answered_without_a_nagle_stall(iris: LocalEnvironment) -> None:
    """A client on one keep-alive connection (requests.Session, tritonclient) must not wait for delayed ACKs.

    A timed bound is robust here because the fault is not a matter of degree: a response written in two
    pieces waits for the client's delayed ACK (~40 ms on Linux) on every request after the first, while a
    1-row iris inference takes ~1-2 ms in all. 10 ms sits 4x above the healthy median and 4x below the stall,
    and the median of 40 requests ignores a few slow ones on a loaded machine.
    """
    host, port = iris.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    body = json.dumps(ONE_ROW)
    timings = []
    for _ in range(40):
        started = time.perf_counter()
        connection.request("POST", "/v2/models/iris/infer", body, {"content-type": "application/json"})
        answer = connection.getresponse()
        assert json.loads(answer.read())["outputs"][0]["data"] == [0]
        timings.append((time.perf_counter() - started) * 1000)
    connection.close()
    assert statistics.median(timings) < 10, f"median {statistics.median(timings):.1f} ms over 40 requests"


# Health routes.


def test_liveness_is_answered_by_the_gateway_and_readiness_by_the_function(
    echo: tuple[LocalGateway, EchoFunction],
) -> None:
    """In AWS, /v2/health/live is a MOCK integration of API Gateway (unauthenticated traffic never reaches
    the function); /v2/health/ready goes to the function like the other routes."""
    gateway, function = echo
    live = requests.get(f"{gateway.url}/v2/health/live", timeout=10)
    assert (live.status_code, live.json()) == (200, {"live": True})
    assert function.invocations == 0
    ready = requests.get(f"{gateway.url}/v2/health/ready", timeout=10)
    assert ready.status_code == 200
    assert function.invocations == 1


# Request framing.


def test_a_content_length_that_is_not_a_number_is_a_400_naming_the_header(
    echo: tuple[LocalGateway, EchoFunction], capfd: pytest.CaptureFixture[str]
) -> None:
    gateway, function = echo
    raw = b"POST /v2/models/echo/infer HTTP/1.1\r\nHost: local\r\nContent-Length: abc\r\n\r\n{}"
    status, body, closed = exchange(gateway.url, raw)
    assert status == 400
    assert "Content-Length" in body["error"]
    assert "'abc'" in body["error"]
    assert closed  # the rest of the stream cannot be framed
    assert function.invocations == 0
    assert "Traceback" not in capfd.readouterr().err


def test_a_body_shorter_than_its_content_length_gets_a_408_after_the_read_timeout(
    echo: tuple[LocalGateway, EchoFunction],
) -> None:
    gateway, function = echo
    raw = b"POST /v2/models/echo/infer HTTP/1.1\r\nHost: local\r\nContent-Length: 100\r\n\r\n{}"
    status, body, closed = exchange(gateway.url, raw)
    assert status == 408
    assert "100" in body["error"]
    assert closed
    assert function.invocations == 0


def test_headers_that_never_end_are_closed_after_the_read_timeout(echo: tuple[LocalGateway, EchoFunction]) -> None:
    gateway, _ = echo
    host, port = gateway.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: local\r\n")
        assert sock.recv(65536) == b""  # closed by the server, not by our 10 s wait


@pytest.mark.parametrize("expect", [False, True], ids=["plain", "expect-100-continue"])
def test_a_body_over_the_payload_limit_is_refused_before_it_is_sent(
    echo: tuple[LocalGateway, EchoFunction], expect: bool
) -> None:
    """Only the headers are sent: the 413 must come from Content-Length alone, without reading 6 MiB."""
    gateway, function = echo
    raw = (
        f"POST /v2/models/echo/infer HTTP/1.1\r\nHost: local\r\nContent-Length: {MAX_EVENT_BYTES + 1}\r\n".encode()
        + (b"Expect: 100-continue\r\n" if expect else b"")
        + b"\r\n"
    )
    status, body, closed = exchange(gateway.url, raw)
    assert status == 413
    assert str(MAX_EVENT_BYTES) in body["error"]
    assert closed
    assert function.invocations == 0


def test_a_chunked_body_reaches_the_function(echo: tuple[LocalGateway, EchoFunction]) -> None:
    """HTTP/1.1 servers must accept chunked bodies (RFC 9112, 6.1); requests sends one for a generator."""
    gateway, _ = echo
    parts = [b'{"inputs": ', b"[]", b"}"]
    with requests.Session() as session:
        first = session.post(f"{gateway.url}/v2/models/echo/infer", data=iter(parts), timeout=10)
        second = session.post(f"{gateway.url}/v2/models/echo/infer", data=b"{}", timeout=10)
    assert first.json() == {"bytes": len(b"".join(parts))}
    assert second.json() == {"bytes": 2}  # the connection is still framed correctly afterwards


def test_a_chunked_body_over_the_payload_limit_is_refused_while_reading(
    echo: tuple[LocalGateway, EchoFunction],
) -> None:
    gateway, function = echo
    raw = (
        b"POST /v2/models/echo/infer HTTP/1.1\r\nHost: local\r\nTransfer-Encoding: chunked\r\n\r\n"
        + f"{MAX_EVENT_BYTES + 1:x}\r\n".encode()
    )
    status, body, closed = exchange(gateway.url, raw)
    assert status == 413
    assert str(MAX_EVENT_BYTES) in body["error"]
    assert closed
    assert function.invocations == 0


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"NONSENSE\r\n\r\n", 400),
        (b"GET /v2\r\n\r\n", 400),  # HTTP/0.9, whose answers have no status line
        (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n", 414),
        (b"GET /v2 HTTP/1.1\r\nX-Long: " + b"a" * 70_000 + b"\r\n\r\n", 431),
        (b"BREW /v2 HTTP/1.1\r\nHost: local\r\n\r\n", 405),
        (b"G(T /v2 HTTP/1.1\r\nHost: local\r\n\r\n", 400),
    ],
    ids=["request-line", "http-0.9", "uri-too-long", "header-too-long", "unknown-method", "invalid-method"],
)
def test_malformed_requests_get_a_json_4xx_and_no_traceback(
    echo: tuple[LocalGateway, EchoFunction], capfd: pytest.CaptureFixture[str], raw: bytes, status: int
) -> None:
    gateway, _ = echo
    answer, body, closed = exchange(gateway.url, raw)
    assert answer == status
    assert body["error"]
    assert closed
    assert "Traceback" not in capfd.readouterr().err


def test_a_burst_of_connections_fits_in_the_listen_backlog() -> None:
    """While the gateway is busy (here: not accepting at all), 50 clients connecting at once must all be queued
    by the kernel; with a backlog of 5, the 7th connection attempt waits for SYN retries and times out."""
    gateway = LocalGateway({})  # listening, but never started: nothing accepts
    host, port = gateway.url.removeprefix("http://").split(":")
    sockets = []
    try:
        for _ in range(50):
            sockets.append(socket.create_connection((host, int(port)), timeout=3))
    finally:
        for sock in sockets:
            sock.close()
        gateway.stop()
    assert len(sockets) == 50


# Worker supervision.


def test_a_killed_worker_is_replaced_and_its_model_answers_again(iris: LocalEnvironment) -> None:
    worker = iris.workers["iris"]
    killed = worker.pid
    os.kill(killed, signal.SIGKILL)
    deadline = time.monotonic() + 20
    statuses = []
    while time.monotonic() < deadline:
        answer = requests.post(f"{iris.url}/v2/models/iris/infer", json=ONE_ROW, timeout=30)
        statuses.append(answer.status_code)
        if answer.status_code == 200:
            break
        time.sleep(0.2)
    assert statuses[-1] == 200, f"still {statuses[-1]} after 20 s: {answer.text}"
    assert answer.json()["outputs"][0]["data"] == [0]
    assert worker.pid != killed
    assert requests.get(f"{iris.url}/v2/health/ready", timeout=10).json()["ready"] is True


@contextlib.contextmanager
def alias_on_one_worker(
    function: str, environment: dict[str, str]
) -> Iterator[tuple[LambdaWorker, WeightedAlias, MetricStore]]:
    """This module's lambda_handler as version 2 of ``function``, alone behind the rehearsal's alias."""
    worker = LambdaWorker(
        function, {"AWS_LAMBDA_FUNCTION_VERSION": "2", **environment}, handler=f"{__name__}.lambda_handler"
    ).start()
    try:
        store = MetricStore()
        alias = WeightedAlias(function, RehearsalClock(600), store)
        alias.add_version(worker)
        alias.point_to("2")
        yield worker, alias, store
    finally:
        worker.stop()


def test_a_version_whose_worker_dies_mid_invocation_shows_a_function_error_and_comes_back() -> None:
    """In the rehearsal, a dead execution environment is what Lambda shows: that invocation is a function error
    (502 through API Gateway, counted in the version's Errors), and the next one gets a new environment.
    Lambda's Errors metric counts "exceptions that the Lambda runtime throws" as well as the code's (AWS Lambda
    Developer Guide, "Types of metrics for Lambda functions")."""
    with alias_on_one_worker("modelrail-dying", {}) as (worker, alias, store):
        first = worker.pid

        died = alias.invoke({"body": "die"})
        served = alias.invoke({"body": "hello"})

        assert died.response["statusCode"] == 502
        assert "Runtime.ExitError" in json.loads(died.response["body"])["error"]
        assert served.response["statusCode"] == 200
        assert json.loads(served.response["body"]) == worker.pid != first
        dimensions = {"FunctionName": "modelrail-dying", "Resource": "modelrail-dying:live", "ExecutedVersion": "2"}
        assert store.values("AWS/Lambda", "Errors", dimensions, 0, float("inf")) == [1.0, 0.0]
        assert (alias.stats["2"].total, alias.stats["2"].errors) == (2, 1)


def test_an_invocation_past_the_function_timeout_is_stopped_counted_in_errors_and_the_environment_replaced() -> None:
    """Lambda stops an invocation at the function's timeout: "Task timed out after 1.00 seconds" (Sandbox.Timedout),
    a function error (502 through API Gateway, counted in the version's Errors, its Duration the timeout), and the
    execution environment is reset before the next invocation (AWS Lambda Developer Guide, "Understanding the
    Lambda execution environment lifecycle", failures during the invoke phase). The handler would run 30 s: the
    answer cannot have waited for it."""
    with alias_on_one_worker("modelrail-slow", {"MODELRAIL_TIMEOUT_S": "1"}) as (worker, alias, store):
        first = worker.pid

        timed_out = alias.invoke({"body": "outlast"})
        served = alias.invoke({"body": "hello"})

        assert timed_out.response["statusCode"] == 502
        error = json.loads(timed_out.response["body"])["error"]
        assert error == "function error: Sandbox.Timedout: Task timed out after 1.00 seconds"
        assert any("Task timed out after 1.00 seconds" in line for line in timed_out.logs)
        assert served.response["statusCode"] == 200
        assert json.loads(served.response["body"]) == worker.pid != first  # a cold start, not the stopped one
        assert worker.replacements == 1
        dimensions = {"FunctionName": "modelrail-slow", "Resource": "modelrail-slow:live", "ExecutedVersion": "2"}
        assert store.values("AWS/Lambda", "Errors", dimensions, 0, float("inf")) == [1.0, 0.0]
        assert store.values("AWS/Lambda", "Duration", dimensions, 0, float("inf"))[0] == 1000.0
        assert (alias.stats["2"].total, alias.stats["2"].errors) == (2, 1)
