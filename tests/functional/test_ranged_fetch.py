"""A large artifact is fetched as concurrent ranged GETs, reassembled in order, and verified before it is served.

The model is a generated MLP with 46 MB of initializers (bench/models.py, never committed). S3 is moto: in
process (mock_aws) behind a recording wrapper, and moto's server over real HTTP for the function's own
SigV4 client (functions/inference/s3get.py).
"""

from __future__ import annotations

import hashlib
import itertools
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bench.models import LARGE_MLP_LAYERS, build_mlp
from functions.inference import service as service_module
from functions.inference.s3get import environment_client
from functions.inference.store import PART_BYTES, ArtifactDigestMismatch, ArtifactUnreachable, ModelStore
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


# Small artifacts cut into 1000-byte parts exercise the same ranged fetch as the 46 MB model, in milliseconds: the
# store neither knows nor cares that these bytes are not ONNX (their digest is all it checks).
SMALL_PART = 1000


class FaultyS3:
    """moto's client; ``fault(n, kwargs, response)`` may change or replace the n-th GetObject's answer (1-based).

    Every body handed out is recorded, to check that each was closed (its connection goes back to the pool)."""

    def __init__(self, s3: Any, fault: Callable[[int, dict[str, Any], dict[str, Any]], None] | None = None) -> None:
        self.s3 = s3
        self.fault = fault
        self.calls: list[dict[str, Any]] = []
        self.bodies: list[ClosingBody] = []
        self.lock = threading.Lock()

    def get_object(self, **kwargs: Any) -> dict[str, Any]:
        with self.lock:
            self.calls.append(kwargs)
            n = len(self.calls)
        response = self.s3.get_object(**kwargs)
        response["Body"] = ClosingBody(response["Body"].read())
        if self.fault is not None:
            self.fault(n, kwargs, response)
        with self.lock:
            self.bodies.append(response["Body"])
        return response


class ClosingBody(Body):
    def __init__(self, data: bytes, broken: bool = False) -> None:
        super().__init__(data)
        self.closed = False
        self.broken = broken

    def iter_chunks(self, chunk_size: int) -> Any:
        yield from super().iter_chunks(chunk_size)
        if self.broken:
            raise ConnectionResetError("connection reset by peer")

    def close(self) -> None:
        self.closed = True


def small_artifact(s3: Any, tmp_path: Path, size: int) -> tuple[str, str, bytes]:
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    path = tmp_path / "blob.onnx"
    path.write_bytes(data)
    uri, sha256 = upload(s3, path, "blob")
    return uri, sha256, data


def test_the_fetch_report_counts_every_get_and_every_body_is_closed(s3: Any, tmp_path: Path) -> None:
    uri, sha256, data = small_artifact(s3, tmp_path, 10 * SMALL_PART + 7)
    client = FaultyS3(s3)
    store = ModelStore(tmp_path / "cache", client, part_bytes=SMALL_PART, concurrency=2)

    assert store.fetch(uri, sha256).read_bytes() == data

    report = store.last_fetch
    assert report is not None
    # What the bench prints as GETs per fetch and bytes fetched: 11 parts, the last one 7 bytes.
    assert (report.size, report.gets, len(client.calls)) == (len(data), 11, 11)
    # Hashing is part of the fetch's time, never more than it and never negative (not a timing threshold).
    assert 0 <= report.digest_seconds <= report.seconds
    assert all(body.closed for body in client.bodies)


def test_a_server_that_ignores_the_range_sends_the_whole_object_once(s3: Any, tmp_path: Path) -> None:
    # A GET may be answered 200 with the whole object when the range is not honoured (RFC 9110, section 14.2:
    # "A server MAY ignore the Range header field"); such an answer has no Content-Range, only its length.
    uri, sha256, data = small_artifact(s3, tmp_path, 3 * SMALL_PART + 1)

    def whole(n: int, kwargs: dict[str, Any], response: dict[str, Any]) -> None:
        if n == 1:
            response["Body"] = ClosingBody(data)
            response["ContentLength"] = len(data)
            response.pop("ContentRange", None)

    client = FaultyS3(s3, whole)
    store = ModelStore(tmp_path / "cache", client, part_bytes=SMALL_PART, concurrency=2)

    assert store.fetch(uri, sha256).read_bytes() == data
    assert len(client.calls) == 1  # the bytes it already has are not asked for again (nor appended twice)


def _range_fails(n: int, kwargs: dict[str, Any], response: dict[str, Any]) -> None:
    if kwargs.get("Range") == "bytes=2000-2999":
        from botocore.exceptions import ClientError

        raise ClientError(
            {"Error": {"Code": "InternalError", "Message": "We encountered an internal error"}}, "GetObject"
        )


def _range_breaks(n: int, kwargs: dict[str, Any], response: dict[str, Any]) -> None:
    if kwargs.get("Range") == "bytes=2000-2999":
        response["Body"] = ClosingBody(response["Body"].data[:300], broken=True)


def _range_short(n: int, kwargs: dict[str, Any], response: dict[str, Any]) -> None:
    if kwargs.get("Range") == "bytes=2000-2999":
        response["Body"] = ClosingBody(response["Body"].data[:300])


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (_range_fails, r"cannot read model artifact {uri} \(bytes 2000-2999\): ClientError: .*InternalError"),
        (_range_breaks, r"reading model artifact {uri} failed in bytes 2000-2999: ConnectionResetError: connection"),
        (_range_short, r"reading model artifact {uri} failed: bytes 2000-2999 came as 300 bytes"),
    ],
    ids=["s3-error", "stream-broken", "short"],
)
def test_a_failed_range_names_the_artifact_and_the_range_and_caches_nothing(
    s3: Any, tmp_path: Path, fault: Callable[..., None], expected: str
) -> None:
    uri, sha256, _ = small_artifact(s3, tmp_path, 5 * SMALL_PART)
    client = FaultyS3(s3, fault)
    store = ModelStore(tmp_path / "cache", client, part_bytes=SMALL_PART, concurrency=2)

    with pytest.raises(ArtifactUnreachable, match=expected.format(uri=re.escape(uri))):
        store.fetch(uri, sha256)

    assert list((tmp_path / "cache").iterdir()) == []
    assert all(body.closed for body in client.bodies)


def test_a_short_first_part_is_a_failed_read_not_a_digest_mismatch(s3: Any, tmp_path: Path) -> None:
    uri, sha256, _ = small_artifact(s3, tmp_path, 3 * SMALL_PART)

    def short_first(n: int, kwargs: dict[str, Any], response: dict[str, Any]) -> None:
        if n == 1:
            response["Body"] = ClosingBody(response["Body"].data[:400])

    store = ModelStore(tmp_path / "cache", FaultyS3(s3, short_first), part_bytes=SMALL_PART, concurrency=2)

    # Unreachable (tried again later), not a mismatch (final): the bytes in S3 may well be the pinned ones.
    with pytest.raises(ArtifactUnreachable, match=rf"{re.escape(uri)} failed: bytes 0-999 came as 400 bytes"):
        store.fetch(uri, sha256)
    assert list((tmp_path / "cache").iterdir()) == []


def test_the_download_in_progress_is_a_hidden_file_in_the_cache_directory(s3: Any, tmp_path: Path) -> None:
    # In the cache directory, so that moving it into place is an atomic rename on the same file system; hidden
    # (".download-"), so that nothing listing the cache takes a partial file for a model.
    uri, sha256, data = small_artifact(s3, tmp_path, 2 * SMALL_PART)
    cache = tmp_path / "cache"
    seen: list[list[str]] = []

    class Watching(ClosingBody):
        def iter_chunks(self, chunk_size: int) -> Any:
            seen.append(sorted(p.name for p in cache.iterdir()))
            yield from super().iter_chunks(chunk_size)

    def watch(n: int, kwargs: dict[str, Any], response: dict[str, Any]) -> None:
        if n == 1:
            response["Body"] = Watching(response["Body"].data)

    store = ModelStore(cache, FaultyS3(s3, watch), part_bytes=SMALL_PART, concurrency=2)
    assert store.fetch(uri, sha256).read_bytes() == data

    assert len(seen) == 1
    assert len(seen[0]) == 1
    assert seen[0][0].startswith(".download-")
    assert [p.name for p in cache.iterdir()] == [f"{sha256}.onnx"]


def test_an_empty_artifact_is_fetched_whole_after_its_range_is_refused(s3: Any, tmp_path: Path) -> None:
    # An empty object has no byte 0: S3 answers a ranged GET of it with 416 InvalidRange ("The requested range
    # cannot be satisfied", Amazon S3 API Reference, "Error responses"), and the store asks again without a Range.
    uri, sha256, data = small_artifact(s3, tmp_path, 0)

    def unsatisfiable(n: int, kwargs: dict[str, Any], response: dict[str, Any]) -> None:
        if "Range" in kwargs and not response["Body"].data:
            from botocore.exceptions import ClientError

            raise ClientError({"Error": {"Code": "InvalidRange", "Message": "unsatisfiable"}}, "GetObject")

    client = FaultyS3(s3, unsatisfiable)
    path = ModelStore(tmp_path / "cache", client, part_bytes=SMALL_PART).fetch(uri, sha256)

    assert path.read_bytes() == data == b""
    assert [call.get("Range") for call in client.calls] == [f"bytes=0-{SMALL_PART - 1}", None]


def test_a_failed_first_get_names_the_artifact(s3: Any, tmp_path: Path) -> None:
    uri, sha256, _ = small_artifact(s3, tmp_path, SMALL_PART)

    def fails(n: int, kwargs: dict[str, Any], response: dict[str, Any]) -> None:
        from botocore.exceptions import ClientError

        raise ClientError({"Error": {"Code": "SlowDown", "Message": "Please reduce your request rate."}}, "GetObject")

    with pytest.raises(ArtifactUnreachable, match=rf"^cannot read model artifact {re.escape(uri)}: ClientError: "):
        ModelStore(tmp_path / "cache", FaultyS3(s3, fails), part_bytes=SMALL_PART).fetch(uri, sha256)
