"""`modelrail load` on the local environment over loopback: the open-loop generator's rate and percentiles against
an independent measurement, an unsustainable rate showing as shortfall and queueing (and failing the budgets),
malformed traffic as 4xx rather than latency. Runs are a few seconds each (CI has 2 cores)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelrail import cli
from modelrail.load.generator import LoadGenerator
from modelrail.load.report import check_budgets, to_report
from modelrail.load.schedule import RateProfile
from modelrail.load.targets import Answer, HttpTarget
from modelrail.local.environment import LocalEnvironment
from modelrail.local.gateway import LocalGateway
from modelrail.local.worker import Invocation, LambdaWorker
from spec.bundle import ModelBundle
from spec.environment import LoadBudget

ROOT = Path(__file__).resolve().parents[2]
IRIS = ROOT / "models" / "iris"
SETOSA = {"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}
WRONG_SHAPE = {"inputs": [{**SETOSA["inputs"][0], "shape": [1, 5]}]}  # valid JSON, a request the model refuses


@pytest.fixture(scope="module")
def environment() -> Iterator[LocalEnvironment]:
    with LocalEnvironment([ModelBundle.load(IRIS)]) as env:
        yield env


def infer_url(base: str) -> str:
    return f"{base}/v2/models/iris/infer"


class Timed:
    """The independent measurement: wraps a target and times each send itself, from just before to just after."""

    def __init__(self, inner: HttpTarget) -> None:
        self.inner = inner
        self.description = inner.description
        self.times_ms: list[float] = []
        self._lock = threading.Lock()

    def send(self, body: bytes) -> Answer:
        started = time.perf_counter()
        answer = self.inner.send(body)
        elapsed = (time.perf_counter() - started) * 1000
        if answer.status == 200:
            with self._lock:
                self.times_ms.append(elapsed)
        return answer

    def close(self) -> None:
        self.inner.close()


def test_a_sustainable_rate_is_achieved_and_its_percentiles_are_the_clients(environment: LocalEnvironment) -> None:
    timed = Timed(HttpTarget(infer_url(environment.url)))
    profile = RateProfile.parse("40", 3)
    result = LoadGenerator(timed, [json.dumps(SETOSA).encode()], profile, max_in_flight=8).run()
    report = to_report(result)

    assert report["rate"]["scheduled"] == 120
    assert abs(report["rate"]["achieved_rps"] - 40) <= 0.05 * 40
    assert report["errors"]["error_rate"] == 0
    client = report["latency_ms"]["client"]
    assert client["count"] == len(timed.times_ms) == 120
    for name, q in (("p50", 50), ("p90", 90), ("p99", 99)):
        independent = float(np.percentile(timed.times_ms, q, method="inverted_cdf"))
        # From its due time a request's latency can only be longer than from its send; at a rate the machine holds,
        # by no more than how late the generator's threads woke (the report's start lag; the load machine's own
        # scheduling, on a busy CI runner several ms) and the histogram's 1% buckets.
        slack = 2.0 + report["latency_ms"]["start_lag"]["max"]
        assert independent - 0.001 <= client[name] <= 1.1 * independent + slack, (name, client[name], independent)
    # The function's own time (Server-Timing) sits beside the client's, below it.
    function = report["latency_ms"]["function"]
    assert function["count"] == 120
    assert function["p50"] < client["p50"]
    # One execution environment answered (the local worker of version 1): one cold start in the report.
    assert report["cold_starts"]["observed"] == 1
    assert report["cold_starts"]["by_version"] == {"1": 1}


class SlowFunction:
    """A function that spends 50 ms before each answer (as a model too big for its memory would)."""

    DELAY_S = 0.05

    def __init__(self, worker: LambdaWorker) -> None:
        self.worker = worker

    def invoke(self, event: dict[str, Any]) -> Invocation:
        time.sleep(self.DELAY_S)
        return self.worker.invoke(event)


@pytest.fixture
def slow_url(environment: LocalEnvironment) -> Iterator[str]:
    gateway = LocalGateway({"iris": SlowFunction(environment.workers["iris"])}).start()
    try:
        yield infer_url(gateway.url)
    finally:
        gateway.stop()


def test_an_unsustainable_rate_shows_shortfall_and_queueing_and_fails_the_budgets(slow_url: str) -> None:
    # One request in flight, each taking at least 50 ms: at most 20/s can be answered, and 60/s are due.
    profile = RateProfile.parse("60", 2)
    result = LoadGenerator(HttpTarget(slow_url), [json.dumps(SETOSA).encode()], profile, max_in_flight=1).run()
    budgets = check_budgets(result, LoadBudget(peak_rps=60, duration_seconds=2, p99_ms=100, max_error_rate_percent=1))
    report = to_report(result, budgets=budgets)

    rate = report["rate"]
    assert rate["scheduled"] == 120
    assert rate["achieved_rps"] <= 21  # the shortfall: a third of the target at best
    assert report["errors"]["not_sent"] == 120 - rate["sent"] >= 120 - 41
    assert rate["started_late"] >= rate["sent"] - 1  # every request but the first waited for the in-flight slot
    # Queueing, not a flattering p99: the k-th request starts no earlier than k x 50 ms but was due at k / 60 s.
    client = report["latency_ms"]["client"]
    sent = rate["sent"]
    assert client["max"] >= (sent - 1) * (50 - 1000 / 60)
    assert client["p99"] >= 50 + (sent - 2) * (50 - 1000 / 60) * 0.99
    assert client["p99"] > 10 * report["latency_ms"]["function"]["p99"]  # the function itself is quick
    assert report["passed"] is False
    assert {b["budget"] for b in report["budgets"] if not b["passed"]} == {
        "load.peak_rps",
        "load.p99_ms",
        "load.max_error_rate_percent",
    }


def test_malformed_traffic_shows_as_4xx_not_as_latency(environment: LocalEnvironment) -> None:
    bodies = [json.dumps(SETOSA).encode(), json.dumps(WRONG_SHAPE).encode()]
    profile = RateProfile.parse("20", 2)
    result = LoadGenerator(HttpTarget(infer_url(environment.url)), bodies, profile, max_in_flight=4).run()
    report = to_report(result, budgets=check_budgets(result, LoadBudget(peak_rps=20, p99_ms=1000)))

    assert report["statuses"] == {"200": 20, "400": 20}
    assert report["errors"]["client_4xx"] == 20
    assert report["latency_ms"]["client"]["count"] == 20  # only the answers that served a prediction are timed
    assert report["errors"]["error_rate"] == 0  # the client's mistakes are not the service's errors
    assert "float_input" in report["errors"]["examples"]["client_4xx"]  # the server's own message, naming the input
    assert report["passed"] is True


def test_load_command_on_a_url_fails_the_staging_budgets_naming_each(
    slow_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    traffic = tmp_path / "traffic.jsonl"
    traffic.write_text(json.dumps(SETOSA) + "\n")
    report_path, png = tmp_path / "load.json", tmp_path / "load.png"
    code = cli.main(
        [
            "load",
            "--url",
            slow_url,
            "--traffic",
            str(traffic),
            "--rps",
            "30",
            "--duration",
            "2",
            "--max-in-flight",
            "1",
            "--budget",
            "staging",
            "--report",
            str(report_path),
            "--png",
            str(png),
        ]
    )
    out, err = capsys.readouterr()
    assert code == 1
    (missed_line,) = [line for line in out.splitlines() if line.startswith("LOAD BUDGETS MISSED: ")]
    missed = missed_line.removeprefix("LOAD BUDGETS MISSED: ").split(", ")
    assert {"load.peak_rps", "load.max_error_rate_percent"} <= set(missed)
    # The capacity check ran first: staging's API throttle (20/s) cannot hold 30/s.
    assert "environments.staging.api.throttle_rate_limit 20" in err
    report = json.loads(report_path.read_text())
    assert report["passed"] is False
    assert missed == [b["budget"] for b in report["budgets"] if not b["passed"]]  # each one missed, named
    assert report["warnings"]
    assert "throttle_rate_limit" in report["warnings"][0]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
