"""LocalEnvironment: bundles deployed the way a real deployment does, on the embedded AWS, behind the gateway.

Each bundle's model is uploaded content-addressed to the artifacts bucket, and its function environment
carries MODEL_URI and MODEL_SHA256, exactly as the CDK stack sets them; the worker then fetches and verifies
the artifact itself at its cold start.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.bundle import ModelBundle

from .aws import ARTIFACT_BUCKET, EmbeddedAWS
from .gateway import LocalGateway, Observer
from .worker import LambdaWorker


@dataclass
class DeployedModel:
    bundle: ModelBundle
    uri: str
    sha256: str
    environment: dict[str, str] = field(default_factory=dict)


def function_environment(bundle: ModelBundle, uri: str, sha256: str) -> dict[str, str]:
    """The inference function's configuration for one model: what makes every model change a new version."""
    return {
        "MODEL_NAME": bundle.name,
        "MODEL_URI": uri,
        "MODEL_SHA256": sha256,
        "MAX_BATCH_ROWS": str(bundle.settings.max_batch_rows),
    }


class LocalEnvironment:
    """Context manager: embedded AWS + one Lambda worker per model + the gateway on ``host:port``."""

    def __init__(
        self,
        bundles: Iterable[ModelBundle],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        observer: Observer | None = None,
    ) -> None:
        self.bundles = list(bundles)
        names = [b.name for b in self.bundles]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f'two bundles are both named {duplicates[0]!r}; set "name" in one\'s modelrail.json')
        self.host, self.port, self.observer = host, port, observer
        self.aws = EmbeddedAWS()
        self.workers: dict[str, LambdaWorker] = {}
        self.gateway: LocalGateway | None = None
        self._stack = contextlib.ExitStack()
        self._tmp = Path(tempfile.mkdtemp(prefix="modelrail-"))

    @property
    def url(self) -> str:
        assert self.gateway is not None, "start() first"
        return self.gateway.url

    def deploy(self, bundle: ModelBundle) -> DeployedModel:
        """Upload the bundle's model content-addressed (as the CDK asset does) and describe its function."""
        s3 = self.aws.client("s3")
        key = bundle.artifact_key()
        s3.upload_file(str(bundle.model_path), ARTIFACT_BUCKET, key)
        sha256 = bundle.sha256()
        uri = f"s3://{ARTIFACT_BUCKET}/{key}"
        return DeployedModel(bundle, uri, sha256, function_environment(bundle, uri, sha256))

    def worker_environment(self, function_env: dict[str, str], version: str, name: str) -> dict[str, str]:
        """A Lambda execution environment's variables: the function's, the runtime's, the local AWS's."""
        return {
            **self.aws.environment(),
            **function_env,
            "AWS_LAMBDA_FUNCTION_NAME": f"modelrail-{name}",
            "AWS_LAMBDA_FUNCTION_VERSION": version,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
            "MODEL_CACHE_DIR": str(self._tmp / f"{name}-{version}"),  # each environment has its own /tmp
            "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon locally
        }

    def start(self) -> LocalEnvironment:
        try:
            self._stack.callback(self._cleanup)
            self.aws.start()
            self._stack.callback(self.aws.stop)
            self.aws.client("s3").create_bucket(Bucket=ARTIFACT_BUCKET)
            for bundle in self.bundles:
                deployed = self.deploy(bundle)
                env = self.worker_environment(deployed.environment, "1", bundle.name)
                worker = LambdaWorker(f"modelrail-{bundle.name}", env)
                self._stack.callback(worker.stop)
                self.workers[bundle.name] = worker.start()
            targets: dict[str, Any] = dict(self.workers)
            self.gateway = LocalGateway(targets, host=self.host, port=self.port, observer=self.observer)
            self.gateway.start()
            self._stack.callback(self.gateway.stop)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        self._stack.close()

    def _cleanup(self) -> None:
        import shutil

        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> LocalEnvironment:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
