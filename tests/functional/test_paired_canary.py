"""The paired canary analysis end to end on moto: the alias's routing config says a deployment is in flight, the
monitor reads the new version's capture records from S3, the version being replaced (the real inference handler
on the real iris model) answers the same requests again, and CanaryDisagreement reaches CloudWatch.

moto's Lambda keeps functions, versions and aliases (with their routing config) but cannot run our code without
Docker, so the monitor's Invoke is the real handler called in-process, through the same injectable seam the
monitor offers (``clients["invoke"]``)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from functions.monitor import handler as monitor
from spec.alarms import AlarmThresholds
from tests.functional.conftest import BUCKET, ROOT, Function
from tests.utils import Context

NAMESPACE = "modelrail-paired"
END = datetime.now(UTC).replace(second=0, microsecond=0)
EVENT = {"source": "aws.events", "detail-type": "Scheduled Event", "time": END.strftime("%Y-%m-%dT%H:%M:%SZ")}
FUNCTION = "modelrail-test-iris"
IRIS = ROOT / "models" / "iris"
CANDIDATES = ROOT / "models" / "iris-candidates"
THRESHOLD = AlarmThresholds().canary_disagreement_percent  # the rollout alarm's default


def flowers(n: int) -> list[list[float]]:
    """Iris-like measurements spread over the three species (the acceptance set's inputs, cycled)."""
    cases = [json.loads(line) for line in (IRIS / "acceptance.jsonl").read_text().splitlines() if line.strip()]
    return [cases[i % len(cases)]["inputs"][0]["data"] for i in range(n)]


def request(row: list[float]) -> dict[str, Any]:
    return {"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": row}]}


def capture(s3: Any, version: str, records: list[dict[str, Any]]) -> None:
    """Records as Firehose writes them: gzip JSON lines under model=/version=/hour=."""
    body = gzip.compress(("\n".join(json.dumps(r) for r in records) + "\n").encode())
    key = f"capture/model=iris/version={version}/hour={END:%Y-%m-%d-%H}/capture-{version}.gz"
    s3.put_object(Bucket=BUCKET, Key=key, Body=body)


def served_records(function: Function, version: str, rows: list[list[float]], **extra: Any) -> list[dict[str, Any]]:
    """What data capture records for each request ``function`` answered: its inputs and its own outputs."""
    records = []
    for i, row in enumerate(rows):
        answer = function.infer(request(row))
        assert answer.status == 200, answer.body
        at = END - timedelta(minutes=10) + timedelta(seconds=i)
        records.append(
            {
                "model": "iris",
                "version": version,
                "time": at.isoformat(timespec="milliseconds"),
                "request_id": f"r{i}",
                "inputs": request(row)["inputs"],
                "outputs": answer.body["outputs"],
                "excluded": [],
                **extra,
            }
        )
    return records


def lambda_with_alias(weights: dict[str, float] | None, *, live: str = "1", versions: int = 2) -> Any:
    """moto's Lambda: the model's function with versions 1 to ``versions``, the alias live on ``live`` (and
    ``weights``)."""
    iam = boto3.client("iam", region_name="us-east-1")
    role = iam.create_role(RoleName="inference", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    client = boto3.client("lambda", region_name="us-east-1")
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("handler.py", "def handler(event, context):\n    return {}\n")
    client.create_function(
        FunctionName=FUNCTION,
        Runtime="python3.12",
        Role=role,
        Handler="handler.handler",
        Code={"ZipFile": code.getvalue()},
    )
    for n in range(versions):  # a new model changes the configuration: a new version (1, 2, ...)
        sha = f"{n:064x}"
        client.update_function_configuration(FunctionName=FUNCTION, Environment={"Variables": {"MODEL_SHA256": sha}})
        client.publish_version(FunctionName=FUNCTION)
    routing = {"RoutingConfig": {"AdditionalVersionWeights": weights}} if weights else {}
    client.create_alias(FunctionName=FUNCTION, Name="live", FunctionVersion=live, **routing)
    return client


class OldVersion:
    """The monitor's Invoke of ``<function>:<version>``: the real handler of the version being replaced."""

    def __init__(self, function: Function, version: str = "1") -> None:
        self.function = function
        self.version = version
        self.calls: list[str] = []

    def __call__(self, version: str, event: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(version)
        assert version == self.version, f"the monitor invoked version {version}, not the one being replaced"
        return self.function.module.lambda_handler(event, Context())


@pytest.fixture
def monitor_env(s3: Any, monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    baseline = (IRIS / "baseline.json").read_bytes()
    s3.put_object(Bucket=BUCKET, Key="baselines/iris/baseline.json", Body=baseline)

    def _env(**settings: str) -> None:
        model = {
            "name": "iris",
            "baseline_uri": f"s3://{BUCKET}/baselines/iris/baseline.json",
            "baseline_sha256": hashlib.sha256(baseline).hexdigest(),
            "function_name": FUNCTION,
        }
        env = {
            "MODELS": json.dumps([model]),
            "CAPTURE_BUCKET": BUCKET,
            "METRICS_NAMESPACE": NAMESPACE,
            "MIN_CANARY_ROWS": "10",
            **settings,
        }
        for key, value in env.items():
            monkeypatch.setenv(key, value)

    return _env


def statistic(metric: str) -> float | None:
    cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
    points = cloudwatch.get_metric_statistics(
        Namespace=NAMESPACE,
        MetricName=metric,
        Dimensions=[{"Name": "ModelName", "Value": "iris"}, {"Name": "ModelVersion", "Value": "2"}],
        StartTime=END - timedelta(hours=1),
        EndTime=END + timedelta(hours=1),
        Period=3600,
        Statistics=["Maximum"],
    )["Datapoints"]
    return max(p["Maximum"] for p in points) if points else None


def deployment(s3: Any, deploy: Callable[..., Function], candidate: Path, rows: int = 60, **extra: Any) -> OldVersion:
    """Version 2 (``candidate``) served ``rows`` captured requests; version 1 (the sample) is being replaced."""
    new = deploy(candidate / "model.onnx", "iris", version="2")
    capture(s3, "2", served_records(new, "2", flowers(rows), **extra))
    old = deploy(IRIS / "model.onnx", "iris", version="1")
    capture(s3, "1", served_records(old, "1", flowers(rows)))
    return OldVersion(old)


def paired_report(summary: dict[str, Any]) -> dict[str, Any]:
    (report,) = [r["paired"] for r in summary["reports"] if "paired" in r]
    return report


def test_a_label_swapping_canary_disagrees_on_most_requests_while_its_prediction_mix_barely_moves(
    s3: Any, deploy: Callable[..., Function], monitor_env: Callable[..., None]
) -> None:
    old = deployment(s3, deploy, CANDIDATES / "label-swap")
    monitor_env()
    lambda_client = lambda_with_alias(None)
    clients = {"lambda": lambda_client, "invoke": old}
    # Before the deployment shifts the alias (no routing config): nothing in flight, nothing invoked.
    summary = monitor.handler(EVENT, Context(), clients=clients)
    assert old.calls == []
    assert not [r for r in summary["reports"] if "paired" in r]
    assert statistic("CanaryDisagreement") is None

    routing = {"AdditionalVersionWeights": {"2": 0.1}}
    lambda_client.update_alias(FunctionName=FUNCTION, Name="live", FunctionVersion="1", RoutingConfig=routing)
    summary = monitor.handler(EVENT, Context(), clients=clients)

    report = paired_report(summary)
    assert (report["old"], report["new"], report["compared"]) == ("1", "2", 60)
    disagreement = statistic("CanaryDisagreement")
    assert disagreement is not None
    assert disagreement > 50 > THRESHOLD  # versicolor and virginica answered the other way round
    assert round(disagreement, 2) == report["disagreement_percent"]
    assert set(old.calls) == {"1"}
    # The prediction mix (what the canary analysis compared alone before) stays under its own threshold.
    divergence = statistic("PredictionDivergence")
    assert divergence is not None
    assert divergence < AlarmThresholds().prediction_divergence


def test_a_good_retrain_agrees_within_the_alarm_threshold(
    s3: Any, deploy: Callable[..., Function], monitor_env: Callable[..., None]
) -> None:
    old = deployment(s3, deploy, CANDIDATES / "retrained")
    monitor_env()
    monitor.handler(EVENT, Context(), clients={"lambda": lambda_with_alias({"2": 0.1}), "invoke": old})
    disagreement = statistic("CanaryDisagreement")
    assert disagreement is not None
    assert disagreement < THRESHOLD


def test_records_with_excluded_inputs_are_skipped_and_counted(
    s3: Any, deploy: Callable[..., Function], monitor_env: Callable[..., None]
) -> None:
    old = deployment(s3, deploy, CANDIDATES / "label-swap", excluded=["float_input"])
    monitor_env()
    summary = monitor.handler(EVENT, Context(), clients={"lambda": lambda_with_alias({"2": 0.1}), "invoke": old})
    report = paired_report(summary)
    assert (report["skipped_excluded_inputs"], report["compared"]) == (60, 0)
    assert old.calls == []
    assert statistic("CanaryDisagreement") is None  # nothing compared: no datapoint, the alarm neither fires nor holds


def test_each_run_invokes_at_most_its_budget_and_publishes_only_past_the_minimum(
    s3: Any, deploy: Callable[..., Function], monitor_env: Callable[..., None]
) -> None:
    old = deployment(s3, deploy, CANDIDATES / "label-swap")
    monitor_env(PAIRED_MAX_REQUESTS="15", PAIRED_MIN_REQUESTS="20")
    summary = monitor.handler(EVENT, Context(), clients={"lambda": lambda_with_alias({"2": 0.1}), "invoke": old})
    report = paired_report(summary)
    assert len(old.calls) == 15
    assert report["compared"] == 15
    assert report["stopped"] == "invoke budget: 15 requests per run"
    assert statistic("CanaryDisagreement") is None  # 15 compared, fewer than PAIRED_MIN_REQUESTS


def test_requests_the_old_version_fails_are_not_held_against_the_canary(
    s3: Any, deploy: Callable[..., Function], monitor_env: Callable[..., None]
) -> None:
    """The new version fixes what the old one failed on: those requests are counted apart, not as disagreement
    (an alarm that blamed the canary for them would block deploying the fix)."""
    old = deployment(s3, deploy, ROOT / "models" / "iris")  # the same model: agrees on every request it answers

    def failing_old(version: str, event: dict[str, Any]) -> dict[str, Any]:
        if len(old.calls) % 2:
            old.calls.append(version)
            return {"statusCode": 500, "body": json.dumps({"error": "model failed"})}
        return old(version, event)

    monitor_env()
    summary = monitor.handler(
        EVENT, Context(), clients={"lambda": lambda_with_alias({"2": 0.1}), "invoke": failing_old}
    )
    report = paired_report(summary)
    assert report["old_failed"] == 30
    assert (report["compared"], report["disagreed"]) == (30, 0)
    assert statistic("CanaryDisagreement") == 0.0
