"""EmbeddedAWS: moto's server on loopback, standing in for S3 (and friends) with no account and no network."""

from __future__ import annotations

import logging
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

REGION = "us-east-1"
ARTIFACT_BUCKET = "modelrail-artifacts"
# moto accepts any credentials; these keep boto3 from looking for real ones (or reaching for a real account).
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "modelrail-local",
    "AWS_SECRET_ACCESS_KEY": "modelrail-local",
    "AWS_SESSION_TOKEN": "modelrail-local",
}


class EmbeddedAWS:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
        self.endpoint_url = ""

    def start(self) -> EmbeddedAWS:
        # werkzeug logs every request moto serves; the local environment has its own log.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> EmbeddedAWS:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def environment(self) -> dict[str, str]:
        """What a process needs to talk to this AWS: the endpoint, a region and throwaway credentials."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            **CREDENTIALS,
        }

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=CREDENTIALS["AWS_SESSION_TOKEN"],
        )
