"""`modelrail status`, `rollback` and `history` against moto (CloudFormation outputs, Lambda versions and the alias,
CloudWatch alarms and metrics, STS) with CodeDeploy through botocore's Stubber: moto 5.2.5 keeps every deployment
"Created" and has no StopDeployment, deployment targets, error or rollback information, which these commands read.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from modelrail import cli
from modelrail.operate import aws as operate_aws
from modelrail.operate.deployments import Deployment
from modelrail.operate.rollback import previous_version

REGION = "us-east-1"
STACK = "modelrail-production"
FUNCTION = "modelrail-production-ModelirisInferenceFunction-1A2B3C"
APPLICATION = "modelrail-production-ModelirisRolloutApplication-4D5E"
GROUP = "modelrail-production-ModelirisRolloutDeploymentGroup-6F7G"
CALLER = "arn:aws:sts::123456789012:user/moto"
SHA = {"1": "1" * 64, "2": "2" * 64, "3": "3" * 64}
ALARMS = {
    name: f"{STACK}-iris-{name}"
    for name in ("model-error-rate", "non-finite-rate", "function-error-rate", "throttle-rate", "latency-p99")
}
NOW = datetime.now(UTC)
IN_FLIGHT = ["Created", "Queued", "InProgress", "Baking", "Ready"]


@dataclass
class FakeDeployment:
    """One CodeDeploy deployment as CodeDeploy describes it: its info and its Lambda target."""

    id: str
    status: str
    minutes_ago: int
    versions: tuple[str, str]
    config: str = "modelrail-production-ModelirisRolloutConfig-CANARY"
    creator: str = "CloudFormation"
    weight: float = 1.0
    events: list[tuple[str, str, str | None]] = field(default_factory=list)
    error: tuple[str, str] | None = None
    description: str | None = None
    appspec: str | None = None  # the revision's AppSpec content, for deployments made with one
    started: bool = True  # False: CodeDeploy has no target for it yet (DeploymentNotStartedException)

    def info(self) -> dict[str, Any]:
        created = NOW - timedelta(minutes=self.minutes_ago)
        info: dict[str, Any] = {
            "applicationName": APPLICATION,
            "deploymentGroupName": GROUP,
            "deploymentConfigName": self.config,
            "deploymentId": self.id,
            "status": self.status,
            "createTime": created,
            "startTime": created + timedelta(seconds=5),
            "creator": self.creator,
            "computePlatform": "Lambda",
        }
        if self.status not in IN_FLIGHT:
            info["completeTime"] = created + timedelta(minutes=6)
        if self.error is not None:
            info["errorInformation"] = {"code": self.error[0], "message": self.error[1]}
        if self.description is not None:
            info["description"] = self.description
        if self.appspec is not None:
            info["revision"] = {"revisionType": "AppSpecContent", "appSpecContent": {"content": self.appspec}}
        return info

    def target(self) -> dict[str, Any]:
        return {
            "deploymentTargetType": "LambdaTarget",
            "lambdaTarget": {
                "deploymentId": self.id,
                "targetId": f"{FUNCTION}:live",
                "status": self.status,
                "lifecycleEvents": [
                    {"lifecycleEventName": name, "status": status, **({"diagnostics": {"message": m}} if m else {})}
                    for name, status, m in self.events
                ],
                "lambdaFunctionInfo": {
                    "functionName": FUNCTION,
                    "functionAlias": "live",
                    "currentVersion": self.versions[0],
                    "targetVersion": self.versions[1],
                    "targetVersionWeight": self.weight,
                },
            },
        }


class CodeDeploy:
    """A stubbed CodeDeploy client; each helper queues the calls the commands make, in their order."""

    def __init__(self) -> None:
        self.client = boto3.client("codedeploy", region_name=REGION)
        self.stub = Stubber(self.client)
        self.created: list[dict[str, Any]] = []
        self.client.meta.events.register(
            "provide-client-params.codedeploy.CreateDeployment", lambda params, **_: self.created.append(params)
        )

    def deployments(self, found: list[FakeDeployment], *, in_flight: bool = False, limit: int | None = None) -> None:
        expected: dict[str, Any] = {"applicationName": APPLICATION, "deploymentGroupName": GROUP}
        if in_flight:
            expected["includeOnlyStatuses"] = IN_FLIGHT
            found = [d for d in found if d.status in IN_FLIGHT]
        # CodeDeploy lists in no promised order: hand them over scrambled.
        scrambled = found[1::2] + found[::2]
        self.stub.add_response("list_deployments", {"deployments": [d.id for d in scrambled]}, expected)
        if not found:
            return
        self.stub.add_response(
            "batch_get_deployments",
            {"deploymentsInfo": [d.info() for d in scrambled]},
            {"deploymentIds": [d.id for d in scrambled]},
        )
        for deployment in sorted(found, key=lambda d: d.minutes_ago)[:limit]:
            if not deployment.started:
                self.stub.add_client_error(
                    "list_deployment_targets",
                    "DeploymentNotStartedException",
                    "The specified deployment has not started.",
                    expected_params={"deploymentId": deployment.id},
                )
                continue
            self.stub.add_response(
                "list_deployment_targets", {"targetIds": [f"{FUNCTION}:live"]}, {"deploymentId": deployment.id}
            )
            self.stub.add_response(
                "batch_get_deployment_targets",
                {"deploymentTargets": [deployment.target()]},
                {"deploymentId": deployment.id, "targetIds": [f"{FUNCTION}:live"]},
            )


@dataclass
class Account:
    lambda_: Any
    cloudwatch: Any
    codedeploy: CodeDeploy

    def alias(self) -> tuple[str, dict[str, float]]:
        alias = self.lambda_.get_alias(FunctionName=FUNCTION, Name="live")
        return alias["FunctionVersion"], (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights", {})

    def point_alias(self, version: str, weights: dict[str, float] | None = None) -> None:
        self.lambda_.update_alias(
            FunctionName=FUNCTION,
            Name="live",
            FunctionVersion=version,
            RoutingConfig={"AdditionalVersionWeights": weights or {}},
        )


def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_REGION"):
        monkeypatch.delenv(key, raising=False)
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(key, value)


def operations_output(model: str = "iris") -> dict[str, Any]:
    record = {
        "model": model,
        "function": FUNCTION,
        "alias": "live",
        "application": APPLICATION,
        "deploymentGroup": GROUP,
        "deploymentConfig": "modelrail-production-ModelirisRolloutConfig-CANARY",
        "alarms": ALARMS,
    }
    return {"Value": json.dumps(record), "Description": f"{model}: read by modelrail status, rollback and history"}


@pytest.fixture
def account(monkeypatch: pytest.MonkeyPatch) -> Iterator[Account]:
    """The production stack of one model: function versions 1-3 (model sha256 1.., 2.., 3..), alias live on 3."""
    credentials(monkeypatch)
    with mock_aws():
        iam = boto3.client("iam", region_name=REGION)
        role = iam.create_role(RoleName="inference", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as archive:
            archive.writestr("handler.py", "def lambda_handler(event, context):\n    return {}\n")
        lambda_ = boto3.client("lambda", region_name=REGION)
        for version in ("1", "2", "3"):
            variables = {"MODEL_NAME": "iris", "MODEL_SHA256": SHA[version]}
            if version == "1":
                lambda_.create_function(
                    FunctionName=FUNCTION,
                    Runtime="python3.12",
                    Role=role,
                    Handler="handler.lambda_handler",
                    Code={"ZipFile": code.getvalue()},
                    Environment={"Variables": variables},
                )
            else:
                lambda_.update_function_configuration(FunctionName=FUNCTION, Environment={"Variables": variables})
            assert lambda_.publish_version(FunctionName=FUNCTION)["Version"] == version
        lambda_.create_alias(FunctionName=FUNCTION, Name="live", FunctionVersion="3")

        cloudwatch = boto3.client("cloudwatch", region_name=REGION)
        for alarm in ALARMS.values():
            cloudwatch.put_metric_alarm(
                AlarmName=alarm,
                Namespace="modelrail",
                MetricName="Requests",
                Statistic="Sum",
                Period=60,
                EvaluationPeriods=1,
                Threshold=1,
                ComparisonOperator="GreaterThanThreshold",
            )
            cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="OK", StateReason="Threshold Crossed: no datapoints")

        template = {
            "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
            "Outputs": {
                "Operationsiris": operations_output(),
                "InvokeUrliris": {"Value": "https://abc.execute-api.us-east-1.amazonaws.com/prod/"},
            },
        }
        boto3.client("cloudformation", region_name=REGION).create_stack(
            StackName=STACK, TemplateBody=json.dumps(template)
        )
        codedeploy = CodeDeploy()
        monkeypatch.setattr(
            operate_aws,
            "connect",
            lambda **kw: operate_aws.Aws(clients={"codedeploy": codedeploy.client}, **kw),
        )
        with codedeploy.stub:
            yield Account(lambda_, cloudwatch, codedeploy)
        codedeploy.stub.assert_no_pending_responses()


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    def _run(*argv: str) -> tuple[int, str, str]:
        code = cli.main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return _run


def put_counts(cloudwatch: Any, version: str, **counts: int) -> None:
    """The runtime's EMF counts (namespace modelrail) and Lambda's own for one version, two minutes ago."""
    when = NOW - timedelta(minutes=2)
    lambda_names = {"Invocations", "Errors"}
    for name, value in counts.items():
        if name in lambda_names:
            namespace = "AWS/Lambda"
            dims = {"FunctionName": FUNCTION, "Resource": f"{FUNCTION}:live", "ExecutedVersion": version}
        else:
            namespace, dims = "modelrail", {"ModelName": "iris", "ModelVersion": version}
        cloudwatch.put_metric_data(
            Namespace=namespace,
            MetricData=[
                {
                    "MetricName": name,
                    "Dimensions": [{"Name": k, "Value": v} for k, v in dims.items()],
                    "Value": value,
                    "Timestamp": when,
                }
            ],
        )


CANARY = FakeDeployment(
    "d-CANARY3",
    "InProgress",
    3,
    ("2", "3"),
    weight=0.1,
    events=[("BeforeAllowTraffic", "Succeeded", None), ("AllowTraffic", "InProgress", None)],
)
HISTORY = [
    FakeDeployment("d-FIRST12", "Succeeded", 300, ("1", "2")),
    FakeDeployment("d-SECOND3", "Succeeded", 200, ("2", "3")),
]


# --- status --------------------------------------------------------------------------------------------------


def test_status_shows_the_canary_split_deployment_alarms_and_traffic(
    account: Account, run: Callable[..., tuple[int, str, str]]
) -> None:
    account.point_alias("2", {"3": 0.1})
    account.cloudwatch.set_alarm_state(
        AlarmName=ALARMS["non-finite-rate"],
        StateValue="ALARM",
        StateReason="Threshold Crossed: 2 out of the last 3 datapoints were greater than the threshold (0.0)",
    )
    put_counts(account.cloudwatch, "2", Invocations=90, Requests=90, ClientErrors=3)
    put_counts(account.cloudwatch, "3", Invocations=10, Requests=10, NonFiniteOutputs=2)
    account.codedeploy.deployments([CANARY], in_flight=True, limit=1)

    code, out, err = run("status", "--env", "production")

    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == f"stack {STACK} ({REGION})"
    assert f"model iris (function {FUNCTION})" in lines
    assert f"    version    2   90%  model sha256 {'2' * 12}" in lines
    assert f"    version    3   10%  model sha256 {'3' * 12}" in lines
    assert (
        "  deployment (in flight): d-CANARY3 InProgress: 2 -> 3, config modelrail-production-ModelirisRolloutConfig-"
        "CANARY, step: AllowTraffic, 10% of traffic on version 3"
    ) in lines
    assert (
        "    ALARM             non-finite-rate        Threshold Crossed: 2 out of the last 3 datapoints were greater "
        "than the threshold (0.0)"
    ) in lines
    assert "    OK                model-error-rate       Threshold Crossed: no datapoints" in lines
    assert "    version  invocations  requests  5xx  crashes  4xx  error rate" in lines
    assert "          2           90        90    0        0    3        0.0%" in lines
    assert "          3           10        10    2        0    0       20.0%" in lines


def test_status_json_for_scripts(account: Account, run: Callable[..., tuple[int, str, str]]) -> None:
    account.point_alias("2", {"3": 0.25})
    put_counts(account.cloudwatch, "3", Invocations=4, Requests=4, ModelErrors=1)
    account.codedeploy.deployments([], in_flight=True)
    account.codedeploy.deployments(HISTORY, limit=1)

    code, out, _ = run("status", "--stack", STACK, "--model", "iris", "--json")

    assert code == 0
    document = json.loads(out)
    assert (document["stack"], document["region"], document["hotfix"]) == (STACK, REGION, None)
    (status,) = document["models"]
    assert [(w["version"], w["weight"], w["sha256"]) for w in status["weights"]] == [
        ("2", 0.75, SHA["2"]),
        ("3", 0.25, SHA["3"]),
    ]
    assert status["deployment"]["id"] == "d-SECOND3"
    assert status["deployment"]["in_flight"] is False
    assert {a["name"]: a["state"] for a in status["alarms"]} == dict.fromkeys(ALARMS, "OK")
    by_version = {t["version"]: t for t in status["traffic"]}
    assert by_version["3"]["error_rate"] == 0.25
    assert by_version["2"]["error_rate"] is None  # no requests: no rate, rather than 0%


# --- rollback ------------------------------------------------------------------------------------------------


def test_rollback_stops_the_deployment_in_flight(account: Account, run: Callable[..., tuple[int, str, str]]) -> None:
    account.point_alias("2", {"3": 0.1})
    account.codedeploy.deployments([CANARY], in_flight=True, limit=1)
    account.codedeploy.stub.add_response(
        "stop_deployment",
        {"status": "Pending", "statusMessage": "Stop request is being processed"},
        {"deploymentId": "d-CANARY3", "autoRollbackEnabled": True},
    )

    code, out, err = run("rollback", "--env", "production", "--model", "iris")

    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "iris: stopped deployment d-CANARY3 (2 -> 3, AllowTraffic, 10% of traffic on version 3) with rollback: "
        "CodeDeploy moves live back to version 2 (stop Pending: Stop request is being processed)",
        f"  requested by {CALLER}",
    ]
    assert account.alias() == ("2", {"3": 0.1})  # CodeDeploy moves the alias, not modelrail


def test_rollback_without_a_deployment_in_flight_deploys_the_previous_version(
    account: Account, run: Callable[..., tuple[int, str, str]]
) -> None:
    account.codedeploy.deployments([], in_flight=True)
    account.codedeploy.deployments(HISTORY)
    account.codedeploy.stub.add_response("create_deployment", {"deploymentId": "d-ROLLBACK"})

    code, out, err = run("rollback", "--env", "production")

    assert (code, err) == (0, "")
    assert out.splitlines()[0] == (
        "iris: started CodeDeploy deployment d-ROLLBACK: live 3 -> 2, all at once (CodeDeployDefault.LambdaAllAtOnce); "
        "follow it with `modelrail status`"
    )
    (request,) = account.codedeploy.created
    assert request["applicationName"] == APPLICATION
    assert request["deploymentGroupName"] == GROUP
    appspec = json.loads(request["revision"]["appSpecContent"]["content"])
    (resource,) = appspec["Resources"]
    assert resource["iris"]["Properties"] == {
        "Name": FUNCTION,
        "Alias": "live",
        "CurrentVersion": "3",
        "TargetVersion": "2",
    }
    assert "Hooks" not in appspec  # the stack's hooks judge the version being rolled back from
    assert request["overrideAlarmConfiguration"]["enabled"] is False
    assert request["description"] == f"modelrail rollback of iris: 3 -> 2, requested by {CALLER}"
    assert account.alias() == ("3", {})  # CodeDeploy will move it


def test_rollback_force_points_the_alias_directly(account: Account, run: Callable[..., tuple[int, str, str]]) -> None:
    account.codedeploy.deployments([], in_flight=True)
    account.codedeploy.deployments(HISTORY)

    code, out, _ = run("rollback", "--env", "production", "--force")

    assert code == 0
    assert out.splitlines()[0] == (
        "iris: pointed live at version 2 directly (--force, no CodeDeploy deployment, no hooks): it served 3"
    )
    assert account.alias() == ("2", {})


def test_rollback_after_a_rollback_goes_further_back_not_forward(
    account: Account, run: Callable[..., tuple[int, str, str]]
) -> None:
    account.point_alias("2")
    earlier_rollback = FakeDeployment(
        "d-BACK32", "Succeeded", 100, ("3", "2"), creator="user", description="modelrail rollback of iris: 3 -> 2"
    )
    account.codedeploy.deployments([], in_flight=True)
    account.codedeploy.deployments([*HISTORY, earlier_rollback])

    code, out, _ = run("rollback", "--env", "production", "--force", "--json")

    assert code == 0
    result = json.loads(out)
    assert (result["action"], result["from_version"], result["to_version"]) == ("alias", "2", "1")
    assert account.alias() == ("1", {})


def test_rollback_refuses_without_a_previous_version(
    account: Account, run: Callable[..., tuple[int, str, str]]
) -> None:
    account.point_alias("1")
    account.codedeploy.deployments([], in_flight=True)
    account.codedeploy.deployments([])

    code, out, err = run("rollback", "--env", "production", "--force")

    assert (code, out) == (1, "")
    assert err == (
        "modelrail: iris: no previous version to roll back to: live serves version 1 and no successful deployment "
        "brought it there from another version (name one with --to VERSION)\n"
    )
    assert account.alias() == ("1", {})


def test_rollback_refuses_a_version_that_does_not_exist(
    account: Account, run: Callable[..., tuple[int, str, str]]
) -> None:
    account.codedeploy.deployments([], in_flight=True)

    code, _, err = run("rollback", "--env", "production", "--to", "9")

    assert code == 1
    assert err == f"modelrail: iris: version 9 of {FUNCTION} does not exist; published: 1, 2, 3\n"
    assert account.alias() == ("3", {})


def test_rollback_refuses_a_split_alias_without_a_deployment_unless_forced(
    account: Account, run: Callable[..., tuple[int, str, str]]
) -> None:
    account.point_alias("2", {"3": 0.3})
    account.codedeploy.deployments([], in_flight=True)

    code, _, err = run("rollback", "--env", "production")

    assert code == 1
    assert "alias live is split between versions 2 (70%), 3 (30%) with no deployment in flight" in err
    assert "run again with --force to send all traffic to version 2 directly" in err
    assert account.alias() == ("2", {"3": 0.3})

    account.codedeploy.deployments([], in_flight=True)
    code, out, _ = run("rollback", "--env", "production", "--force")
    assert code == 0
    assert out.startswith("iris: pointed live at version 2 directly")
    assert account.alias() == ("2", {})


def test_previous_version_is_where_the_live_version_was_rolled_out_from() -> None:
    def deployment(versions: tuple[str, str], status: str = "Succeeded", creator: str = "CloudFormation") -> Deployment:
        return Deployment(
            id="d", status=status, created=NOW, config="c", creator=creator, from_version=versions[0],
            to_version=versions[1],
        )  # fmt: skip

    newest_first = [
        deployment(("4", "5"), status="Stopped"),  # never served: not a rollout of live
        deployment(("4", "3"), creator="codeDeployRollback"),
        deployment(("3", "4"), status="Failed"),
        deployment(("2", "3")),
    ]
    assert previous_version(newest_first, "3") == "2"
    assert previous_version(newest_first, "2") is None


# --- history -------------------------------------------------------------------------------------------------


def test_history_newest_first_with_outcomes_hotfix_and_what_stopped_each(
    account: Account, run: Callable[..., tuple[int, str, str]]
) -> None:
    alarm_stop = FakeDeployment(
        "d-ALARM45",
        "Stopped",
        40,
        ("3", "4"),
        creator="CloudFormation",
        error=(
            "ALARM_ACTIVE",
            "One or more alarms have been activated according to the Amazon CloudWatch metrics you selected, and the "
            f"affected deployments have been stopped. Activated alarms: <{ALARMS['non-finite-rate']}>",
        ),
        events=[("BeforeAllowTraffic", "Succeeded", None), ("AllowTraffic", "Failed", None)],
    )
    gate_stop = FakeDeployment(
        "d-GATE345",
        "Failed",
        20,
        ("3", "5"),
        error=("HOOK_EXECUTION_FAILURE", "The deployment failed because of a lifecycle event hook failure"),
        events=[("BeforeAllowTraffic", "Failed", "acceptance: 2 of 30 cases failed (pass rate 0.93 < 1.0)")],
    )
    hotfix = FakeDeployment("d-HOTFIX6", "Succeeded", 5, ("3", "6"), config="modelrail-production-iris-hotfix")
    account.codedeploy.deployments([*HISTORY, alarm_stop, gate_stop, hotfix])

    code, out, err = run("history", "--env", "production")

    assert (code, err) == (0, "")
    rows = [line for line in out.splitlines() if " d-" in line]
    assert [row.split()[1] for row in rows] == ["d-HOTFIX6", "d-GATE345", "d-ALARM45", "d-SECOND3", "d-FIRST12"]
    assert "3 -> 6" in rows[0]
    assert rows[0].endswith("Succeeded   modelrail-production-iris-hotfix; HOTFIX")
    assert rows[1].endswith(
        "stopped by acceptance gate (pre-traffic hook): acceptance: 2 of 30 cases failed (pass rate 0.93 < 1.0)"
    )
    assert rows[2].endswith("stopped by alarm non-finite-rate")
    assert "1 -> 2" in rows[4]
    assert "Succeeded" in rows[4]


def test_history_limit_and_json(account: Account, run: Callable[..., tuple[int, str, str]]) -> None:
    account.codedeploy.deployments(HISTORY, limit=1)

    code, out, _ = run("history", "--env", "production", "--limit", "1", "--json")

    assert code == 0
    (newest,) = json.loads(out)["iris"]
    assert (newest["id"], newest["from_version"], newest["to_version"], newest["hotfix"]) == (
        "d-SECOND3",
        "2",
        "3",
        False,
    )


# --- errors a user meets -------------------------------------------------------------------------------------


def test_missing_credentials_say_how_to_provide_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, run: Callable[..., tuple[int, str, str]]
) -> None:
    for key in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance role to find, and no network to try

    code, out, err = run("status", "--env", "production")

    assert (code, out) == (2, "")
    assert err.startswith(f"modelrail: no AWS credentials found while reading stack {STACK} (")
    assert "set AWS_PROFILE (after `aws configure` or `aws sso login`) or AWS_ACCESS_KEY_ID and" in err


def test_missing_stack_names_it_and_the_region(
    monkeypatch: pytest.MonkeyPatch, run: Callable[..., tuple[int, str, str]]
) -> None:
    credentials(monkeypatch)
    with mock_aws():
        code, out, err = run("history", "--env", "staging")

    assert (code, out) == (2, "")
    assert err == (
        f"modelrail: stack 'modelrail-staging' not found in {REGION}: deploy it (npx aws-cdk@2 deploy "
        "modelrail-staging), or name the right one with --stack/--env and the right region with --region or "
        "AWS_REGION\n"
    )


def test_access_denied_names_the_call_and_the_permissions(
    monkeypatch: pytest.MonkeyPatch, run: Callable[..., tuple[int, str, str]]
) -> None:
    credentials(monkeypatch)
    cloudformation = boto3.client("cloudformation", region_name=REGION)
    denied = f"User: {CALLER} is not authorized to perform: cloudformation:DescribeStacks"
    monkeypatch.setattr(
        operate_aws, "connect", lambda **kw: operate_aws.Aws(clients={"cloudformation": cloudformation}, **kw)
    )
    with Stubber(cloudformation) as stub:
        stub.add_client_error("describe_stacks", "AccessDenied", denied, 403)
        code, _, err = run("status", "--env", "production")

    assert code == 2
    assert err.startswith(f"modelrail: access denied while reading stack {STACK} (DescribeStacks): {denied}\n")
    assert "cloudformation:DescribeStacks, lambda:GetAlias" in err


def test_missing_region_says_where_to_set_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, run: Callable[..., tuple[int, str, str]]
) -> None:
    credentials(monkeypatch)
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))

    code, _, err = run("status", "--env", "production")

    assert code == 2
    assert err.startswith("modelrail: no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION)")


def test_aws_region_is_read_as_the_hint_says_although_boto3_reads_only_aws_default_region(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, run: Callable[..., tuple[int, str, str]]
) -> None:
    credentials(monkeypatch)
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    assert boto3.Session().region_name is None  # botocore's region setting is AWS_DEFAULT_REGION alone

    with mock_aws():
        code, _, err = run("status", "--env", "production")

    assert code == 2
    assert err.startswith(f"modelrail: stack {STACK!r} not found in eu-west-3")


def test_unknown_model_lists_the_stacks_models(account: Account, run: Callable[..., tuple[int, str, str]]) -> None:
    code, _, err = run("status", "--env", "production", "--model", "mnist")

    assert code == 2
    assert err == f"modelrail: no model 'mnist' in stack {STACK}; it has: iris\n"


def test_status_shows_that_the_last_deploy_was_a_hotfix(
    account: Account, run: Callable[..., tuple[int, str, str]]
) -> None:
    hotfixed = {
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {
            "Operationsiris": operations_output(),
            "Hotfix": {"Value": f"requested by {CALLER}: NaN on long petals"},
        },
    }
    boto3.client("cloudformation", region_name=REGION).create_stack(
        StackName="modelrail-hotfixed", TemplateBody=json.dumps(hotfixed)
    )
    hotfix = FakeDeployment("d-HOTFIX4", "Succeeded", 2, ("2", "3"), config="modelrail-production-iris-hotfix")
    account.codedeploy.deployments([], in_flight=True)
    account.codedeploy.deployments([*HISTORY, hotfix], limit=1)

    code, out, _ = run("status", "--stack", "modelrail-hotfixed")

    assert code == 0
    lines = out.splitlines()
    assert lines[1] == f"  last deploy was a hotfix: requested by {CALLER}: NaN on long petals"
    assert (
        "  deployment (last): d-HOTFIX4 Succeeded: 2 -> 3, config modelrail-production-iris-hotfix, "
        "HOTFIX (all at once)"
    ) in lines


def test_status_right_after_a_rollback_reads_the_versions_from_its_appspec(
    account: Account, run: Callable[..., tuple[int, str, str]]
) -> None:
    account.codedeploy.deployments([], in_flight=True)
    account.codedeploy.deployments(HISTORY)
    account.codedeploy.stub.add_response("create_deployment", {"deploymentId": "d-ROLLBACK"})
    assert run("rollback", "--env", "production")[0] == 0
    (request,) = account.codedeploy.created
    queued = FakeDeployment(
        "d-ROLLBACK",
        "Created",
        0,
        ("?", "?"),
        config=request["deploymentConfigName"],
        creator="user",
        description=request["description"],
        appspec=request["revision"]["appSpecContent"]["content"],
        started=False,
    )
    account.codedeploy.deployments([*HISTORY, queued], in_flight=True, limit=1)

    code, out, _ = run("status", "--env", "production")

    assert code == 0
    assert (
        "  deployment (in flight): d-ROLLBACK Created: 3 -> 2, config CodeDeployDefault.LambdaAllAtOnce, "
        "rollback by user, step: Created"
    ) in out.splitlines()
