"""The acceptance gate on real models through the real handler, and the CodeDeploy hooks that run it."""

from __future__ import annotations

import hashlib
import io
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import numpy as np
import pytest
from botocore.stub import Stubber
from botocore.validate import validate_parameters

from functions.acceptance import posttraffic, pretraffic
from functions.acceptance.criteria import AcceptanceCriteria
from functions.acceptance.gate import AcceptanceCase, Verdict, evaluate
from tests import builders
from tests.functional.conftest import BUCKET, IRIS
from tests.utils import Context

ROOT = Path(__file__).resolve().parents[2]
FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:modelrail-production-iris"


def sqrt_cases(values: list[list[float]]) -> list[AcceptanceCase]:
    return [
        AcceptanceCase(
            [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": row}],
            {"y": [math.sqrt(v) if v >= 0 else math.nan for v in row]},
            line,
        )
        for line, row in enumerate(values, start=1)
    ]


def run(function: Any, cases: list[AcceptanceCase], baseline: dict[str, Any] | None = None, **criteria: Any) -> Verdict:
    return evaluate(
        function.name,
        lambda event: function.module.lambda_handler(event, Context()),
        cases,
        AcceptanceCriteria(**criteria),
        baseline_metadata=baseline,
    )


def failing(verdict: Verdict) -> list[str]:
    return verdict.failing()


@pytest.fixture
def sqrt(deploy: Any, tmp_path: Path) -> Any:
    return deploy(builders.square_root(tmp_path / "sqrt.onnx"), "root")


def test_a_good_model_passes(sqrt: Any) -> None:
    verdict = run(sqrt, sqrt_cases([[4, 9], [2, 0.25]]), probe_requests=20)
    assert verdict.passed, verdict.table()
    assert [c.name for c in verdict.criteria] == [
        "model serves",
        "signature",
        "acceptance set",
        "finite outputs",
        "error responses",
        "p99 latency",
    ]
    assert verdict.criteria[2].measured == "2/2 correct (100.0%)"


def test_wrong_answers_fail_the_acceptance_set_alone(sqrt: Any) -> None:
    cases = sqrt_cases([[4, 9], [16, 25]])
    cases[1] = AcceptanceCase(cases[1].inputs, {"y": [4.0, 6.0]}, 2)  # sqrt(25) is 5
    verdict = run(sqrt, cases, probe_requests=10)
    assert failing(verdict) == ["acceptance set"]
    # one case a line, each a JSON object (no Python repr): what was expected and what the version answered
    assert [json.loads(line) for line in verdict.criteria[2].detail.splitlines()] == [
        {"line": 2, "expected": {"y": [4.0, 6.0]}, "got": {"y": [4.0, 5.0]}}
    ]
    assert '\n  acceptance set: {"line": 2, "expected": {"y": [4.0, 6.0]}' in verdict.table()
    assert run(sqrt, cases, probe_requests=10, min_pass_rate=0.5).passed


def test_nan_output_fails_finite_outputs(sqrt: Any) -> None:
    verdict = run(sqrt, sqrt_cases([[4, 9], [-1, 4]]), probe_requests=10, min_pass_rate=0.5, max_error_responses=10)
    assert failing(verdict) == ["finite outputs"]
    assert verdict.criteria[3].measured.startswith("5 response(s)")  # one case, and its turns in the probe


def test_changed_signature_fails_unless_declared(deploy: Any, tmp_path: Path, sqrt: Any) -> None:
    wider = deploy(builders.identity(tmp_path / "wide.onnx", "FP64"), "root", version="2")
    baseline = sqrt.call("GET", "/v2/models/root").body
    cases = [AcceptanceCase([{"name": "x", "shape": [1, 2], "datatype": "FP64", "data": [1, 2]}], {"y": [1, 2]}, 1)]

    verdict = run(wider, cases, baseline, probe_requests=5)

    assert failing(verdict) == ["signature"]
    assert "input 'x' changed datatype FP32 -> FP64" in verdict.criteria[1].detail
    assert run(wider, cases, baseline, probe_requests=5, breaking_change=True).passed


def test_over_the_latency_budget_fails_p99(sqrt: Any) -> None:
    verdict = run(sqrt, sqrt_cases([[4, 9]]), probe_requests=10, latency_budget_ms=0.0001)
    assert failing(verdict) == ["p99 latency"]
    assert "over 10 requests" in verdict.criteria[5].measured


def test_a_model_that_does_not_load_fails_first(deploy: Any, tmp_path: Path) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    verdict = run(deploy(broken, "root"), sqrt_cases([[4, 9]]))
    assert failing(verdict) == ["model serves"]
    assert "onnxruntime cannot load" in verdict.criteria[0].detail


# --- the hooks, with CodeDeploy's API checked by botocore's Stubber -------------------------------------------


class InProcessLambda:
    """Lambda's Invoke and GetAlias answered by handler modules imported in this process (moto would need
    Docker to run them); every call is validated against botocore's model of the real Lambda API."""

    def __init__(self, versions: dict[str, Any], alias_version: str) -> None:
        self.versions = versions
        self.alias_version = alias_version
        self.invoked: list[str] = []
        self._model = botocore.session.get_session().get_service_model("lambda")

    def _check(self, operation: str, params: dict[str, Any]) -> None:
        validate_parameters(params, self._model.operation_model(operation).input_shape)

    def invoke(self, **params: Any) -> dict[str, Any]:
        self._check("Invoke", params)
        qualifier = params["FunctionName"].rpartition(":")[2]
        version = self.alias_version if qualifier == "live" else qualifier
        self.invoked.append(version)
        response = self.versions[version].module.lambda_handler(json.loads(params["Payload"]), Context())
        return {"StatusCode": 200, "ExecutedVersion": version, "Payload": io.BytesIO(json.dumps(response).encode())}

    def get_alias(self, **params: Any) -> dict[str, Any]:
        self._check("GetAlias", params)
        return {"Name": params["Name"], "FunctionVersion": self.alias_version}


def lambda_appspec(target_version: str, current_version: str = "1") -> str:
    """A Lambda deployment's AppSpec, as GetDeployment returns it (revision.appSpecContent.content); keys as in
    CodeDeploy's user guide, "AppSpec 'resources' section for AWS Lambda deployments"."""
    return json.dumps(
        {
            "version": 0.0,
            "Resources": [
                {
                    "modelrail-production-iris": {
                        "Type": "AWS::Lambda::Function",
                        "Properties": {
                            "Name": "modelrail-production-iris",
                            "Alias": "live",
                            "CurrentVersion": current_version,
                            "TargetVersion": target_version,
                        },
                    }
                }
            ],
            "Hooks": [{"BeforeAllowTraffic": "pre-traffic-hook"}, {"AfterAllowTraffic": "post-traffic-hook"}],
        }
    )


def expect_get_deployment(stubber: Stubber, appspec: str) -> None:
    stubber.add_response(
        "get_deployment",
        {
            "deploymentInfo": {
                "deploymentId": "d-ABC123",
                "computePlatform": "Lambda",
                "revision": {
                    "revisionType": "AppSpecContent",
                    "appSpecContent": {"content": appspec, "sha256": hashlib.sha256(appspec.encode()).hexdigest()},
                },
            }
        },
        {"deploymentId": "d-ABC123"},
    )


def codedeploy_expecting(status: str, target_version: str | None = None) -> tuple[Any, Stubber]:
    """A CodeDeploy client that expects, in order: GetDeployment (when ``target_version`` is given: the hook reads
    the version the deployment shifts to), then one PutLifecycleEventHookExecutionStatus with ``status``."""
    client = boto3.client("codedeploy", region_name="us-east-1")
    stubber = Stubber(client)
    if target_version is not None:
        expect_get_deployment(stubber, lambda_appspec(target_version))
    stubber.add_response(
        "put_lifecycle_event_hook_execution_status",
        {"lifecycleEventHookExecutionId": "hook-1"},
        {"deploymentId": "d-ABC123", "lifecycleEventHookExecutionId": "hook-1", "status": status},
    )
    stubber.activate()
    return client, stubber


HOOK_EVENT = {"DeploymentId": "d-ABC123", "LifecycleEventHookExecutionId": "hook-1"}


@pytest.fixture
def acceptance_set(s3: Any) -> dict[str, str]:
    body = (ROOT / "models" / "iris" / "acceptance.jsonl").read_bytes()
    s3.put_object(Bucket=BUCKET, Key="acceptance/iris.jsonl", Body=body)
    return {
        "ACCEPTANCE_URI": f"s3://{BUCKET}/acceptance/iris.jsonl",
        "ACCEPTANCE_SHA256": hashlib.sha256(body).hexdigest(),
        "ACCEPTANCE_CRITERIA": json.dumps({"probe_requests": 40}),
    }


def hook_environment(monkeypatch: pytest.MonkeyPatch, version: str, extra: dict[str, str]) -> None:
    monkeypatch.setenv("NEW_VERSION_ARN", f"{FUNCTION_ARN}:{version}")
    monkeypatch.setenv("MODEL_NAME", "iris")
    for key, value in extra.items():
        monkeypatch.setenv(key, value)


def test_pre_traffic_hook_lets_a_good_version_through(
    deploy: Any, s3: Any, acceptance_set: dict[str, str], monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    versions = {"1": deploy(IRIS, "iris", version="1"), "2": deploy(IRIS, "iris", version="2")}
    hook_environment(monkeypatch, "2", acceptance_set)
    lambda_client = InProcessLambda(versions, alias_version="1")
    codedeploy, stubber = codedeploy_expecting("Succeeded", target_version="2")

    result = pretraffic.handler(
        HOOK_EVENT, Context(), clients={"lambda": lambda_client, "codedeploy": codedeploy, "s3": s3}
    )

    assert result == {"status": "Succeeded"}
    stubber.assert_no_pending_responses()
    assert set(lambda_client.invoked) == {"1", "2"}  # the old version for its signature, the new one for the rest
    assert lambda_client.invoked.count("2") == 41  # metadata, then 40 requests: the 30 cases and the probe
    record = next(r for r in caplog.records if r.getMessage() == "acceptance verdict")
    assert record.verdict["passed"] is True


def test_pre_traffic_hook_stops_a_wrong_model(
    deploy: Any, s3: Any, acceptance_set: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: Any
) -> None:
    wrong = train_wrong_iris(tmp_path)
    versions = {"1": deploy(IRIS, "iris", version="1"), "2": deploy(wrong / "model.onnx", "iris", version="2")}
    hook_environment(monkeypatch, "2", acceptance_set)
    codedeploy, stubber = codedeploy_expecting("Failed", target_version="2")

    result = pretraffic.handler(
        HOOK_EVENT, Context(), clients={"lambda": InProcessLambda(versions, "1"), "codedeploy": codedeploy, "s3": s3}
    )

    assert result == {"status": "Failed"}
    stubber.assert_no_pending_responses()
    record = next(r for r in caplog.records if r.getMessage() == "acceptance verdict")
    assert "acceptance set" in record.verdict["failing"]


def test_pre_traffic_hook_reports_even_when_it_crashes(monkeypatch: pytest.MonkeyPatch, s3: Any) -> None:
    monkeypatch.delenv("NEW_VERSION_ARN", raising=False)  # a miswired hook
    codedeploy, stubber = codedeploy_expecting("Failed")
    result = pretraffic.handler(HOOK_EVENT, Context(), clients={"codedeploy": codedeploy, "lambda": object()})
    assert result == {"status": "Failed"}
    stubber.assert_no_pending_responses()


def test_pre_traffic_hook_refuses_a_tampered_acceptance_set(
    deploy: Any, s3: Any, acceptance_set: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    versions = {"1": deploy(IRIS, "iris", version="1")}
    hook_environment(monkeypatch, "1", {**acceptance_set, "ACCEPTANCE_SHA256": "0" * 64})
    codedeploy, stubber = codedeploy_expecting("Failed", target_version="1")
    result = pretraffic.handler(
        HOOK_EVENT, Context(), clients={"lambda": InProcessLambda(versions, "1"), "codedeploy": codedeploy, "s3": s3}
    )
    assert result == {"status": "Failed"}
    stubber.assert_no_pending_responses()


@pytest.mark.parametrize(("alias_version", "status"), [("2", "Succeeded"), ("1", "Failed")])
def test_post_traffic_hook_checks_the_alias_serves_the_new_version(
    deploy: Any, monkeypatch: pytest.MonkeyPatch, alias_version: str, status: str
) -> None:
    versions = {"1": deploy(IRIS, "iris", version="1"), "2": deploy(IRIS, "iris", version="2")}
    hook_environment(monkeypatch, "2", {})
    codedeploy, stubber = codedeploy_expecting(status, target_version="2")
    result = posttraffic.handler(
        HOOK_EVENT, Context(), clients={"lambda": InProcessLambda(versions, alias_version), "codedeploy": codedeploy}
    )
    assert result == {"status": status}
    stubber.assert_no_pending_responses()


# --- modelrail validate --------------------------------------------------------------------------------------


def train_wrong_iris(tmp_path: Path) -> Path:
    """A copy of the sample bundle whose model learned shuffled labels: same signature, wrong answers."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    folder = tmp_path / "iris"
    shutil.copytree(ROOT / "models" / "iris", folder)
    iris = load_iris()
    labels = np.random.default_rng(0).permutation(iris.target)
    model = LogisticRegression(max_iter=300).fit(iris.data.astype(np.float32), labels)
    onnx_model = to_onnx(model, initial_types=[("float_input", FloatTensorType([None, 4]))], target_opset=17)
    (folder / "model.onnx").write_bytes(onnx_model.SerializeToString())
    return folder


def validate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelrail", "validate", *args], cwd=ROOT, capture_output=True, text=True, timeout=180
    )


def test_validate_passes_the_sample_and_fails_a_broken_copy(tmp_path: Path) -> None:
    good = validate("models/iris", "--against", "models/iris")
    assert good.returncode == 0, good.stdout + good.stderr
    assert "PASSED" in good.stdout
    assert "30/30 correct" in good.stdout

    broken = validate(str(train_wrong_iris(tmp_path)), "--against", "models/iris")
    assert broken.returncode == 1
    assert "FAILED: acceptance set" in broken.stdout
