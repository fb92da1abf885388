"""The synthesized staging and production stacks: the properties a user relies on, read from the templates."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from aws_cdk.assertions import Match, Template

from spec.bundle import ModelBundle
from spec.models import load_spec
from tests.infra.conftest import ROOT
from tests.infra.template_queries import (
    actions,
    inference_function,
    live_alias,
    only,
    policy_statements,
    post_traffic_hook,
    pre_traffic_hook,
    resources,
    role_of,
    version_of_alias,
)

IRIS_SHA256 = ModelBundle.load(ROOT / "models" / "iris").sha256()
SPEC = load_spec()


def ref(logical_id: str) -> dict[str, str]:
    return {"Ref": logical_id}


# --- function, version, alias --------------------------------------------------------------------------------


def test_inference_function_runs_the_runtime_contract(environment: tuple[str, dict[str, Any]]) -> None:
    name, template = environment
    settings = SPEC.environment(name).function
    _, function = inference_function(template)
    props = function["Properties"]
    assert props["Runtime"] == "python3.12"
    assert props["Architectures"] == [settings.architecture]
    assert props["MemorySize"] == settings.memory_mb
    assert props["EphemeralStorage"] == {"Size": settings.ephemeral_storage_mb}
    assert not settings.tracing  # opt-in; the api-key variant below turns it on
    assert "TracingConfig" not in props
    assert len(props["Layers"]) == 1
    env = props["Environment"]["Variables"]
    assert env["MODEL_NAME"] == "iris"
    assert env["MODEL_SHA256"] == IRIS_SHA256
    assert env["MAX_BATCH_ROWS"] == "1024"
    assert env["METRICS_NAMESPACE"] == "modelrail"
    assert env["POWERTOOLS_TRACE_DISABLED"] == "true"  # the handler skips importing the X-Ray SDK
    # s3://<artifacts bucket>/models/iris/<sha256>.onnx, the bucket resolved at deploy time
    bucket = only(template, "AWS::S3::Bucket", VersioningConfiguration={"Status": "Enabled"})[0]
    assert env["MODEL_URI"] == {"Fn::Join": ["", ["s3://", ref(bucket), f"/models/iris/{IRIS_SHA256}.onnx"]]}


def test_layer_is_python312_for_the_function_architecture(environment: tuple[str, dict[str, Any]]) -> None:
    name, template = environment
    _, function = inference_function(template)
    (layer_ref,) = function["Properties"]["Layers"]
    layer = template["Resources"][layer_ref["Ref"]]
    assert layer["Type"] == "AWS::Lambda::LayerVersion"
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.12"]
    assert layer["Properties"]["CompatibleArchitectures"] == [SPEC.environment(name).function.architecture]
    assert layer["DeletionPolicy"] == "Retain"


def test_alias_live_points_at_the_published_version_and_deploys_through_codedeploy(
    environment: tuple[str, dict[str, Any]],
) -> None:
    _, template = environment
    function_id, _ = inference_function(template)
    pre_id, _ = pre_traffic_hook(template)
    post_id, _ = post_traffic_hook(template)
    version_id = version_of_alias(template)
    version = template["Resources"][version_id]
    assert version["Type"] == "AWS::Lambda::Version"
    assert version["Properties"]["FunctionName"] == ref(function_id)
    assert version["DeletionPolicy"] == "Retain"  # the rollback target stays
    _, alias = live_alias(template)
    update = alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]
    (group_id, _) = resources(template, "AWS::CodeDeploy::DeploymentGroup").popitem()
    assert update["DeploymentGroupName"] == ref(group_id)
    assert update["BeforeAllowTrafficHook"] == ref(pre_id)
    assert update["AfterAllowTrafficHook"] == ref(post_id)


def test_new_version_is_published_only_after_its_model_is_uploaded(environment: tuple[str, dict[str, Any]]) -> None:
    _, template = environment
    uploads = resources(template, "Custom::CDKBucketDeployment")
    assert len(uploads) == 1
    (upload,) = uploads.values()
    assert upload["Properties"]["Prune"] is False  # earlier models stay for rollbacks
    version = template["Resources"][version_of_alias(template)]
    assert set(uploads) <= set(version.get("DependsOn", []))


def test_inference_role_reads_only_its_own_models_prefix(environment: tuple[str, dict[str, Any]]) -> None:
    _, template = environment
    _, function = inference_function(template)
    statements = policy_statements(template, role_of(function))
    s3_statements = [s for s in statements if any(a.startswith("s3:") for a in actions(s))]
    assert len(s3_statements) == 1
    (statement,) = s3_statements
    assert actions(statement) == ["s3:GetObject"]
    bucket = only(template, "AWS::S3::Bucket", VersioningConfiguration={"Status": "Enabled"})[0]
    assert statement["Resource"] == {
        "Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":s3:::", ref(bucket), "/models/iris/*"]]
    }
    every_action = {a for s in statements for a in actions(s)}
    assert every_action <= {
        "s3:GetObject",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "firehose:PutRecordBatch",  # data capture, to its own stream only
    }, every_action
    (stream,) = resources(template, "AWS::KinesisFirehose::DeliveryStream")
    (capture,) = [s for s in statements if "firehose:PutRecordBatch" in actions(s)]
    assert capture["Resource"] == {"Fn::GetAtt": [stream, "Arn"]}
    role = template["Resources"][role_of(function)]
    assert "ManagedPolicyArns" not in role["Properties"]


def test_artifacts_bucket_is_private_versioned_encrypted_tls_only_and_retained(
    environment: tuple[str, dict[str, Any]],
) -> None:
    _, template = environment
    bucket_id, bucket = only(template, "AWS::S3::Bucket", VersioningConfiguration={"Status": "Enabled"})
    props = bucket["Properties"]
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "AES256"
    }
    assert "LoggingConfiguration" in props
    assert bucket["DeletionPolicy"] == "Retain"
    policies = [
        p for p in resources(template, "AWS::S3::BucketPolicy").values() if p["Properties"]["Bucket"] == ref(bucket_id)
    ]
    (policy,) = policies
    denies_plain_http = [
        s
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        if s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
    ]
    assert denies_plain_http


# --- rollout -------------------------------------------------------------------------------------------------


def test_production_rolls_out_by_canary_and_staging_all_at_once(
    staging: dict[str, Any], production: dict[str, Any]
) -> None:
    (config,) = resources(production, "AWS::CodeDeploy::DeploymentConfig").values()
    assert config["Properties"] == {
        "ComputePlatform": "Lambda",
        "TrafficRoutingConfig": {
            "Type": "TimeBasedCanary",
            "TimeBasedCanary": {"CanaryInterval": 15, "CanaryPercentage": 10},
        },
    }
    assert resources(staging, "AWS::CodeDeploy::DeploymentConfig") == {}
    (group,) = resources(staging, "AWS::CodeDeploy::DeploymentGroup").values()
    assert group["Properties"]["DeploymentConfigName"] == "CodeDeployDefault.LambdaAllAtOnce"


def test_deployment_group_rolls_back_on_failure_stop_and_every_alarm(environment: tuple[str, dict[str, Any]]) -> None:
    _, template = environment
    (group,) = resources(template, "AWS::CodeDeploy::DeploymentGroup").values()
    props = group["Properties"]
    assert props["AutoRollbackConfiguration"] == {
        "Enabled": True,
        "Events": ["DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_REQUEST", "DEPLOYMENT_STOP_ON_ALARM"],
    }
    watched = [a["Name"] for a in props["AlarmConfiguration"]["Alarms"]]
    assert props["AlarmConfiguration"]["Enabled"] is True
    assert sorted(w["Ref"] for w in watched) == sorted(rollout_alarms(template))
    assert len(watched) == 6


def rollout_alarms(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The alarms that can stop a deployment; drift alarms notify a topic instead (AlarmActions)."""
    return {
        k: v
        for k, v in resources(template, "AWS::CloudWatch::Alarm").items()
        if not v["Properties"].get("AlarmActions")
    }


def _alarm_dimensions(alarm: dict[str, Any]) -> list[list[dict[str, Any]]]:
    props = alarm["Properties"]
    if "Metrics" in props:
        return [m["MetricStat"]["Metric"]["Dimensions"] for m in props["Metrics"] if "MetricStat" in m]
    return [props["Dimensions"]]


def test_every_production_alarm_that_can_stop_a_deployment_watches_only_the_new_version(
    production: dict[str, Any],
) -> None:
    new_version = {"Fn::GetAtt": [version_of_alias(production), "Version"]}
    function_id, _ = inference_function(production)
    (group,) = resources(production, "AWS::CodeDeploy::DeploymentGroup").values()
    stopping = [production["Resources"][a["Name"]["Ref"]] for a in group["Properties"]["AlarmConfiguration"]["Alarms"]]
    assert stopping
    for alarm in stopping:
        for dimensions in _alarm_dimensions(alarm):
            by_name = {d["Name"]: d["Value"] for d in dimensions}
            if "ModelVersion" in by_name:  # the runtime's per-version metrics
                assert by_name == {"ModelName": "iris", "ModelVersion": new_version}
            else:  # Lambda's own, through the alias, executed by the new version
                assert by_name == {
                    "FunctionName": ref(function_id),
                    "Resource": {"Fn::Join": ["", [ref(function_id), ":live"]]},
                    "ExecutedVersion": new_version,
                }
        assert alarm["Properties"]["TreatMissingData"] == "notBreaching"


def test_alarms_are_the_spec_definitions(environment: tuple[str, dict[str, Any]]) -> None:
    """One source: each CloudWatch alarm carries its AlarmDefinition's expression, statistic and thresholds."""
    name, template = environment
    alarms = list(resources(template, "AWS::CloudWatch::Alarm").values())
    for definition in SPEC.environment(name).alarm_definitions():
        (alarm,) = [a for a in alarms if f"rollout alarm {definition.name})" in a["Properties"]["AlarmDescription"]]
        props = alarm["Properties"]
        assert props["Threshold"] == definition.threshold
        assert props["EvaluationPeriods"] == definition.evaluation_periods
        assert props["DatapointsToAlarm"] == definition.datapoints_to_alarm
        assert props["ComparisonOperator"] == definition.comparison_operator
        assert props["TreatMissingData"] == definition.treat_missing_data
        if definition.is_rate:
            expressions = [m for m in props["Metrics"] if "Expression" in m]
            assert [e["Expression"] for e in expressions] == [definition.expression]
            stats = {m["Id"]: m["MetricStat"] for m in props["Metrics"] if "MetricStat" in m}
            assert set(stats) == {q.id for q in definition.metrics}
            for query in definition.metrics:
                assert stats[query.id]["Metric"]["MetricName"] == query.metric_name
                assert stats[query.id]["Metric"]["Namespace"] == query.namespace
                assert stats[query.id]["Stat"] == query.statistic
                assert stats[query.id]["Period"] == definition.period_seconds
        else:
            (query,) = definition.metrics
            assert props["MetricName"] == query.metric_name
            assert props.get("ExtendedStatistic", props.get("Statistic")) == query.statistic
            assert props["Period"] == definition.period_seconds


def test_alarms_follow_the_new_version_before_the_deployment_starts(environment: tuple[str, dict[str, Any]]) -> None:
    """CloudFormation updates the alarms (re-pointed at the new version) before the alias update that deploys."""
    _, template = environment
    _, alias = live_alias(template)
    assert set(rollout_alarms(template)) <= set(alias.get("DependsOn", []))


def _grants(template: dict[str, Any], function: dict[str, Any]) -> dict[str, Any]:
    return {a: s["Resource"] for s in policy_statements(template, role_of(function)) for a in actions(s)}


def _join(*parts: Any) -> dict[str, Any]:
    return {"Fn::Join": ["", list(parts)]}


ACCEPTANCE = ROOT / "models" / "iris" / "acceptance.jsonl"


def test_pre_traffic_hook_gates_the_new_version_with_the_bundle_acceptance_set(
    environment: tuple[str, dict[str, Any]],
) -> None:
    name, template = environment
    version_id = version_of_alias(template)
    function_id, _ = inference_function(template)
    _, hook = pre_traffic_hook(template)
    props = hook["Properties"]
    assert props["Runtime"] == "python3.12"
    assert props["Architectures"] == [SPEC.environment(name).function.architecture]
    assert props["Layers"] == inference_function(template)[1]["Properties"]["Layers"]  # numpy, powertools
    env = props["Environment"]["Variables"]
    acceptance_sha256 = hashlib.sha256(ACCEPTANCE.read_bytes()).hexdigest()
    bucket = only(template, "AWS::S3::Bucket", VersioningConfiguration={"Status": "Enabled"})[0]
    key = f"/acceptance/iris/{acceptance_sha256}.jsonl"
    assert env["NEW_VERSION_ARN"] == ref(version_id)  # CodeDeploy does not say which version is new
    assert env["MODEL_NAME"] == "iris"
    assert env["ALIAS_NAME"] == "live"
    assert env["ACCEPTANCE_URI"] == _join("s3://", ref(bucket), key)
    assert env["ACCEPTANCE_SHA256"] == acceptance_sha256
    bundle = ModelBundle.load(ROOT / "models" / "iris")
    assert json.loads(env["ACCEPTANCE_CRITERIA"]) == bundle.settings.acceptance.model_dump(mode="json")
    granted = _grants(template, hook)
    (group_id, _) = resources(template, "AWS::CodeDeploy::DeploymentGroup").popitem()
    assert group_id in json.dumps(granted["codedeploy:PutLifecycleEventHookExecutionStatus"])
    function_arn = {"Fn::GetAtt": [function_id, "Arn"]}
    assert granted["lambda:InvokeFunction"] == _join(function_arn, ":*")  # new version and the one live serves
    assert granted["lambda:GetAlias"] == _join(function_arn, ":live")
    # Objects it reads: the acceptance set, and (the replay) its own model's captured requests; nothing else.
    objects = []
    for statement in policy_statements(template, role_of(hook)):
        if "s3:GetObject" in actions(statement):
            resource = statement["Resource"]
            objects += resource if isinstance(resource, list) else [resource]
    assert _join("arn:", {"Ref": "AWS::Partition"}, ":s3:::", ref(bucket), key) in objects
    others = [o for o in objects if o != _join("arn:", {"Ref": "AWS::Partition"}, ":s3:::", ref(bucket), key)]
    assert [o["Fn::Join"][1][-1] for o in others] == ["/capture/model=iris/*"], others


def test_acceptance_set_is_uploaded_next_to_the_model(environment: tuple[str, dict[str, Any]]) -> None:
    _, template = environment
    (upload,) = resources(template, "Custom::CDKBucketDeployment").values()
    assert "DestinationBucketKeyPrefix" not in upload["Properties"]  # keys come from the staged tree
    version = template["Resources"][version_of_alias(template)]
    assert set(resources(template, "Custom::CDKBucketDeployment")) <= set(version.get("DependsOn", []))


def test_post_traffic_hook_checks_the_alias_serves_the_new_version(environment: tuple[str, dict[str, Any]]) -> None:
    _, template = environment
    function_id, _ = inference_function(template)
    _, hook = post_traffic_hook(template)
    env = hook["Properties"]["Environment"]["Variables"]
    assert env == {"MODEL_NAME": "iris", "NEW_VERSION_ARN": ref(version_of_alias(template)), "ALIAS_NAME": "live"}
    granted = _grants(template, hook)
    assert granted["lambda:InvokeFunction"] == _join({"Fn::GetAtt": [function_id, "Arn"]}, ":live")
    assert "codedeploy:PutLifecycleEventHookExecutionStatus" in granted
    assert not [a for a in granted if a.startswith("s3:")]


# --- API -----------------------------------------------------------------------------------------------------


def _method_paths(template: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """(path, HTTP method) -> method properties, paths rebuilt from the Resource parents."""
    api_resources = resources(template, "AWS::ApiGateway::Resource")

    def path_of(resource_ref: Any) -> str:
        if isinstance(resource_ref, dict) and "Fn::GetAtt" in resource_ref:
            return ""  # the API's root resource
        parent = api_resources[resource_ref["Ref"]]["Properties"]
        return f"{path_of(parent['ParentId'])}/{parent['PathPart']}"

    methods = {}
    for method in resources(template, "AWS::ApiGateway::Method").values():
        props = method["Properties"]
        methods[(path_of(props["ResourceId"]) or "/", props["HttpMethod"])] = props
    return methods


def test_api_proxies_to_the_alias_with_auth_except_liveness(environment: tuple[str, dict[str, Any]]) -> None:
    name, template = environment
    methods = _method_paths(template)
    assert set(methods) == {
        ("/", "ANY"),
        ("/{proxy+}", "ANY"),
        ("/v2", "ANY"),
        ("/v2/{proxy+}", "ANY"),
        ("/v2/health/live", "GET"),
        ("/v2/health/ready", "GET"),
    }
    _, alias = live_alias(template)
    alias_id = next(k for k, v in template["Resources"].items() if v is alias)
    expected_auth = {"iam": "AWS_IAM", "api_key": "NONE"}[SPEC.environment(name).api.auth]
    for (path, _), props in methods.items():
        if path == "/v2/health/live":  # answered by API Gateway itself, open
            assert props["Integration"]["Type"] == "MOCK"
            assert props["AuthorizationType"] == "NONE"
            assert not props.get("ApiKeyRequired", False)
            continue
        assert props["Integration"]["Type"] == "AWS_PROXY"
        assert alias_id in json.dumps(props["Integration"]["Uri"])  # the alias, never $LATEST
        assert props["AuthorizationType"] == expected_auth


def test_api_stage_throttles_and_writes_json_access_logs(environment: tuple[str, dict[str, Any]]) -> None:
    name, template = environment
    settings = SPEC.environment(name).api
    (stage,) = resources(template, "AWS::ApiGateway::Stage").values()
    props = stage["Properties"]
    (all_methods,) = [m for m in props["MethodSettings"] if m["ResourcePath"] == "/*"]
    assert all_methods["ThrottlingRateLimit"] == settings.throttle_rate_limit
    assert all_methods["ThrottlingBurstLimit"] == settings.throttle_burst_limit
    assert all_methods["DataTraceEnabled"] is False
    log_format = json.loads(props["AccessLogSetting"]["Format"])
    assert log_format["status"] == "$context.status"
    assert log_format["requestId"] == "$context.requestId"
    assert props["TracingEnabled"] is SPEC.environment(name).function.tracing
    (api,) = resources(template, "AWS::ApiGateway::RestApi").values()
    assert api["Properties"]["BinaryMediaTypes"] == [
        "application/octet-stream",
        "application/vnd.sagemaker-triton.binary+json",
    ]


def test_invoke_url_is_an_output(environment: tuple[str, dict[str, Any]]) -> None:
    _, template = environment
    Template.from_json(template).has_output(
        "InvokeUrliris", {"Value": {"Fn::Join": ["", Match.array_with(["https://", ".execute-api."])]}}
    )
    assert "InferUrliris" in template["Outputs"]


def test_api_key_mode_tracing_and_concurrency(synth: Any) -> None:
    from tests.infra.conftest import CDK_CONTEXT, context_with

    production = CDK_CONTEXT["modelrail"]["environments"]["production"]
    function_settings = {"tracing": True, "reserved_concurrency": 20, "provisioned_concurrency": 2}
    production = {**production, "function": {**production["function"], **function_settings}}
    keyed = {
        **production,
        "api": {"auth": "api_key", "throttle_rate_limit": 5, "throttle_burst_limit": 10, "quota_per_day": 1000},
    }
    template = synth("api-key", context_with(environments={"production": keyed}))["production"]
    methods = _method_paths(template)
    for (path, _), props in methods.items():
        assert props.get("ApiKeyRequired", False) is (path != "/v2/health/live")
    (plan,) = resources(template, "AWS::ApiGateway::UsagePlan").values()
    assert plan["Properties"]["Quota"] == {"Limit": 1000, "Period": "DAY"}
    assert plan["Properties"]["Throttle"] == {"BurstLimit": 10, "RateLimit": 5}
    assert len(resources(template, "AWS::ApiGateway::ApiKey")) == 1
    assert len(resources(template, "AWS::ApiGateway::UsagePlanKey")) == 1
    # tracing on: X-Ray on the function (and its SDK loaded by the handler) and on the API stage
    _, function = inference_function(template)
    assert function["Properties"]["TracingConfig"] == {"Mode": "Active"}
    assert "POWERTOOLS_TRACE_DISABLED" not in function["Properties"]["Environment"]["Variables"]
    granted = {a for s in policy_statements(template, role_of(function)) for a in actions(s)}
    assert {"xray:PutTraceSegments", "xray:PutTelemetryRecords"} <= granted
    (stage,) = resources(template, "AWS::ApiGateway::Stage").values()
    assert stage["Properties"]["TracingEnabled"] is True
    # concurrency: reserved on the function, provisioned on the alias live (which CodeDeploy shifts)
    assert function["Properties"]["ReservedConcurrentExecutions"] == 20
    _, alias = live_alias(template)
    assert alias["Properties"]["ProvisionedConcurrencyConfig"] == {"ProvisionedConcurrentExecutions": 2}


# --- monitoring ----------------------------------------------------------------------------------------------


def test_dashboard_shows_versions_latency_cold_starts_errors_throttles_and_alarms(
    environment: tuple[str, dict[str, Any]],
) -> None:
    _, template = environment
    (dashboard,) = resources(template, "AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for needle in (
        "ModelVersion",
        "Requests",
        "ModelErrors",
        "NonFiniteOutputs",
        "p99",
        "p50",
        "ColdStart",
        "Throttles",
    ):
        assert needle in body, needle
    assert '\\"alarms\\"' in body or "alarms" in body
