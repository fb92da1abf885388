"""InferenceService: the model this function serves (or why it serves none), and the protocol operations.

Built once per execution environment from its environment variables; it never raises at cold start.
A bad configuration, a missing or tampered artifact or an unreadable model leaves ``failure`` set, and every
inference then answers 503 naming that cause, so a broken version is visible and never serves guesses.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from . import protocol
from .capture import DataCapture
from .errors import ApiError, ModelUnavailable, NonFiniteOutput, NotFound, UnsupportedMediaType
from .model import ModelLoadError, OnnxModel
from .store import ArtifactError, ModelStore, S3Client, is_sha256, parse_s3_uri

SERVER_NAME = "modelrail"
SERVER_VERSION = "0.1.0"
_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$"


class Settings(BaseModel):
    """The function's environment, validated at cold start."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    model_name: str = Field(alias="MODEL_NAME", pattern=_NAME_PATTERN)
    model_uri: str = Field(alias="MODEL_URI")
    model_sha256: str = Field(alias="MODEL_SHA256")
    model_version: str = Field("$LATEST", alias="AWS_LAMBDA_FUNCTION_VERSION")
    max_batch_rows: int = Field(1024, ge=1, alias="MAX_BATCH_ROWS")
    cache_dir: Path = Field(Path("/tmp/modelrail-models"), alias="MODEL_CACHE_DIR")
    intra_op_threads: int | None = Field(None, ge=1, alias="ORT_INTRA_OP_THREADS")
    capture_stream: str | None = Field(None, min_length=1, alias="CAPTURE_STREAM")
    capture_sample_rate: float = Field(0.05, ge=0.0, le=1.0, alias="CAPTURE_SAMPLE_RATE")
    capture_exclude_inputs: str = Field("", alias="CAPTURE_EXCLUDE_INPUTS")

    @field_validator("model_uri")
    @classmethod
    def _s3_uri(cls, value: str) -> str:
        parse_s3_uri(value)
        return value

    @field_validator("model_sha256")
    @classmethod
    def _sha256(cls, value: str) -> str:
        if not is_sha256(value.lower()):
            raise ValueError(f"expected 64 hexadecimal digits, got {value!r}")
        return value.lower()

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> Settings:
        try:
            return cls.model_validate(dict(environ))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc'])}: {err['msg'].removeprefix('Value error, ')}"
                for err in exc.errors()
            )
            raise ValueError(f"invalid function environment: {problems}") from None


@dataclass
class Outcome:
    """What one inference request did; the handler turns it into metrics."""

    inference: bool = False  # set by the inference routes: only they count towards a version's rates
    kind: Literal["ok", "client_error", "model_error", "non_finite", "unavailable"] = "ok"
    rows: int = 0
    model_ms: float | None = None


class InferenceService:
    def __init__(
        self,
        name: str,
        version: str,
        model: OnnxModel | None = None,
        failure: str | None = None,
        sha256: str | None = None,
        capture: DataCapture | None = None,
    ) -> None:
        self.name = name
        self.version = version
        self.model = model
        self.failure = failure
        self.sha256 = sha256
        self.capture = capture

    @classmethod
    def from_environment(
        cls, environ: Mapping[str, str], s3_factory: Callable[[], S3Client] | None = None
    ) -> InferenceService:
        name = environ.get("MODEL_NAME", "unknown")
        version = environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        try:
            settings = Settings.from_environment(environ)
        except ValueError as exc:
            return cls(name, version, failure=str(exc))
        store = ModelStore(settings.cache_dir, s3_factory() if s3_factory else _s3_client())
        try:
            path = store.fetch(settings.model_uri, settings.model_sha256)
            model = OnnxModel(
                settings.model_name,
                settings.model_version,
                path,
                max_batch_rows=settings.max_batch_rows,
                intra_op_threads=settings.intra_op_threads,
            ).load()
        except (ArtifactError, ModelLoadError) as exc:
            return cls(settings.model_name, settings.model_version, failure=str(exc), sha256=settings.model_sha256)
        capture = None
        if settings.capture_stream:
            capture = DataCapture(
                settings.capture_stream,
                model=settings.model_name,
                version=settings.model_version,
                sample_rate=settings.capture_sample_rate,
                exclude_inputs=[n.strip() for n in settings.capture_exclude_inputs.split(",") if n.strip()],
            )
        return cls(settings.model_name, settings.model_version, model, sha256=settings.model_sha256, capture=capture)

    @property
    def ready(self) -> bool:
        return self.model is not None and self.model.ready

    def server_metadata(self) -> dict[str, Any]:
        return {"name": SERVER_NAME, "version": SERVER_VERSION, "extensions": []}

    def readiness(self) -> dict[str, Any]:
        body: dict[str, Any] = {"name": self.name, "ready": self.ready}
        if self.failure:
            body["error"] = self.failure
        return body

    def model_for(self, name: str, version: str | None = None) -> OnnxModel:
        """The served model if the path names it; 404 for another name or version, 503 when none is loaded."""
        self.check_name(name, version)
        if self.model is None:
            raise ModelUnavailable(f"model '{name}' is not available: {self.failure}")
        return self.model

    def check_name(self, name: str, version: str | None = None) -> None:
        if name != self.name:
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
    # boto3 is imported here, not at module level: the Lambda runtime provides it, and tests inject their own.
    import boto3

    return boto3.client("s3")  # honours AWS_ENDPOINT_URL_S3, which the local environment sets
