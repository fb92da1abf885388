"""A large artifact is fetched as concurrent ranged GETs, reassembled in order, and verified before it is served.

The model is a generated MLP with 46 MB of initializers (bench/models.py, never committed). S3 is moto: in
process (mock_aws) behind a recording wrapper, and moto's server over real HTTP for the function's own
SigV4 client (functions/inference/s3get.py).
"""

from __future__ import annotations

import hashlib
import itertools
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bench.models import LARGE_MLP_LAYERS, build_mlp
from functions.inference import service as service_module
from functions.inference.s3get import environment_client
from functions.inference.store import PART_BYTES, ArtifactDigestMismatch, ModelStore
from modelrail.local.aws import ARTIFACT_BUCKET, EmbeddedAWS
from tests.functional.conftest import BUCKET, Function, cold_start, upload

pytestmark = pytest.mark.functional


@pytest.fixture(scope="module")
def large_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_mlp(tmp_path_factory.mktemp("large") / "large.onnx", LARGE_MLP_LAYERS)


class RecordingS3:
    """moto's client, recording each GetObject's Range; ``corrupt`` flips a byte in the answer to that range.

    The first two ranged GETs after the first part wait for each other at a barrier: a fetch that asked for them
    one after the other would break it (and fail the test) instead of passing by luck.
    """

    def __init__(self, s3: Any, corrupt: str | None = None) -> None:
        self.s3 = s3
        self.corrupt = corrupt
        self.ranges: list[str | None] = []
        self.if_match: list[str | None] = []
        self.together = threading.Barrier(2, timeout=30)
        self.lock = threading.Lock()

    def get_object(self, **kwargs: Any) -> dict[str, Any]:
        with self.lock:
            self.ranges.append(kwargs.get("Range"))
            self.if_match.append(kwargs.get("IfMatch"))
            order = len(self.ranges)
        if order in (2, 3):
            self.together.wait()
        response = self.s3.get_object(**kwargs)
        if self.corrupt is not None and kwargs.get("Range") == self.corrupt:
            data = bytearray(response["Body"].read())
            data[len(data) // 2] ^= 0x01
            response["Body"] = Body(bytes(data))
        return response


class Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def iter_chunks(self, chunk_size: int) -> Any:
        for start in range(0, len(self.data), chunk_size):
            yield self.data[start : start + chunk_size]

    def close(self) -> None:
        pass


def covered(ranges: list[str | None]) -> list[tuple[int, int]]:
    spans = [tuple(int(x) for x in r.removeprefix("bytes=").split("-")) for r in ranges if r]
    return sorted((a, b) for a, b in spans)


def test_large_artifact_comes_in_concurrent_ranges_reassembled_in_order(
    s3: Any, large_model: Path, tmp_path: Path
) -> None:
    uri, sha256 = upload(s3, large_model, "large")
    size = large_model.stat().st_size
    recording = RecordingS3(s3)

    path = ModelStore(tmp_path / "cache", recording).fetch(uri, sha256)

    assert path.read_bytes() == large_model.read_bytes()
    spans = covered(recording.ranges)
    # Every byte asked for exactly once, in parts of PART_BYTES, and all but the first pinned to its ETag.
    assert spans[0] == (0, PART_BYTES - 1)
    assert spans[-1][1] == size - 1
    assert all(b + 1 == c for (_, b), (c, _) in itertools.pairwise(spans))
    assert len(spans) == -(-size // PART_BYTES) >= 5
    etag = s3.head_object(Bucket=BUCKET, Key=uri.split("/", 3)[3])["ETag"]
    assert recording.if_match[0] is None
    assert set(recording.if_match[1:]) == {etag}


def test_a_corrupted_range_is_refused_and_nothing_is_cached(s3: Any, large_model: Path, tmp_path: Path) -> None:
    uri, sha256 = upload(s3, large_model, "large")
    third = f"bytes={2 * PART_BYTES}-{3 * PART_BYTES - 1}"
    recording = RecordingS3(s3, corrupt=third)

    with pytest.raises(ArtifactDigestMismatch, match=f"MODEL_SHA256 pins {sha256}: refusing to serve it"):
        ModelStore(tmp_path / "cache", recording).fetch(uri, sha256)

    assert third in recording.ranges
    assert list((tmp_path / "cache").iterdir()) == []


def test_a_corrupted_range_leaves_the_function_unavailable_naming_the_digest(
    s3: Any, large_model: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    uri, sha256 = upload(s3, large_model, "large")
    recording = RecordingS3(s3, corrupt=f"bytes={PART_BYTES}-{2 * PART_BYTES - 1}")
    original = service_module.InferenceService.from_environment

    def from_environment(environ: Any, **kwargs: Any) -> Any:
        return original(environ, s3_factory=lambda: recording, **kwargs)

    monkeypatch.setattr(service_module.InferenceService, "from_environment", from_environment)
    env = {
        "MODEL_NAME": "large",
        "MODEL_URI": uri,
        "MODEL_SHA256": sha256,
        "AWS_LAMBDA_FUNCTION_VERSION": "1",
        "MODEL_CACHE_DIR": str(tmp_path / "cache"),
    }
    function = Function(cold_start(monkeypatch, env), "large")

    answer = function.infer({"inputs": [{"name": "input", "shape": [1, 784], "datatype": "FP32", "data": [0.0] * 784}]})

    assert answer.status == 503
    assert f"but MODEL_SHA256 pins {sha256}: refusing to serve it" in answer.body["error"]
    assert list((tmp_path / "cache").iterdir()) == []


def test_the_functions_own_client_fetches_ranges_over_http_from_moto_server(
    large_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with EmbeddedAWS() as aws:
        s3 = aws.client("s3")
        s3.create_bucket(Bucket=ARTIFACT_BUCKET)
        s3.upload_file(str(large_model), ARTIFACT_BUCKET, "models/large/large.onnx")
        client = environment_client(aws.environment())
        assert client is not None
        gets: list[str | None] = []
        get_object: Callable[..., dict[str, Any]] = client.get_object

        def recorded(**kwargs: Any) -> dict[str, Any]:
            gets.append(kwargs.get("Range"))
            return get_object(**kwargs)

        monkeypatch.setattr(client, "get_object", recorded)
        sha256 = hashlib.sha256(large_model.read_bytes()).hexdigest()

        path = ModelStore(tmp_path / "cache", client).fetch(f"s3://{ARTIFACT_BUCKET}/models/large/large.onnx", sha256)

    assert hashlib.sha256(path.read_bytes()).hexdigest() == sha256
    assert len(gets) == -(-large_model.stat().st_size // PART_BYTES)
