"""The deployment spec: which models to deploy and, per environment, how. Read it with ``load_spec()``.

Pure Python (pydantic, no aws_cdk): ``cdk synth`` and the local rehearsal read the same spec, and the
rollout policy and alarm definitions are plain data both of them interpret.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator, model_validator

from .base import SpecError, SpecModel
from .bundle import NAME_PATTERN, BundleError, ModelBundle, artifact_key
from .catalog import NAMESPACE, Env
from .environment import EnvironmentSpec
from .rollout import ALIAS_NAME

ROOT = Path(__file__).resolve().parent.parent
CDK_JSON = ROOT / "cdk.json"
CONTEXT_KEY = "modelrail"
SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")
_S3_URI = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])/(?P<key>.+)$")


class ModelSource(SpecModel):
    """A model to deploy: a bundle folder (uploaded at deploy time) or an existing ``s3://`` object."""

    bundle: str | None = Field(default=None, description="bundle path, relative to cdk.json")
    uri: str | None = Field(default=None, description="s3://bucket/key of an existing model.onnx")
    sha256: str | None = Field(default=None, description="with uri: the object's sha256, 64 lowercase hex")
    name: str | None = Field(default=None, pattern=NAME_PATTERN, description="with uri: the model's name")
    max_batch_rows: int | None = Field(
        default=None, ge=1, le=1_000_000, description="with uri; bundles set it themselves"
    )

    @field_validator("sha256")
    @classmethod
    def _sha256(cls, value: str | None) -> str | None:
        if value is not None and not SHA256_PATTERN.match(value):
            raise ValueError(f"{value!r} is not a sha256: expected 64 lowercase hex characters")
        return value

    @field_validator("uri")
    @classmethod
    def _uri(cls, value: str | None) -> str | None:
        if value is not None and not _S3_URI.match(value):
            raise ValueError(f"{value!r}: expected s3://<bucket>/<key>")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> ModelSource:
        if (self.bundle is None) == (self.uri is None):
            raise ValueError("give exactly one of 'bundle' (a folder) or 'uri' (s3://bucket/key with sha256)")
        if self.uri is not None and (self.sha256 is None or self.name is None):
            raise ValueError("a model given by 'uri' needs 'sha256' and 'name'")
        if self.bundle is not None and any(v is not None for v in (self.sha256, self.name, self.max_batch_rows)):
            raise ValueError("sha256, name and max_batch_rows come from the bundle itself; set them only with 'uri'")
        return self


@dataclass(frozen=True)
class DeployedModel:
    """A model resolved for deployment: what the function's environment will carry."""

    name: str
    sha256: str
    max_batch_rows: int
    bundle: ModelBundle | None = None
    uri: str | None = None
    acceptance_sha256: str | None = None  # of the bundle's acceptance.jsonl, when it has one
    baseline_sha256: str | None = None  # of the bundle's baseline.json, when it has one

    @classmethod
    def of_bundle(cls, bundle: ModelBundle) -> DeployedModel:
        """A bundle as deployed: its model, acceptance set and baseline pinned by their sha256."""

        def digest(path: Path | None) -> str | None:
            return hashlib.sha256(path.read_bytes()).hexdigest() if path else None

        return cls(
            bundle.name,
            bundle.sha256(),
            bundle.settings.max_batch_rows,
            bundle,
            acceptance_sha256=digest(bundle.acceptance_path),
            baseline_sha256=digest(bundle.baseline_path),
        )

    @property
    def artifact_key(self) -> str:
        """Object key in the stack's artifacts bucket (content-addressed) for a bundle."""
        return artifact_key(self.name, self.sha256)

    @property
    def acceptance_key(self) -> str | None:
        """Object key of the acceptance set (content-addressed), None when the bundle has none."""
        return f"acceptance/{self.name}/{self.acceptance_sha256}.jsonl" if self.acceptance_sha256 else None

    @property
    def baseline_key(self) -> str | None:
        """Object key of the drift baseline (content-addressed), None when the bundle has none."""
        return f"baselines/{self.name}/{self.baseline_sha256}.json" if self.baseline_sha256 else None

    def hook_environment(
        self, *, new_version_arn: str, acceptance_uri: str | None, capture_bucket: str | None = None
    ) -> dict[str, str]:
        """The pre-traffic hook's environment: which version to judge, against which set and criteria, and where
        the replaced version's captured requests are (none when data capture is off)."""
        criteria = self.bundle.settings.acceptance.model_dump_json() if self.bundle else "{}"
        environment = {
            Env.MODEL_NAME.name: self.name,
            Env.NEW_VERSION_ARN.name: new_version_arn,
            Env.ALIAS_NAME.name: ALIAS_NAME,
            Env.ACCEPTANCE_CRITERIA.name: criteria,
        }
        if acceptance_uri is not None and self.acceptance_sha256 is not None:
            environment |= {Env.ACCEPTANCE_URI.name: acceptance_uri, Env.ACCEPTANCE_SHA256.name: self.acceptance_sha256}
        if capture_bucket is not None:
            environment[Env.CAPTURE_BUCKET.name] = capture_bucket
            excluded = self.bundle.settings.capture_exclude_inputs if self.bundle else ()
            if excluded:  # such requests cannot be rebuilt: the hook says so instead of replaying
                environment[Env.CAPTURE_EXCLUDE_INPUTS.name] = ",".join(excluded)
        return environment

    def post_traffic_environment(self, *, new_version_arn: str) -> dict[str, str]:
        """The post-traffic hook's environment: which version the alias should now serve."""
        return {
            Env.MODEL_NAME.name: self.name,
            Env.NEW_VERSION_ARN.name: new_version_arn,
            Env.ALIAS_NAME.name: ALIAS_NAME,
        }

    def environment(
        self, model_uri: str, *, tracing: bool = False, capture_stream: str | None = None, sample_rate: float = 0.0
    ) -> dict[str, str]:
        """The inference function's environment: a new model is a new configuration, so a new version."""
        environment = {
            Env.MODEL_NAME.name: self.name,
            Env.MODEL_URI.name: model_uri,
            Env.MODEL_SHA256.name: self.sha256,
            Env.MAX_BATCH_ROWS.name: str(self.max_batch_rows),
            Env.METRICS_NAMESPACE.name: NAMESPACE,
        }
        if not tracing:
            environment[Env.POWERTOOLS_TRACE_DISABLED.name] = "true"  # the handler then never imports the X-Ray SDK
        if capture_stream is not None:
            environment[Env.CAPTURE_STREAM.name] = capture_stream
            environment[Env.CAPTURE_SAMPLE_RATE.name] = f"{sample_rate:g}"
            excluded = self.bundle.settings.capture_exclude_inputs if self.bundle else ()
            if excluded:
                environment[Env.CAPTURE_EXCLUDE_INPUTS.name] = ",".join(excluded)
        return environment


class DeploymentSpec(SpecModel):
    models: tuple[ModelSource, ...] = Field(min_length=1)
    environments: dict[str, EnvironmentSpec] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _name_environments(cls, data: Any) -> Any:
        # Environments are keyed by name in cdk.json; the key is the name.
        if isinstance(data, dict) and isinstance(data.get("environments"), dict):
            envs = {}
            for key, value in data["environments"].items():
                envs[key] = {"name": key, **value} if isinstance(value, dict) and "name" not in value else value
            data = {**data, "environments": envs}
        return data

    @model_validator(mode="after")
    def _names_match(self) -> DeploymentSpec:
        for key, env in self.environments.items():
            if env.name != key:
                raise ValueError(f"environments.{key}.name is {env.name!r}; it must equal its key {key!r}")
        return self

    def environment(self, name: str) -> EnvironmentSpec:
        try:
            return self.environments[name]
        except KeyError:
            raise SpecError(
                f"no environment {name!r} in the spec; expected one of {sorted(self.environments)}"
            ) from None

    def resolve_models(self, base_dir: Path = ROOT) -> tuple[DeployedModel, ...]:
        """Load each bundle (or take the URI) and check the names are unique."""
        resolved: list[DeployedModel] = []
        for i, source in enumerate(self.models):
            where = f"context.{CONTEXT_KEY}.models[{i}]"
            if source.bundle is not None:
                try:
                    bundle = ModelBundle.load(base_dir / source.bundle)
                except BundleError as exc:
                    raise SpecError(f"{where}.bundle: {exc}") from exc
                resolved.append(DeployedModel.of_bundle(bundle))
            else:
                assert source.name is not None
                assert source.sha256 is not None
                assert source.uri is not None
                resolved.append(
                    DeployedModel(source.name, source.sha256, source.max_batch_rows or 1024, uri=source.uri)
                )
        names = [m.name for m in resolved]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise SpecError(f"context.{CONTEXT_KEY}.models: model names must be unique; repeated: {duplicates}")
        return tuple(resolved)


def parse_spec(data: Any, source: str = "cdk.json") -> DeploymentSpec:
    """Validate the ``modelrail`` context value; errors name the field and what is allowed."""
    if isinstance(data, str):  # `cdk synth -c modelrail='{...}'` passes a string
        try:
            data = json.loads(data)
        except json.JSONDecodeError as exc:
            raise SpecError(f"{source}: context.{CONTEXT_KEY} is not valid JSON ({exc})") from exc
    if data is None:
        raise SpecError(f"{source}: context.{CONTEXT_KEY} is missing (the models and environments to deploy)")
    try:
        return DeploymentSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(f"{source}: invalid deployment spec:\n" + _describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    errors = exc.errors()
    lines = []
    for error in errors:
        if error["type"] == "too_short" and any(
            e is not error and e["loc"][: len(error["loc"])] == error["loc"] for e in errors
        ):
            continue  # a list emptied by its own invalid items: the items' errors say more
        loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown field"
        # Value errors name the input themselves; for the others, show what was given.
        shown = (
            "" if error["type"] in ("missing", "extra_forbidden", "value_error") else f" (got {error.get('input')!r})"
        )
        lines.append(f"  context.{CONTEXT_KEY}{loc}: {message}{shown}")
    return "\n".join(lines)


def load_spec(cdk_json: str | os.PathLike[str] = CDK_JSON, context: Mapping[str, Any] | None = None) -> DeploymentSpec:
    """The spec from ``cdk.json``'s context (or from ``context``, e.g. the CDK app's, when given)."""
    path = Path(cdk_json)
    if context is None:
        try:
            context = json.loads(path.read_text()).get("context", {})
        except (OSError, json.JSONDecodeError) as exc:
            raise SpecError(f"{path}: cannot read the CDK context ({exc})") from exc
    return parse_spec(context.get(CONTEXT_KEY), source=str(path))
