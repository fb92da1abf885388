"""ModelStore: fetch a model artifact from S3 into local storage, verified against its pinned sha256.

An artifact is written under its digest only after the digest matched, so whatever sits in the cache under
a digest's name has been verified; a tampered or truncated download never reaches onnxruntime.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Protocol

CHUNK_BYTES = 1 << 20
_S3_URI = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])/(?P<key>.+)$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ArtifactError(Exception):
    """The artifact cannot be served; the message says exactly why."""


class ArtifactNotFound(ArtifactError):
    pass


class ArtifactDigestMismatch(ArtifactError):
    pass


class S3Client(Protocol):
    def get_object(self, **kwargs: Any) -> dict[str, Any]: ...


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key); ValueError naming what was expected."""
    match = _S3_URI.match(uri)
    if not match:
        raise ValueError(f"expected s3://<bucket>/<key>, got {uri!r}")
    return match["bucket"], match["key"]


def is_sha256(value: str) -> bool:
    return bool(_SHA256.match(value))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


class ModelStore:
    """Local, digest-addressed cache of model artifacts (``<cache_dir>/<sha256>.onnx``)."""

    def __init__(self, cache_dir: Path, s3: S3Client) -> None:
        self.cache_dir = cache_dir
        self.s3 = s3

    def path_for(self, sha256: str) -> Path:
        return self.cache_dir / f"{sha256}.onnx"

    def fetch(self, uri: str, sha256: str) -> Path:
        """The local path of the verified artifact, downloading it unless already cached."""
        cached = self.path_for(sha256)
        if cached.exists():
            return cached
        bucket, key = parse_s3_uri(uri)
        try:
            response = self.s3.get_object(Bucket=bucket, Key=key)
        except Exception as exc:  # botocore's ClientError, without importing botocore here
            code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "NoSuchBucket", "404", "NotFound"):
                raise ArtifactNotFound(f"model artifact {uri} does not exist ({code})") from exc
            raise ArtifactError(f"cannot read model artifact {uri}: {exc}") from exc

        self.cache_dir.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        fd, tmp_name = tempfile.mkstemp(dir=self.cache_dir, prefix=".download-")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in response["Body"].iter_chunks(CHUNK_BYTES):
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
            actual = digest.hexdigest()
            if actual != sha256:
                raise ArtifactDigestMismatch(
                    f"model artifact {uri} has sha256 {actual} ({size} bytes) but MODEL_SHA256 pins {sha256}: "
                    "refusing to serve it"
                )
            tmp.replace(cached)
        finally:
            tmp.unlink(missing_ok=True)
        return cached
