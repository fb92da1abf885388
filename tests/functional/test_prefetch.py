"""The cold start downloads the artifact before its heavy imports, and serves or refuses it as its own fetch would.

S3 is moto's server on loopback, reached over HTTP with the function's own SigV4 client (s3get.py), in an
execution environment (AWS_LAMBDA_FUNCTION_NAME set, credentials in the environment), as on Lambda.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelrail.local.aws import ARTIFACT_BUCKET, EmbeddedAWS
from tests.functional.conftest import IRIS, Function, cold_start

pytestmark = pytest.mark.functional

ROW = {"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}


@pytest.fixture(scope="module")
def aws() -> Iterator[EmbeddedAWS]:
    with EmbeddedAWS() as embedded:
        embedded.client("s3").create_bucket(Bucket=ARTIFACT_BUCKET)
        yield embedded


def start(aws: EmbeddedAWS, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, body: bytes, sha256: str) -> Any:
    key = f"models/iris/{hashlib.sha256(body).hexdigest()}-{tmp_path.name}.onnx"
    aws.client("s3").put_object(Bucket=ARTIFACT_BUCKET, Key=key, Body=body)
    for name, value in aws.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "modelrail-iris")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    return cold_start(
        monkeypatch,
        {
            "MODEL_NAME": "iris",
            "MODEL_URI": f"s3://{ARTIFACT_BUCKET}/{key}",
            "MODEL_SHA256": sha256,
            "AWS_LAMBDA_FUNCTION_VERSION": "1",
            "MODEL_CACHE_DIR": str(tmp_path / "cache"),
        },
    )


def test_the_artifact_downloaded_during_the_imports_is_served(
    aws: EmbeddedAWS, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    model = IRIS.read_bytes()
    module = start(aws, monkeypatch, tmp_path, model, hashlib.sha256(model).hexdigest())

    assert Function(module, "iris").infer(ROW).status == 200
    assert module._prefetch is not None  # started before Powertools, numpy and onnxruntime were imported
    assert module.service.fetch_report.size == len(model)
    assert "s3_client" not in module.service.init_phases_ms  # the service made no client of its own


def test_a_prefetched_artifact_with_another_digest_is_refused(
    aws: EmbeddedAWS, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pinned = hashlib.sha256(IRIS.read_bytes()).hexdigest()
    tampered = IRIS.read_bytes()[:-1] + b"\0"
    module = start(aws, monkeypatch, tmp_path, tampered, pinned)

    answer = Function(module, "iris").infer(ROW)

    assert answer.status == 503
    assert f"but MODEL_SHA256 pins {pinned}: refusing to serve it" in answer.error
    assert list((tmp_path / "cache").iterdir()) == []
