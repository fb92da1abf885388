"""The exact EMF record the inference handler prints for every outcome a request can have: the rollout alarms read
these numbers, so a metric counted under the wrong name, unit or route silently changes what rolls a version back."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests import builders
from tests.functional.conftest import BUCKET, IRIS
from tests.functional.test_capture import STREAM, firehose  # noqa: F401 (the fixture)
from tests.utils import Answer, Context, answer_of, emf_records, rest_event

pytestmark = pytest.mark.functional


def tensor(data: list[Any], shape: list[int], name: str = "float_input") -> dict[str, Any]:
    return {"inputs": [{"name": name, "shape": shape, "datatype": "FP32", "data": data}]}


FLOWER = tensor([5.1, 3.5, 1.4, 0.2], [1, 4])
COUNTS = ("ClientErrors", "ModelErrors", "NonFiniteOutputs", "Unavailable")


@dataclass(frozen=True)
class Case:
    model: str  # "iris", "fails_at_run", "square_root", "bad_env" or "missing"
    method: str
    path: str
    body: Any = None
    content_type: str | None = "application/json"
    status: int = 200
    counted: str | None = None  # the one of COUNTS set to 1; None: an answered request
    rows: int | None = None  # Rows on an answered request
    model_ran: bool = False  # ModelLatency present: onnxruntime was called
    inference: bool = True  # False: the route publishes no record at all


INFER = "/v2/models/{name}/infer"
CASES = {
    "200": Case("iris", "POST", INFER, FLOWER, rows=1, model_ran=True),
    "200 two rows, by version": Case(
        "iris",
        "POST",
        "/v2/models/{name}/versions/1/infer",
        tensor([5.1, 3.5, 1.4, 0.2] * 2, [2, 4]),
        rows=2,
        model_ran=True,
    ),
    "200 v1": Case(
        "iris", "POST", "/v1/models/{name}:predict", {"instances": [[5.1, 3.5, 1.4, 0.2]]}, rows=1, model_ran=True
    ),
    "400": Case("iris", "POST", INFER, tensor([1.0, 2.0, 3.0], [1, 3]), status=400, counted="ClientErrors"),
    "404 other model": Case("iris", "POST", "/v2/models/mnist/infer", FLOWER, status=404, counted="ClientErrors"),
    "404 other version": Case(
        "iris", "POST", "/v2/models/{name}/versions/3/infer", FLOWER, status=404, counted="ClientErrors"
    ),
    "413": Case("iris", "POST", INFER, tensor([1.0] * 36, [9, 4]), status=413, counted="ClientErrors"),
    "415": Case("iris", "POST", INFER, "a=1", "application/x-www-form-urlencoded", 415, "ClientErrors"),
    "500 model fault": Case(
        "fails_at_run",
        "POST",
        INFER,
        tensor([1.0] * 8, [2, 4], "x"),
        status=500,
        counted="ModelErrors",
        model_ran=True,
    ),
    "500 non-finite": Case(
        "square_root",
        "POST",
        INFER,
        tensor([4.0, -1.0], [1, 2], "x"),
        status=500,
        counted="NonFiniteOutputs",
        model_ran=True,
    ),
    "503 bad environment": Case("bad_env", "POST", INFER, FLOWER, status=503, counted="Unavailable"),
    "503 missing artifact": Case("missing", "POST", INFER, FLOWER, status=503, counted="Unavailable"),
    # Routes that must not count: they would dilute the version's error rates, or count as its errors.
    "405 on the inference path": Case("iris", "GET", INFER, status=405, inference=False),
    "404 unknown route": Case("iris", "POST", "/v3/anything", FLOWER, status=404, inference=False),
    "503 readiness": Case("bad_env", "GET", "/v2/models/{name}/ready", status=503, inference=False),
    **{
        f"{method} {path}": Case("iris", method, path, inference=False)
        for method in ("GET", "HEAD")
        for path in (
            "/v2",
            "/v2/health/live",
            "/v2/health/ready",
            "/v2/models/{name}",
            "/v2/models/{name}/versions/1",
            "/v2/models/{name}/ready",
            "/v2/models/{name}/versions/1/ready",
            "/v1/models/{name}",
        )
    },
}


@pytest.fixture
def function_for(deploy: Callable[..., Any], tmp_path: Path) -> Callable[[str], Any]:
    def make(model: str) -> Any:
        if model == "iris":
            return deploy(IRIS, "iris", MAX_BATCH_ROWS="8")
        if model == "bad_env":
            return deploy(IRIS, "iris", sha256="not-a-digest")
        if model == "missing":
            return deploy(IRIS, "iris", uri=f"s3://{BUCKET}/models/iris/gone.onnx")
        build = getattr(builders, model)
        return deploy(build(tmp_path / f"{model}.onnx"), "iris")

    return make


def server_timing(answer: Answer) -> dict[str, str]:
    """Server-Timing's durations by name, as the handler formatted them (milliseconds, 3 decimals)."""
    parts = (part.strip().split(";dur=") for part in answer.headers["server-timing"].split(","))
    return {name: duration for name, duration in parts}


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_each_outcome_prints_exactly_its_record(function_for: Callable[[str], Any], capsys: Any, case: Case) -> None:
    function = function_for(case.model)
    function.call("GET", "/v2/health/live")  # the cold start's own record (ColdStart) is not this request's
    capsys.readouterr()

    started = time.perf_counter()
    answer = function.call(case.method, case.path.format(name="iris"), case.body, content_type=case.content_type)
    wall_ms = (time.perf_counter() - started) * 1000

    assert answer.status == case.status, answer.body
    # Every answer names the version that served it (the post-traffic hook reads it) and its environment.
    assert answer.headers["x-model-version"] == "1"
    assert answer.headers["x-environment-id"]
    records = emf_records(capsys.readouterr().out)
    if not case.inference:
        assert records == []
        return
    (record,) = records
    timing = server_timing(answer)
    values: dict[str, float] = {"Requests": 1.0}
    # RequestLatency is the time the answer's Server-Timing shows, in milliseconds (the p99 alarm's unit).
    latency = record["RequestLatency"][0]
    assert f"{latency:.3f}" == timing["total"]
    assert 0 < latency <= wall_ms  # the handler's own part of the time this test waited for the answer
    values["RequestLatency"] = latency
    values |= {name: float(name == case.counted) for name in COUNTS}
    units = {"Requests": "Count", "RequestLatency": "Milliseconds"} | dict.fromkeys(COUNTS, "Count")
    if case.rows is not None:
        values["Rows"] = float(case.rows)
        units["Rows"] = "Count"
    if case.model_ran:
        model_latency = record["ModelLatency"][0]
        assert f"{model_latency:.3f}" == timing["model"]
        assert model_latency <= latency  # the request's time includes the model's
        values["ModelLatency"] = model_latency
        units["ModelLatency"] = "Milliseconds"
    else:
        assert "model" not in timing
    expected = {
        "_aws": {
            "Timestamp": record["_aws"]["Timestamp"],
            "CloudWatchMetrics": [
                {
                    "Namespace": "modelrail",
                    "Dimensions": [["ModelName", "ModelVersion"]],
                    "Metrics": [{"Name": name, "Unit": unit} for name, unit in units.items()],
                }
            ],
        },
        "ModelName": "iris",
        "ModelVersion": "1",
        **{name: [value] for name, value in values.items()},
    }
    assert record == expected


def test_only_the_first_invocation_counts_a_cold_start(function_for: Callable[[str], Any], capsys: Any) -> None:
    function = function_for("iris")
    function.call("GET", "/v2/health/live")
    (record,) = emf_records(capsys.readouterr().out)
    assert record["_aws"]["CloudWatchMetrics"][0]["Metrics"] == [{"Name": "ColdStart", "Unit": "Count"}]
    assert {key: value for key, value in record.items() if key != "_aws"} == {
        "ModelName": "iris",
        "ModelVersion": "1",
        "ColdStart": [1.0],
    }
    function.call("GET", "/v2/health/live")
    assert emf_records(capsys.readouterr().out) == []


def test_a_failed_requests_log_line_carries_api_gateways_request_id(
    function_for: Callable[[str], Any], caplog: pytest.LogCaptureFixture
) -> None:
    """The ids that join the function's log line to API Gateway's access log and Lambda's REPORT line."""
    function = function_for("fails_at_run")
    function.call("GET", "/v2/health/live")  # an earlier request's ids must not linger on the next one's lines
    event = rest_event("POST", INFER.format(name="iris"), tensor([1.0] * 8, [2, 4], "x"))
    event["requestContext"]["requestId"] = "c0ffee00-0000-4000-8000-000000000017"

    class ThisInvocation(Context):
        aws_request_id = "c0ffee00-0000-4000-8000-000000000071"

    assert answer_of(function.module.lambda_handler(event, ThisInvocation())).status == 500
    (failed,) = (r for r in caplog.records if r.getMessage() == "request failed")
    # As Lambda's log stream shows it: the function's own formatter (Powertools' JSON, with its appended keys).
    line = json.loads(function.module.logger.registered_formatter.format(failed))
    assert line["correlation_id"] == "c0ffee00-0000-4000-8000-000000000017"
    assert line["function_request_id"] == "c0ffee00-0000-4000-8000-000000000071"  # Lambda's own REPORT line's


@pytest.mark.parametrize(
    ("stream", "metric"), [(STREAM, "CapturedRecords"), ("no-such-stream", "CaptureDropped")], ids=["sent", "dropped"]
)
@pytest.mark.usefixtures("firehose")
def test_every_captured_or_dropped_record_is_counted_once_in_a_later_record(
    deploy: Callable[..., Any], capsys: Any, stream: str, metric: str
) -> None:
    """Capture sends in the background: its counts ride on the next request's record, so every record offered is
    counted exactly once, in some request's EMF record or still pending."""
    function = deploy(IRIS, "iris", CAPTURE_STREAM=stream, CAPTURE_SAMPLE_RATE="1.0")
    for _ in range(3):
        assert function.infer(FLOWER).status == 200
    function.module.service.capture.flush()
    assert function.infer(FLOWER).status == 200
    function.module.service.capture.flush()
    records = emf_records(capsys.readouterr().out)
    counted = sum(sum(record.get(metric, [])) for record in records)
    pending = function.module.service.capture.take_counts()
    assert counted >= 3  # the three flushed before the last request's record was printed
    assert counted + pending[0 if metric == "CapturedRecords" else 1] == 4
    units = {m["Name"]: m["Unit"] for r in records for m in r["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert units[metric] == "Count"


def test_request_latency_is_the_handlers_own_time_in_milliseconds(
    function_for: Callable[[str], Any], capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a clock the test holds: the handler started at 10 s and answered at 10.25 s, so 250 ms, exactly."""
    function = function_for("iris")
    function.call("GET", "/v2/health/live")
    capsys.readouterr()
    ticks = iter([10.0, 10.25])

    class HeldClock:
        def __getattr__(self, name: str) -> Any:
            return getattr(time, name)

        @staticmethod
        def perf_counter() -> float:
            return next(ticks)

    monkeypatch.setattr(function.module, "time", HeldClock())
    answer = function.infer(FLOWER)

    (record,) = emf_records(capsys.readouterr().out)
    assert record["RequestLatency"] == [250.0]
    assert server_timing(answer)["total"] == "250.000"
