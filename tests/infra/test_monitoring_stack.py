"""Monitoring in the synthesized stacks: data capture through Firehose, the scheduled drift monitor, drift
alarms that notify (never roll back), and monitoring off when the spec says so."""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from tests.infra.conftest import CDK_CONTEXT, ROOT, Synthesized
from tests.infra.template_queries import inference_function, only, resources, role_of, version_of_alias

BASELINE_SHA256 = hashlib.sha256((ROOT / "models" / "iris" / "baseline.json").read_bytes()).hexdigest()


def test_capture_goes_through_firehose_partitioned_by_model_version_and_hour(main: Synthesized) -> None:
    template = main["production"]
    (stream_id, stream) = resources(template, "AWS::KinesisFirehose::DeliveryStream").popitem()
    props = stream["Properties"]
    destination = props["ExtendedS3DestinationConfiguration"]
    assert destination["Prefix"] == (
        "capture/model=!{partitionKeyFromQuery:model}/version=!{partitionKeyFromQuery:version}/"
        "hour=!{timestamp:yyyy-MM-dd-HH}/"
    )
    assert destination["CompressionFormat"] == "GZIP"
    assert destination["DynamicPartitioningConfiguration"]["Enabled"] is True
    (processor,) = destination["ProcessingConfiguration"]["Processors"]
    assert {"ParameterName": "MetadataExtractionQuery", "ParameterValue": "{model: .model, version: .version}"} in (
        processor["Parameters"]
    )
    assert props["DeliveryStreamEncryptionConfigurationInput"] == {"KeyType": "AWS_OWNED_CMK"}

    _, function = inference_function(template)
    env = function["Properties"]["Environment"]["Variables"]
    assert env["CAPTURE_STREAM"] == {"Ref": stream_id}
    assert env["CAPTURE_SAMPLE_RATE"] == "0.05"


def test_drift_monitor_runs_on_a_schedule_with_the_uploaded_baseline(main: Synthesized) -> None:
    template = main["production"]
    _, monitor = only(template, "AWS::Lambda::Function", Handler="monitor.handler.handler")
    env = monitor["Properties"]["Environment"]["Variables"]
    function_id, _ = inference_function(template)
    parts = env["MODELS"]["Fn::Join"][1]
    names = {function_id: "FUNCTION"}
    models = json.loads("".join(p if isinstance(p, str) else names.get(p.get("Ref"), "BUCKET") for p in parts))
    assert models == [
        {
            "name": "iris",
            "baseline_uri": f"s3://BUCKET/baselines/iris/{BASELINE_SHA256}.json",
            "baseline_sha256": BASELINE_SHA256,
            "function_name": "FUNCTION",  # the paired canary analysis reads its alias, invokes its versions
        }
    ]
    assert env["WINDOW_MINUTES"] == "60"
    (rule,) = resources(template, "AWS::Events::Rule").values()
    assert rule["Properties"]["ScheduleExpression"] == "rate(5 minutes)"
    statements = [
        s
        for p in resources(template, "AWS::IAM::Policy").values()
        if {"Ref": role_of(monitor)} in p["Properties"]["Roles"]
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    (metrics,) = [s for s in statements if s["Action"] == "cloudwatch:PutMetricData"]
    assert metrics["Condition"] == {"StringEquals": {"cloudwatch:namespace": "modelrail"}}


def test_drift_alarms_follow_the_new_version_and_notify_without_rolling_back(main: Synthesized) -> None:
    template = main["production"]
    (topic_id,) = resources(template, "AWS::SNS::Topic")
    drift = {
        k: a["Properties"]
        for k, a in resources(template, "AWS::CloudWatch::Alarm").items()
        if a["Properties"].get("AlarmActions")
    }
    # PredictionDivergence (the two versions' prediction mixes during a rollout) is a drift signal too.
    names = sorted(p["MetricName"] for p in drift.values())
    assert names == ["FeatureDriftMax", "PredictionDivergence", "PredictionDrift"]
    version = version_of_alias(template)
    for props in drift.values():
        assert props["AlarmActions"] == [{"Ref": topic_id}]
        assert {"Name": "ModelVersion", "Value": {"Fn::GetAtt": [version, "Version"]}} in props["Dimensions"]
        assert props["Threshold"] == 0.25
        assert props["TreatMissingData"] == "notBreaching"
    (group,) = resources(template, "AWS::CodeDeploy::DeploymentGroup").values()
    watched = {a["Name"]["Ref"] for a in group["Properties"]["AlarmConfiguration"]["Alarms"]}
    assert not watched & set(drift)


def test_monitoring_off_leaves_no_capture_and_no_monitor(synth: Any) -> None:
    context = copy.deepcopy(CDK_CONTEXT)
    context["modelrail"]["environments"]["staging"]["monitoring"] = {"capture": False}
    template = synth("no-monitoring", context)["staging"]
    assert resources(template, "AWS::KinesisFirehose::DeliveryStream") == {}
    assert resources(template, "AWS::Events::Rule") == {}
    _, function = inference_function(template)
    assert "CAPTURE_STREAM" not in function["Properties"]["Environment"]["Variables"]
