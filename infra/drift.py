"""DriftMonitor: the scheduled function that compares captured traffic with each model's baseline, and the
drift alarms that notify an SNS topic.

Drift is about the world, not about a version, so its alarms notify people and never roll anything back. The
same function also publishes the canary analysis during rollouts: CanaryDisagreement (the version being replaced
answers the canary's captured requests again; the deployment group's canary-disagreement alarm watches it), for
which it may invoke the model's function versions and read its alias, and PredictionDivergence (the two versions'
prediction mixes), whose alarm notifies the drift topic like the drift alarms.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from spec.catalog import FEATURE_DRIFT_MAX, NAMESPACE, PREDICTION_DRIFT, Dimension, Env, Metric
from spec.environment import MonitoringSettings
from spec.rollout import ALIAS_NAME

from .artifacts import ArtifactLocation
from .capture import DataCaptureStream
from .inference import support_function
from .nag import acknowledge, logical_id

HANDLER = "monitor.handler.handler"


class DriftMonitor(Construct):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        settings: MonitoringSettings,
        capture: DataCaptureStream,
        baselines: Mapping[str, tuple[ArtifactLocation, str]],
        layer: lambda_.ILayerVersion,
        architecture: str,
    ) -> None:
        """``baselines``: per model, where its baseline.json is and its sha256 (a model without one is not
        monitored: drift and the canary analysis both read its captured data through its baseline's features)."""
        super().__init__(scope, id_)
        self.topic = sns.Topic(self, "DriftTopic", display_name="modelrail drift", enforce_ssl=True)
        for email in settings.notify_emails:
            self.topic.add_subscription(subscriptions.EmailSubscription(email))
        # A topic policy replaces SNS's default one, so CloudWatch needs its own Allow to publish alarm
        # notifications; limited to this account's alarms in this region (the confused-deputy guard SNS documents).
        stack = Stack.of(self)
        alarms = f"arn:{stack.partition}:cloudwatch:{stack.region}:{stack.account}:alarm:*"
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsPublish",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions={
                    "StringEquals": {"aws:SourceAccount": stack.account},
                    "ArnLike": {"aws:SourceArn": alarms},
                },
            )
        )
        acknowledge(
            self.topic,
            "AwsSolutions-SNS2",
            "Drift notifications carry alarm names and states only; CloudWatch alarms cannot publish to a topic "
            "encrypted with the AWS-managed SNS key, and a customer-managed key would cost $1 a month per stack.",
        )

        self._models: list[dict[str, str]] = [
            {"name": name, "baseline_uri": location.uri, "baseline_sha256": sha256}
            for name, (location, sha256) in baselines.items()
        ]
        models = self._models
        self.function, role = support_function(
            self,
            package="monitor",
            handler=HANDLER,
            description="modelrail drift monitor and canary analysis",
            role_description="modelrail drift monitor: read captured data and baselines, publish drift metrics",
            layer=layer,
            architecture=architecture,
            timeout=Duration.seconds(settings.timeout_seconds),
            environment=settings.monitor_environment(
                models_json=Stack.of(self).to_json_string(models), capture_bucket=capture.bucket.bucket_name
            ),
        )
        self.role = role
        capture.grant_read(role)
        for location, _ in baselines.values():
            location.grant_read(role, self)
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": NAMESPACE}},
            )
        )
        acknowledge(
            role,
            "AwsSolutions-IAM5",
            "The monitor lists and reads the capture/ prefix, whose keys Firehose derives from each record; "
            "PutMetricData has no resource-level permissions and is limited to the modelrail namespace by condition.",
            [
                *(f"Action::s3:{a}" for a in ("GetBucket*", "GetObject*", "List*")),
                f"Resource::<{logical_id(capture.bucket)}.Arn>/capture/*",
                "Resource::*",
            ],
        )
        self.schedule = events.Rule(
            self,
            "Schedule",
            description="run the drift monitor",
            schedule=events.Schedule.rate(Duration.minutes(settings.schedule_minutes)),
            targets=[targets.LambdaFunction(self.function, retry_attempts=0)],
        )

        self.settings = settings
        self.models = frozenset(baselines)
        self.alarms: dict[str, list[cloudwatch.Alarm]] = {}

    def watch(
        self, name: str, version: lambda_.IVersion, *, notify: Sequence[cloudwatch.Alarm] = ()
    ) -> list[cloudwatch.Alarm]:
        """The drift alarms of model ``name``, following ``version`` (the one this deploy publishes); ``notify``:
        the model's other alarms that notify the drift topic (prediction-divergence). The monitor gets the model's
        function for the paired canary analysis."""
        self._pair(name, version.lambda_)
        for alarm in notify:
            alarm.add_alarm_action(actions.SnsAction(self.topic))
        settings = self.settings
        dimensions = {Dimension.MODEL_NAME: name, Dimension.MODEL_VERSION: version.version}
        period = Duration.minutes(settings.schedule_minutes)
        self.alarms[name] = [
            self._alarm(
                f"FeatureDrift-{name}",
                FEATURE_DRIFT_MAX,
                dimensions,
                period,
                settings.feature_drift_threshold,
                f"{name}: an input feature drifted from the baseline",
            ),
            self._alarm(
                f"PredictionDrift-{name}",
                PREDICTION_DRIFT,
                dimensions,
                period,
                settings.prediction_drift_threshold,
                f"{name}: predictions drifted from the baseline",
            ),
        ]
        return self.alarms[name]

    def _pair(self, name: str, function: lambda_.IFunction) -> None:
        """The paired canary analysis of model ``name``: its function in MODELS, and the right to read the alias
        ``live`` (which versions a deployment shifts between) and to invoke the function's versions, not the alias
        (whose answers would mix the canary in) and not $LATEST (never deployed)."""
        for entry in self._models:
            if entry["name"] == name:
                entry["function_name"] = function.function_name
        # The environment is rendered at synth: the latest MODELS set wins.
        self.function.add_environment(Env.MODELS.name, Stack.of(self).to_json_string(self._models))
        arn = function.function_arn
        self.role.add_to_policy(
            iam.PolicyStatement(actions=["lambda:GetAlias"], resources=[arn, f"{arn}:{ALIAS_NAME}"])
        )
        self.role.add_to_policy(iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[f"{arn}:*"]))
        self.role.add_to_policy(
            iam.PolicyStatement(
                effect=iam.Effect.DENY,
                actions=["lambda:InvokeFunction"],
                resources=[arn, f"{arn}:{ALIAS_NAME}", f"{arn}:$LATEST"],
            )
        )
        acknowledge(
            self.role,
            "AwsSolutions-IAM5",
            "The paired canary analysis invokes the version being replaced, whose number is known only during the "
            "deployment: any version of the model's own function (the alias and $LATEST explicitly denied).",
            [f"Resource::<{logical_id(function)}.Arn>:*"],
        )

    def _alarm(
        self,
        id_: str,
        metric: Metric,
        dimensions: dict[str, str],
        period: Duration,
        threshold: float,
        description: str,
    ) -> cloudwatch.Alarm:
        alarm = cloudwatch.Alarm(
            self,
            id_,
            alarm_description=f"{description} (PSI above {threshold:g}); notifies, never rolls back",
            metric=cloudwatch.Metric(
                namespace=metric.namespace,
                metric_name=metric.name,
                dimensions_map=dimensions,
                statistic="Maximum",
                period=period,
            ),
            threshold=threshold,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=1,
            datapoints_to_alarm=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,  # no traffic is not drift
        )
        alarm.add_alarm_action(actions.SnsAction(self.topic))
        return alarm
