"""The hooks meet faults and still decide, and report exactly once before their own deadline: a broken import,
a version that hangs or is slow, a throttled report, a replaced version that cannot answer, an alias that is not
ready, a stale hook environment, and the first deploy's custom resource.

Where the real Lambda API matters (the client's read timeout on a hanging Invoke), the hook talks over HTTP to a
small Lambda API on 127.0.0.1 (boto3's AWS_ENDPOINT_URL_LAMBDA); CodeDeploy is botocore's Stubber.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import json
import re
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

import functions.acceptance
from functions.acceptance import posttraffic, pretraffic
from functions.acceptance.codedeploy import appspec_target_version
from functions.acceptance.firstdeploy import MAX_RESPONSE_BYTES
from tests.functional.conftest import IRIS
from tests.functional.test_acceptance import (
    FUNCTION_ARN,
    HOOK_EVENT,
    InProcessLambda,
    codedeploy_expecting,
    expect_get_deployment,
    hook_environment,
    lambda_appspec,
)
from tests.utils import Context

pytestmark = pytest.mark.functional

NO_ACCEPTANCE_SET = {"ACCEPTANCE_CRITERIA": json.dumps({"min_pass_rate": 0, "probe_requests": 5})}


class ShortContext(Context):
    """A Lambda context whose remaining time runs out for real, ``seconds`` after it is made."""

    def __init__(self, seconds: float) -> None:
        self.ends = time.monotonic() + seconds

    def get_remaining_time_in_millis(self) -> int:
        return int((self.ends - time.monotonic()) * 1000)


def record_report_time(codedeploy: Any, context: ShortContext) -> list[int]:
    """The context's remaining time whenever the hook calls PutLifecycleEventHookExecutionStatus."""
    seen: list[int] = []
    codedeploy.meta.events.register(
        "before-parameter-build.codedeploy.PutLifecycleEventHookExecutionStatus",
        lambda **_: seen.append(context.get_remaining_time_in_millis()),
    )
    return seen


def verdict_of(caplog: Any) -> dict[str, Any]:
    record = next(r for r in caplog.records if r.getMessage().startswith("acceptance verdict"))
    return dict(record.verdict)


def criterion(verdict: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in verdict["criteria"] if c["name"] == name)


def not_found(operation: str) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": "ResourceNotFoundException", "Message": "Alias not found: live"},
            "ResponseMetadata": {"HTTPStatusCode": 404},
        },
        operation,
    )


class NoAliasYet(InProcessLambda):
    """A function whose alias does not exist yet: Lambda's GetAlias answers ResourceNotFoundException."""

    def get_alias(self, **params: Any) -> dict[str, Any]:
        self._check("GetAlias", params)
        raise not_found("GetAlias")


class Untouchable:
    """A Lambda client for code that must not call Lambda at all."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"Lambda {name} called: the gate ran")


# --- 1. the hook imports, and reports, even when the gate cannot be imported ---------------------------------


@pytest.mark.parametrize("missing", ["numpy", "functions.acceptance.gate"])
def test_a_gate_that_cannot_be_imported_fails_the_deployment_once(
    monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    for name in ("pretraffic", "gate", "criteria", "firstdeploy"):  # restored, module and attribute, afterwards
        monkeypatch.delitem(sys.modules, f"functions.acceptance.{name}", raising=False)
        if hasattr(functions.acceptance, name):
            monkeypatch.setattr(functions.acceptance, name, getattr(functions.acceptance, name))
    monkeypatch.setitem(sys.modules, missing, None)  # `import numpy` now raises ImportError, as a broken layer would
    hook_environment(monkeypatch, "2", NO_ACCEPTANCE_SET)
    codedeploy, stubber = codedeploy_expecting("Failed", target_version="2")

    fresh = importlib.import_module("functions.acceptance.pretraffic")  # Lambda's cold start of the hook module
    result = fresh.handler(HOOK_EVENT, Context(), clients={"codedeploy": codedeploy, "lambda": Untouchable()})

    assert result == {"status": "Failed"}
    stubber.assert_no_pending_responses()  # exactly one report, Failed


# --- 2. deadlines: a version that hangs, a slow one ------------------------------------------------------------


class LambdaApi(ThreadingHTTPServer):
    """Lambda's GetAlias and Invoke (REST paths of the 2015-03-31 API) for a toy model ``toy`` whose output y
    echoes its input x; ``infer_seconds`` is how long version 2 takes per inference, ``None`` to hang."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _LambdaApiHandler)
        self.alias_version = "1"
        self.infer_seconds: float | None = 0.0
        self.release = threading.Event()
        self.invoked: list[tuple[str, str]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def answer(self, version: str, event: dict[str, Any]) -> dict[str, Any]:
        self.invoked.append((version, event["path"]))
        headers = {"content-type": "application/json", "x-model-version": version}
        if event["httpMethod"] == "GET":
            document: dict[str, Any] = {
                "name": "toy",
                "versions": [version],
                "platform": "onnxruntime",
                "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 1]}],
                "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 1]}],
            }
        else:
            if version == "2":
                if self.infer_seconds is None:
                    self.release.wait(30)
                else:
                    time.sleep(self.infer_seconds)
            request = json.loads(event["body"])
            document = {
                "model_name": "toy",
                "model_version": version,
                "outputs": [{**request["inputs"][0], "name": "y"}],
            }
        return {"statusCode": 200, "headers": headers, "body": json.dumps(document)}


class _LambdaApiHandler(BaseHTTPRequestHandler):
    server: LambdaApi

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        try:
            self.send_response(status)
            for key, value in {**headers, "Content-Length": str(len(body))}.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass  # the client stopped waiting (its read timed out)

    def do_GET(self) -> None:  # GetAlias: /2015-03-31/functions/<name>/aliases/<alias>
        parts = urlsplit(self.path).path.split("/")
        body = {"Name": unquote(parts[-1]), "FunctionVersion": self.server.alias_version, "AliasArn": "x"}
        self._send(200, json.dumps(body).encode(), {"Content-Type": "application/json"})

    def do_POST(self) -> None:  # Invoke: /2015-03-31/functions/<qualified ARN>/invocations
        function = unquote(urlsplit(self.path).path.split("/")[3])
        version = function.rpartition(":")[2]
        if version == "live":  # the alias: Lambda runs the version it points to
            version = self.server.alias_version
        event = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        answer = json.dumps(self.server.answer(version, event)).encode()
        self._send(200, answer, {"Content-Type": "application/json", "X-Amz-Executed-Version": version})


@pytest.fixture
def lambda_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[LambdaApi]:
    server = LambdaApi()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_LAMBDA": server.url,  # boto3's service-specific endpoint: the hook's own client
        "POWERTOOLS_TRACE_DISABLED": "true",
    }.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"):
        monkeypatch.delenv(key, raising=False)
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()


class FakeS3:
    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects = objects

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:  # noqa: N803
        return {"Body": io.BytesIO(self.objects[f"{Bucket}/{Key}"])}


def toy_hook(monkeypatch: pytest.MonkeyPatch, cases: int) -> FakeS3:
    """The pre-traffic hook's environment for version 2 of ``toy``, with ``cases`` acceptance cases."""
    body = "".join(
        json.dumps(
            {"inputs": [{"name": "x", "shape": [1, 1], "datatype": "FP32", "data": [i]}], "expected": {"y": [i]}}
        )
        + "\n"
        for i in range(cases)
    ).encode()
    monkeypatch.setenv("NEW_VERSION_ARN", f"{FUNCTION_ARN}:2")
    monkeypatch.setenv("MODEL_NAME", "toy")
    monkeypatch.setenv("ACCEPTANCE_URI", "s3://bucket/toy.jsonl")
    monkeypatch.setenv("ACCEPTANCE_SHA256", hashlib.sha256(body).hexdigest())
    monkeypatch.setenv("ACCEPTANCE_CRITERIA", json.dumps({"probe_requests": cases + 5}))
    return FakeS3({"bucket/toy.jsonl": body})


def test_a_version_that_hangs_fails_the_gate_before_the_hook_times_out(
    lambda_api: LambdaApi, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    lambda_api.infer_seconds = None  # version 2 never answers an inference (until the test ends)
    s3 = toy_hook(monkeypatch, cases=10)  # more than fit: each hanging call waits at least 1 s
    codedeploy, stubber = codedeploy_expecting("Failed", target_version="2")
    context = ShortContext(6)  # the hook's 600 s, shortened; its inference calls would each wait 29 s and more
    reported_at = record_report_time(codedeploy, context)

    result = pretraffic.handler(HOOK_EVENT, context, clients={"codedeploy": codedeploy, "s3": s3})

    assert result == {"status": "Failed"}
    stubber.assert_no_pending_responses()
    assert len(reported_at) == 1
    assert reported_at[0] > 0  # reported while the hook was still running
    assert context.get_remaining_time_in_millis() > 0
    verdict = verdict_of(caplog)
    assert "acceptance set" in verdict["failing"]
    assert re.search(r"ran out of time after [1-6] of 10 cases", criterion(verdict, "acceptance set")["detail"])
    assert "HTTP 504" in criterion(verdict, "error responses")["detail"]  # the timed-out Invoke, an error answer


def test_a_slow_version_near_the_deadline_fails_on_a_partial_acceptance_set(
    lambda_api: LambdaApi, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    lambda_api.infer_seconds = 0.4  # every answer right, each slow: the set does not fit in the time
    s3 = toy_hook(monkeypatch, cases=20)
    codedeploy, stubber = codedeploy_expecting("Failed", target_version="2")
    context = ShortContext(5)
    reported_at = record_report_time(codedeploy, context)

    result = pretraffic.handler(HOOK_EVENT, context, clients={"codedeploy": codedeploy, "s3": s3})

    assert result == {"status": "Failed"}
    stubber.assert_no_pending_responses()
    assert len(reported_at) == 1
    assert reported_at[0] > 0
    verdict = verdict_of(caplog)
    detail = criterion(verdict, "acceptance set")["detail"]
    match = re.search(r"ran out of time after (\d+) of 20 cases", detail)
    assert match, detail
    assert 0 < int(match[1]) < 20
    assert criterion(verdict, "acceptance set")["passed"] is False  # never a pass on a partial set
    inferences = [path for version, path in lambda_api.invoked if version == "2" and path.endswith("/infer")]
    assert len(inferences) <= int(match[1])  # the latency probe did not run after the set was cut short


def test_the_same_gate_with_time_enough_passes(lambda_api: LambdaApi, monkeypatch: pytest.MonkeyPatch) -> None:
    """The control for the two above: the toy version is right, so only time failed them."""
    s3 = toy_hook(monkeypatch, cases=3)
    codedeploy, stubber = codedeploy_expecting("Succeeded", target_version="2")
    result = pretraffic.handler(HOOK_EVENT, ShortContext(60), clients={"codedeploy": codedeploy, "s3": s3})
    assert result == {"status": "Succeeded"}
    stubber.assert_no_pending_responses()
    assert ("1", "/v2/models/toy") in lambda_api.invoked  # the replaced version's signature, over the real API


class ThrottledOnce(InProcessLambda):
    """Lambda throttles the first Invoke (TooManyRequestsException, HTTP 429: the function did not run)."""

    throttles = 1

    def invoke(self, **params: Any) -> dict[str, Any]:
        if self.throttles:
            self.throttles -= 1
            error = {"Code": "TooManyRequestsException", "Message": "Rate Exceeded."}
            raise ClientError({"Error": error, "ResponseMetadata": {"HTTPStatusCode": 429}}, "Invoke")
        return super().invoke(**params)


def test_a_throttled_invoke_is_tried_again(deploy: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    versions = {"1": deploy(IRIS, "iris", version="1"), "2": deploy(IRIS, "iris", version="2")}
    hook_environment(monkeypatch, "2", NO_ACCEPTANCE_SET)
    codedeploy, stubber = codedeploy_expecting("Succeeded", target_version="2")
    lambda_client = ThrottledOnce(versions, "1")
    result = pretraffic.handler(HOOK_EVENT, Context(), clients={"lambda": lambda_client, "codedeploy": codedeploy})
    assert result == {"status": "Succeeded"}
    stubber.assert_no_pending_responses()


# --- 3. a throttled report is retried and lands once ------------------------------------------------------------


def throttled_codedeploy(throttles: int, *, then_accepts: bool = True) -> tuple[Any, Stubber]:
    """A CodeDeploy client whose PutLifecycleEventHookExecutionStatus (Failed, for d-ABC123/hook-1) is throttled
    ``throttles`` times, with CodeDeploy's documented throttling error (Common Errors: ThrottlingException, HTTP
    400), then accepted (``then_accepts``)."""
    codedeploy = boto3.client("codedeploy", region_name="us-east-1")
    stubber = Stubber(codedeploy)
    expected = {"deploymentId": "d-ABC123", "lifecycleEventHookExecutionId": "hook-1", "status": "Failed"}
    for _ in range(throttles):
        stubber.add_client_error(
            "put_lifecycle_event_hook_execution_status",
            service_error_code="ThrottlingException",
            service_message="Rate exceeded",
            http_status_code=400,
            expected_params=expected,
        )
    if then_accepts:
        stubber.add_response(
            "put_lifecycle_event_hook_execution_status", {"lifecycleEventHookExecutionId": "hook-1"}, expected
        )
    stubber.activate()
    return codedeploy, stubber


@pytest.mark.parametrize("hook", [pretraffic, posttraffic], ids=["pre-traffic", "post-traffic"])
def test_a_throttled_report_is_retried_and_lands_once(monkeypatch: pytest.MonkeyPatch, hook: Any) -> None:
    monkeypatch.delenv("NEW_VERSION_ARN", raising=False)  # the hook fails at once: only its report matters here
    codedeploy, stubber = throttled_codedeploy(throttles=1)

    result = hook.handler(HOOK_EVENT, ShortContext(30), clients={"codedeploy": codedeploy, "lambda": Untouchable()})

    assert result == {"status": "Failed"}
    stubber.assert_no_pending_responses()  # throttled once, then landed: two calls, one status


def test_a_report_refused_for_good_is_not_retried_and_the_hook_still_returns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEW_VERSION_ARN", raising=False)
    codedeploy = boto3.client("codedeploy", region_name="us-east-1")
    stubber = Stubber(codedeploy)
    stubber.add_client_error(
        "put_lifecycle_event_hook_execution_status", service_error_code="AccessDeniedException", http_status_code=400
    )
    stubber.activate()
    result = pretraffic.handler(HOOK_EVENT, ShortContext(30), clients={"codedeploy": codedeploy})
    assert result == {"status": "Failed"}
    stubber.assert_no_pending_responses()


# --- 4. the replaced version: absent on a first deploy only ------------------------------------------------------


def test_no_alias_yet_is_a_first_deploy_without_previous_version(
    deploy: Any, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    versions = {"1": deploy(IRIS, "iris", version="1")}
    hook_environment(monkeypatch, "1", NO_ACCEPTANCE_SET)
    codedeploy, stubber = codedeploy_expecting("Succeeded", target_version="1")

    result = pretraffic.handler(
        HOOK_EVENT, Context(), clients={"lambda": NoAliasYet(versions, "1"), "codedeploy": codedeploy}
    )

    assert result == {"status": "Succeeded"}
    stubber.assert_no_pending_responses()
    assert criterion(verdict_of(caplog), "signature")["measured"] == "no previous version"


def test_a_replaced_version_that_cannot_answer_fails_the_signature(
    deploy: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: Any
) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")  # the live version answers 503: it cannot load its model
    versions = {"1": deploy(broken, "iris", version="1"), "2": deploy(IRIS, "iris", version="2")}
    hook_environment(monkeypatch, "2", NO_ACCEPTANCE_SET)
    codedeploy, stubber = codedeploy_expecting("Failed", target_version="2")

    result = pretraffic.handler(
        HOOK_EVENT, Context(), clients={"lambda": InProcessLambda(versions, "1"), "codedeploy": codedeploy}
    )

    assert result == {"status": "Failed"}
    stubber.assert_no_pending_responses()
    verdict = verdict_of(caplog)
    assert verdict["failing"] == ["signature"]
    detail = criterion(verdict, "signature")["detail"]
    assert "HTTP 503" in detail
    assert "onnxruntime cannot load" in detail


# --- 5. post-traffic: the alias must answer 200, not only name the version --------------------------------------


def test_post_traffic_fails_an_alias_that_answers_503_with_the_new_version(
    deploy: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    versions = {"1": deploy(IRIS, "iris", version="1"), "2": deploy(broken, "iris", version="2")}
    hook_environment(monkeypatch, "2", {})
    codedeploy, stubber = codedeploy_expecting("Failed", target_version="2")

    result = posttraffic.handler(
        HOOK_EVENT, Context(), clients={"lambda": InProcessLambda(versions, "2"), "codedeploy": codedeploy}
    )

    assert result == {"status": "Failed"}
    stubber.assert_no_pending_responses()
    answer = versions["2"].call("GET", "/v2/models/iris/ready")
    assert (answer.status, answer.headers["x-model-version"]) == (503, "2")  # what the hook was shown


# --- 6. the hook judges the version the deployment shifts to ------------------------------------------------------

YAML_APPSPEC = """version: 0.0
Resources:
  - modelrail-production-iris:
      Type: AWS::Lambda::Function
      Properties:
        Name: "modelrail-production-iris"
        Alias: "live"
        CurrentVersion: "1"
        TargetVersion: "{target}"
Hooks:
  - BeforeAllowTraffic: "pre-traffic-hook"
"""


@pytest.mark.parametrize(
    ("appspec", "target"),
    [
        (lambda_appspec("3"), "3"),
        (YAML_APPSPEC.format(target="3"), "3"),
        (
            '{"version":0.0,"resources":[{"fn":{"type":"AWS::Lambda::Function","properties":{"targetversion":"7"}}}]}',
            "7",
        ),
        ("resources:\n  - fn:\n      properties:\n        targetversion: 12\n", "12"),
    ],
    ids=["json", "yaml", "json-lowercase", "yaml-lowercase-unquoted"],
)
def test_appspec_target_version_reads_json_and_yaml(appspec: str, target: str) -> None:
    # CodeDeploy's AppSpec reference spells the keys both ways (Resources/TargetVersion in its examples,
    # resources/targetversion in "AppSpec 'resources' section for AWS Lambda deployments").
    assert appspec_target_version(appspec) == target


@pytest.mark.parametrize("hook", [pretraffic, posttraffic], ids=["pre-traffic", "post-traffic"])
@pytest.mark.parametrize("appspec", [lambda_appspec("3"), YAML_APPSPEC.format(target="3")], ids=["json", "yaml"])
def test_a_stale_hook_environment_fails_without_judging(
    monkeypatch: pytest.MonkeyPatch, hook: Any, appspec: str
) -> None:
    hook_environment(monkeypatch, "2", NO_ACCEPTANCE_SET)  # the hook was built for version 2; CodeDeploy ships 3
    codedeploy = boto3.client("codedeploy", region_name="us-east-1")
    stubber = Stubber(codedeploy)
    expect_get_deployment(stubber, appspec)
    stubber.add_response(
        "put_lifecycle_event_hook_execution_status",
        {"lifecycleEventHookExecutionId": "hook-1"},
        {"deploymentId": "d-ABC123", "lifecycleEventHookExecutionId": "hook-1", "status": "Failed"},
    )
    stubber.activate()

    result = hook.handler(HOOK_EVENT, Context(), clients={"codedeploy": codedeploy, "lambda": Untouchable()})

    assert result == {"status": "Failed"}
    stubber.assert_no_pending_responses()


def test_post_traffic_reads_a_yaml_appspec_that_agrees(deploy: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    versions = {"2": deploy(IRIS, "iris", version="2")}
    hook_environment(monkeypatch, "2", {})
    codedeploy = boto3.client("codedeploy", region_name="us-east-1")
    stubber = Stubber(codedeploy)
    expect_get_deployment(stubber, YAML_APPSPEC.format(target="2"))
    stubber.add_response(
        "put_lifecycle_event_hook_execution_status",
        {"lifecycleEventHookExecutionId": "hook-1"},
        {"deploymentId": "d-ABC123", "lifecycleEventHookExecutionId": "hook-1", "status": "Succeeded"},
    )
    stubber.activate()
    result = posttraffic.handler(
        HOOK_EVENT, Context(), clients={"lambda": InProcessLambda(versions, "2"), "codedeploy": codedeploy}
    )
    assert result == {"status": "Succeeded"}
    stubber.assert_no_pending_responses()


# --- 7. the first deploy: a CloudFormation custom resource served by the same function ----------------------------


class ResponseUrl(ThreadingHTTPServer):
    """The pre-signed S3 URL CloudFormation hands a custom resource: records each request it receives."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ResponseUrlHandler)
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/cfn/response?X-Amz-Signature=abc"

    def answers(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, _, _, body in self.requests]


class _ResponseUrlHandler(BaseHTTPRequestHandler):
    server: ResponseUrl

    def log_message(self, *args: Any) -> None:
        pass

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.requests.append(("PUT", self.path, dict(self.headers), body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def response_url() -> Iterator[ResponseUrl]:
    server = ResponseUrl()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()
    for _, _, _, body in server.requests:  # CloudFormation refuses larger answers
        assert len(body) <= MAX_RESPONSE_BYTES


def cfn_event(request_type: str, url: str, version: str = "1", **extra: Any) -> dict[str, Any]:
    """A custom resource request as CloudFormation sends it (the Lambda ServiceToken's event)."""
    return {
        "RequestType": request_type,
        "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:pre-traffic-hook",
        "ResponseURL": url,
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/modelrail-production/0a1b2c3d",
        "RequestId": "5c6d7e8f-request",
        "LogicalResourceId": "FirstDeployGate",
        "ResourceType": "Custom::ModelrailAcceptanceGate",
        "ResourceProperties": {
            "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:pre-traffic-hook",
            "VersionArn": f"{FUNCTION_ARN}:{version}",
            "Model": "iris",
        },
        **extra,
    }


def one_answer(response_url: ResponseUrl, event: dict[str, Any]) -> dict[str, Any]:
    assert len(response_url.requests) == 1, response_url.requests
    method, path, _, _ = response_url.requests[0]
    assert (method, path) == ("PUT", "/cfn/response?X-Amz-Signature=abc")
    answer = response_url.answers()[0]
    for key in ("StackId", "RequestId", "LogicalResourceId"):
        assert answer[key] == event[key]
    assert answer["PhysicalResourceId"]
    return answer


def test_first_deploy_create_with_a_passing_gate_answers_success(
    deploy: Any, monkeypatch: pytest.MonkeyPatch, response_url: ResponseUrl
) -> None:
    versions = {"1": deploy(IRIS, "iris", version="1")}
    hook_environment(monkeypatch, "9", NO_ACCEPTANCE_SET)  # the event's VersionArn wins over the environment
    lambda_client = NoAliasYet(versions, "1")
    event = cfn_event("Create", response_url.url)

    pretraffic.handler(event, Context(), clients={"lambda": lambda_client})

    answer = one_answer(response_url, event)
    assert answer["Status"] == "SUCCESS", answer
    assert answer["Data"]["Passed"] == "true"
    assert set(lambda_client.invoked) == {"1"}


def test_first_deploy_create_with_a_failing_gate_answers_failed_with_the_reason(
    deploy: Any, monkeypatch: pytest.MonkeyPatch, response_url: ResponseUrl, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    versions = {"1": deploy(broken, "iris", version="1")}
    hook_environment(monkeypatch, "1", NO_ACCEPTANCE_SET)
    event = cfn_event("Create", response_url.url)

    pretraffic.handler(event, Context(), clients={"lambda": NoAliasYet(versions, "1")})

    answer = one_answer(response_url, event)
    assert answer["Status"] == "FAILED"
    assert "acceptance gate failed" in answer["Reason"]
    assert "model serves" in answer["Reason"]
    assert "onnxruntime cannot load" in answer["Reason"]


class Crashing(NoAliasYet):
    def invoke(self, **params: Any) -> dict[str, Any]:
        raise RuntimeError("socket closed " + "x" * 10_000)


@pytest.mark.parametrize(
    ("clients", "properties", "expected"),
    [
        ({"lambda": object()}, {}, "AttributeError"),  # the hook's own code crashes
        ({"lambda": Untouchable()}, {"VersionArn": None}, "ResourceProperties.VersionArn"),
        ({"lambda": Crashing({}, "1")}, {}, "[truncated]"),  # a reason longer than CloudFormation takes
    ],
    ids=["crash", "no-version-arn", "long-reason"],
)
def test_first_deploy_create_answers_failed_on_a_crash(
    monkeypatch: pytest.MonkeyPatch,
    response_url: ResponseUrl,
    clients: dict[str, Any],
    properties: dict[str, Any],
    expected: str,
) -> None:
    hook_environment(monkeypatch, "1", NO_ACCEPTANCE_SET)
    event = cfn_event("Create", response_url.url)
    event["ResourceProperties"].update(properties)

    pretraffic.handler(event, Context(), clients=clients)

    answer = one_answer(response_url, event)
    assert answer["Status"] == "FAILED"
    assert expected in answer["Reason"]


@pytest.mark.parametrize("request_type", ["Update", "Delete"])
def test_first_deploy_update_and_delete_answer_success_without_the_gate(
    monkeypatch: pytest.MonkeyPatch, response_url: ResponseUrl, request_type: str
) -> None:
    monkeypatch.delenv("NEW_VERSION_ARN", raising=False)
    event = cfn_event(request_type, response_url.url, PhysicalResourceId="modelrail-acceptance-gate:earlier")

    pretraffic.handler(event, Context(), clients={"lambda": Untouchable()})

    answer = one_answer(response_url, event)
    assert answer["Status"] == "SUCCESS"
    assert answer["PhysicalResourceId"] == "modelrail-acceptance-gate:earlier"  # the same resource, not a replacement


def test_first_deploy_answers_before_its_deadline_when_the_version_hangs(
    lambda_api: LambdaApi, monkeypatch: pytest.MonkeyPatch, response_url: ResponseUrl
) -> None:
    lambda_api.infer_seconds = None
    s3 = toy_hook(monkeypatch, cases=10)
    event = cfn_event("Create", response_url.url, version="2")
    context = ShortContext(6)

    pretraffic.handler(event, context, clients={"s3": s3})

    assert context.get_remaining_time_in_millis() > 0
    answer = one_answer(response_url, event)
    assert answer["Status"] == "FAILED"
    assert re.search(r"ran out of time after [1-6] of 10 cases", answer["Reason"]), answer["Reason"]
