"""`modelrail load` against a deployed environment, with moto as the account: the invoke URL and the auth from the
stack's outputs, each request SigV4-signed (checked by a loopback server that recomputes the signature with
botocore, as API Gateway's IAM authorization does) or carrying the API key; the capacity warnings of a spec that
cannot hold its peak; the memory sweep (new versions, alias live untouched, $LATEST put back, versions deleted).

API Gateway and Lambda cannot run here; the loopback server stands for the stage (``execute-api``: a request is
refused unless its SigV4 signature over method, path, signed headers and body matches, AWS "Signature Version 4
signing process", IAM User Guide reference_sigv.html, as the API Gateway Developer Guide's "Control access for
invoking an API" requires), and the function versions' answers come through botocore's own before-call hook (as
botocore's Stubber does), with the REPORT line Lambda's log tail carries ("Billed Duration: N ms").
"""

from __future__ import annotations

import base64
import hmac
import io
import json
import re
import threading
import time
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, AWSResponse
from botocore.credentials import Credentials
from botocore.response import StreamingBody
from moto import mock_aws

from modelrail import cli
from modelrail.load.capacity import check_capacity
from modelrail.load.deployed import http_target, read_endpoint
from modelrail.load.generator import run_load
from modelrail.load.schedule import RateProfile
from modelrail.load.sweep import cost_per_million, memory_sweep
from modelrail.load.targets import SigV4Signer
from modelrail.operate import aws as operate_aws
from modelrail.operate.resources import ModelResources
from spec.environment import EnvironmentSpec

REGION = "us-east-1"
STACK = "modelrail-staging"
FUNCTION = "modelrail-staging-ModelirisInferenceFunction-1A2B3C"
CREDENTIALS = Credentials("AKIDLOADTEST", "load-test-secret", "load-test-token")
SETOSA = {"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}
_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request, "
    r"SignedHeaders=(?P<signed>[^,]+), Signature=(?P<signature>[0-9a-f]{64})$"
)


def signature_valid(
    method: str, path: str, headers: dict[str, str], body: bytes, credentials: Credentials = CREDENTIALS
) -> bool:
    """Recompute the request's SigV4 signature from what arrived, with botocore, and compare."""
    match = _AUTHORIZATION.match(headers.get("authorization", ""))
    if match is None or match["key"] != credentials.access_key:
        return False
    if (match["region"], match["service"]) != (REGION, "execute-api"):
        return False
    signed = match["signed"].split(";")
    request = AWSRequest(
        method=method,
        url=f"http://{headers['host']}{path}",
        data=body,
        headers={k: v for k, v in headers.items() if k in signed},
    )
    request.context["timestamp"] = headers["x-amz-date"]
    signer = SigV4Auth(credentials, "execute-api", REGION)
    expected = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
    return hmac.compare_digest(expected, match["signature"])


class Stage:
    """A loopback stand-in for the API stage: checks each request's auth, answers as the function does."""

    def __init__(self, *, credentials: Credentials | None = None, api_key: str | None = None) -> None:
        self.credentials = credentials
        self.api_key = api_key
        self.checks: list[bool] = []
        self.paths: list[str] = []
        stage = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                if stage.credentials is not None:
                    ok = signature_valid("POST", self.path, headers, body, stage.credentials)
                else:
                    ok = headers.get("x-api-key") == stage.api_key
                stage.checks.append(ok)
                stage.paths.append(self.path)
                payload = json.dumps({"model_name": "iris"} if ok else {"message": "Forbidden"}).encode()
                self.send_response(200 if ok else 403)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.send_header("x-model-version", "3")
                self.send_header("server-timing", "total;dur=1.250")
                # a second execution environment joins after 15 requests, as Lambda scales out under load
                self.send_header("x-environment-id", "env-a" if len(stage.checks) <= 15 else "env-b")
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/prod/"

    def __enter__(self) -> Stage:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def account(monkeypatch: pytest.MonkeyPatch) -> Iterator[Credentials]:
    """moto's account; yields the credentials the caller's session has there (mock_aws sets its own)."""
    for key in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_REGION"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", CREDENTIALS.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CREDENTIALS.secret_key)
    monkeypatch.setenv("AWS_SESSION_TOKEN", str(CREDENTIALS.token))
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        frozen = boto3.Session().get_credentials().get_frozen_credentials()
        yield Credentials(frozen.access_key, frozen.secret_key, frozen.token)


def create_stack(url: str, *, api_key_id: str | None = None) -> None:
    record = {
        "model": "iris",
        "function": FUNCTION,
        "alias": "live",
        "application": "app",
        "deploymentGroup": "group",
        "deploymentConfig": "CodeDeployDefault.LambdaAllAtOnce",
        "alarms": {},
    }
    outputs: dict[str, Any] = {"Operationsiris": {"Value": json.dumps(record)}, "InvokeUrliris": {"Value": url}}
    if api_key_id is not None:
        outputs["ApiKeyIdiris"] = {"Value": api_key_id}
    template = {"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}, "Outputs": outputs}
    boto3.client("cloudformation", region_name=REGION).create_stack(StackName=STACK, TemplateBody=json.dumps(template))


def test_the_stage_refuses_a_request_whose_signature_does_not_match() -> None:
    # The loopback stage's check can fail: a signed request whose body changed on the way is refused.
    url = "http://127.0.0.1:9/prod/v2/models/iris/infer"
    body = json.dumps(SETOSA).encode()
    headers = SigV4Signer(CREDENTIALS, REGION).headers("POST", url, body, {"content-type": "application/json"})
    received = {k.lower(): v for k, v in headers.items()} | {"host": "127.0.0.1:9"}
    assert signature_valid("POST", "/prod/v2/models/iris/infer", received, body)
    assert not signature_valid("POST", "/prod/v2/models/iris/infer", received, body.replace(b"5.1", b"9.9"))
    assert not signature_valid("POST", "/prod/v2/models/other/infer", received, body)


def test_load_env_staging_signs_every_request_for_the_stacks_invoke_url(
    account: Credentials, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Stage(credentials=account) as stage:
        create_stack(stage.url)
        report_path = tmp_path / "load.json"
        code = cli.main(
            [
                "load",
                "--env",
                "staging",
                "--rps",
                "30",
                "--duration",
                "1",
                "--function-ms",
                "5",
                "--report",
                str(report_path),
            ]
        )
    out, err = capsys.readouterr()
    report = json.loads(report_path.read_text())
    assert report["source"]["url"] == stage.url + "v2/models/iris/infer"
    assert report["source"]["auth"] == "iam"
    assert len(stage.checks) == 30
    assert all(stage.checks)
    assert set(stage.paths) == {"/prod/v2/models/iris/infer"}
    assert report["latency_ms"]["function"]["p50"] == 1.25  # Server-Timing read beside the client's time
    assert report["cold_starts"]["observed"] == 2
    assert report["cold_starts"]["by_version"] == {"3": 2}
    assert [s["environment"] for s in report["cold_starts"]["first_answers"]] == ["env-a", "env-b"]
    # staging's spec: API throttle 20/s, below the 30/s asked for; warned before the run
    assert "environments.staging.api.throttle_rate_limit 20 requests/s is below the peak 30/s" in err
    assert code == 0, out  # the stand-in stage answers quickly: staging's load budgets are met
    assert "load budgets met" in out


def test_load_with_an_api_key_sends_the_keys_value(account: Credentials) -> None:
    key = boto3.client("apigateway", region_name=REGION).create_api_key(
        name="iris", value="load-test-api-key-0123456789", enabled=True
    )
    with Stage(api_key="load-test-api-key-0123456789") as stage:
        create_stack(stage.url, api_key_id=key["id"])
        aws = operate_aws.connect()
        endpoint = read_endpoint(aws, STACK, None)
        assert endpoint.auth == "api_key"
        result = run_load(
            http_target(aws, endpoint), [json.dumps(SETOSA).encode()], RateProfile.parse("20", 0.5), progress=None
        )
    assert result.statuses == {200: 10}
    assert len(stage.checks) == 10
    assert all(stage.checks)


def test_capacity_warnings_name_each_setting_that_cannot_hold_the_peak() -> None:
    spec = EnvironmentSpec.model_validate(
        {
            "name": "staging",
            "rollout": {"kind": "all_at_once"},
            "function": {"reserved_concurrency": 4},
            "api": {"throttle_rate_limit": 50, "throttle_burst_limit": 100},
        }
    )
    # 100/s x 80 ms = 8 concurrent executions (Little's law), twice the 4 reserved; 100/s > the API's 50/s
    check = check_capacity(spec, peak_rps=100, function_ms=80)
    assert check.environments_needed == 8
    reserved, invocations, throttle = check.warnings
    assert reserved.startswith("environments.staging.function.reserved_concurrency 4 holds at most 50 requests/s")
    assert "needs 8 concurrent executions" in reserved
    # and Lambda allows 10 invocations per second per unit of concurrency: 40/s for 4
    assert invocations.startswith(
        "environments.staging.function.reserved_concurrency 4 allows at most 40 invocations/s"
    )
    assert throttle.startswith("environments.staging.api.throttle_rate_limit 50 requests/s is below the peak 100/s")
    # What the run's report will show: Lambda's throttles reach the API's clients as API Gateway's 500 (its Lambda
    # proxy integration has no function answer to pass on: AWS Knowledge Center, api-gateway-internal-server-error),
    # counted in server_5xx; only the stage's own throttling answers 429.
    for lambda_cap in (reserved, invocations):
        assert "answered 500" in lambda_cap
        assert "429" not in lambda_cap
    assert "429" in throttle
    # With room for the peak, no warning.
    assert check_capacity(spec, peak_rps=40, function_ms=80).warnings == ()
    # Without reserved concurrency, the account's default 1,000 concurrent executions is the cap.
    open_spec = spec.model_copy(update={"function": spec.function.model_copy(update={"reserved_concurrency": None})})
    (account_cap, _throttle) = check_capacity(open_spec, peak_rps=2000, function_ms=600).warnings
    assert "needs 1200 concurrent executions" in account_cap
    assert "default 1000" in account_cap
    assert "answered 500" in account_cap
    assert "429" not in account_cap


def _deploy_function() -> Any:
    iam = boto3.client("iam", region_name=REGION)
    role = iam.create_role(RoleName="inference", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("handler.py", "def lambda_handler(event, context):\n    return {}\n")
    client = boto3.client("lambda", region_name=REGION)
    client.create_function(
        FunctionName=FUNCTION,
        Runtime="python3.12",
        Role=role,
        Handler="handler.lambda_handler",
        Code={"ZipFile": code.getvalue()},
        MemorySize=1024,
        Architectures=["arm64"],
        Environment={"Variables": {"MODEL_NAME": "iris"}},
    )
    assert client.publish_version(FunctionName=FUNCTION)["Version"] == "1"
    client.create_alias(FunctionName=FUNCTION, Name="live", FunctionVersion="1")
    return client


# Each memory size's answer: how long it takes (so its p99), and the billed duration its REPORT line gives.
SLEEP_MS = {512: 35, 1024: 0, 2048: 0}
BILLED_MS = {512: 35, 1024: 18, 2048: 10}


def test_memory_sweep_publishes_a_version_per_size_and_finds_the_cheapest_within_budget(
    account: Credentials,
) -> None:
    control = _deploy_function()
    memory_of = {"1": 1024}
    invoked: list[tuple[str, dict[str, Any]]] = []

    def answer(params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        version = params["query_string"]["Qualifier"]
        if version not in memory_of:  # published by the sweep: its size as Lambda has it
            config = control.get_function_configuration(FunctionName=FUNCTION, Qualifier=version)
            memory_of[version] = config["MemorySize"]
        memory = memory_of[version]
        invoked.append((version, json.loads(params["body"])))
        time.sleep(SLEEP_MS[memory] / 1000)
        response = {
            "statusCode": 200,
            "headers": {"server-timing": f"total;dur={BILLED_MS[memory] - 0.5}"},
            "body": "{}",
        }
        payload = json.dumps(response).encode()
        report = f"REPORT RequestId: x\tDuration: {BILLED_MS[memory] - 0.5} ms\tBilled Duration: {BILLED_MS[memory]} ms"
        parsed = {
            "StatusCode": 200,
            "Payload": StreamingBody(io.BytesIO(payload), len(payload)),
            "LogResult": base64.b64encode(report.encode()).decode(),
        }
        return AWSResponse("", 200, {}, None), parsed

    invoker = boto3.client("lambda", region_name=REGION)
    invoker.meta.events.register("before-call.lambda.Invoke", answer)
    aws = operate_aws.connect()
    resources = ModelResources("iris", FUNCTION, "live", "app", "group", "config")
    profile = RateProfile.parse("20", 0.5)
    body = json.dumps(SETOSA).encode()
    result = memory_sweep(
        aws,
        resources,
        [512, 1024, 2048],
        lambda target: run_load(target, [body], profile, max_in_flight=2, progress=None),
        p99_budget_ms=30,
        max_error_rate=0.01,
        invoke_client=invoker,
        poll_s=0,
    )

    points = {p.memory_mb: p for p in result.points}
    assert {p.version for p in result.points} == {"2", "1", "3"}
    assert points[1024].version == "1"  # the live version is 1024 MB already: used as it is, nothing published
    assert {memory_of[v] for v, _ in invoked} == {512, 1024, 2048}
    assert invoked[0][1]["path"] == "/v2/models/iris/infer"
    assert invoked[0][1]["body"] == body.decode()
    for memory, point in points.items():
        assert point.billed_mean_ms == BILLED_MS[memory]
        assert point.cost_per_million_usd == pytest.approx(
            cost_per_million(memory, BILLED_MS[memory], "arm64"), abs=1e-6
        )
    # 512 MB is the cheapest per request but its p99 (>= 35 ms) is over the 30 ms budget: 1024 MB wins.
    assert points[512].cost_per_million_usd < points[1024].cost_per_million_usd < points[2048].cost_per_million_usd
    assert not points[512].within_budget
    assert result.cheapest is not None
    assert result.cheapest.memory_mb == 1024
    # The alias never moved; $LATEST is back at its size; the sweep's own versions are gone, the live one stays.
    assert control.get_alias(FunctionName=FUNCTION, Name="live")["FunctionVersion"] == "1"
    assert control.get_function_configuration(FunctionName=FUNCTION)["MemorySize"] == 1024
    versions = {v["Version"] for v in control.list_versions_by_function(FunctionName=FUNCTION)["Versions"]}
    assert versions == {"$LATEST", "1"}
    assert result.deleted_versions == ("2", "3")


def test_cost_per_million_follows_lambdas_published_prices() -> None:
    # https://aws.amazon.com/lambda/pricing/ (us-east-1): $0.20 per 1M requests + $0.0000133334 per GB-s on arm64.
    # 1M requests x 1 GB x 0.1 s = 100,000 GB-s = $1.33334, plus $0.20.
    assert cost_per_million(1024, 100, "arm64") == pytest.approx(1.53334)
    assert cost_per_million(2048, 50, "x86_64") == pytest.approx(0.2 + 100_000 * 0.0000166667)
