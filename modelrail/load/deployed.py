"""A deployed model's endpoint for a load run, from its stack's outputs: the API's invoke URL (``InvokeUrl-<model>``),
and how to authenticate: SigV4 with the caller's credentials for ``iam``, the key (``ApiKeyId-<model>``, its value
read from API Gateway) for ``api_key``. The operate commands' stack reading is reused for the model's resources."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from modelrail.operate.aws import Aws, OperateError, explained
from modelrail.operate.resources import ModelResources, parse_outputs

from .targets import HttpTarget, SigV4Signer


@dataclass(frozen=True)
class Endpoint:
    model: str
    resources: ModelResources
    invoke_url: str  # the stage's base URL, ending in /
    auth: str  # "iam" or "api_key"
    api_key_id: str | None

    @property
    def infer_url(self) -> str:
        return f"{self.invoke_url.rstrip('/')}/v2/models/{self.model}/infer"


def _output_key(prefix: str, model: str) -> str:
    # CDK makes an output's key from its id without the punctuation: InvokeUrl-my-model -> InvokeUrlmymodel
    return prefix + re.sub(r"[^A-Za-z0-9]", "", model)


def read_endpoint(aws: Aws, stack: str, model: str | None, *, spec_auth: str | None = None) -> Endpoint:
    with explained(f"reading stack {stack}"):
        try:
            stacks = aws.client("cloudformation").describe_stacks(StackName=stack)["Stacks"]
        except ClientError as exc:
            error = exc.response.get("Error", {})
            if error.get("Code") == "ValidationError" and "does not exist" in error.get("Message", ""):
                raise OperateError(
                    f"stack {stack!r} not found in {aws.region}: deploy it first (npx aws-cdk@2 deploy {stack}), or "
                    "name the right region with --region or AWS_DEFAULT_REGION"
                ) from None
            raise
    outputs: list[dict[str, Any]] = stacks[0].get("Outputs", [])
    resources = parse_outputs(stack, aws.region, outputs)
    chosen = resources.select(model)
    if len(chosen) > 1:
        names = ", ".join(m.model for m in chosen)
        raise OperateError(f"stack {stack} serves several models: give --model (one of {names})")
    found = chosen[0]
    values = {o["OutputKey"]: o["OutputValue"] for o in outputs}
    url = values.get(_output_key("InvokeUrl", found.model))
    if not url:
        raise OperateError(
            f"stack {stack} has no {_output_key('InvokeUrl', found.model)} output for model {found.model!r}: "
            "deploy it again with this version of modelrail"
        )
    key_id = values.get(_output_key("ApiKeyId", found.model))
    auth = "api_key" if key_id else "iam"
    if spec_auth is not None and spec_auth != auth:
        raise OperateError(
            f"the spec says api.auth {spec_auth!r} but stack {stack} is deployed with {auth!r}: deploy the spec first"
        )
    return Endpoint(found.model, found, url, auth, key_id)


def http_target(aws: Aws, endpoint: Endpoint, *, timeout_s: float = 29.0) -> HttpTarget:
    """The endpoint's infer URL with its authentication: each request SigV4-signed, or the API key on each."""
    if endpoint.auth == "api_key":
        assert endpoint.api_key_id is not None
        with explained(f"reading the value of API key {endpoint.api_key_id}"):
            value = aws.client("apigateway").get_api_key(apiKey=endpoint.api_key_id, includeValue=True)["value"]
        return HttpTarget(
            endpoint.infer_url,
            timeout_s=timeout_s,
            headers={"x-api-key": value},
            description=f"{endpoint.infer_url} (API key)",
        )
    credentials = aws.session.get_credentials()
    if credentials is None:
        raise OperateError(
            "no AWS credentials to sign requests with (the API's auth is iam): set AWS_PROFILE or "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        )
    return HttpTarget(
        endpoint.infer_url,
        timeout_s=timeout_s,
        signer=SigV4Signer(credentials, aws.region),
        description=f"{endpoint.infer_url} (SigV4)",
    )
