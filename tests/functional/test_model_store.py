"""Fetching artifacts from S3: verified against the pinned sha256, cached by digest, tampering refused."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from functions.inference.store import ArtifactDigestMismatch, ArtifactError, ArtifactNotFound, ModelStore
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
