"""Replay in the acceptance gate: the live version's captured requests, answered by the new version before any
user sees it, on real models through the real handler; captured by the real data capture through moto's
Firehose and laid out in S3 as the deployed stream partitions them; read by the real pre-traffic hook."""

from __future__ import annotations

import gzip
import hashlib
import json
import subprocess
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest

from functions.acceptance import pretraffic
from functions.acceptance.criteria import AcceptanceCriteria, ReplaySettings
from functions.acceptance.gate import evaluate
from functions.acceptance.replay import Unavailable, read_capture, replay
from spec.bundle import BundleError, ModelBundle
from tests.functional.conftest import BUCKET, IRIS
from tests.functional.test_acceptance import HOOK_EVENT, InProcessLambda, codedeploy_expecting, hook_environment
from tests.utils import Context

ROOT = Path(__file__).resolve().parents[2]
CANDIDATES = ROOT / "models" / "iris-candidates"
CAPTURE_BUCKET = "modelrail-capture-test"
STREAM = "modelrail-capture-replay"
RAW_PREFIX = "firehose-raw/"


def iris_rows() -> list[list[float]]:
    from sklearn.datasets import load_iris

    return [[float(v) for v in row] for row in load_iris().data.astype(np.float32)]


def request(row: list[float]) -> dict[str, Any]:
    return {"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": row}]}


def partition_key(record: dict[str, Any], arrived: datetime) -> str:
    """Where the deployed stream puts a record (spec/capture.py's PARTITIONED_PREFIX: its own model and version,
    the hour it arrived), with an object name shaped as Firehose names them."""
    return (
        f"capture/model={record['model']}/version={record['version']}/hour={arrived:%Y-%m-%d-%H}/"
        f"{STREAM}-1-{arrived:%Y-%m-%d-%H-%M-%S}-{uuid.uuid4()}.gz"
    )


@pytest.fixture
def capture(s3: Any, deploy: Any, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """capture(rows, version="1") -> the live iris version, after it answered ``rows`` with data capture on at 100%;
    its records sit in CAPTURE_BUCKET in the deployed layout, one gzip object per flush."""
    s3.create_bucket(Bucket=CAPTURE_BUCKET)
    firehose = boto3.client("firehose", region_name="us-east-1")
    # moto's Firehose writes each PutRecordBatch to S3 at once under a literal prefix (no dynamic partitioning):
    # its objects are then placed where the deployed stream's partitioning would put them.
    firehose.create_delivery_stream(
        DeliveryStreamName=STREAM,
        ExtendedS3DestinationConfiguration={
            "RoleARN": "arn:aws:iam::123456789012:role/firehose",
            "BucketARN": f"arn:aws:s3:::{BUCKET}",
            "Prefix": RAW_PREFIX,
        },
    )

    def _capture(rows: list[list[float]], version: str = "1", arrived: datetime | None = None) -> Any:
        live = deploy(IRIS, "iris", version=version, CAPTURE_STREAM=STREAM, CAPTURE_SAMPLE_RATE="1.0")
        for row in rows:
            assert live.infer(request(row)).status == 200
        live.module.service.capture.flush()
        monkeypatch.delenv("CAPTURE_STREAM")  # versions deployed next do not capture
        for item in s3.list_objects_v2(Bucket=BUCKET, Prefix=RAW_PREFIX).get("Contents", []):
            body = s3.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()
            records = [json.loads(line) for line in body.splitlines() if line.strip()]
            s3.delete_object(Bucket=BUCKET, Key=item["Key"])
            at = arrived or datetime.now(UTC)
            s3.put_object(Bucket=CAPTURE_BUCKET, Key=partition_key(records[0], at), Body=gzip.compress(body))
        return live

    return _capture


def train_iris(
    tmp_path: Path, name: str, *, relabel: Callable[[np.ndarray], np.ndarray] | None = None, **to_onnx_options: Any
) -> Path:
    """An iris bundle trained as models/iris/train.py trains the sample, with its acceptance set made from its own
    answers on the held-out rows (as the sample's is): ``relabel`` renames the classes it learns."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    iris = load_iris()
    x, y = iris.data.astype(np.float32), iris.target.astype(np.int64)
    if relabel is not None:
        y = relabel(y)
    x_train, x_test, y_train, _ = train_test_split(x, y, test_size=0.2, random_state=7, stratify=y)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500, random_state=7)).fit(x_train, y_train)
    onnx_model = to_onnx(
        model,
        initial_types=[("float_input", FloatTensorType([None, 4]))],
        target_opset={"": 17, "ai.onnx.ml": 3},
        options={LogisticRegression: to_onnx_options} if to_onnx_options else None,
    )
    # Without ZipMap skl2onnx names the outputs label and probabilities: keep the sample's names, as a team
    # re-exporting "the same model" would, so that only the probabilities' kind changes.
    renamed = {"label": "output_label", "probabilities": "output_probability"} if to_onnx_options else {}
    for node in onnx_model.graph.node:
        node.output[:] = [renamed.get(o, o) for o in node.output]
    for output in onnx_model.graph.output:
        output.name = renamed.get(output.name, output.name)
    folder = tmp_path / name
    folder.mkdir()
    (folder / "model.onnx").write_bytes(onnx_model.SerializeToString())
    with (folder / "acceptance.jsonl").open("w") as f:
        for row, label, p in zip(x_test, model.predict(x_test), model.predict_proba(x_test), strict=True):
            expected: dict[str, Any] = {"output_label": [int(label)]}
            if not to_onnx_options:
                expected["output_probability"] = [{str(k): round(float(v), 6) for k, v in enumerate(p)}]
            case = {"inputs": request([round(float(v), 4) for v in row])["inputs"], "expected": expected}
            f.write(json.dumps(case) + "\n")
    (folder / "modelrail.json").write_text(json.dumps({"name": "iris", "acceptance": {"atol": 0.05}}))
    return folder


def swap_labels(y: np.ndarray) -> np.ndarray:
    return (y + 1) % 3


def acceptance_environment(s3: Any, bundle: Path, **criteria: Any) -> dict[str, str]:
    body = (bundle / "acceptance.jsonl").read_bytes()
    key = f"acceptance/iris/{hashlib.sha256(body).hexdigest()}.jsonl"
    s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    own = ModelBundle.load(bundle).settings.acceptance.model_dump()
    settings = AcceptanceCriteria.model_validate({**own, "probe_requests": 10, **criteria})
    return {
        "ACCEPTANCE_URI": f"s3://{BUCKET}/{key}",
        "ACCEPTANCE_SHA256": hashlib.sha256(body).hexdigest(),
        "ACCEPTANCE_CRITERIA": settings.model_dump_json(),
    }


def run_hook(
    versions: dict[str, Any], s3: Any, caplog: Any, status: str, alias_version: str | None = "1"
) -> dict[str, Any]:
    """The pre-traffic hook on version 2 while the alias serves ``alias_version`` (None: no alias yet, a first
    deploy); it must report ``status`` to CodeDeploy. Its verdict, as logged."""
    codedeploy, stubber = codedeploy_expecting(status, target_version="2")
    lambda_client = InProcessLambda(versions, alias_version or "1")
    if alias_version is None:
        lambda_client.get_alias = _no_alias  # type: ignore[method-assign]
    caplog.clear()
    result = pretraffic.handler(
        HOOK_EVENT, Context(), clients={"lambda": lambda_client, "codedeploy": codedeploy, "s3": s3}
    )
    record = next(r for r in caplog.records if r.getMessage() == "acceptance verdict")
    verdict: dict[str, Any] = record.verdict
    assert result == {"status": status}, json.dumps(verdict, indent=1)
    stubber.assert_no_pending_responses()
    return verdict


def _no_alias(**params: Any) -> dict[str, Any]:
    """GetAlias before the alias exists: Lambda's ResourceNotFoundException (HTTP 404)."""
    from botocore.exceptions import ClientError

    error = {"Code": "ResourceNotFoundException", "Message": f"Cannot find alias arn: {params['Name']}"}
    raise ClientError({"Error": error, "ResponseMetadata": {"HTTPStatusCode": 404}}, "GetAlias")


def row(verdict: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in verdict["criteria"] if c["name"] == name)


def replay_rows(verdict: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in verdict["criteria"] if c["name"].startswith("replay")}


# --- the three candidates the acceptance set lets through, and a good retrain ---------------------------------


def test_a_label_swapping_candidate_passes_its_own_acceptance_set_and_is_blocked_by_replay(
    deploy: Any, s3: Any, capture: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: Any
) -> None:
    live = capture(iris_rows())
    swapped = train_iris(tmp_path, "swapped", relabel=swap_labels)
    versions = {"1": live, "2": deploy(swapped / "model.onnx", "iris", version="2")}
    hook_environment(monkeypatch, "2", {**acceptance_environment(s3, swapped), "CAPTURE_BUCKET": CAPTURE_BUCKET})

    verdict = run_hook(versions, s3, caplog, "Failed")

    assert row(verdict, "acceptance set")["passed"], row(verdict, "acceptance set")
    assert row(verdict, "acceptance set")["measured"] == "30/30 correct (100.0%)"
    assert "replay agreement" in verdict["failing"]
    agreement = row(verdict, "replay agreement")
    assert int(agreement["measured"].split("/")[0]) <= 3, agreement  # the versions disagree on ~all requests
    assert "output_label live " in agreement["detail"]
    assert row(verdict, "replay")["measured"].startswith("150 requests (150 rows) replayed")


def test_a_latent_nan_candidate_is_blocked_by_replay_when_the_capture_holds_such_inputs(
    deploy: Any, s3: Any, capture: Any, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    rows = iris_rows()
    long_petals = sum(r[2] > 6.0 for r in rows)
    assert long_petals == 9  # the nan-tail candidate answers NaN for these
    live = capture(rows)
    nan_tail = CANDIDATES / "nan-tail"
    versions = {"1": live, "2": deploy(nan_tail / "model.onnx", "iris", version="2")}
    hook_environment(monkeypatch, "2", {**acceptance_environment(s3, nan_tail), "CAPTURE_BUCKET": CAPTURE_BUCKET})

    verdict = run_hook(versions, s3, caplog, "Failed")

    assert row(verdict, "acceptance set")["passed"]
    assert row(verdict, "finite outputs")["passed"]  # the acceptance set and the probe never show a long petal
    assert "replay non-finite" in verdict["failing"]
    assert row(verdict, "replay non-finite")["measured"] == "9 of 150 requests answered NaN/Inf"
    assert row(verdict, "replay agreement")["measured"].startswith("141/150 rows agree (94.0%;")
    assert "replay agreement" in verdict["failing"]  # 94% of 150 rows shows a shortfall beyond doubt


def test_a_latent_nan_candidate_passes_replay_when_the_capture_never_saw_such_inputs(
    deploy: Any, s3: Any, capture: Any, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    """The boundary of this layer: a fault on inputs the capture window never saw is left to the canary."""
    live = capture([r for r in iris_rows() if r[2] <= 6.0])
    nan_tail = CANDIDATES / "nan-tail"
    versions = {"1": live, "2": deploy(nan_tail / "model.onnx", "iris", version="2")}
    hook_environment(monkeypatch, "2", {**acceptance_environment(s3, nan_tail), "CAPTURE_BUCKET": CAPTURE_BUCKET})

    verdict = run_hook(versions, s3, caplog, "Succeeded")

    assert row(verdict, "replay non-finite")["measured"] == "0 of 141 requests answered NaN/Inf"


def test_a_good_retrain_passes_with_its_agreement_reported(
    deploy: Any, s3: Any, capture: Any, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    live = capture(iris_rows())
    retrained = CANDIDATES / "retrained"
    versions = {"1": live, "2": deploy(retrained / "model.onnx", "iris", version="2")}
    hook_environment(monkeypatch, "2", {**acceptance_environment(s3, retrained), "CAPTURE_BUCKET": CAPTURE_BUCKET})

    verdict = run_hook(versions, s3, caplog, "Succeeded")

    rows = replay_rows(verdict)
    assert set(rows) == {
        "replay",
        "replay agreement",
        "replay within tolerance",
        "replay PSI",
        "replay non-finite",
        "replay errors",
    }
    assert all(r["passed"] for r in rows.values()), rows
    agreed, total = rows["replay agreement"]["measured"].split(" ")[0].split("/")
    assert total == "150"
    assert int(agreed) >= 147, rows["replay agreement"]
    assert rows["replay PSI"]["measured"].split(" ")[0] != "no"
    assert rows["replay errors"]["measured"] == "0 5xx, 0 4xx (requests the live version answered)"


# --- when there is nothing to replay ----------------------------------------------------------------------------


def test_a_first_deploy_skips_the_replay_and_says_why(
    deploy: Any, s3: Any, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    s3.create_bucket(Bucket=CAPTURE_BUCKET)
    versions = {"2": deploy(IRIS, "iris", version="2")}
    hook_environment(
        monkeypatch, "2", {**acceptance_environment(s3, ROOT / "models" / "iris"), "CAPTURE_BUCKET": CAPTURE_BUCKET}
    )

    verdict = run_hook(versions, s3, caplog, "Succeeded", alias_version=None)

    assert replay_rows(verdict) == {"replay": row(verdict, "replay")}
    assert row(verdict, "replay")["measured"].startswith("skipped: first deploy: no version has served this model")


def test_no_captured_requests_yet_skips_the_replay_or_fails_it_as_the_bundle_chooses(
    deploy: Any, s3: Any, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    s3.create_bucket(Bucket=CAPTURE_BUCKET)  # capture is on, but version 1 has not been captured yet
    versions = {"1": deploy(IRIS, "iris", version="1"), "2": deploy(IRIS, "iris", version="2")}
    iris = ROOT / "models" / "iris"
    hook_environment(monkeypatch, "2", {**acceptance_environment(s3, iris), "CAPTURE_BUCKET": CAPTURE_BUCKET})

    skipped = run_hook(versions, s3, caplog, "Succeeded")

    assert row(skipped, "replay")["measured"] == (
        f"skipped: no captured requests of version 1 in the last 24 h (s3://{CAPTURE_BUCKET}/capture/model=iris/"
        "version=1/): nothing to replay"
    )
    strict = {"replay": {"when_unavailable": "fail"}}
    hook_environment(monkeypatch, "2", {**acceptance_environment(s3, iris, **strict), "CAPTURE_BUCKET": CAPTURE_BUCKET})
    failed = run_hook(versions, s3, caplog, "Failed")
    assert failed["failing"] == ["replay"]
    assert "acceptance.replay.when_unavailable is 'fail'" in row(failed, "replay")["detail"]


def test_excluded_inputs_skip_the_replay_and_say_why(
    deploy: Any, s3: Any, capture: Any, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    live = capture(iris_rows())  # captured before the bundle excluded the input: the hook does not replay
    versions = {"1": live, "2": deploy(IRIS, "iris", version="2")}
    environment = {"CAPTURE_BUCKET": CAPTURE_BUCKET, "CAPTURE_EXCLUDE_INPUTS": "float_input"}
    hook_environment(monkeypatch, "2", {**acceptance_environment(s3, ROOT / "models" / "iris"), **environment})

    verdict = run_hook(versions, s3, caplog, "Succeeded")

    assert row(verdict, "replay")["measured"] == (
        "skipped: the bundle's capture_exclude_inputs ['float_input'] are never captured: requests cannot be rebuilt"
    )


def test_records_that_leave_inputs_out_are_not_replayed(deploy: Any) -> None:
    live = deploy(IRIS, "iris", version="1")
    record = {"model": "iris", "version": "1", "inputs": [], "outputs": [], "excluded": ["float_input"]}
    result = replay("iris", _invoker(live), [record] * 30, ReplaySettings())
    assert [c.measured for c in result.criteria] == [
        "skipped: captured requests leave out inputs ['float_input'] (capture_exclude_inputs): they cannot be "
        "rebuilt, so there is nothing to replay"
    ]
    assert result.criteria[0].passed


def _invoker(function: Any) -> Any:
    return lambda event: function.module.lambda_handler(event, Context())


# --- reading the capture bucket ---------------------------------------------------------------------------------


def _put(s3: Any, version: str, at: datetime, count: int, *, arrived: datetime | None = None) -> str:
    records = [
        {
            "model": "iris",
            "version": version,
            "time": (at + timedelta(seconds=i)).isoformat(timespec="milliseconds"),
            "request_id": f"{version}-{at:%H%M}-{i}",
            "inputs": request([5.1, 3.5, 1.4, 0.2])["inputs"],
            "outputs": [{"name": "output_label", "shape": [1], "datatype": "INT64", "data": [0]}],
            "excluded": [],
        }
        for i in range(count)
    ]
    body = gzip.compress(b"".join(json.dumps(r).encode() + b"\n" for r in records))
    key = partition_key(records[0], arrived or at)
    s3.put_object(Bucket=CAPTURE_BUCKET, Key=key, Body=body)
    return key


def test_the_newest_records_are_read_newest_partition_first_with_bounded_reads(s3: Any) -> None:
    s3.create_bucket(Bucket=CAPTURE_BUCKET)
    now = datetime(2026, 12, 6, 22, 30, tzinfo=UTC)
    for hours_ago in range(1, 30):  # one object an hour, 50 records each, for 29 hours
        _put(s3, "3", now - timedelta(hours=hours_ago), 50)
    _put(s3, "2", now - timedelta(minutes=5), 50)  # another version's, newer: never replayed against version 3
    _put(s3, "3", now + timedelta(minutes=20), 5)  # timed after `now` (a clock ahead): not yet
    got: list[str] = []
    s3.meta.events.register("provide-client-params.s3.GetObject", lambda params, **_: got.append(params["Key"]))

    records = read_capture(s3, CAPTURE_BUCKET, "iris", "3", ReplaySettings(requests=80), now=now)

    assert not isinstance(records, Unavailable)
    assert len(records) == 80
    assert {r["version"] for r in records} == {"3"}
    times = [r["time"] for r in records]
    assert times == sorted(times, reverse=True)
    assert times[0] == (now - timedelta(hours=1, seconds=-49)).isoformat(timespec="milliseconds")
    assert [k.split("/")[3] for k in got] == ["hour=2026-12-06-22", "hour=2026-12-06-21", "hour=2026-12-06-20"]

    got.clear()
    everything = read_capture(s3, CAPTURE_BUCKET, "iris", "3", ReplaySettings(requests=5000, min_requests=20), now=now)
    assert not isinstance(everything, Unavailable)
    # 24 hours back (from 2026-12-05 22:30): the objects of 1 to 24 hours ago, none of the 5 older partitions
    assert len(everything) == 24 * 50
    assert min(k.split("/")[3] for k in got) == "hour=2026-12-05-22"


def test_a_replay_cut_short_by_time_fails_and_says_so(deploy: Any) -> None:
    live = deploy(IRIS, "iris", version="1")
    records = [
        {
            "model": "iris",
            "version": "1",
            "inputs": request(r)["inputs"],
            "outputs": [{"name": "output_label", "shape": [1], "datatype": "INT64", "data": [0]}],
            "excluded": [],
        }
        for r in iris_rows()[:40]
    ]
    budget = iter([30.0] * 25 + [0.5] * 100)  # seconds left before each call: the 26th finds less than 1 s

    result = replay("iris", _invoker(live), records, ReplaySettings(), seconds_left=lambda: next(budget))

    assert (result.replayed, result.cut_short) == (25, True)
    first = result.criteria[0]
    assert not first.passed
    assert first.measured.endswith("(cut short)")
    assert first.detail == "ran out of time after 25 of 40 requests"


# --- outputs are part of the signature --------------------------------------------------------------------------


def test_probabilities_turned_from_maps_into_a_tensor_fail_the_signature_check(deploy: Any, tmp_path: Path) -> None:
    live = deploy(IRIS, "iris", version="1")
    baseline = live.call("GET", "/v2/models/iris").body
    tensor = train_iris(tmp_path, "tensor", zipmap=False)
    candidate = deploy(tensor / "model.onnx", "iris", version="2")
    cases = ModelBundle.load(tensor).acceptance_cases()

    def gate(**criteria: Any) -> Any:
        return evaluate(
            "iris",
            _invoker(candidate),
            cases,
            AcceptanceCriteria(atol=0.05, probe_requests=5, **criteria),
            baseline_metadata=baseline,
        )

    verdict = gate()
    assert verdict.failing() == ["signature"]
    assert verdict.criteria[1].detail == (
        "output 'output_probability' changed kind sequence of maps (seq(map(int64,tensor(float)))) -> tensor (FP32) "
        "(declare acceptance.breaking_change if intended)"
    )
    assert gate(breaking_change=True).passed


def test_replay_settings_with_bad_values_name_the_field(tmp_path: Path) -> None:
    bundle = tmp_path / "iris"
    bundle.mkdir()
    (bundle / "model.onnx").write_bytes(IRIS.read_bytes())
    for settings, expected in [
        ({"when_unavailable": "maybe"}, "acceptance.replay.when_unavailable: Input should be 'skip' or 'fail'"),
        ({"max_psi": -0.1}, "acceptance.replay.max_psi: Input should be greater than or equal to 0"),
        ({"min_agreement": 1.5}, "acceptance.replay.min_agreement: Input should be less than or equal to 1"),
        ({"requests": 10}, "acceptance.replay: Value error, min_requests (20) is more than requests (10)"),
        ({"lookback": 24}, "acceptance.replay.lookback: Extra inputs are not permitted"),
    ]:
        (bundle / "modelrail.json").write_text(json.dumps({"acceptance": {"replay": settings}}))
        with pytest.raises(BundleError) as raised:
            ModelBundle.load(bundle)
        assert expected in str(raised.value), settings


# --- modelrail validate --against OLD --replay PATH ---------------------------------------------------------------


def download_capture(s3: Any, folder: Path) -> Path:
    """The capture bucket's objects as files, keys as paths: a folder in the deployed layout."""
    for item in s3.list_objects_v2(Bucket=CAPTURE_BUCKET).get("Contents", []):
        target = folder / item["Key"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(s3.get_object(Bucket=CAPTURE_BUCKET, Key=item["Key"])["Body"].read())
    return folder / "capture"


def validate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelrail", "validate", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def table_row(output: str, name: str) -> str:
    return next(line for line in output.splitlines() if line.startswith(name + "  "))


def test_validate_replays_capture_files_and_compares_with_the_replaced_bundle(
    s3: Any, capture: Any, tmp_path: Path
) -> None:
    capture(iris_rows())
    folder = download_capture(s3, tmp_path / "bucket")
    swapped = train_iris(tmp_path, "swapped", relabel=swap_labels)

    blocked = validate(str(swapped), "--against", "models/iris", "--replay", str(folder))

    assert blocked.returncode == 1, blocked.stdout + blocked.stderr
    assert "FAILED: replay agreement" in blocked.stdout
    assert "30/30 correct (100.0%)" in table_row(blocked.stdout, "acceptance set")
    agreeing = int(table_row(blocked.stdout, "replay agreement").split()[2].split("/")[0])
    assert agreeing <= 3, table_row(blocked.stdout, "replay agreement")  # the versions disagree on ~all requests
    assert "/30 rows agree" in table_row(blocked.stdout, "agreement with replaced")
    assert "on its 30 acceptance inputs" in table_row(blocked.stdout, "agreement with replaced")
    assert "0/30 correct (0.0%)" in table_row(blocked.stdout, "replaced's acceptance set")
    assert table_row(blocked.stdout, "agreement with replaced").endswith("info")

    good = validate(str(CANDIDATES / "retrained"), "--against", "models/iris", "--replay", str(folder))

    assert good.returncode == 0, good.stdout + good.stderr
    assert "PASSED" in good.stdout
    assert "rows agree" in table_row(good.stdout, "replay agreement")
    assert "150 requests (150 rows) replayed" in table_row(good.stdout, "replay")
    assert "on its 30 acceptance inputs" in table_row(good.stdout, "agreement with replaced")


def test_validate_names_a_replay_path_that_is_not_there(tmp_path: Path) -> None:
    missing = validate("models/iris", "--replay", str(tmp_path / "nowhere"))
    assert missing.returncode == 2
    assert f"--replay {tmp_path / 'nowhere'}: no such capture file or folder" in missing.stderr
