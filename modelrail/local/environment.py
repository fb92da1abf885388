"""LocalEnvironment: bundles deployed the way a real deployment does, on the embedded AWS, behind the gateway.

Each bundle's model is uploaded content-addressed to the artifacts bucket, and its function environment
carries MODEL_URI and MODEL_SHA256, exactly as the CDK stack sets them; each worker then fetches and verifies
the artifact itself at its cold start.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from spec.bundle import ModelBundle
from spec.catalog import Env
from spec.environment import FunctionSettings, MonitoringSettings
from spec.models import DeployedModel

from .aws import ARTIFACT_BUCKET, EmbeddedAWS
from .firehose import LocalFirehose
from .gateway import LocalGateway, Observer
from .permissions import LocalRoles
from .versions import VersionedTarget, assign_versions
from .worker import TIMEOUT_VARIABLE, LambdaWorker

DRIFT_MONITOR = "modelrail-drift-monitor"
LOCAL_CAPTURE_STREAM = "modelrail-local-capture"
DRIFT_MONITOR_HANDLER = "functions.monitor.handler.handler"
_TIMELINES = itertools.count(1)  # rollouts rehearsed in this process, on any LocalCloud: see new_timeline
# What infra/inference.py deploys when the environment sets no function.timeout_seconds.
DEFAULT_TIMEOUT_SECONDS: float = FunctionSettings.model_fields["timeout_seconds"].default


@dataclass(frozen=True)
class LocalDeployment:
    """A model uploaded to the embedded S3, and its function's configuration as the CDK stack sets it."""

    model: DeployedModel
    uri: str

    @property
    def environment(self) -> dict[str, str]:
        return self.model.environment(self.uri)


def execution_environment(
    aws: dict[str, str],
    function: dict[str, str],
    *,
    version: str,
    cache_dir: Path,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
) -> dict[str, str]:
    """A Lambda execution environment's variables: the local AWS's, the function's, and the runtime's (with the
    function's timeout, which the worker enforces as Lambda does)."""
    return {
        **aws,
        **function,
        "AWS_LAMBDA_FUNCTION_NAME": f"modelrail-{function[Env.MODEL_NAME.name]}",
        Env.FUNCTION_VERSION.name: version,
        Env.FUNCTION_MEMORY_SIZE.name: "1024",  # the spec's default memory_mb: 0.58 of a vCPU, one intra-op thread
        Env.MODEL_CACHE_DIR.name: str(cache_dir),  # each environment has its own /tmp
        Env.POWERTOOLS_TRACE_DISABLED.name: "true",  # no X-Ray daemon locally
        TIMEOUT_VARIABLE: str(timeout_seconds),
    }


class LocalCloud:
    """The embedded AWS with the artifacts bucket, and the Lambda workers started on it; stops all of it."""

    def __init__(self, capture_dir: Path | None = None) -> None:
        """``capture_dir``: a copy of every capture object the streams deliver lands here, under its key."""
        self.capture_dir = capture_dir
        self.aws = EmbeddedAWS()
        self._stack = contextlib.ExitStack()
        self._tmp = Path(tempfile.mkdtemp(prefix="modelrail-"))
        self.roles = LocalRoles(self._tmp / "roles", bucket=ARTIFACT_BUCKET)  # what each deploy grants its function

    def start(self) -> LocalCloud:
        self._stack.callback(shutil.rmtree, self._tmp, ignore_errors=True)
        self.aws.start()
        self._stack.callback(self.aws.stop)
        self.aws.client("s3").create_bucket(Bucket=ARTIFACT_BUCKET)
        return self

    def stop(self) -> None:
        self._stack.close()

    def __enter__(self) -> LocalCloud:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def on_stop(self, callback: Any) -> None:
        self._stack.callback(callback)

    def deploy(self, bundle: ModelBundle) -> LocalDeployment:
        """Upload the bundle's model content-addressed (as the CDK asset does) and describe its function."""
        model = DeployedModel.of_bundle(bundle)
        self.aws.client("s3").upload_file(str(bundle.model_path), ARTIFACT_BUCKET, model.artifact_key)
        self.roles.deploy(model)
        return LocalDeployment(model, f"s3://{ARTIFACT_BUCKET}/{model.artifact_key}")

    def start_worker(
        self,
        deployed: LocalDeployment,
        version: str,
        *,
        capture_stream: str | None = None,
        sample_rate: float = 0.0,
        clock: tuple[float, float, float] | None = None,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> LambdaWorker:
        """One execution environment of the function at ``version``: its own variables, its own /tmp; with
        ``capture_stream``, data capture configured as the stack configures it; ``clock``: see LambdaWorker;
        ``timeout_seconds``: the function's timeout (function.timeout_seconds), after which an invocation is a
        Sandbox.Timedout function error and the environment is replaced."""
        name = deployed.model.name
        function = deployed.model.environment(deployed.uri, capture_stream=capture_stream, sample_rate=sample_rate)
        environment = execution_environment(
            self.aws.environment(),
            function,
            version=version,
            cache_dir=self._tmp / f"{name}-{version}",
            timeout_seconds=timeout_seconds,
        )
        worker = LambdaWorker(f"modelrail-{name}", environment, role=self.roles.path(name), clock=clock)
        self._stack.callback(worker.stop)
        return worker.start()

    def new_timeline(self) -> datetime:
        """The rehearsed date a new rollout starts at: a week after the previous one's in this process. Rollouts
        rehearsed in one process share its CloudWatch and S3 (moto keeps one set of backends per process, whatever
        server serves it, so every LocalCloud of the process has the same data), and each one's monitor windows must
        hold its own data only."""
        return datetime.now(UTC) + timedelta(days=7 * next(_TIMELINES))

    def upload_baseline(self, deployed: LocalDeployment) -> dict[str, str] | None:
        """Upload the bundle's baseline.json content-addressed beside its model (as the CDK asset does); the model's
        entry in the drift monitor's MODELS, None when the bundle has no baseline (the monitor does not watch it)."""
        model = deployed.model
        if model.baseline_key is None or model.baseline_sha256 is None or model.bundle is None:
            return None
        if model.bundle.baseline_path is None:
            return None
        self.aws.client("s3").upload_file(str(model.bundle.baseline_path), ARTIFACT_BUCKET, model.baseline_key)
        uri = f"s3://{ARTIFACT_BUCKET}/{model.baseline_key}"
        return {"name": model.name, "baseline_uri": uri, "baseline_sha256": model.baseline_sha256}

    def start_capture_stream(self, name: str, now: Callable[[], datetime]) -> LocalFirehose:
        """A data capture stream and its own capture bucket (``name``-bucket), delivering on the clock ``now``."""
        stream = LocalFirehose(self.aws, name=name, bucket=f"{name}-bucket", now=now, mirror=self.capture_dir).start()
        self._stack.callback(stream.stop)
        return stream

    def start_drift_monitor(
        self,
        models: list[dict[str, str]],
        *,
        capture_bucket: str,
        monitoring: MonitoringSettings,
        clock: tuple[float, float, float] | None = None,
        endpoints: dict[str, str] | None = None,
    ) -> LambdaWorker:
        """The drift monitor function (it also publishes the canary analysis) with the environment the DriftMonitor
        construct gives it: ``models`` as its MODELS ({name, baseline_uri, baseline_sha256, function_name?} each);
        ``endpoints``: service-specific endpoint variables (``AWS_ENDPOINT_URL_LAMBDA``: who answers its Lambda
        calls, the rehearsal's local Lambda API)."""
        function = monitoring.monitor_environment(models_json=json.dumps(models), capture_bucket=capture_bucket)
        environment = {**self.aws.environment(), **function, **(endpoints or {})}
        environment["AWS_LAMBDA_FUNCTION_NAME"] = DRIFT_MONITOR
        environment[TIMEOUT_VARIABLE] = str(monitoring.timeout_seconds)  # as infra/drift.py deploys it
        worker = LambdaWorker(DRIFT_MONITOR, environment, DRIFT_MONITOR_HANDLER, clock=clock)
        self._stack.callback(worker.stop)
        return worker.start()


class LocalEnvironment:
    """Context manager: the local cloud, one worker per model version (bundles of one model are its versions,
    modelrail.local.versions), the gateway on ``host:port``; with ``capture_dir``, data capture of every answered
    request through the local stream into that folder, in the deployed layout."""

    def __init__(
        self,
        bundles: Iterable[ModelBundle],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        observer: Observer | None = None,
        capture_dir: Path | None = None,
    ) -> None:
        self.bundles = list(bundles)
        self.versions = assign_versions(self.bundles)  # VersionClash (one line) before anything starts
        self.host, self.port, self.observer = host, port, observer
        self.capture_dir = capture_dir
        self.cloud = LocalCloud(capture_dir)
        self.workers: dict[str, LambdaWorker] = {}  # the newest version of each model
        self.version_workers: dict[str, dict[str, LambdaWorker]] = {}
        self.gateway: LocalGateway | None = None

    @property
    def url(self) -> str:
        assert self.gateway is not None, "start() first"
        return self.gateway.url

    def start(self) -> LocalEnvironment:
        try:
            self.cloud.start()
            capture: dict[str, Any] = {}
            if self.capture_dir is not None:
                # Every answer captured (sample rate 1): a local capture folder is for trying the data loop.
                stream = self.cloud.start_capture_stream(LOCAL_CAPTURE_STREAM, lambda: datetime.now(UTC))
                capture = {"capture_stream": stream.name, "sample_rate": 1.0}
            targets: dict[str, Any] = {}
            for name, served in self.versions.items():
                workers = {
                    s.version: self.cloud.start_worker(self.cloud.deploy(s.bundle), s.version, **capture)
                    for s in served
                }
                self.version_workers[name] = workers
                self.workers[name] = workers[served[-1].version]
                targets[name] = (
                    workers[served[-1].version] if len(workers) == 1 else VersionedTarget(workers, served[-1].version)
                )
            self.gateway = LocalGateway(targets, host=self.host, port=self.port, observer=self.observer).start()
            self.cloud.on_stop(self.gateway.stop)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        self.cloud.stop()

    def __enter__(self) -> LocalEnvironment:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
