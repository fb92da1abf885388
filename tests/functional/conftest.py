"""Functional fixtures: moto's in-process AWS, real models uploaded as a deployment would, the real handler."""

from __future__ import annotations

import hashlib
import importlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from moto import mock_aws

from functions.inference.service import boto3_s3_client
from tests.utils import Answer, Context, answer_of, rest_event

BUCKET = "modelrail-artifacts-test"
ROOT = Path(__file__).resolve().parents[2]
IRIS = ROOT / "models" / "iris" / "model.onnx"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    # mock_aws intercepts botocore only: the function's own signed GETs (s3get.py, used when the credentials are in
    # the environment) would leave the process, so here it uses boto3's client, as it does under SnapStart.
    monkeypatch.setattr("functions.inference.service._s3_client", boto3_s3_client)
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def upload(s3: Any, model_path: Path, name: str) -> tuple[str, str]:
    data = model_path.read_bytes()
    sha256 = hashlib.sha256(data).hexdigest()
    key = f"models/{name}/{sha256}.onnx"
    s3.put_object(Bucket=BUCKET, Key=key, Body=data)
    return f"s3://{BUCKET}/{key}", sha256


class Function:
    """The inference handler module, imported (cold start) with one model's environment."""

    def __init__(self, module: ModuleType, name: str) -> None:
        self.module = module
        self.name = name

    def invoke(self, event: dict[str, Any]) -> Answer:
        return answer_of(self.module.lambda_handler(event, Context()))

    def call(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Answer:
        return self.invoke(rest_event(method, path, body, **kwargs))

    def infer(self, body: Any, **kwargs: Any) -> Answer:
        return self.call("POST", f"/v2/models/{self.name}/infer", body, **kwargs)


def cold_start(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> ModuleType:
    for key in ("MODEL_NAME", "MODEL_URI", "MODEL_SHA256", "MAX_BATCH_ROWS", "AWS_LAMBDA_FUNCTION_VERSION"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    sys.modules.pop("functions.inference.handler", None)
    return importlib.import_module("functions.inference.handler")


@pytest.fixture
def deploy(s3: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[..., Function]:
    """deploy(model_path, name=..., version="1", sha256=None, uri=None, **env) -> Function."""

    def _deploy(
        model_path: Path,
        name: str = "model",
        *,
        version: str = "1",
        sha256: str | None = None,
        uri: str | None = None,
        **env: str,
    ) -> Function:
        real_uri, real_sha = upload(s3, model_path, name)
        module = cold_start(
            monkeypatch,
            {
                "MODEL_NAME": name,
                "MODEL_URI": uri or real_uri,
                "MODEL_SHA256": sha256 or real_sha,
                "AWS_LAMBDA_FUNCTION_VERSION": version,
                "MODEL_CACHE_DIR": str(tmp_path / f"cache-{name}-{version}"),
                **env,
            },
        )
        return Function(module, name)

    return _deploy
