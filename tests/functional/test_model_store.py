"""Fetching artifacts from S3: verified against the pinned sha256, cached by digest, tampering refused."""

from __future__ import annotations

import errno
import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.exceptions import ResponseStreamingError
from urllib3.exceptions import IncompleteRead, ProtocolError

from functions.inference import store as store_module
from functions.inference.store import (
    ArtifactDigestMismatch,
    ArtifactError,
    ArtifactNotFound,
    ArtifactUnreachable,
    ModelStore,
)
from tests.functional.conftest import BUCKET, IRIS, upload


def test_fetch_verifies_and_caches_by_digest(s3: Any, tmp_path: Path) -> None:
    uri, sha256 = upload(s3, IRIS, "iris")
    store = ModelStore(tmp_path / "cache", s3)

    path = store.fetch(uri, sha256)

    assert path == tmp_path / "cache" / f"{sha256}.onnx"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == sha256
    # A warm environment does not download again: the object can even be gone.
    s3.delete_object(Bucket=BUCKET, Key=uri.split("/", 3)[3])
    assert store.fetch(uri, sha256) == path


def test_tampered_artifact_is_refused_and_not_cached(s3: Any, tmp_path: Path) -> None:
    uri, sha256 = upload(s3, IRIS, "iris")
    tampered = bytearray(IRIS.read_bytes())
    tampered[-1] ^= 0xFF
    s3.put_object(Bucket=BUCKET, Key=uri.split("/", 3)[3], Body=bytes(tampered))
    store = ModelStore(tmp_path / "cache", s3)

    with pytest.raises(ArtifactDigestMismatch) as caught:
        store.fetch(uri, sha256)

    assert sha256 in str(caught.value)
    assert hashlib.sha256(tampered).hexdigest() in str(caught.value)
    assert list((tmp_path / "cache").iterdir()) == []


def test_missing_object_and_missing_bucket_are_named(s3: Any, tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "cache", s3)
    with pytest.raises(ArtifactNotFound, match="does not exist"):
        store.fetch(f"s3://{BUCKET}/models/nope.onnx", "0" * 64)
    with pytest.raises(ArtifactError, match=r"s3://no-such-bucket-here/m\.onnx"):
        store.fetch("s3://no-such-bucket-here/m.onnx", "0" * 64)


def test_pinned_digest_must_be_canonical_not_a_mismatch_of_equal_digests(s3: Any, tmp_path: Path) -> None:
    uri, sha256 = upload(s3, IRIS, "iris")
    store = ModelStore(tmp_path / "cache", s3)

    with pytest.raises(ArtifactError, match="64 lowercase hexadecimal digits") as caught:
        store.fetch(uri, sha256 + "\n")

    # It used to download, then refuse "sha256 X ... but MODEL_SHA256 pins X": the same digest twice.
    assert not isinstance(caught.value, ArtifactDigestMismatch)
    assert not (tmp_path / "cache").exists() or list((tmp_path / "cache").iterdir()) == []


def test_stream_broken_midway_is_unreachable_closes_the_body_and_leaves_nothing(s3: Any, tmp_path: Path) -> None:
    uri, sha256 = upload(s3, IRIS, "iris")
    broken = ResponseStreamingError(error=ProtocolError("Connection broken", IncompleteRead(100, 3000)))
    body = BrokenBody(broken)

    class Client:
        def get_object(self, **kwargs: Any) -> dict[str, Any]:
            return {"Body": body, "ContentLength": 3100}

    with pytest.raises(ArtifactUnreachable, match="failed after 100 bytes: ResponseStreamingError"):
        ModelStore(tmp_path / "cache", Client()).fetch(uri, sha256)

    assert body.closed  # the broken connection is dropped, not handed back to the pool
    assert list((tmp_path / "cache").iterdir()) == []


def test_artifact_larger_than_the_free_space_fails_before_downloading(
    s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri, sha256 = upload(s3, IRIS, "iris")
    body = BrokenBody(AssertionError("the body must not be read"))

    class Client:
        def get_object(self, **kwargs: Any) -> dict[str, Any]:
            return {"Body": body, "ContentLength": IRIS.stat().st_size}

    usage = shutil.disk_usage(tmp_path)._replace(free=10)
    monkeypatch.setattr(store_module, "shutil", SimpleNamespace(disk_usage=lambda path: usage))

    cache = tmp_path / "cache"
    with pytest.raises(ArtifactUnreachable) as caught:
        ModelStore(cache, Client()).fetch(uri, sha256)
    # Which artifact, how big, where and how much room there is: what to raise the ephemeral storage to.
    assert str(caught.value) == (
        f"model artifact {uri} is {IRIS.stat().st_size} bytes but {cache} has 10 bytes free: "
        "raise the function's ephemeral storage or free /tmp"
    )
    assert body.closed


def test_a_cache_directory_where_no_file_can_be_created_is_named(
    s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As root, a read-only directory still takes files: the refusal is the file system's, raised by mkstemp.
    uri, sha256 = upload(s3, IRIS, "iris")

    def mkstemp(**kwargs: Any) -> tuple[int, str]:
        raise OSError(errno.EROFS, "Read-only file system", str(kwargs["dir"]))

    monkeypatch.setattr(store_module, "tempfile", SimpleNamespace(mkstemp=mkstemp))
    cache = tmp_path / "cache"

    with pytest.raises(ArtifactUnreachable) as caught:
        ModelStore(cache, s3).fetch(uri, sha256)

    assert str(caught.value) == (
        f"cannot store model artifact {uri} in {cache}: [Errno 30] Read-only file system: '{cache}'"
    )
    assert list(cache.iterdir()) == []


def test_a_malformed_uri_names_the_form_expected(s3: Any, tmp_path: Path) -> None:
    with pytest.raises(ArtifactError) as caught:
        ModelStore(tmp_path / "cache", s3).fetch("https://bucket.s3.amazonaws.com/m.onnx", "0" * 64)

    assert str(caught.value) == (
        "model artifact URI: expected s3://<bucket>/<key>, got 'https://bucket.s3.amazonaws.com/m.onnx'"
    )


class BrokenBody:
    """A GetObject body that yields 100 bytes, then fails with ``error``."""

    def __init__(self, error: BaseException) -> None:
        self.error = error
        self.closed = False

    def iter_chunks(self, chunk_size: int) -> Iterator[bytes]:
        yield b"\0" * 100
        raise self.error

    def close(self) -> None:
        self.closed = True
