"""What a deployed function's role may do on S3, as data: the CDK construct grants these statements and the local
environment enforces them on every S3 call its workers make, so a rehearsal runs with the access a deploy leaves.

IAM semantics kept here: an implicit deny unless an Allow matches; ``*`` in a resource matches any run of
characters (``/`` included), ``?`` exactly one; action names are case-insensitive, resources are not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from functions.monitor.capture import CAPTURE_PREFIX

from .bundle import artifact_prefix

ARTIFACT_READ_ACTIONS = ("s3:GetObject",)


@dataclass(frozen=True)
class Statement:
    """One Allow statement of a role's identity policy. ``prefixes``: the statement holds only for listings whose
    ``s3:prefix`` matches one of them (a ``StringLike`` condition), as a ListBucket grant narrowed to a folder."""

    actions: tuple[str, ...]
    resources: tuple[str, ...]
    prefixes: tuple[str, ...] = ()

    def allows(self, action: str, resource: str, *, prefix: str | None = None) -> bool:
        if self.prefixes and (prefix is None or not any(_matches(p, prefix) for p in self.prefixes)):
            return False  # a condition key absent from the request makes the condition false
        return any(_matches(a.lower(), action.lower()) for a in self.actions) and any(
            _matches(r, resource) for r in self.resources
        )

    def to_json(self) -> dict[str, object]:
        document: dict[str, object] = {
            "Effect": "Allow",
            "Action": list(self.actions),
            "Resource": list(self.resources),
        }
        if self.prefixes:
            document["Condition"] = {"StringLike": {"s3:prefix": list(self.prefixes)}}
        return document

    @classmethod
    def from_json(cls, statement: dict[str, object]) -> Statement:
        if statement.get("Effect") != "Allow":
            raise ValueError(f"only Allow statements are modelled, got Effect {statement.get('Effect')!r}")
        actions, resources = statement["Action"], statement["Resource"]
        condition = statement.get("Condition") or {}
        prefixes = condition.get("StringLike", {}).get("s3:prefix", []) if isinstance(condition, dict) else []
        return cls(
            tuple([actions] if isinstance(actions, str) else actions),  # type: ignore[arg-type]
            tuple([resources] if isinstance(resources, str) else resources),  # type: ignore[arg-type]
            tuple([prefixes] if isinstance(prefixes, str) else prefixes),
        )


def s3_object_arn(bucket: str, key: str, partition: str = "aws") -> str:
    return f"arn:{partition}:s3:::{bucket}/{key}"


def artifact_versions(key: str, prefix: str | None) -> str:
    """The object pattern that covers every version of an artifact: its folder's objects, or the key alone."""
    return f"{prefix}*" if prefix else key


def read_artifact_versions(bucket: str, key: str, *, prefix: str | None, partition: str = "aws") -> Statement:
    """What a function's role needs to read its artifact: the role is shared by all the function's versions and
    updated before the alias shifts, so the version serving now and every rollback target read through it."""
    return Statement(ARTIFACT_READ_ACTIONS, (s3_object_arn(bucket, artifact_versions(key, prefix), partition),))


def model_capture_prefix(name: str) -> str:
    """The folder of one model's captured requests, every version and hour (the layout of spec/capture.py)."""
    return f"{CAPTURE_PREFIX}model={name}/"


def read_model_capture(bucket: str, name: str, *, partition: str = "aws") -> tuple[Statement, ...]:
    """What the pre-traffic hook needs to replay one model's captured requests: list that model's folder (only)
    and read its objects; other models' captured data stays out of reach."""
    prefix = model_capture_prefix(name)
    return (
        Statement(("s3:ListBucket",), (f"arn:{partition}:s3:::{bucket}",), (f"{prefix}*",)),
        Statement(("s3:GetObject",), (s3_object_arn(bucket, f"{prefix}*", partition),)),
    )


def inference_role(bucket: str, name: str, key: str) -> tuple[Statement, ...]:
    """The S3 statements the inference function's role carries for a model deployed from a bundle (its artifact
    lives under the model's content-addressed prefix, as ``infra/artifacts.py`` places it)."""
    return (read_artifact_versions(bucket, key, prefix=artifact_prefix(name)),)


@lru_cache(maxsize=256)
def _pattern(wildcard: str) -> re.Pattern[str]:
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in wildcard), re.DOTALL)


def _matches(wildcard: str, value: str) -> bool:
    return _pattern(wildcard).fullmatch(value) is not None
