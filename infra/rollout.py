"""Rollout: CodeDeploy shifts the alias ``live`` to the new version per the environment's RolloutPolicy,
behind the pre-traffic hook, watched by alarms scoped to the new version, rolling back on its own.

The alarms are the spec's AlarmDefinitions turned into CloudWatch alarms: the same data the rehearsal evaluates.
Their dimensions name the version this synth publishes, so a deployment is never judged (or blocked) by the
version it replaces, and an idle canary (no data) is neither rolled back nor held.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_codedeploy as codedeploy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from .inference import RUNTIME, functions_code
from .nag import acknowledge, acknowledge_python_runtime, logical_id, managed_policy
from .spec import AlarmDefinition, RolloutPolicy

HOOK_HANDLER = "acceptance.hook.handler"
_TREAT_MISSING = {
    "notBreaching": cloudwatch.TreatMissingData.NOT_BREACHING,
    "breaching": cloudwatch.TreatMissingData.BREACHING,
    "ignore": cloudwatch.TreatMissingData.IGNORE,
    "missing": cloudwatch.TreatMissingData.MISSING,
}
_COMPARISON = {
    "GreaterThanThreshold": cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
    "GreaterThanOrEqualToThreshold": cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    "LessThanThreshold": cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
    "LessThanOrEqualToThreshold": cloudwatch.ComparisonOperator.LESS_THAN_OR_EQUAL_TO_THRESHOLD,
}


def deployment_config(scope: Construct, id_: str, policy: RolloutPolicy) -> codedeploy.ILambdaDeploymentConfig:
    """The CodeDeploy configuration for a RolloutPolicy: custom for canary and linear, so any P% / M min works."""
    if policy.kind == "all_at_once":
        return codedeploy.LambdaDeploymentConfig.ALL_AT_ONCE
    assert policy.percentage is not None
    assert policy.interval_minutes is not None
    interval = Duration.minutes(policy.interval_minutes)
    routing: codedeploy.TrafficRouting
    if policy.kind == "canary":
        routing = codedeploy.TrafficRouting.time_based_canary(interval=interval, percentage=policy.percentage)
    else:
        routing = codedeploy.TrafficRouting.time_based_linear(interval=interval, percentage=policy.percentage)
    return codedeploy.LambdaDeploymentConfig(scope, id_, traffic_routing=routing)


def version_alarm(
    scope: Construct,
    id_: str,
    definition: AlarmDefinition,
    *,
    model_name: str,
    function: lambda_.IFunction,
    version: lambda_.IVersion,
) -> cloudwatch.Alarm:
    """One AlarmDefinition as a CloudWatch alarm on ``version`` (its number, a token at synth)."""
    period = Duration.seconds(definition.period_seconds)
    metrics = {
        query.id: cloudwatch.Metric(
            namespace=query.namespace,
            metric_name=query.metric_name,
            statistic=query.statistic,
            period=period,
            dimensions_map=query.dimensions(
                model_name=model_name, function_name=function.function_name, version=version.version
            ),
        )
        for query in definition.metrics
    }
    watched: cloudwatch.IMetric
    if definition.expression is not None:
        watched = cloudwatch.MathExpression(
            expression=definition.expression, using_metrics=metrics, period=period, label=definition.name
        )
    else:
        watched = metrics[definition.metrics[0].id]
    return cloudwatch.Alarm(
        scope,
        id_,
        alarm_description=f"{model_name}: {definition.description} (modelrail rollout alarm {definition.name})",
        metric=watched,
        threshold=definition.threshold,
        comparison_operator=_COMPARISON[definition.comparison_operator],
        evaluation_periods=definition.evaluation_periods,
        datapoints_to_alarm=definition.datapoints_to_alarm,
        treat_missing_data=_TREAT_MISSING[definition.treat_missing_data],
    )


class AcceptanceHook(Construct):
    """The pre-traffic hook: told the new version's ARN through its environment (CodeDeploy does not say)."""

    def __init__(self, scope: Construct, id_: str, *, model_name: str, version: lambda_.IVersion) -> None:
        super().__init__(scope, id_)
        self.log_group = logs.LogGroup(
            self, "Logs", retention=logs.RetentionDays.ONE_MONTH, removal_policy=RemovalPolicy.DESTROY
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"modelrail acceptance hook for model {model_name}: invoke the new version, report",
        )
        self.function = lambda_.Function(
            self,
            "Function",
            description=f"modelrail pre-traffic acceptance gate: model {model_name}",
            runtime=RUNTIME,
            handler=HOOK_HANDLER,
            code=functions_code(without="inference"),
            timeout=Duration.minutes(5),
            memory_size=256,
            role=self.role,
            log_group=self.log_group,
            environment={"MODEL_NAME": model_name, "NEW_VERSION_ARN": version.function_arn},
        )
        self.log_group.grant_write(self.role)
        acknowledge_python_runtime(self.function)


class Rollout(Construct):
    """Deployment group + alarms + hook for one model's alias."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        model_name: str,
        function: lambda_.IFunction,
        version: lambda_.IVersion,
        alias: lambda_.Alias,
        policy: RolloutPolicy,
        alarms: Sequence[AlarmDefinition],
    ) -> None:
        super().__init__(scope, id_)
        self.policy = policy
        self.definitions = tuple(alarms)
        self.alarms = {
            d.name: version_alarm(self, f"Alarm-{d.name}", d, model_name=model_name, function=function, version=version)
            for d in self.definitions
        }
        self.hook = AcceptanceHook(self, "Hook", model_name=model_name, version=version)
        self.deployment_group = codedeploy.LambdaDeploymentGroup(
            self,
            "DeploymentGroup",
            alias=alias,
            deployment_config=deployment_config(self, "Config", policy),
            alarms=[self.alarms[d.name] for d in self.definitions if d.stops_rollout],
            pre_hook=self.hook.function,
            auto_rollback=codedeploy.AutoRollbackConfig(
                failed_deployment=True, stopped_deployment=True, deployment_in_alarm=True
            ),
        )
        # The alias update is the deployment: the alarms must already watch the new version when it starts.
        # (The hook needs no such line: the alias's UpdatePolicy refers to it.)
        for alarm in self.alarms.values():
            alias.node.add_dependency(alarm)
        # The hook may invoke the version it tests.
        version.grant_invoke(self.hook.function)
        acknowledge(
            self.deployment_group,
            "AwsSolutions-IAM4",
            "AWSCodeDeployRoleForLambdaLimited is AWS's minimal policy for Lambda deployments (update the alias, "
            "read alarms); CDK attaches it to the deployment group's service role.",
            [managed_policy("AWSCodeDeployRoleForLambdaLimited")],
        )
        acknowledge(
            self.deployment_group,
            "AwsSolutions-IAM5",
            "CodeDeploy may invoke the hook function qualified by version (<hook ARN>:*), and only that function.",
            [f"Resource::<{logical_id(self.hook.function)}.Arn>:*"],
        )
