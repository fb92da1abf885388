"""InferenceApi: an API Gateway REST API proxying every route to the alias ``live``.

Every route that reaches the function requires auth (IAM SigV4, or an API key with a usage plan, per the spec):
unauthenticated calls would run up invocations and dilute the Invocations that the new version's function-error
and throttle rates divide by. Liveness (GET /v2/health/live) stays open for load balancers and uptime checks, and
API Gateway answers it itself (a MOCK integration): it says the endpoint is up and never invokes the function.
Readiness needs the model, so it reaches the function, with auth. Stage throttling and JSON access logs are on.
API Gateway's account-wide CloudWatch role is not declared here: it is one per account and region (see
``ApiGatewayAccount``), while a stack may hold several APIs and several stacks may share an account.
"""

from __future__ import annotations

import json

from aws_cdk import RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from functions.inference.protocol import BINARY_MEDIA_TYPES
from spec.environment import ApiSettings

from .nag import acknowledge, managed_policy

# Answered by API Gateway itself, open, never reaching the function: what the local gateway answers too.
LIVENESS_ROUTE = "/v2/health/live"
LIVENESS_BODY = '{"live": true}'

_ACCESS_LOG_FIELDS = {
    "requestId": "$context.requestId",
    "extendedRequestId": "$context.extendedRequestId",
    "ip": "$context.identity.sourceIp",
    "caller": "$context.identity.caller",
    "user": "$context.identity.user",
    "apiKeyId": "$context.identity.apiKeyId",
    "requestTime": "$context.requestTime",
    "httpMethod": "$context.httpMethod",
    "resourcePath": "$context.resourcePath",
    "path": "$context.path",
    "status": "$context.status",
    "protocol": "$context.protocol",
    "responseLength": "$context.responseLength",
    "responseLatency": "$context.responseLatency",
    "integrationLatency": "$context.integrationLatency",
    "integrationStatus": "$context.integration.status",
    "errorMessage": "$context.error.message",
}


class InferenceApi(Construct):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        model_name: str,
        alias: lambda_.IFunction,
        settings: ApiSettings,
        tracing: bool = False,
    ) -> None:
        super().__init__(scope, id_)
        self.settings = settings
        self.access_logs = logs.LogGroup(
            self, "AccessLogs", retention=logs.RetentionDays.ONE_MONTH, removal_policy=RemovalPolicy.DESTROY
        )
        self.rest_api = apigw.RestApi(
            self,
            "Api",
            description=f"modelrail: model {model_name} (Open Inference Protocol v2, KServe v1)",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            # The binary tensor extension's bodies reach the handler base64-encoded, as the handler expects;
            # JSON stays text.
            binary_media_types=list(BINARY_MEDIA_TYPES),
            cloud_watch_role=False,  # the account-level role is ApiGatewayAccount's, once per account and region
            deploy_options=apigw.StageOptions(
                stage_name="api",
                throttling_rate_limit=settings.throttle_rate_limit,
                throttling_burst_limit=settings.throttle_burst_limit,
                access_log_destination=apigw.LogGroupLogDestination(self.access_logs),
                access_log_format=apigw.AccessLogFormat.custom(json.dumps(_ACCESS_LOG_FIELDS)),
                logging_level=apigw.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,  # request bodies are model inputs: never copied into logs
                metrics_enabled=True,
                tracing_enabled=tracing,
            ),
        )
        self._acknowledge_findings(settings)
        integration = apigw.LambdaIntegration(alias, proxy=True, allow_test_invoke=False)
        auth, key_required = self._protection(settings)
        root = self.rest_api.root
        proxy = root.add_proxy(default_integration=integration, any_method=False)
        proxy.add_method("ANY", integration, authorization_type=auth, api_key_required=key_required)
        # /v2 is a resource of its own (for /v2/health/live), so it carries the proxy again beneath it: every other
        # path under /v2 reaches the function, with auth, whichever way API Gateway matches resources.
        v2 = root.add_resource("v2")
        v2.add_method("ANY", integration, authorization_type=auth, api_key_required=key_required)
        v2.add_proxy(any_method=False).add_method(
            "ANY", integration, authorization_type=auth, api_key_required=key_required
        )
        health = v2.add_resource("health")
        health.add_resource("ready").add_method(
            "GET", integration, authorization_type=auth, api_key_required=key_required
        )
        live = health.add_resource("live").add_method(
            "GET",
            apigw.MockIntegration(
                request_templates={"application/json": '{"statusCode": 200}'},
                passthrough_behavior=apigw.PassthroughBehavior.NEVER,
                integration_responses=[
                    apigw.IntegrationResponse(status_code="200", response_templates={"application/json": LIVENESS_BODY})
                ],
            ),
            authorization_type=apigw.AuthorizationType.NONE,
            method_responses=[apigw.MethodResponse(status_code="200")],
        )
        acknowledge(
            live,
            "AwsSolutions-APIG4",
            f"GET {LIVENESS_ROUTE} is open on purpose: API Gateway answers it itself (MOCK), it never reaches the "
            "function and carries no model data.",
        )
        self.api_key: apigw.IApiKey | None = None
        if settings.auth == "api_key":
            plan = self.rest_api.add_usage_plan(
                "UsagePlan",
                description=f"modelrail clients of model {model_name}",
                throttle=apigw.ThrottleSettings(
                    rate_limit=settings.throttle_rate_limit, burst_limit=settings.throttle_burst_limit
                ),
                quota=apigw.QuotaSettings(limit=settings.quota_per_day, period=apigw.Period.DAY)
                if settings.quota_per_day
                else None,
            )
            plan.add_api_stage(stage=self.rest_api.deployment_stage)
            self.api_key = self.rest_api.add_api_key("ApiKey", description=f"modelrail client key: {model_name}")
            plan.add_api_key(self.api_key)

    def _acknowledge_findings(self, settings: ApiSettings) -> None:
        api = self.rest_api
        acknowledge(
            api,
            "AwsSolutions-APIG2",
            "Request bodies are validated by the handler against the model's own signature (names, datatypes, "
            "shapes); an API Gateway JSON schema cannot express tensor shapes.",
        )
        acknowledge(
            api,
            "AwsSolutions-APIG3",
            "No WAF web ACL by default (a fixed monthly cost per ACL); auth, stage throttling and the usage plan "
            "bound abuse. Associate an account-wide ACL if your organisation mandates one.",
        )
        acknowledge(
            api,
            "AwsSolutions-COG4",
            f"Auth is chosen in the spec (here {settings.auth!r}: IAM SigV4 or API key with usage plan); "
            "Cognito user pools are not the auth model for machine clients of an inference API.",
        )

    @staticmethod
    def _protection(settings: ApiSettings) -> tuple[apigw.AuthorizationType, bool]:
        """What inference and metadata routes require: SigV4-signed calls, or an API key."""
        if settings.auth == "iam":
            return apigw.AuthorizationType.IAM, False
        return apigw.AuthorizationType.NONE, True

    @property
    def url(self) -> str:
        return self.rest_api.url


class ApiGatewayAccount(Construct):
    """API Gateway's account-level settings: the role through which it writes access and execution logs.

    ``AWS::ApiGateway::Account`` is one setting per account and region, whatever declares it: declared by each API
    (CDK's ``cloudWatchRole``), the last one deployed wins and deleting any of them clears it for every API. So it
    lives alone in one stack per account and region, which the environments' stacks depend on.
    """

    def __init__(self, scope: Construct, id_: str) -> None:
        super().__init__(scope, id_)
        self.role = iam.Role(
            self,
            "CloudWatchRole",
            assumed_by=iam.ServicePrincipal("apigateway.amazonaws.com"),
            description="API Gateway writes the access and execution logs of this account's APIs (modelrail)",
            managed_policies=[
                iam.ManagedPolicy.from_aws_managed_policy_name("service-role/AmazonAPIGatewayPushToCloudWatchLogs")
            ],
        )
        self.role.apply_removal_policy(RemovalPolicy.RETAIN)  # APIs outside modelrail may log through it too
        self.account = apigw.CfnAccount(self, "Account", cloud_watch_role_arn=self.role.role_arn)
        self.account.apply_removal_policy(RemovalPolicy.RETAIN)
        acknowledge(
            self.role,
            "AwsSolutions-IAM4",
            "API Gateway's account logging role uses AmazonAPIGatewayPushToCloudWatchLogs, AWS's policy for it.",
            [managed_policy("AmazonAPIGatewayPushToCloudWatchLogs")],
        )
