"""The functions' roles in the local cloud, enforced on every S3 call a Lambda worker makes.

Each deploy writes its function's role document: the statements ``spec.permissions`` defines, which the CDK
construct grants. A worker checks each S3 call against that document as it is at the moment of the call (a role
is shared by all of a function's versions and updated in place by a deploy, as in IAM) and refuses what it does
not allow the way S3 does: a ClientError with code AccessDenied and HTTP status 403.

Why a botocore hook rather than moto's IAM enforcement: moto switches authorization on for its whole process
(``INITIAL_NO_AUTH_ACTION_COUNT``, read into a module global), so every other client of the embedded AWS would need
IAM users of its own; the hook scopes the check to the workers, where the deployed role applies.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from spec.models import DeployedModel
from spec.permissions import Statement, inference_role

ACCOUNT = "000000000000"  # moto's default account
S3_EVENT = "before-parameter-build.s3"  # every S3 operation's call, once per call (before any retry)

# S3 operations whose IAM action is not ``s3:<operation>`` (Amazon S3 User Guide, "Required permissions for Amazon
# S3 API operations"): HEAD needs GetObject, listing needs ListBucket on the bucket.
_ACTIONS = {
    "HeadObject": "s3:GetObject",
    "ListObjects": "s3:ListBucket",
    "ListObjectsV2": "s3:ListBucket",
    "HeadBucket": "s3:ListBucket",
    "ListObjectVersions": "s3:ListBucketVersions",
    "GetObjectAttributes": "s3:GetObject",
}


class LocalRoles:
    """One role document per function, in ``folder``; ``grants`` says what a deploy gives the role."""

    def __init__(self, folder: Path, *, bucket: str) -> None:
        self.folder = folder
        self.bucket = bucket
        self.grants: Callable[[DeployedModel], tuple[Statement, ...]] = self.inference_grants

    def inference_grants(self, model: DeployedModel) -> tuple[Statement, ...]:
        return inference_role(self.bucket, model.name, model.artifact_key)

    def path(self, name: str) -> Path:
        return self.folder / f"modelrail-{name}.json"

    def deploy(self, model: DeployedModel) -> Path:
        """The role of ``model``'s function as this deploy leaves it (written whole, never half)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        document = {"Version": "2012-10-17", "Statement": [s.to_json() for s in self.grants(model)]}
        target = self.path(model.name)
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".role-")
        with os.fdopen(fd, "w") as out:
            json.dump(document, out)
        Path(tmp).replace(target)
        return target


def read_role(path: Path) -> tuple[Statement, ...]:
    """The role's statements; a role that does not exist allows nothing."""
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        return ()
    return tuple(Statement.from_json(s) for s in document["Statement"])


def s3_request(operation: str, params: dict[str, Any]) -> tuple[str, str]:
    """(IAM action, resource ARN) that S3 authorizes for one call."""
    action = _ACTIONS.get(operation, f"s3:{operation}")
    bucket, key = params.get("Bucket", ""), params.get("Key")
    return action, f"arn:aws:s3:::{bucket}/{key}" if key is not None else f"arn:aws:s3:::{bucket}"


def denial(role_file: Path, function_name: str, operation: str, params: dict[str, Any]) -> str | None:
    """S3's message refusing this call when the role does not allow it now (None: allowed). The message follows
    S3's own for same-account requests (Amazon S3 User Guide, "Troubleshoot access denied (403 Forbidden) errors
    in Amazon S3")."""
    action, resource = s3_request(operation, params)
    if any(s.allows(action, resource) for s in read_role(role_file)):
        return None
    principal = f"arn:aws:sts::{ACCOUNT}:assumed-role/{function_name}-role/{function_name}"
    return (
        f'User: {principal} is not authorized to perform: {action} on resource: "{resource}" because no '
        f"identity-based policy allows the {action} action"
    )


def check_call(role_file: Path, function_name: str, params: dict[str, Any], model: Any, **_: Any) -> None:
    """The botocore handler: raises S3's AccessDenied (a ClientError, HTTP 403) unless the role allows this call."""
    from botocore.exceptions import ClientError

    message = denial(role_file, function_name, model.name, params)
    if message is not None:
        response: Any = {
            "Error": {"Code": "AccessDenied", "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": 403},
        }
        raise ClientError(response, model.name)


def enforce(role_file: Path, function_name: str) -> None:
    """In a worker's process, before the handler is imported: every botocore session made from now on (the
    handler's own ``boto3.client("s3")`` included), and the cold start's own S3 client (functions/inference/s3get.py,
    which signs its GETs without botocore), check each S3 call against ``role_file``."""
    from botocore import handlers

    from functions.inference import s3get

    handlers.BUILTIN_HANDLERS.append((S3_EVENT, partial(check_call, role_file, function_name)))
    get_object = s3get.S3GetClient.get_object

    def checked_get_object(self: s3get.S3GetClient, *, Bucket: str, Key: str, **rest: Any) -> dict[str, Any]:  # noqa: N803
        message = denial(role_file, function_name, "GetObject", {"Bucket": Bucket, "Key": Key})
        if message is not None:  # as S3 answers that client: 403 and its error document's code and message
            raise s3get.S3Error(403, "AccessDenied", message)
        return get_object(self, Bucket=Bucket, Key=Key, **rest)

    s3get.S3GetClient.get_object = checked_get_object  # type: ignore[method-assign]
