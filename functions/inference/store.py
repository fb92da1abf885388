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
import itertools
import os
import re
import shutil
import tempfile
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

CHUNK_BYTES = 1 << 20
DEFAULT_CACHE_DIR = Path("/tmp/modelrail-models")  # Lambda's /tmp (MODEL_CACHE_DIR overrides it)
# Above PART_BYTES an artifact is fetched as concurrent ranged GETs: one connection's throughput from S3 is
# tens of MB/s, so a 200 MB model takes seconds in one GET; S3's guidance is ranges of 8-16 MB in parallel
# (Performance design patterns for Amazon S3, "Use Byte-Range Fetches").
PART_BYTES = 8 << 20
CONCURRENCY = 8
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


@dataclass(frozen=True)
class FetchReport:
    """How the last download went: what the bench reports as fetch throughput and verification time."""

    size: int
    gets: int  # every GET made: 1, the number of ranged parts, or 2 for an empty object whose ranged GET S3 refused
    seconds: float  # from the first GET to the verified file in place
    digest_seconds: float  # of which hashing


class S3Client(Protocol):
    """What the store needs of an S3 client: boto3's, or the cold start's own (s3get.py)."""

    def get_object(
        self,
        *,
        Bucket: str,  # noqa: N803
        Key: str,  # noqa: N803
        Range: str | None = None,  # noqa: N803
        IfMatch: str | None = None,  # noqa: N803
    ) -> dict[str, Any]: ...


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

    def __init__(
        self, cache_dir: Path, s3: S3Client, *, part_bytes: int = PART_BYTES, concurrency: int = CONCURRENCY
    ) -> None:
        self.cache_dir = cache_dir
        self.s3 = s3
        self.part_bytes = part_bytes
        self.concurrency = concurrency
        self.last_fetch: FetchReport | None = None

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
        started = time.perf_counter()
        first_gets = 1
        # The first GET asks for the first part only: an artifact up to ``part_bytes`` comes whole in it, a larger
        # one tells its size (Content-Range) and the other parts are fetched concurrently while this one streams.
        try:
            try:
                response = self.s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{self.part_bytes - 1}")
            except Exception as exc:
                if _code(exc) != "InvalidRange":
                    raise
                first_gets = 2  # the refused GET was a request to S3 all the same (the report counts requests)
                response = self.s3.get_object(Bucket=bucket, Key=key)  # an empty object has no byte 0 to range over
        except Exception as exc:  # botocore's ClientError and connection errors, without importing botocore here
            raise _unreachable(uri, exc, "") from exc
        body = response["Body"]
        try:
            size = _total_size(response)
            self._check_space(uri, size)
            return self._store_verified(uri, sha256, bucket, key, response, size, cached, started, first_gets)
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

    def _store_verified(
        self,
        uri: str,
        sha256: str,
        bucket: str,
        key: str,
        first: dict[str, Any],
        size: int | None,
        cached: Path,
        started: float,
        first_gets: int,
    ) -> Path:
        """Write the artifact to a temporary file and move it into place only if its bytes, in order, match."""
        digest = hashlib.sha256()
        hashing = 0.0
        written = 0
        try:
            fd, tmp_name = tempfile.mkstemp(dir=self.cache_dir, prefix=".download-")
        except OSError as exc:
            raise ArtifactUnreachable(f"cannot store model artifact {uri} in {self.cache_dir}: {exc}") from exc
        tmp = Path(tmp_name)
        first_end = size if size is not None else None  # None: the server sent the whole object (no Content-Range)
        if size is not None and first.get("ContentRange") is not None:
            first_end = min(size, self.part_bytes)
        parts = iter(_parts(first_end or 0, size or 0, self.part_bytes))
        pending: deque[tuple[int, int, Future[bytes]]] = deque()
        pool: ThreadPoolExecutor | None = None
        etag = first.get("ETag")

        def submit(count: int) -> None:
            assert pool is not None
            for start, end in itertools.islice(parts, count):
                pending.append((start, end, pool.submit(self._get_range, uri, bucket, key, etag, start, end)))

        try:
            with os.fdopen(fd, "wb") as out:
                if size is not None and first_end is not None and first_end < size:
                    from concurrent.futures import ThreadPoolExecutor  # only large artifacts need it (~10 ms)

                    pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="artifact-fetch")
                    submit(2 * self.concurrency)
                # The digest runs over the bytes in their order: the first part as it streams, then each other part
                # as soon as it and all before it are in; at most 2 x concurrency parts wait in memory.
                chunks = iter(first["Body"].iter_chunks(CHUNK_BYTES))
                while True:
                    try:
                        chunk = next(chunks, None)
                    except Exception as exc:  # ResponseStreamingError, ReadTimeoutError, IncompleteReadError, resets
                        raise ArtifactUnreachable(
                            f"reading model artifact {uri} failed after {written} bytes: {_describe(exc)}"
                        ) from exc
                    if chunk is None:
                        break
                    before = time.perf_counter()
                    digest.update(chunk)
                    hashing += time.perf_counter() - before
                    out.write(chunk)
                    written += len(chunk)
                if first_end is not None and pool is not None and written != first_end:
                    raise ArtifactUnreachable(
                        f"reading model artifact {uri} failed: bytes 0-{first_end - 1} came as {written} bytes"
                    )
                while pending:
                    data = pending.popleft()[2].result()
                    submit(1)
                    before = time.perf_counter()
                    digest.update(data)
                    hashing += time.perf_counter() - before
                    out.write(data)
                    written += len(data)
            actual = digest.hexdigest()
            if actual != sha256:
                raise ArtifactDigestMismatch(
                    f"model artifact {uri} has sha256 {actual} ({written} bytes) but MODEL_SHA256 pins {sha256}: "
                    "refusing to serve it"
                )
            tmp.replace(cached)
            gets = first_gets + (-(-(written - first_end) // self.part_bytes) if first_end else 0)
            self.last_fetch = FetchReport(written, gets, time.perf_counter() - started, hashing)
        except OSError as exc:  # writing (ENOSPC may only show when the file is closed), or moving into place
            raise ArtifactUnreachable(
                f"cannot store model artifact {uri} in {self.cache_dir} after {written} bytes: {_describe(exc)}"
            ) from exc
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
            tmp.unlink(missing_ok=True)
        return cached

    def _get_range(self, uri: str, bucket: str, key: str, etag: str | None, start: int, end: int) -> bytes:
        """Bytes ``start`` to ``end`` (inclusive) of the object, of the same version as the first part (If-Match)."""
        where = f"bytes {start}-{end}"
        kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key, "Range": f"bytes={start}-{end}"}
        if etag:
            kwargs["IfMatch"] = etag
        try:
            response = self.s3.get_object(**kwargs)
        except Exception as exc:
            raise _unreachable(uri, exc, f" ({where})") from exc
        body = response["Body"]
        try:
            data = b"".join(body.iter_chunks(CHUNK_BYTES))
        except Exception as exc:
            raise ArtifactUnreachable(f"reading model artifact {uri} failed in {where}: {_describe(exc)}") from exc
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()
        if len(data) != end - start + 1:
            raise ArtifactUnreachable(f"reading model artifact {uri} failed: {where} came as {len(data)} bytes")
        return data


def _code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def _unreachable(uri: str, exc: Exception, where: str) -> ArtifactUnreachable:
    code = _code(exc)
    if code in _NOT_FOUND:
        return ArtifactNotFound(f"model artifact {uri} does not exist ({code})")
    return ArtifactUnreachable(f"cannot read model artifact {uri}{where}: {_describe(exc)}")


def _total_size(response: dict[str, Any]) -> int | None:
    """The whole object's size: after the '/' of Content-Range ("bytes 0-8388607/52428800"), else the length sent."""
    content_range = response.get("ContentRange")
    if content_range:
        total = content_range.rpartition("/")[2]
        if total.isdigit():
            return int(total)
    length = response.get("ContentLength")
    return int(length) if length is not None else None


def _parts(first_end: int, size: int, part_bytes: int) -> list[tuple[int, int]]:
    """The inclusive byte ranges after the first part."""
    return [(start, min(start + part_bytes, size) - 1) for start in range(first_end, size, part_bytes)]


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
