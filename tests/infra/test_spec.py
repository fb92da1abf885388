"""The deployment spec: what cdk.json may say, what it may not, and the alarm rules as data."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from spec.alarms import AlarmDefinition, MetricSource
from spec.base import SpecError
from spec.bundle import ModelBundle
from spec.models import load_spec, parse_spec
from spec.rollout import RolloutPolicy
from tests.infra.conftest import CDK_CONTEXT, ROOT
from tests.infra.template_queries import resources

SPEC: dict[str, Any] = CDK_CONTEXT["modelrail"]


def spec_with(path: str, value: Any) -> dict[str, Any]:
    """The committed spec with one field (dotted path, list indexes as numbers) replaced."""
    data = copy.deepcopy(SPEC)
    *parents, last = path.split(".")
    node: Any = data
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    node[int(last) if isinstance(node, list) else last] = value
    return data


def error_of(data: dict[str, Any]) -> str:
    with pytest.raises(SpecError) as caught:
        parse_spec(data).resolve_models(ROOT)
    return str(caught.value)


def test_committed_spec_loads_with_the_sample_bundle() -> None:
    spec = load_spec()
    assert set(spec.environments) == {"staging", "production"}
    (model,) = spec.resolve_models(ROOT)
    bundle = ModelBundle.load(ROOT / "models" / "iris")
    assert (model.name, model.sha256, model.max_batch_rows) == ("iris", bundle.sha256(), 1024)
    assert spec.environment("staging").rollout.kind == "all_at_once"
    assert spec.environment("production").rollout.schedule() == ((0, 10), (15, 100))


def test_unknown_rollout_kind_names_the_field_and_the_allowed_kinds() -> None:
    message = error_of(spec_with("environments.production.rollout", {"kind": "blue_green"}))
    assert "context.modelrail.environments.production.rollout.kind" in message
    assert "'all_at_once', 'canary' or 'linear'" in message
    assert "blue_green" in message


def test_negative_percentage_is_refused() -> None:
    message = error_of(
        spec_with("environments.production.rollout", {"kind": "canary", "percentage": -10, "interval_minutes": 5})
    )
    assert "environments.production.rollout.percentage" in message
    assert "greater than or equal to 1" in message
    assert "-10" in message


@pytest.mark.parametrize("percentage", [0, 100, 150])
def test_percentage_must_leave_some_traffic_on_each_side(percentage: int) -> None:
    message = error_of(
        spec_with(
            "environments.production.rollout", {"kind": "linear", "percentage": percentage, "interval_minutes": 1}
        )
    )
    assert "rollout.percentage" in message


def test_canary_without_interval_and_all_at_once_with_percentage_are_refused() -> None:
    assert "interval_minutes is required for a canary rollout" in error_of(
        spec_with("environments.production.rollout", {"kind": "canary", "percentage": 10})
    )
    assert "percentage is not allowed for an all_at_once rollout" in error_of(
        spec_with("environments.staging.rollout", {"kind": "all_at_once", "percentage": 10})
    )


def test_missing_bundle_names_the_model_entry_and_the_path() -> None:
    message = error_of(spec_with("models", [{"bundle": "models/does-not-exist"}]))
    assert message.startswith("context.modelrail.models[0].bundle:")
    assert "models/does-not-exist: no such bundle" in message


@pytest.mark.parametrize("sha256", ["abc", "A" * 64, "g" * 64, "a" * 63])
def test_bad_sha256_is_refused_with_what_a_sha256_looks_like(sha256: str) -> None:
    model = {"uri": "s3://models-example/iris.onnx", "sha256": sha256, "name": "iris"}
    message = error_of(spec_with("models", [model]))
    assert "context.modelrail.models[0].sha256" in message
    assert "expected 64 lowercase hex characters" in message


def test_uri_model_needs_its_sha256_and_a_bundle_may_not_override_it() -> None:
    assert "needs 'sha256' and 'name'" in error_of(
        spec_with("models", [{"uri": "s3://models-example/iris.onnx", "name": "iris"}])
    )
    assert "come from the bundle itself" in error_of(
        spec_with("models", [{"bundle": "models/iris", "sha256": "a" * 64}])
    )
    assert "expected s3://<bucket>/<key>" in error_of(
        spec_with("models", [{"uri": "https://example.com/m.onnx", "sha256": "a" * 64, "name": "m"}])
    )


def test_unknown_fields_and_inconsistent_alarm_windows_are_refused() -> None:
    assert "environments.production.function.memmory_mb: unknown field" in error_of(
        spec_with("environments.production.function.memmory_mb", 1024)
    )
    message = error_of(spec_with("environments.production.alarms.datapoints_to_alarm", 5))
    assert "datapoints_to_alarm (5) must be <= evaluation_periods (3)" in message
    assert "auth" in error_of(spec_with("environments.production.api.auth", "cognito"))


def test_a_canary_step_shorter_than_the_alarm_window_is_refused() -> None:
    # 2 of 3 one-minute periods, plus a minute before Lambda's and the EMF's datapoints are in CloudWatch.
    message = error_of(
        spec_with("environments.production.rollout", {"kind": "canary", "percentage": 10, "interval_minutes": 1})
    )
    assert "context.modelrail.environments.production.alarms: model-error-rate needs up to 180 s to go to ALARM" in (
        message
    )
    assert "(2 x 60 s periods + 60 s until Requests reaches CloudWatch: CloudWatch delivery)" in message
    assert "each canary step lasts 60 s (rollout.interval_minutes 1): it cannot stop the step" in message


# --- alarms that can fire ---------------------------------------------------------------------------------------
# CloudWatch turns each period into one value (no datapoint: missing, which these alarms treat as not breaching) and
# alarms on datapoints_to_alarm breaching periods of the latest evaluation_periods (CloudWatch User Guide, "Using
# Amazon CloudWatch alarms"); CodeDeploy stops a deployment on an alarm in ALARM only while the deployment runs
# (CodeDeploy User Guide, "Monitoring deployments with CloudWatch alarms in CodeDeploy").

ONE_MINUTE_TWO_OF_THREE = {"period_seconds": 60, "evaluation_periods": 3, "datapoints_to_alarm": 2}


def test_an_alarm_faster_than_its_metric_is_refused() -> None:
    # What production deployed before: PredictionDivergence, one datapoint per 5-minute monitor run, watched over
    # one-minute periods, 2 of 3. At most one period in three ever holds a datapoint: it could never fire.
    message = error_of(
        spec_with("environments.production.alarms.prediction_divergence_window", ONE_MINUTE_TWO_OF_THREE)
    )
    assert (
        "context.modelrail.environments.production.alarms: prediction-divergence evaluates 60 s periods but "
        "PredictionDivergence is published every 300 s (monitoring.schedule_minutes 5): it can never fire; "
        "use a period of at least 300 s"
    ) in message


def test_a_slower_monitor_or_sub_minute_periods_are_refused_too() -> None:
    slower = spec_with("environments.production.monitoring.schedule_minutes", 10)
    slower["environments"]["production"]["alarms"]["prediction_divergence_window"] = {"period_seconds": 300}
    assert (
        "prediction-divergence evaluates 300 s periods but PredictionDivergence is published every 600 s "
        "(monitoring.schedule_minutes 10): most of its periods hold no datapoint"
    ) in error_of(slower)
    # Lambda's metrics and the EMF's are standard resolution: one value a minute.
    message = error_of(spec_with("environments.staging.alarms.period_seconds", 30))
    assert (
        "context.modelrail.environments.staging.alarms: model-error-rate evaluates 30 s periods but Requests is "
        "published every 60 s (CloudWatch standard resolution)"
    ) in message
    assert "throttle-rate evaluates 30 s periods but Invocations is published every 60 s" in message


@pytest.mark.parametrize(
    ("rollout", "step"),
    [
        ({"kind": "canary", "percentage": 10, "interval_minutes": 5}, "each canary step lasts 300 s"),
        ({"kind": "linear", "percentage": 20, "interval_minutes": 10}, "each linear step lasts 600 s"),
    ],
)
def test_an_alarm_that_cannot_fire_within_one_step_is_refused(rollout: dict[str, Any], step: str) -> None:
    # The paired canary alarm on the monitor's 5-minute schedule, 1 of 1: a captured row takes up to 90 s to reach
    # S3 (Firehose's 60 s buffer, 1.5 times with dynamic partitioning), up to 300 s more for the next run to publish
    # it, and the alarm's one 300 s period: 690 s, longer than production's former 5-minute canary.
    message = error_of(spec_with("environments.production.rollout", rollout))
    assert (
        "context.modelrail.environments.production.alarms: canary-disagreement needs up to 690 s to go to ALARM "
        "(1 x 300 s periods + 390 s until CanaryDisagreement reaches CloudWatch: capture delivery 90 s + "
        "monitoring.schedule_minutes 5) but " + step
    ) in message
    # prediction-divergence (the prediction mix) notifies and never stops a rollout: it has no step to fit.
    assert "prediction-divergence" not in message
    assert "make the step at least 12 minutes" in message
    assert "model-error-rate" not in message  # 180 s fits
    # Without capture there is no monitor and no PredictionDivergence: nothing for the step to wait for.
    uncaptured = spec_with("environments.production.rollout", rollout)
    uncaptured["environments"]["production"]["monitoring"]["capture"] = False
    assert parse_spec(uncaptured).environment("production").rollout == RolloutPolicy(**rollout)


def test_all_at_once_has_no_step_to_fit_but_its_alarms_must_still_fit_their_metrics() -> None:
    # An all-at-once deployment ends seconds after its post-traffic hook: only the acceptance gate protects it, and
    # an alarm's time to fire is no reason to refuse it.
    hourly = spec_with("environments.staging.monitoring", {"schedule_minutes": 60})
    staging = parse_spec(hourly).environment("staging")
    (divergence,) = [d for d in staging.alarm_definitions() if d.name == "prediction-divergence"]
    assert (divergence.period_seconds, divergence.seconds_to_alarm(60)) == (3600, 7290)
    assert staging.canary_analysis_traffic() is None
    assert "prediction-divergence evaluates 60 s periods" in error_of(
        spec_with("environments.staging.alarms.prediction_divergence_window", ONE_MINUTE_TWO_OF_THREE)
    )


def test_the_committed_production_alarms_can_all_stop_its_canary() -> None:
    production = load_spec().environment("production")
    schedule, step = production.monitoring.schedule_minutes, (production.rollout.interval_minutes or 0) * 60
    windows = {}
    for alarm in production.alarm_definitions():
        assert all(alarm.period_seconds >= q.metric.interval_s(schedule) for q in alarm.metrics), alarm.name
        assert alarm.seconds_to_alarm(schedule) <= step, alarm.name
        windows[alarm.name] = (alarm.period_seconds, alarm.evaluation_periods, alarm.datapoints_to_alarm)
    # The canary analysis on the monitor's cadence, 1 of 1; the per-request and Lambda alarms keep 2 of 3 minutes.
    assert windows.pop("prediction-divergence") == (300, 1, 1)
    assert windows.pop("canary-disagreement") == (300, 1, 1)
    assert set(windows.values()) == {(60, 3, 2)}
    # What the README quotes: 50 captured canary rows at 5% capture of a 10% canary are 10,000 requests, which
    # must arrive in the 210 s the 15-minute step leaves before the alarm's 690 s.
    traffic = production.canary_analysis_traffic()
    assert traffic is not None
    assert (traffic.requests, traffic.step_seconds, traffic.seconds_available) == (10_000, 900, 210)
    assert round(traffic.per_second_over_the_step, 1) == 11.1
    assert traffic.per_second_needed is not None
    assert round(traffic.per_second_needed, 1) == 47.6
    # The paired canary analysis needs 20 compared requests: 4,000 requests to the alias in the same 210 s.
    paired = production.paired_analysis_traffic()
    assert paired is not None
    assert (paired.requests, paired.step_seconds, paired.seconds_available) == (4_000, 900, 210)
    assert paired.per_second_needed is not None
    assert round(paired.per_second_needed, 1) == 19.0


def test_the_production_template_s_paired_canary_alarm_fits_the_monitor_and_the_canary(
    production: dict[str, Any],
) -> None:
    """Read as AWS would: the alarm's period against the schedule rule, and its time to fire against the canary
    config, with the Firehose buffer and the monitor's row minimum the template itself sets."""
    (alarm,) = [
        a["Properties"]
        for a in resources(production, "AWS::CloudWatch::Alarm").values()
        if "rollout alarm canary-disagreement)" in a["Properties"]["AlarmDescription"]
    ]
    (rule,) = [r["Properties"] for r in resources(production, "AWS::Events::Rule").values()]
    (config,) = [c["Properties"] for c in resources(production, "AWS::CodeDeploy::DeploymentConfig").values()]
    (stream,) = [s["Properties"] for s in resources(production, "AWS::KinesisFirehose::DeliveryStream").values()]
    (monitor,) = [
        f["Properties"]
        for f in resources(production, "AWS::Lambda::Function").values()
        if f["Properties"]["Handler"] == "monitor.handler.handler"
    ]
    rate = re.fullmatch(r"rate\((\d+) minutes?\)", rule["ScheduleExpression"])
    assert rate is not None, rule["ScheduleExpression"]
    schedule_s = int(rate[1]) * 60
    canary = config["TrafficRoutingConfig"]["TimeBasedCanary"]
    buffer_s = stream["ExtendedS3DestinationConfiguration"]["BufferingHints"]["IntervalInSeconds"]
    assert alarm["Period"] >= schedule_s
    assert (alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]) == (1, 1)
    assert alarm["DatapointsToAlarm"] * alarm["Period"] + buffer_s * 1.5 + schedule_s <= canary["CanaryInterval"] * 60
    assert alarm["MetricName"] == "CanaryDisagreement"
    assert monitor["Environment"]["Variables"]["PAIRED_MIN_REQUESTS"] == "20"


def test_duplicate_model_names_are_refused() -> None:
    message = error_of(spec_with("models", [{"bundle": "models/iris"}, {"bundle": "models/iris"}]))
    assert "model names must be unique" in message


def test_missing_or_malformed_context(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="context.modelrail is missing"):
        parse_spec(None)
    with pytest.raises(SpecError, match="not valid JSON"):
        parse_spec("{nope")
    cdk_json = tmp_path / "cdk.json"
    cdk_json.write_text(json.dumps({"context": {"modelrail": SPEC}}))
    assert load_spec(cdk_json) == load_spec()


def test_the_app_refuses_an_invalid_spec_before_synthesizing_anything(tmp_path: Path) -> None:
    from app import create_app

    context = copy.deepcopy(CDK_CONTEXT)
    context["modelrail"] = spec_with("environments.production.rollout.kind", "yolo")
    with pytest.raises(SpecError, match=r"rollout\.kind"):
        create_app(context=context, outdir=str(tmp_path), base_dir=ROOT, nag=False)


# --- rollout schedules ---------------------------------------------------------------------------------------


def test_schedules() -> None:
    assert RolloutPolicy(kind="all_at_once").schedule() == ((0, 100),)
    assert RolloutPolicy(kind="canary", percentage=10, interval_minutes=5).schedule() == ((0, 10), (5, 100))
    linear = RolloutPolicy(kind="linear", percentage=30, interval_minutes=2)
    assert linear.schedule() == ((0, 30), (2, 60), (4, 90), (6, 100))
    assert linear.duration_minutes == 6


# --- alarm definitions ---------------------------------------------------------------------------------------


def definitions(environment: str = "production") -> dict[str, AlarmDefinition]:
    return {d.name: d for d in load_spec().environment(environment).alarm_definitions()}


def test_every_rollout_alarm_is_a_version_scoped_rate_or_budget_with_missing_data_not_breaching() -> None:
    alarms = definitions()
    assert set(alarms) == {
        "model-error-rate",
        "non-finite-rate",
        "function-error-rate",
        "throttle-rate",
        "latency-p99",
        "prediction-divergence",
        "canary-disagreement",
    }
    for alarm in alarms.values():
        assert alarm.treat_missing_data == "notBreaching"
        # The prediction mix is a drift signal: a model that swaps labels keeps it, so it decides nothing.
        assert alarm.stops_rollout is (alarm.name != "prediction-divergence")
        for query in alarm.metrics:
            dims = query.dimensions(model_name="iris", function_name="fn", version="7")
            assert dims.get("ModelVersion", dims.get("ExecutedVersion")) == "7"
            if query.source is MetricSource.LAMBDA:
                assert dims["Resource"] == "fn:live"
    assert alarms["model-error-rate"].expression == (
        "100 * (FILL(modelErrors, 0) + FILL(unavailable, 0)) / (FILL(requests, 0))"
    )
    assert alarms["latency-p99"].expression is None
    assert alarms["latency-p99"].metrics[0].statistic == "p99"


def test_thresholds_come_from_each_environment() -> None:
    assert definitions("production")["model-error-rate"].threshold == 1
    assert definitions("staging")["model-error-rate"].threshold == 5
    assert definitions("production")["latency-p99"].threshold == 500


def test_alarm_values_and_states_follow_cloudwatch() -> None:
    rate = definitions()["model-error-rate"]  # > 1%, 2 of 3 periods
    assert rate.value({"requests": 200, "modelErrors": 3}) == pytest.approx(1.5)  # unavailable: no data -> 0
    assert rate.value({"modelErrors": 3}) is None  # no requests: missing, not infinite
    assert rate.value({"requests": 0, "modelErrors": 0}) is None
    assert rate.state([None, None, None]) == "OK"  # an idle canary is not rolled back
    assert rate.state([]) == "OK"
    assert rate.state([0.0, 2.0, None]) == "OK"  # one breaching period of three
    assert rate.state([2.0, None, 3.0]) == "ALARM"
    assert rate.state([5.0, 5.0, 0.0, 0.0, 0.0]) == "OK"  # only the latest evaluation_periods count
    latency = definitions()["latency-p99"]
    assert latency.value({"latency": 750.0}) == 750.0
    assert latency.breaches(501)
    assert not latency.breaches(500)


def test_missing_data_policies_other_than_not_breaching() -> None:
    rate = definitions()["model-error-rate"]  # 2 of 3
    ignoring = rate.model_copy(update={"treat_missing_data": "ignore"})
    assert ignoring.state([None, None, None], current="ALARM") == "ALARM"  # keeps its state
    assert ignoring.state([None, 2.0, 3.0]) == "ALARM"
    missing = rate.model_copy(update={"treat_missing_data": "missing"})
    assert missing.state([None, None, None], current="OK") == "INSUFFICIENT_DATA"
    breaching = rate.model_copy(update={"treat_missing_data": "breaching"})
    assert breaching.state([None, 0.0, None]) == "ALARM"  # two missing periods count as bad


def test_alarm_definition_consistency_is_checked() -> None:
    with pytest.raises(ValueError, match="unknown metric ids"):
        AlarmDefinition(
            name="x",
            description="x",
            metrics=({"id": "a", "source": "model", "metric_name": "Requests", "statistic": "Sum"},),
            numerator=("b",),
            denominator=("a",),
            period_seconds=60,
            threshold=1,
            evaluation_periods=1,
            datapoints_to_alarm=1,
        )


def test_make_synth_reports_an_invalid_spec_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import app

    def invalid(*_: Any, **__: Any) -> None:
        parse_spec(spec_with("environments.production.rollout.kind", "yolo"))

    monkeypatch.setattr(app, "create_app", invalid)
    assert app.main() == 2
    assert "modelrail: cdk.json: invalid deployment spec" in capsys.readouterr().err
