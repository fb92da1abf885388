"""A large artifact is fetched as concurrent ranged GETs, reassembled in order, and verified before it is served.

The models are generated MLPs (bench/models.py, never committed): one with 46 MB of initializers fetched in the
store's own 8 MB parts, and a 318 kB one fetched in 32 kB parts by a store configured so (its ``part_bytes`` and
``concurrency``), which runs the same code in a tenth of the time; ``make mutate`` runs only the latter (the former
are marked ``large_model``). S3 is moto: in process (mock_aws) behind a recording wrapper, and moto's server over
real HTTP for the function's own SigV4 client (functions/inference/s3get.py).
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import re
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bench.models import LARGE_MLP_LAYERS, build_mlp
from functions.inference import service as service_module
from functions.inference import store as store_module
from functions.inference.s3get import environment_client
from functions.inference.store import (
    PART_BYTES,
    ArtifactDigestMismatch,
    ArtifactUnreachable,
    FetchReport,
    ModelStore,
)
from modelrail.local.aws import ARTIFACT_BUCKET, EmbeddedAWS
from tests.functional.conftest import BUCKET, Function, cold_start, upload

pytestmark = pytest.mark.functional


SMALL_MLP_LAYERS = (784, 100, 10)  # 318 kB of initializers


@dataclass(frozen=True)
class Model:
    path: Path
    options: dict[str, int] = field(default_factory=dict)  # the store's part_bytes and concurrency; none: defaults

    @property
    def part_bytes(self) -> int:
        return self.options.get("part_bytes", PART_BYTES)


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("46MB", marks=pytest.mark.large_model),  # the store's defaults, as on Lambda (issue 14)
        pytest.param("318kB"),
    ],
)
def large_model(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Model:
    """A model larger than one part: 46 MB in the store's 8 MB parts, or 318 kB in 32 kB parts, two at a time."""
    if request.param == "46MB":
        return Model(build_mlp(tmp_path_factory.mktemp("large") / "large.onnx", LARGE_MLP_LAYERS))
    path = build_mlp(tmp_path_factory.mktemp("small") / "small.onnx", SMALL_MLP_LAYERS)
    return Model(path, {"part_bytes": 32 << 10, "concurrency": 2})


class RecordingS3:
    """moto's client, recording each GetObject's Range; ``corrupt`` flips a byte in the answer to that range;
    ``limit``: GETs beyond that many fail (the fetch with them), a fetch asking for bytes twice ends at once.

    The first two ranged GETs after the first part wait for each other at a barrier: a fetch that asked for them
    one after the other would break it (and fail the test) instead of passing by luck.
    """

    def __init__(self, s3: Any, corrupt: str | None = None, limit: int | None = None) -> None:
        self.s3 = s3
        self.corrupt = corrupt
        self.limit = limit
        self.ranges: list[str | None] = []
        self.if_match: list[str | None] = []
        self.together = threading.Barrier(2, timeout=5)
        self.lock = threading.Lock()

    def get_object(self, **kwargs: Any) -> dict[str, Any]:
        with self.lock:
            self.ranges.append(kwargs.get("Range"))
            self.if_match.append(kwargs.get("IfMatch"))
            order = len(self.ranges)
        if self.limit is not None and order > self.limit:
            raise AssertionError(f"GET {order} of an object that takes {self.limit}")
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
    s3: Any, large_model: Model, tmp_path: Path
) -> None:
    uri, sha256 = upload(s3, large_model.path, "large")
    size = large_model.path.stat().st_size
    part = large_model.part_bytes
    recording = RecordingS3(s3, limit=-(-size // part))

    path = ModelStore(tmp_path / "cache", recording, **large_model.options).fetch(uri, sha256)

    assert path.read_bytes() == large_model.path.read_bytes()
    spans = covered(recording.ranges)
    # Every byte asked for exactly once, in parts of the store's part size, and all but the first pinned to its ETag.
    assert spans[0] == (0, part - 1)
    assert spans[-1][1] == size - 1
    assert all(b + 1 == c for (_, b), (c, _) in itertools.pairwise(spans))
    assert len(spans) == -(-size // part) >= 5
    etag = s3.head_object(Bucket=BUCKET, Key=uri.split("/", 3)[3])["ETag"]
    assert recording.if_match[0] is None
    assert set(recording.if_match[1:]) == {etag}


def test_a_corrupted_range_is_refused_and_nothing_is_cached(s3: Any, large_model: Model, tmp_path: Path) -> None:
    uri, sha256 = upload(s3, large_model.path, "large")
    part = large_model.part_bytes
    third = f"bytes={2 * part}-{3 * part - 1}"
    recording = RecordingS3(s3, corrupt=third)

    with pytest.raises(ArtifactDigestMismatch, match=f"MODEL_SHA256 pins {sha256}: refusing to serve it"):
        ModelStore(tmp_path / "cache", recording, **large_model.options).fetch(uri, sha256)

    assert third in recording.ranges
    assert list((tmp_path / "cache").iterdir()) == []


def test_a_corrupted_range_leaves_the_function_unavailable_naming_the_digest(
    s3: Any, large_model: Model, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    uri, sha256 = upload(s3, large_model.path, "large")
    part = large_model.part_bytes
    recording = RecordingS3(s3, corrupt=f"bytes={part}-{2 * part - 1}")
    original = service_module.InferenceService.from_environment
    # The function's store always has the defaults; for the small model, the same store cut into its small parts.
    monkeypatch.setattr(service_module, "ModelStore", functools.partial(ModelStore, **large_model.options))

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
    large_model: Model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with EmbeddedAWS() as aws:
        s3 = aws.client("s3")
        s3.create_bucket(Bucket=ARTIFACT_BUCKET)
        s3.upload_file(str(large_model.path), ARTIFACT_BUCKET, "models/large/large.onnx")
        client = environment_client(aws.environment())
        assert client is not None
        gets: list[str | None] = []
        get_object: Callable[..., dict[str, Any]] = client.get_object

        def recorded(**kwargs: Any) -> dict[str, Any]:
            gets.append(kwargs.get("Range"))
            return get_object(**kwargs)

        monkeypatch.setattr(client, "get_object", recorded)
        sha256 = hashlib.sha256(large_model.path.read_bytes()).hexdigest()
        store = ModelStore(tmp_path / "cache", client, **large_model.options)

        path = store.fetch(f"s3://{ARTIFACT_BUCKET}/models/large/large.onnx", sha256)

    assert hashlib.sha256(path.read_bytes()).hexdigest() == sha256
    assert len(gets) == -(-large_model.path.stat().st_size // large_model.part_bytes)


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


class IgnoresRange:
    """moto's client behind a server that ignores Range and answers with the whole object."""

    def __init__(self, s3: Any) -> None:
        self.s3 = s3

    def get_object(self, **kwargs: Any) -> dict[str, Any]:
        kwargs.pop("Range", None)
        return self.s3.get_object(**kwargs)


@pytest.mark.parametrize("refused", [True, False], ids=["416-as-S3", "range-ignored"])
def test_an_empty_artifact_is_fetched_whole_after_its_range_is_refused(s3: Any, tmp_path: Path, refused: bool) -> None:
    # An empty object has no byte 0: S3 answers a ranged GET of it with 416 InvalidRange ("The requested range
    # is not satisfiable", Amazon S3 API Reference, "Error responses"), as moto does, and the store asks again
    # without a Range. A server may also ignore the Range and send the (empty) object at once (RFC 9110, 14.2).
    uri, sha256, data = small_artifact(s3, tmp_path, 0)
    client = FaultyS3(s3 if refused else IgnoresRange(s3))
    store = ModelStore(tmp_path / "cache", client, part_bytes=SMALL_PART)

    path = store.fetch(uri, sha256)

    assert path.read_bytes() == data == b""
    ranges = [call.get("Range") for call in client.calls]
    assert ranges == [f"bytes=0-{SMALL_PART - 1}", None][: 2 if refused else 1]
    # What the bench prints for this fetch: no bytes, every GET made (the refused one too), hashing within the time.
    report = store.last_fetch
    assert report is not None
    assert (report.size, report.gets) == (0, len(ranges))
    assert 0 <= report.digest_seconds <= report.seconds


def test_a_failed_first_get_names_the_artifact(s3: Any, tmp_path: Path) -> None:
    uri, sha256, _ = small_artifact(s3, tmp_path, SMALL_PART)

    def fails(n: int, kwargs: dict[str, Any], response: dict[str, Any]) -> None:
        from botocore.exceptions import ClientError

        raise ClientError({"Error": {"Code": "SlowDown", "Message": "Please reduce your request rate."}}, "GetObject")

    with pytest.raises(ArtifactUnreachable, match=rf"^cannot read model artifact {re.escape(uri)}: ClientError: "):
        ModelStore(tmp_path / "cache", FaultyS3(s3, fails), part_bytes=SMALL_PART).fetch(uri, sha256)


class InFlightS3:
    """moto's client; counts the ranged GETs in flight at once (``peak``).

    Each ranged GET waits until two have been in flight together (a fetch that asks one range at a time fails the
    test after 3 s instead of hanging), then lingers a moment so that a GET beyond the fetch's concurrency, had it
    started one, would overlap it and show in ``peak``. The count can never exceed what the fetch really runs."""

    def __init__(self, s3: Any) -> None:
        self.s3 = s3
        self.calls = 0
        self.in_flight = 0
        self.peak = 0
        self.changed = threading.Condition()

    def get_object(self, **kwargs: Any) -> dict[str, Any]:
        with self.changed:
            self.calls += 1
            first = self.calls == 1
        if first:
            return self.s3.get_object(**kwargs)
        with self.changed:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            self.changed.notify_all()
            self.changed.wait_for(lambda: self.peak >= 2, timeout=3)
            self.changed.wait_for(lambda: self.in_flight > 2, timeout=0.05)
        try:
            return self.s3.get_object(**kwargs)
        finally:
            with self.changed:
                self.in_flight -= 1


def test_the_ranges_are_fetched_as_many_at_once_as_the_concurrency_says(s3: Any, tmp_path: Path) -> None:
    # Each ranged GET is a connection to S3 and a thread in the function: CONCURRENCY of them at once, no more
    # (the function's memory holds their parts), and no fewer (one at a time, a 200 MB model takes seconds).
    uri, sha256, data = small_artifact(s3, tmp_path, 9 * SMALL_PART)
    client = InFlightS3(s3)
    store = ModelStore(tmp_path / "cache", client, part_bytes=SMALL_PART, concurrency=2)

    assert store.fetch(uri, sha256).read_bytes() == data

    assert client.calls == 9
    assert client.peak == 2


class HoldingS3:
    """moto's client, recording each GetObject's Range; the GET of ``held`` answers only once the fetch has asked
    for ``expected`` ranges in all (at most 3 s), and a moment more for any range it should not have asked for.
    ``asked_while_held``: the ranges asked for until then, while the fetch could write nothing past ``held``."""

    def __init__(self, s3: Any, held: str, expected: int) -> None:
        self.s3 = s3
        self.held = held
        self.expected = expected
        self.ranges: list[str | None] = []
        self.asked_while_held: list[str | None] = []
        self.changed = threading.Condition()

    def get_object(self, **kwargs: Any) -> dict[str, Any]:
        with self.changed:
            self.ranges.append(kwargs.get("Range"))
            self.changed.notify_all()
            if kwargs.get("Range") == self.held:
                self.changed.wait_for(lambda: len(self.ranges) >= self.expected, timeout=3)
                self.changed.wait_for(lambda: len(self.ranges) > self.expected, timeout=0.1)
                self.asked_while_held = list(self.ranges)
        return self.s3.get_object(**kwargs)


def test_at_most_two_parts_per_connection_are_asked_for_ahead_of_the_one_being_written(s3: Any, tmp_path: Path) -> None:
    # The parts fetched ahead of the one the digest waits for sit in the function's memory: 2 x concurrency at
    # most (16 parts of 8 MB with the defaults), whatever the artifact's size; asked for as the writing advances.
    uri, sha256, data = small_artifact(s3, tmp_path, 10 * SMALL_PART)
    # Parts 1-4 are asked for at once; writing parts 1 and 2 asks for 5 and 6; part 3 is then the one awaited.
    client = HoldingS3(s3, held="bytes=3000-3999", expected=7)
    store = ModelStore(tmp_path / "cache", client, part_bytes=SMALL_PART, concurrency=2)

    assert store.fetch(uri, sha256).read_bytes() == data

    assert covered(client.asked_while_held) == [(n * SMALL_PART, (n + 1) * SMALL_PART - 1) for n in range(7)]
    assert covered(client.ranges) == [(n * SMALL_PART, (n + 1) * SMALL_PART - 1) for n in range(10)]


def test_the_fetch_report_times_the_whole_fetch_and_all_of_its_hashing(
    s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The bench prints these as the fetch's time and its sha256 time. A clock that moves only while bytes are
    # hashed, by one second a byte, makes both exact on any machine: each the number of bytes, as every chunk of
    # the first part (hashed as it streams, here in 256-byte chunks) and every other part is hashed in the fetch.
    uri, sha256, data = small_artifact(s3, tmp_path, 5 * SMALL_PART + 7)
    clock = SimpleNamespace(now=1000.0)

    class ClockedSha256:
        def __init__(self) -> None:
            self.real = hashlib.sha256()

        def update(self, chunk: bytes) -> None:
            clock.now += len(chunk)
            self.real.update(chunk)

        def hexdigest(self) -> str:
            return self.real.hexdigest()

    monkeypatch.setattr(store_module, "time", SimpleNamespace(perf_counter=lambda: clock.now))
    monkeypatch.setattr(store_module, "hashlib", SimpleNamespace(sha256=ClockedSha256))
    monkeypatch.setattr(store_module, "CHUNK_BYTES", 256)
    store = ModelStore(tmp_path / "cache", FaultyS3(s3), part_bytes=SMALL_PART, concurrency=2)

    assert store.fetch(uri, sha256).read_bytes() == data

    assert store.last_fetch == FetchReport(size=len(data), gets=6, seconds=len(data), digest_seconds=len(data))


def test_a_failed_fetch_asks_for_no_more_parts_and_leaves_no_get_running(s3: Any, tmp_path: Path) -> None:
    # When the first part's stream breaks, the parts queued behind the one in flight are never asked for (requests
    # and bytes for nothing, and a later 503), and the fetch ends only with the GET in flight: no download outlives
    # it into the next invocation (Lambda freezes the environment between invocations, threads and all).
    uri, sha256, _ = small_artifact(s3, tmp_path, 4 * SMALL_PART)
    fetching = threading.get_ident()
    in_flight = threading.Event()
    running: list[str] = []

    def joining() -> bool:
        """Whether the fetch is waiting for its threads to end (after it cancelled what was still queued)."""
        frame = sys._current_frames().get(fetching)
        while frame is not None:
            if frame.f_code.co_name == "join":
                return True
            frame = frame.f_back
        return False

    class Breaks(ClosingBody):
        def iter_chunks(self, chunk_size: int) -> Any:
            in_flight.wait(timeout=3)
            raise ConnectionResetError("connection reset by peer")
            yield b""  # a generator, as botocore's

    def fault(n: int, kwargs: dict[str, Any], response: dict[str, Any]) -> None:
        if n == 1:
            response["Body"] = Breaks(response["Body"].data)
            return
        running.append(kwargs["Range"])
        in_flight.set()
        for _ in range(400):  # until the fetch waits for this GET to end (2 s at most: a fetch that never does)
            if joining():
                break
            threading.Event().wait(0.005)
        running.remove(kwargs["Range"])

    client = FaultyS3(s3, fault)
    store = ModelStore(tmp_path / "cache", client, part_bytes=SMALL_PART, concurrency=1)

    with pytest.raises(ArtifactUnreachable, match="failed after 0 bytes: ConnectionResetError"):
        store.fetch(uri, sha256)

    assert running == []
    # Parts 1 and 2 were queued (2 x concurrency); part 1 was in flight when the stream broke, part 2 never asked.
    assert [call["Range"] for call in client.calls] == ["bytes=0-999", "bytes=1000-1999"]
    assert list((tmp_path / "cache").iterdir()) == []
