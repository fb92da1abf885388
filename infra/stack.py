"""ModelrailStack: one environment's deployment, composed from the constructs; differences come only from
its EnvironmentSpec (the stack never asks which environment it is)."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from spec.environment import EnvironmentSpec
from spec.models import DeployedModel
from spec.rollout import ALIAS_NAME, Hotfix

from .api import ApiGatewayAccount, InferenceApi
from .artifacts import ModelArtifacts
from .capture import DataCaptureStream
from .dashboard import ModelDashboard
from .drift import DriftMonitor
from .inference import InferenceFunction
from .layer import LayerArtifact, RuntimeLayer
from .nag import suppress_reviewed_findings
from .rollout import Rollout


class ModelService(Construct):
    """One model end to end: function + version + alias, rollout, API, dashboard."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        model: DeployedModel,
        artifacts: ModelArtifacts,
        runtime: RuntimeLayer,
        environment: EnvironmentSpec,
        hotfix: Hotfix | None = None,
        capture: DataCaptureStream | None = None,
        drift: DriftMonitor | None = None,
    ) -> None:
        super().__init__(scope, id_)
        self.model = model
        artifact = artifacts.locations[model.name]
        self.inference = InferenceFunction(
            self,
            "Inference",
            model=model,
            artifact=artifact,
            layer=runtime.layer,
            settings=environment.function,
            capture_stream=capture.stream_name if capture else None,
            capture_sample_rate=environment.monitoring.sample_rate,
        )
        artifact.grant_read_versions(self.inference.role, self)
        if capture is not None:
            capture.grant_put(self.inference.role)
        acceptance = artifacts.acceptance_locations.get(model.name)
        self.rollout = Rollout(
            self,
            "Rollout",
            model=model,
            function=self.inference.function,
            version=self.inference.version,
            alias=self.inference.alias,
            policy=environment.rollout,
            alarms=environment.alarm_definitions(),
            acceptance_uri=acceptance.uri if acceptance else None,
            layer=runtime.layer,
            architecture=environment.function.architecture,
            hotfix=hotfix,
            capture_bucket=capture.bucket.bucket_name if capture else None,
        )
        if acceptance is not None:
            acceptance.grant_read(self.rollout.hooks.pre_traffic, self)
        if capture is not None:  # the gate replays the replaced version's captured requests
            capture.grant_read_model(self.rollout.hooks.pre_traffic, model.name)
        self.api = InferenceApi(
            self,
            "Api",
            model_name=model.name,
            alias=self.inference.alias,
            settings=environment.api,
            tracing=environment.function.tracing,
        )
        notify = [self.rollout.alarms[d.name] for d in self.rollout.definitions if not d.stops_rollout]
        drift_alarms = (
            drift.watch(model.name, self.inference.version, notify=notify)
            if drift and model.name in drift.models
            else []
        )
        self.dashboard = ModelDashboard(
            self,
            "Monitoring",
            model_name=model.name,
            function=self.inference.function,
            alarms=list(self.rollout.alarms.values()),
            drift_alarms=drift_alarms,
        )


class ModelrailStack(Stack):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        environment: EnvironmentSpec,
        models: Sequence[DeployedModel],
        layer: LayerArtifact,
        hotfix: Hotfix | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, id_, **kwargs)  # type: ignore[arg-type]
        self.environment_spec = environment
        self.hotfix = hotfix
        self.artifacts = ModelArtifacts(self, "Artifacts", models=models)
        self.runtime = RuntimeLayer(self, "Runtime", artifact=layer)
        monitoring = environment.monitoring
        self.capture: DataCaptureStream | None = None
        self.drift: DriftMonitor | None = None
        if monitoring.capture:
            self.capture = DataCaptureStream(
                self,
                "Capture",
                retention_days=monitoring.capture_retention_days,
                access_logs=self.artifacts.access_logs,
            )
            baselines = {
                m.name: (self.artifacts.baseline_locations[m.name], m.baseline_sha256)
                for m in models
                if m.baseline_sha256 is not None and m.name in self.artifacts.baseline_locations
            }
            if baselines:
                self.drift = DriftMonitor(
                    self,
                    "Drift",
                    settings=monitoring,
                    capture=self.capture,
                    baselines=baselines,
                    layer=self.runtime.layer,
                    architecture=environment.function.architecture,
                )
                CfnOutput(self, "DriftTopic", value=self.drift.topic.topic_arn, description="drift alarms notify it")
        self.services: dict[str, ModelService] = {}
        for model in models:
            service = ModelService(
                self,
                f"Model-{model.name}",
                model=model,
                artifacts=self.artifacts,
                runtime=self.runtime,
                environment=environment,
                hotfix=hotfix,
                capture=self.capture,
                drift=self.drift,
            )
            self.services[model.name] = service
            CfnOutput(self, f"InvokeUrl-{model.name}", value=service.api.url, description=f"{model.name}: API base URL")
            CfnOutput(
                self,
                f"InferUrl-{model.name}",
                value=f"{service.api.url}v2/models/{model.name}/infer",
                description=f"{model.name}: POST an Open Inference Protocol request here",
            )
            if service.api.api_key is not None:
                CfnOutput(
                    self,
                    f"ApiKeyId-{model.name}",
                    value=service.api.api_key.key_id,
                    description="aws apigateway get-api-key --include-value --api-key <id>",
                )
            CfnOutput(
                self, f"DeploymentGroup-{model.name}", value=service.rollout.deployment_group.deployment_group_name
            )
            self._operations_outputs(service)
        if hotfix is not None:
            CfnOutput(
                self,
                "Hotfix",
                value=f"requested by {hotfix.requested_by}: {hotfix.reason}",
                description="this deploy shifts traffic all at once (-c modelrail.hotfix); the gate still runs",
            )
        suppress_reviewed_findings(self, artifacts_bucket=self.artifacts.bucket)

    def _operations_outputs(self, service: ModelService) -> None:
        """What `modelrail status`, `rollback` and `history` find a model's resources by (and humans too)."""
        name, rollout = service.model.name, service.rollout
        group = rollout.deployment_group
        function_name = service.inference.function.function_name
        application_name = group.application.application_name
        CfnOutput(self, f"FunctionName-{name}", value=function_name, description=f"{name}: inference function")
        CfnOutput(self, f"CodeDeployApplication-{name}", value=application_name, description=f"{name}: CodeDeploy app")
        CfnOutput(
            self,
            f"Operations-{name}",
            # One JSON value per model: output keys lose the model name's punctuation, this value keeps it.
            value=self.to_json_string(
                {
                    "model": name,
                    "function": function_name,
                    "alias": ALIAS_NAME,
                    "application": application_name,
                    "deploymentGroup": group.deployment_group_name,
                    "deploymentConfig": group.deployment_config.deployment_config_name,
                    "alarms": {alarm_name: alarm.alarm_name for alarm_name, alarm in rollout.alarms.items()},
                }
            ),
            description=f"{name}: read by modelrail status, rollback and history",
        )


class ApiAccountStack(Stack):
    """What API Gateway keeps once per account and region (its logging role), shared by every environment there."""

    def __init__(self, scope: Construct, id_: str, **kwargs: object) -> None:
        super().__init__(scope, id_, **kwargs)  # type: ignore[arg-type]
        self.account_settings = ApiGatewayAccount(self, "ApiGateway")
