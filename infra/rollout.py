"""Rollout: CodeDeploy shifts the alias ``live`` to the new version per the environment's RolloutPolicy,
behind the acceptance gate (pre-traffic hook), watched by alarms scoped to the new version, rolling back on
its own; the post-traffic hook checks the alias then serves the new version.

The alarms are the spec's AlarmDefinitions turned into CloudWatch alarms: the same data the rehearsal evaluates.
Their dimensions name the version this synth publishes, so a deployment is never judged (or blocked) by the
version it replaces, and an idle canary (no data) is neither rolled back nor held.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import CfnResource, CustomResource, Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_codedeploy as codedeploy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from spec.alarms import AlarmDefinition
from spec.models import DeployedModel
from spec.rollout import ALIAS_NAME, HOTFIX_CONFIG_SUFFIX, Hotfix, RolloutPolicy

from .inference import support_function
from .nag import acknowledge, logical_id, managed_policy

PRE_TRAFFIC_HANDLER = "acceptance.pretraffic.handler"
POST_TRAFFIC_HANDLER = "acceptance.posttraffic.handler"
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


def hotfix_config(scope: Construct, id_: str, *, model_name: str) -> codedeploy.ILambdaDeploymentConfig:
    """All at once, under its own name (``<stack>-<model>-hotfix``): distinct from CodeDeploy's default in the
    template and in every deployment it makes, which is how ``modelrail history`` tells a hotfix apart."""
    name = f"{Stack.of(scope).stack_name}-{model_name}"[: 100 - len(HOTFIX_CONFIG_SUFFIX)] + HOTFIX_CONFIG_SUFFIX
    return codedeploy.LambdaDeploymentConfig(
        scope, id_, deployment_config_name=name, traffic_routing=codedeploy.TrafficRouting.all_at_once()
    )


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


class AcceptanceHooks(Construct):
    """CodeDeploy's lifecycle hooks: the acceptance gate before traffic, the alias check after it.

    CodeDeploy does not say which version is new: both learn it from NEW_VERSION_ARN in their environment.
    Both always report their status to CodeDeploy (functions/acceptance), so a crash fails the deployment
    instead of stalling it for an hour.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        model: DeployedModel,
        function: lambda_.IFunction,
        version: lambda_.IVersion,
        acceptance_uri: str | None,
        layer: lambda_.ILayerVersion,
        architecture: str,
        capture_bucket: str | None = None,
    ) -> None:
        super().__init__(scope, id_)
        self._layer, self._architecture, self._model_name = layer, architecture, model.name
        self.pre_traffic = self._hook(
            "PreTraffic",
            handler=PRE_TRAFFIC_HANDLER,
            description=f"modelrail acceptance gate (pre-traffic): model {model.name}",
            environment=model.hook_environment(
                new_version_arn=version.function_arn, acceptance_uri=acceptance_uri, capture_bucket=capture_bucket
            ),
            timeout=Duration.minutes(10),
        )
        self.post_traffic = self._hook(
            "PostTraffic",
            handler=POST_TRAFFIC_HANDLER,
            description=f"modelrail alias check (post-traffic): model {model.name}",
            environment=model.post_traffic_environment(new_version_arn=version.function_arn),
            timeout=Duration.minutes(2),
        )
        # The gate invokes the new version, and the version the alias serves now for its signature (any
        # version number of this one function: "<function ARN>:*"); it reads the alias to find that version.
        self.pre_traffic.add_to_role_policy(
            iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[f"{function.function_arn}:*"])
        )
        # The alias's ARN is spelled out, not referenced: the alias's UpdatePolicy already depends on the hooks.
        alias_arn = f"{function.function_arn}:{ALIAS_NAME}"
        self.pre_traffic.add_to_role_policy(iam.PolicyStatement(actions=["lambda:GetAlias"], resources=[alias_arn]))
        assert self.pre_traffic.role is not None
        acknowledge(
            self.pre_traffic.role,
            "AwsSolutions-IAM5",
            "The gate invokes versions of this one function by number (the new one, and the one live serves now); "
            "the number is only known at deploy time.",
            [f"Resource::<{logical_id(function)}.Arn>:*"],
        )
        self.post_traffic.add_to_role_policy(
            iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[alias_arn])
        )

    def _hook(
        self,
        id_: str,
        *,
        handler: str,
        description: str,
        environment: dict[str, str],
        timeout: Duration,
    ) -> lambda_.Function:
        function, _ = support_function(
            Construct(self, id_),
            package="acceptance",
            handler=handler,
            description=description,
            role_description=f"modelrail {id_} hook for model {self._model_name}",
            layer=self._layer,
            architecture=self._architecture,
            timeout=timeout,
            environment=environment,
        )
        return function


class Rollout(Construct):
    """Deployment group + alarms + hooks for one model's alias.

    ``hotfix``: this deploy shifts traffic all at once under the hotfix config; hooks and alarms stay as they are.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        model: DeployedModel,
        function: lambda_.IFunction,
        version: lambda_.IVersion,
        alias: lambda_.Alias,
        policy: RolloutPolicy,
        alarms: Sequence[AlarmDefinition],
        acceptance_uri: str | None,
        layer: lambda_.ILayerVersion,
        architecture: str,
        hotfix: Hotfix | None = None,
        capture_bucket: str | None = None,
    ) -> None:
        super().__init__(scope, id_)
        self.policy = policy
        self.hotfix = hotfix
        self.definitions = tuple(alarms)
        self.alarms = {
            d.name: version_alarm(self, f"Alarm-{d.name}", d, model_name=model.name, function=function, version=version)
            for d in self.definitions
        }
        self.hooks = AcceptanceHooks(
            self,
            "Hooks",
            model=model,
            function=function,
            version=version,
            acceptance_uri=acceptance_uri,
            layer=layer,
            architecture=architecture,
            capture_bucket=capture_bucket,
        )
        self.deployment_group = codedeploy.LambdaDeploymentGroup(
            self,
            "DeploymentGroup",
            alias=alias,
            deployment_config=(
                hotfix_config(self, "HotfixConfig", model_name=model.name)
                if hotfix is not None
                else deployment_config(self, "Config", policy)
            ),
            alarms=[self.alarms[d.name] for d in self.definitions if d.stops_rollout],
            pre_hook=self.hooks.pre_traffic,
            post_hook=self.hooks.post_traffic,
            auto_rollback=codedeploy.AutoRollbackConfig(
                failed_deployment=True, stopped_deployment=True, deployment_in_alarm=True
            ),
        )
        # The alias update is the deployment: the alarms must already watch the new version when it starts, and
        # the hooks must exist, updated to judge this version. CloudFormation orders resources by what their
        # Properties refer to, and the alias names the hooks only in its UpdatePolicy: so each is a DependsOn.
        for alarm in self.alarms.values():
            alias.node.add_dependency(alarm)
        alias.node.add_dependency(self.hooks.pre_traffic, self.hooks.post_traffic)
        assert isinstance(alias.node.default_child, CfnResource)
        alias.node.default_child.add_metadata(
            "cfn-lint",
            # W3005 takes the UpdatePolicy's Refs for an implicit dependency; CloudFormation documents ordering only
            # for references in Properties (DependsOn attribute), so the explicit DependsOn stays.
            {"config": {"ignore_checks": ["W3005"]}},
        )
        # A first deploy creates the alias directly, with no CodeDeploy deployment and so no pre-traffic hook:
        # the same gate runs first as a custom resource, and a failing gate fails the stack's creation.
        self.first_deploy_gate = CustomResource(
            self,
            "FirstDeployGate",
            service_token=self.hooks.pre_traffic.function_arn,
            resource_type="Custom::ModelrailAcceptanceGate",
            properties={"VersionArn": version.function_arn, "Model": model.name},
        )
        alias.node.add_dependency(self.first_deploy_gate)
        # The hooks read the deployment's AppSpec to check which version it shifts to (codedeploy:GetDeployment
        # authorizes on the deployment group; spelled with the application's name and a wildcard group, since the
        # group itself refers to the hooks).
        stack = Stack.of(self)
        group_arns = (
            f"arn:{stack.partition}:codedeploy:{stack.region}:{stack.account}:deploymentgroup:"
            f"{self.deployment_group.application.application_name}/*"
        )
        for hook in (self.hooks.pre_traffic, self.hooks.post_traffic):
            hook.add_to_role_policy(iam.PolicyStatement(actions=["codedeploy:GetDeployment"], resources=[group_arns]))
            assert hook.role is not None
            acknowledge(
                hook.role,
                "AwsSolutions-IAM5",
                "GetDeployment authorizes on the deployment group, which refers to this hook: the group is matched "
                "by wildcard within this model's own CodeDeploy application.",
                [
                    "Resource::arn:<AWS::Partition>:codedeploy:<AWS::Region>:<AWS::AccountId>:deploymentgroup:"
                    f"<{logical_id(self.deployment_group.application)}>/*"
                ],
            )
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
            "CodeDeploy may invoke the hook functions qualified by version (<hook ARN>:*), and only those.",
            [f"Resource::<{logical_id(hook)}.Arn>:*" for hook in (self.hooks.pre_traffic, self.hooks.post_traffic)],
        )
