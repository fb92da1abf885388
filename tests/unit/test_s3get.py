"""The cold start's own SigV4 signer signs exactly as botocore's S3SigV4Auth does, header for header."""

from __future__ import annotations

from datetime import UTC, datetime
from unittest import mock

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials

from functions.inference.s3get import Credentials, environment_client, sign

NOW = datetime(2026, 12, 6, 23, 59, 58, tzinfo=UTC)


def botocore_signed(url: str, headers: dict[str, str], token: str | None, region: str) -> dict[str, str]:
    request = AWSRequest(method="GET", url=url, headers=headers)
    auth = S3SigV4Auth(BotoCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token), "s3", region)
    with mock.patch("botocore.auth.get_current_datetime", return_value=NOW.replace(tzinfo=None)):
        auth.add_auth(request)
    return dict(request.headers.items())


@pytest.mark.parametrize(
    ("url", "headers", "token", "region"),
    [
        (
            "https://artifacts.s3.eu-west-1.amazonaws.com/models/iris/ab12.onnx",
            {},
            "FwoGZXIvYXdzEJr//token=",
            "eu-west-1",
        ),
        (
            "https://artifacts.s3.us-east-1.amazonaws.com/models/mlp/sha%20with%20space%2B.onnx",
            {"Range": "bytes=8388608-16777215", "If-Match": '"9b2cf535f27731c974343645a3985328-3"'},
            "token",
            "us-east-1",
        ),
        ("http://127.0.0.1:5000/modelrail-artifacts/models/iris/x.onnx", {"Range": "bytes=0-1"}, None, "us-east-1"),
        ("https://s3.ap-southeast-2.amazonaws.com/dotted.bucket.name/a/b/c~d_e-f.onnx", {}, "t", "ap-southeast-2"),
    ],
)
def test_signature_matches_botocore_byte_for_byte(
    url: str, headers: dict[str, str], token: str | None, region: str
) -> None:
    ours = sign(
        "GET", url, headers, Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token), region, NOW
    )
    theirs = botocore_signed(url, headers, token, region)

    assert ours["Authorization"] == theirs["Authorization"]
    assert ours == theirs


def test_a_different_secret_or_range_changes_the_signature() -> None:
    url = "https://b.s3.us-east-1.amazonaws.com/k.onnx"
    base = sign("GET", url, {"Range": "bytes=0-9"}, Credentials("AKID", "secret"), "us-east-1", NOW)
    assert sign("GET", url, {"Range": "bytes=0-9"}, Credentials("AKID", "secreT"), "us-east-1", NOW) != base
    assert sign("GET", url, {"Range": "bytes=0-8"}, Credentials("AKID", "secret"), "us-east-1", NOW) != base


def test_environment_client_only_with_credentials_and_region_in_the_environment() -> None:
    full = {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "s", "AWS_SESSION_TOKEN": "t", "AWS_REGION": "eu-west-1"}
    client = environment_client(full)
    assert client is not None
    assert client.url_for("bucket", "models/m.onnx") == "https://bucket.s3.eu-west-1.amazonaws.com/models/m.onnx"
    # SnapStart functions get container credentials instead (AWS_CONTAINER_CREDENTIALS_FULL_URI): boto3's job.
    assert environment_client({k: v for k, v in full.items() if k != "AWS_ACCESS_KEY_ID"}) is None
    assert environment_client({k: v for k, v in full.items() if k != "AWS_REGION"}) is None
    local = environment_client({**full, "AWS_ENDPOINT_URL": "http://127.0.0.1:1/", "AWS_ENDPOINT_URL_S3": "http://h:2"})
    assert local is not None
    assert local.url_for("bucket", "k.onnx") == "http://h:2/bucket/k.onnx"
