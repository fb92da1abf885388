"""InferenceService: the model this function serves (or why it serves none), and the protocol operations.

Built once per execution environment from its environment variables; it never raises at cold start.
A bad configuration, a missing or tampered artifact or an unreadable model leaves ``failure`` set, and every
inference then answers 503 naming that cause, so a broken version is visible and never serves guesses.

A cause that may pass (``ArtifactUnreachable``: S3 errors beyond botocore's own retries, such as 500,
SlowDown or an AccessDenied while IAM propagates; a connection lost mid-stream; a full /tmp) is tried again,
driven by requests rather than timers: the first request after the backoff (``Backoff``: 1 s, doubling to 60 s)
loads again, and one arriving earlier answers 503 at once with "retrying in N s" and Retry-After. So an
environment whose cold start met a bad minute of S3 serves once S3 answers, without a new cold start. Final
causes are never retried: an invalid environment, a digest mismatch (the bytes under that key are not the
pinned ones; a retry would download them again for the same refusal) and a model onnxruntime cannot load.
Every attempt is reported to ``on_attempt`` (the handler logs it with its number and counts retries).
"""

from __future__ import annotations

import math
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from . import protocol
from .capture import DataCapture
from .catalog import Env, EnvVar
from .errors import ApiError, ModelUnavailable, NonFiniteOutput, NotFound, UnsupportedMediaType
from .model import ModelLoadError, OnnxModel
from .prefetch import Prefetch
from .s3get import environment_client
from .store import (
    DEFAULT_CACHE_DIR,
    ArtifactError,
    ArtifactUnreachable,
    FetchReport,
    ModelStore,
    S3Client,
    is_sha256,
    parse_s3_uri,
)

SERVER_NAME = "modelrail"
SERVER_VERSION = "0.1.0"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")


@dataclass(frozen=True)
class Settings:
    """The function's environment, validated at cold start.

    Plain Python rather than a pydantic model: importing pydantic is ~45 ms of every cold start, for ten
    variables. Every problem is reported at once, each naming its variable and what was expected.
    """

    model_name: str
    model_uri: str
    model_sha256: str
    model_version: str = "$LATEST"
    max_batch_rows: int = 1024
    cache_dir: Path = DEFAULT_CACHE_DIR
    intra_op_threads: int | None = None
    capture_stream: str | None = None
    capture_sample_rate: float = 0.05
    capture_exclude_inputs: str = ""

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> Settings:
        problems: list[str] = []

        def read(var: EnvVar, parse: Callable[[str], Any], default: Any = _REQUIRED) -> Any:
            raw = environ.get(var.name)
            if raw is None:
                if default is _REQUIRED:
                    problems.append(f"{var.name}: required")
                return default
            try:
                return parse(raw)
            except ValueError as exc:
                problems.append(f"{var.name}: {exc}")
                return default

        values = {
            "model_name": read(Env.MODEL_NAME, _model_name),
            "model_uri": read(Env.MODEL_URI, _s3_uri),
            "model_sha256": read(Env.MODEL_SHA256, _sha256),
            "model_version": read(Env.FUNCTION_VERSION, str, "$LATEST"),
            "max_batch_rows": read(Env.MAX_BATCH_ROWS, _at_least(1), 1024),
            "cache_dir": read(Env.MODEL_CACHE_DIR, Path, DEFAULT_CACHE_DIR),
            "intra_op_threads": read(Env.ORT_INTRA_OP_THREADS, _at_least(1), None),
            "capture_stream": read(Env.CAPTURE_STREAM, _not_empty, None),
            "capture_sample_rate": read(Env.CAPTURE_SAMPLE_RATE, _fraction, 0.05),
            "capture_exclude_inputs": read(Env.CAPTURE_EXCLUDE_INPUTS, str, ""),
        }
        if problems:
            raise ValueError(f"invalid function environment: {'; '.join(problems)}")
        return cls(**values)


_REQUIRED: Any = object()


def _model_name(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise ValueError(
            f"expected 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit, got {value!r}"
        )
    return value


def _s3_uri(value: str) -> str:
    parse_s3_uri(value)
    return value


def _sha256(value: str) -> str:
    # Surrounding whitespace is dropped: a digest pasted from `sha256sum` or read from a file ends in "\n".
    digest = value.strip().lower()
    if not is_sha256(digest):
        raise ValueError(f"expected 64 hexadecimal digits, got {value!r}")
    return digest


def _at_least(low: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            number = low - 1
        if number < low:
            raise ValueError(f"expected an integer >= {low}, got {value!r}")
        return number

    return parse


def _fraction(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not 0.0 <= number <= 1.0:
        raise ValueError(f"expected a number from 0 to 1, got {value!r}")
    return number


def _not_empty(value: str) -> str:
    if not value:
        raise ValueError("expected a name, got an empty string")
    return value


@dataclass
class Outcome:
    """What one inference request did; the handler turns it into metrics."""

    inference: bool = False  # set by the inference routes: only they count towards a version's rates
    kind: Literal["ok", "client_error", "model_error", "non_finite", "unavailable"] = "ok"
    rows: int = 0
    model_ms: float | None = None


@dataclass(frozen=True)
class Backoff:
    """When a transiently failed load is tried again: ``first_s`` after the first failure, doubling to ``cap_s``.

    No jitter: retries are driven by requests, which reach each execution environment at its own times.
    """

    first_s: float = 1.0
    cap_s: float = 60.0

    def delay_s(self, failures: int) -> float:
        return min(self.cap_s, self.first_s * 2.0 ** min(failures - 1, 32))


@dataclass(frozen=True)
class LoadAttempt:
    """One attempt to load the model (number 1 is the cold start's), for the handler's logs and metrics."""

    model: str
    version: str
    number: int
    failure: str | None = None  # None: the model is served from now on
    retry_in_s: float | None = None  # set when the failure is transient and will be retried
    sha256: str | None = None


class _Loader:
    """Loads the model that validated settings name; keeps the retry schedule after a transient failure."""

    def __init__(
        self,
        settings: Settings,
        s3_factory: Callable[[], S3Client],
        backoff: Backoff,
        clock: Callable[[], float],
        prefetch: Prefetch | None = None,
    ) -> None:
        self.settings = settings
        self.s3_factory = s3_factory
        self.backoff = backoff
        self.clock = clock
        self.prefetch = prefetch
        self.phases_ms: dict[str, float] = {}  # the last attempt's steps: what the cold start spent where
        self.store: ModelStore | None = None
        self.failures = 0
        self.next_at = 0.0
        self.lock = threading.Lock()  # the local gateway may run requests concurrently: one attempt at a time

    def load(self) -> tuple[OnnxModel, DataCapture | None]:
        settings = self.settings
        phases = self.phases_ms = {}
        prefetch, self.prefetch = self.prefetch, None  # used by the first attempt only
        clock = time.perf_counter
        started = clock()
        if prefetch is not None and prefetch.matches(settings.model_uri, settings.model_sha256, settings.cache_dir):
            self.store = prefetch.store
            try:
                path = prefetch.result()  # raises what the store's fetch raised, classified below as always
            finally:
                phases["fetch"] = prefetch.waited_s * 1000  # only what the imports did not overlap
        else:
            if self.store is None:
                try:
                    client = self.s3_factory()
                except Exception as exc:  # botocore's NoRegionError, a broken credentials chain...
                    raise ArtifactUnreachable(f"cannot create an S3 client: {type(exc).__name__}: {exc}") from exc
                self.store = ModelStore(settings.cache_dir, client)
                phases["s3_client"] = (clock() - started) * 1000
                started = clock()
            path = self.store.fetch(settings.model_uri, settings.model_sha256)
            phases["fetch"] = (clock() - started) * 1000
        started = clock()
        model = OnnxModel(
            settings.model_name,
            settings.model_version,
            path,
            max_batch_rows=settings.max_batch_rows,
            intra_op_threads=settings.intra_op_threads,
        ).load()
        phases["session"] = (clock() - started) * 1000
        capture = None
        if settings.capture_stream:
            capture = DataCapture(
                settings.capture_stream,
                model=settings.model_name,
                version=settings.model_version,
                sample_rate=settings.capture_sample_rate,
                exclude_inputs=[n.strip() for n in settings.capture_exclude_inputs.split(",") if n.strip()],
            )
        return model, capture


class InferenceService:
    def __init__(
        self,
        name: str,
        version: str,
        model: OnnxModel | None = None,
        failure: str | None = None,
        sha256: str | None = None,
        capture: DataCapture | None = None,
        *,
        on_attempt: Callable[[LoadAttempt], None] | None = None,
    ) -> None:
        self.name = name
        self.version = version
        self.model = model
        self.failure = failure
        self.sha256 = sha256
        self.capture = capture
        self.on_attempt = on_attempt
        self._loader: _Loader | None = None  # set only while a transient failure waits to be retried
        self.init_phases_ms: dict[str, float] = {}  # the cold start's own steps (env, fetch, session), in ms
        self.fetch_report: FetchReport | None = None  # the cold start's download: size, GETs, time, hashing
        self._environment_id: str | None = None

    @classmethod
    def from_environment(
        cls,
        environ: Mapping[str, str],
        s3_factory: Callable[[], S3Client] | None = None,
        *,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_attempt: Callable[[LoadAttempt], None] | None = None,
        prefetch: Prefetch | None = None,
    ) -> InferenceService:
        """``prefetch``: the artifact download the handler started before its heavy imports (prefetch.py); used
        unless ``s3_factory`` says which client to fetch with."""
        name = environ.get(Env.MODEL_NAME.name, "unknown")
        version = environ.get(Env.FUNCTION_VERSION.name, "$LATEST")
        started = time.perf_counter()
        try:
            settings = Settings.from_environment(environ)
        except ValueError as exc:
            service = cls(name, version, failure=str(exc), on_attempt=on_attempt)
            service._report(1, str(exc), None)
            return service
        service = cls(settings.model_name, settings.model_version, sha256=settings.model_sha256, on_attempt=on_attempt)
        env_ms = (time.perf_counter() - started) * 1000
        loader = _Loader(
            settings, s3_factory or _s3_client, backoff or Backoff(), clock, prefetch if s3_factory is None else None
        )
        service._loader = loader
        service._load()
        service.init_phases_ms = {"env": env_ms, **loader.phases_ms}
        service.fetch_report = loader.store.last_fetch if loader.store is not None else None
        return service

    def _load(self) -> None:
        """One attempt to load the model; whatever goes wrong becomes ``failure``, nothing escapes."""
        loader = self._loader
        assert loader is not None
        number = loader.failures + 1
        retry_in_s: float | None = None
        try:
            model, capture = loader.load()
        except ArtifactUnreachable as exc:
            loader.failures += 1
            retry_in_s = loader.backoff.delay_s(loader.failures)
            loader.next_at = loader.clock() + retry_in_s
            self.failure = str(exc)
        except (ArtifactError, ModelLoadError) as exc:
            self.failure = str(exc)
        except Exception as exc:  # escaping a cold start would fail the import, with no Unavailable metric
            self.failure = f"unexpected {type(exc).__name__} while loading model '{self.name}': {exc}"
        else:
            self.capture = capture
            self.model = model  # last: a concurrent request that sees the model sees its capture too
            self.failure = None
        if retry_in_s is None:
            self._loader = None  # served, or a final cause: nothing more to try
        self._report(number, self.failure, retry_in_s)

    def _report(self, number: int, failure: str | None, retry_in_s: float | None) -> None:
        if self.on_attempt is not None:
            self.on_attempt(LoadAttempt(self.name, self.version, number, failure, retry_in_s, self.sha256))

    def _retry_if_due(self) -> None:
        loader = self._loader
        if loader is None or loader.clock() < loader.next_at:
            return
        if not loader.lock.acquire(blocking=False):
            return  # another request is trying right now; this one answers with the current cause
        try:
            if self.model is None:
                self._load()
        finally:
            loader.lock.release()

    @property
    def environment_id(self) -> str:
        """A random id of this execution environment, on every answer (x-environment-id): a client under load
        counts cold starts as the first answers of ids it has not seen. Made at the first answer, not at import,
        so that environments restored from one SnapStart snapshot do not share it."""
        if self._environment_id is None:
            import secrets

            self._environment_id = secrets.token_hex(8)
        return self._environment_id

    def before_snapshot(self) -> None:
        """SnapStart's init ends with a snapshot that every restored environment starts from: the model should be
        in it. A load that failed for a cause that may pass is tried once more now, whatever the backoff says
        (a snapshot without the model would leave each restore to fetch it on a request). Capture lets go of its
        client and thread."""
        loader = self._loader
        if self.model is None and loader is not None:
            with loader.lock:
                self._load()
        if self.capture is not None:
            self.capture.before_snapshot()

    def after_restore(self) -> None:
        """SnapStart restore: what must be unique or fresh per environment is renewed, nothing else (the model and
        its session are what the snapshot is for). Capture's sampler, thread and client; the S3 client of a load
        still to be retried (its credentials and connections are the snapshot's)."""
        if self.capture is not None:
            self.capture.after_restore()
        if self._loader is not None:
            self._loader.store = None

    def retry_in_s(self) -> int | None:
        """Whole seconds until the next attempt to load the model; None when none will come."""
        loader = self._loader
        if loader is None:
            return None
        return max(1, math.ceil(loader.next_at - loader.clock()))

    def _cause(self) -> tuple[str, dict[str, str]]:
        retry_in = self.retry_in_s()
        if retry_in is None:
            return str(self.failure), {}
        return f"{self.failure}; retrying in {retry_in} s", {"Retry-After": str(retry_in)}

    @property
    def ready(self) -> bool:
        """Whether the model is served. Asking drives a due retry of a failed load, as a request does."""
        if self.model is None:
            self._retry_if_due()
        return self.model is not None and self.model.ready

    def server_metadata(self) -> dict[str, Any]:
        # The binary tensor data extension (protocol.py) is the one the API speaks beyond the core protocol; the
        # name is the one Triton lists and its clients check.
        return {"name": SERVER_NAME, "version": SERVER_VERSION, "extensions": ["binary_tensor_data"]}

    def readiness(self) -> dict[str, Any]:
        ready = self.ready
        body: dict[str, Any] = {"name": self.name, "ready": ready}
        if not ready and self.failure:
            body["error"] = self._cause()[0]
        return body

    def model_for(self, name: str, version: str | None = None) -> OnnxModel:
        """The served model if the path names it; 404 for another name or version, 503 when none is loaded."""
        self.check_name(name, version)
        model = self.model
        if model is None:
            self._retry_if_due()
            model = self.model
            if model is None:
                cause, headers = self._cause()
                raise ModelUnavailable(f"model '{name}' is not available: {cause}", headers=headers)
        return model

    def check_name(self, name: str, version: str | None = None) -> None:
        if name != self.name:
            if not _NAME.fullmatch(name):
                # Powertools' <name> also matches ':' and '@': /v1/models/iris:explain reaches the GET route.
                raise NotFound(f"no route: '{name}' is not a model name (letters, digits, '.', '_', '-')")
            raise NotFound(f"model '{name}' is not served here; this endpoint serves '{self.name}'")
        if version is not None and version != self.version:
            raise NotFound(
                f"model '{name}' has no version '{version}' here; this endpoint serves version {self.version}"
            )

    def metadata(self, name: str, version: str | None = None) -> dict[str, Any]:
        metadata = self.model_for(name, version).metadata()
        metadata["parameters"] = {"sha256": self.sha256}
        return metadata

    def infer(
        self,
        outcome: Outcome,
        name: str,
        version: str | None,
        body: str | bytes | None,
        *,
        is_base64: bool = False,
        headers: Mapping[str, str] | None = None,
        v1: bool = False,
        request_id: str | None = None,
    ) -> tuple[dict[str, Any], bytes | None]:
        """The response document, and binary tensor data to append when the client asked for it."""
        headers = {k.lower(): v for k, v in (headers or {}).items()}
        header_length = headers.get(protocol.BINARY_HEADER)
        try:
            model = self.model_for(name, version)
            binary = header_length is not None and not v1
            protocol.check_content_type(headers.get("content-type"), binary=binary)
            if binary and not is_base64:
                raise UnsupportedMediaType(
                    "binary tensor data (Inference-Header-Content-Length) must be sent as content-type "
                    "application/octet-stream, which API Gateway passes on intact; as text it is corrupted"
                )
            payload = protocol.parse_body(body, is_base64, None if v1 else header_length)
            request = protocol.decode_v1(payload, model) if v1 else protocol.decode_v2(payload, model)
            outcome.rows = request.rows
            started = time.perf_counter()
            try:
                results = model.predict(request.feeds, request.output_names)
            finally:
                outcome.model_ms = (time.perf_counter() - started) * 1000
        except ApiError as exc:
            outcome.kind = _kind_of(exc)
            raise
        if self.capture is not None:
            self.capture.offer(request_id, request.feeds, results)
        if v1:
            return protocol.encode_v1(results), None
        return protocol.encode_v2(model, request, results)


def _kind_of(exc: ApiError) -> Literal["client_error", "model_error", "non_finite", "unavailable"]:
    if isinstance(exc, NonFiniteOutput):
        return "non_finite"
    if isinstance(exc, ModelUnavailable):
        return "unavailable"
    return "client_error" if exc.status < 500 else "model_error"


def _s3_client() -> S3Client:
    """The cold start's own signed GETs when the credentials are in the environment (Lambda without SnapStart),
    boto3's client otherwise (SnapStart's container credentials, a profile): see s3get.py."""
    client = environment_client(os.environ)
    return client if client is not None else boto3_s3_client()


def boto3_s3_client() -> S3Client:
    # boto3 is imported here, not at module level: the Lambda runtime provides it, and tests inject their own.
    import boto3
    from botocore.config import Config

    # Standard retry mode backs off on 500/503/SlowDown and on connection errors; the read timeout bounds a stalled
    # stream (the default is 60 s, six times the cold start's 10 s init budget). What still fails is retried later.
    config = Config(connect_timeout=5, read_timeout=15, retries={"mode": "standard", "max_attempts": 3})
    return boto3.client("s3", config=config)  # honours AWS_ENDPOINT_URL_S3, which the local environment sets
