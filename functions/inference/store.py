"""ModelStore: fetch a model artifact from S3 into local storage, verified against its pinned sha256.

An artifact is written under its digest only after the digest matched, so whatever sits in the cache under
a digest's name has been verified; a tampered or truncated download never reaches onnxruntime.

Every way a fetch can fail ends as an ``ArtifactError`` naming the artifact and the cause, never as a stray
botocore, urllib3 or OS exception. ``ArtifactUnreachable`` (an S3 error of any kind, the connection lost
mid-stream, a full or unwritable cache directory) may pass: the service tries again later. A digest mismatch
is final: the bytes under that key are not the pinned ones, and downloading them again would only cost time.
A failed download never leaves a partial file behind.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Protocol

CHUNK_BYTES = 1 << 20
_S3_URI = re.compile(r"s3://(?P<bucket>[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])/(?P<key>.+)")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_NOT_FOUND = ("NoSuchKey", "NoSuchBucket", "404", "NotFound")


class ArtifactError(Exception):
    """The artifact cannot be served; the message says exactly why."""


class ArtifactUnreachable(ArtifactError):
    """Reading or storing the artifact failed; the same fetch may succeed later."""


class ArtifactNotFound(ArtifactUnreachable):
    # Retried like any other S3 error: S3 answers 403 rather than 404 for a missing key when the role may not
    # list the bucket, and an artifact uploaded after the function (a repaired deployment) should be picked up.
    pass


class ArtifactDigestMismatch(ArtifactError):
    pass


class S3Client(Protocol):
    def get_object(self, **kwargs: Any) -> dict[str, Any]: ...


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key); ValueError naming what was expected."""
    match = _S3_URI.fullmatch(uri)
    if not match:
        raise ValueError(f"expected s3://<bucket>/<key>, got {uri!r}")
    return match["bucket"], match["key"]


def is_sha256(value: str) -> bool:
    """64 lowercase hexadecimal digits and nothing else (no trailing newline either)."""
    return bool(_SHA256.fullmatch(value))


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
        if not is_sha256(sha256):
            # Compared as given, 'abc…\n' against the computed 'abc…' would be a mismatch that prints two equal digests.
            raise ArtifactError(f"the pinned sha256 must be 64 lowercase hexadecimal digits, got {sha256!r}")
        cached = self.path_for(sha256)
        if cached.exists():
            return cached
        try:
            bucket, key = parse_s3_uri(uri)
        except ValueError as exc:
            raise ArtifactError(f"model artifact URI: {exc}") from None
        try:
            response = self.s3.get_object(Bucket=bucket, Key=key)
        except Exception as exc:  # botocore's ClientError and connection errors, without importing botocore here
            code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
            if code in _NOT_FOUND:
                raise ArtifactNotFound(f"model artifact {uri} does not exist ({code})") from exc
            raise ArtifactUnreachable(f"cannot read model artifact {uri}: {_describe(exc)}") from exc
        body = response["Body"]
        try:
            self._check_space(uri, response.get("ContentLength"))
            return self._store_verified(uri, sha256, body, cached)
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()  # hands the connection back (or drops a broken one) on failure as on success

    def _check_space(self, uri: str, length: int | None) -> None:
        # A full /tmp is known before downloading: fail in a millisecond rather than after the whole artifact.
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            free = shutil.disk_usage(self.cache_dir).free
        except OSError as exc:
            raise ArtifactUnreachable(f"cannot store model artifact {uri} in {self.cache_dir}: {exc}") from exc
        if length is not None and length > free:
            raise ArtifactUnreachable(
                f"model artifact {uri} is {length} bytes but {self.cache_dir} has {free} bytes free: "
                "raise the function's ephemeral storage or free /tmp"
            )

    def _store_verified(self, uri: str, sha256: str, body: Any, cached: Path) -> Path:
        digest = hashlib.sha256()
        size = 0
        try:
            fd, tmp_name = tempfile.mkstemp(dir=self.cache_dir, prefix=".download-")
        except OSError as exc:
            raise ArtifactUnreachable(f"cannot store model artifact {uri} in {self.cache_dir}: {exc}") from exc
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                chunks = iter(body.iter_chunks(CHUNK_BYTES))
                while True:
                    try:
                        chunk = next(chunks, None)
                    except Exception as exc:  # ResponseStreamingError, ReadTimeoutError, IncompleteReadError, resets
                        raise ArtifactUnreachable(
                            f"reading model artifact {uri} failed after {size} bytes: {_describe(exc)}"
                        ) from exc
                    if chunk is None:
                        break
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
        except OSError as exc:  # writing (ENOSPC may only show when the file is closed), or moving into place
            raise ArtifactUnreachable(
                f"cannot store model artifact {uri} in {self.cache_dir} after {size} bytes: {_describe(exc)}"
            ) from exc
        finally:
            tmp.unlink(missing_ok=True)
        return cached


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
