"""AWS access for the operate commands: one boto3 session, and AWS's failures turned into errors a user can act on."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import boto3
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
)

ACCESS_DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnauthorizedException"}
BAD_CREDENTIALS = {
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "SignatureDoesNotMatch",
}
PERMISSIONS = (
    "cloudformation:DescribeStacks, lambda:GetAlias, lambda:GetFunctionConfiguration, lambda:ListVersionsByFunction, "
    "cloudwatch:DescribeAlarms, cloudwatch:GetMetricData, codedeploy:ListDeployments, codedeploy:BatchGetDeployments, "
    "codedeploy:ListDeploymentTargets, codedeploy:BatchGetDeploymentTargets; rollback also codedeploy:StopDeployment, "
    "codedeploy:CreateDeployment (or lambda:UpdateAlias with --force)"
)


class OperateError(Exception):
    """A failure the user can act on; the message says what and how. ``exit_code``: 1 refused, 2 cannot run."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class Aws:
    """Clients from one session (standard credential chain and region; ``profile``/``region`` override them).

    ``clients`` replaces named clients (tests pass botocore-stubbed ones for what moto lacks)."""

    def __init__(
        self,
        *,
        region: str | None = None,
        profile: str | None = None,
        clients: Mapping[str, Any] | None = None,
    ) -> None:
        if region is None:
            # boto3 reads only AWS_DEFAULT_REGION; the AWS SDKs' shared settings (and the AWS CLI) read AWS_REGION
            # before it, so modelrail does too, as the hint and --region's help say.
            region = os.environ.get("AWS_REGION") or None
        try:
            self.session = boto3.Session(profile_name=profile, region_name=region)
        except ProfileNotFound as exc:
            raise OperateError(f"AWS profile not found: {exc}; check AWS_PROFILE or --profile") from None
        self._clients: dict[str, Any] = dict(clients or {})

    @property
    def region(self) -> str:
        if not self.session.region_name:
            raise OperateError(
                "no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION), give your profile a region, or pass --region"
            )
        return self.session.region_name

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.session.client(service, region_name=self.region)  # type: ignore[call-overload]
        return self._clients[service]


@contextmanager
def explained(doing: str) -> Iterator[None]:
    """Turn AWS's exceptions raised while ``doing`` something into an OperateError that says what to do."""
    try:
        yield
    except OperateError:
        raise
    except (NoCredentialsError, PartialCredentialsError) as exc:
        raise OperateError(
            f"no AWS credentials found while {doing} ({exc}). modelrail uses boto3's standard chain: set "
            "AWS_PROFILE (after `aws configure` or `aws sso login`) or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        ) from None
    except NoRegionError:
        raise OperateError(
            "no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION), give your profile a region, or pass --region"
        ) from None
    except EndpointConnectionError as exc:
        raise OperateError(f"cannot reach AWS while {doing}: {exc}") from None
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code, message = error.get("Code", ""), error.get("Message", str(exc))
        if code in ACCESS_DENIED:
            raise OperateError(
                f"access denied while {doing} ({exc.operation_name}): {message}\n"
                f"modelrail's operate commands need: {PERMISSIONS}"
            ) from None
        if code in BAD_CREDENTIALS:
            raise OperateError(
                f"AWS rejected the credentials while {doing} ({code}: {message}); refresh them "
                "(e.g. `aws sso login`) or check AWS_PROFILE"
            ) from None
        raise OperateError(f"AWS error while {doing}: {exc.operation_name}: {code}: {message}") from None
    except BotoCoreError as exc:
        raise OperateError(f"AWS error while {doing}: {exc}") from None


def connect(*, region: str | None = None, profile: str | None = None) -> Aws:
    """The commands' AWS access (tests replace this to hand in stubbed clients)."""
    return Aws(region=region, profile=profile)
