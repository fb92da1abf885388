"""The catalog drives what is deployed: each function gets the variables it reads, and a metric renamed in the
catalog is renamed in the template's alarms, on the dashboard and in the rehearsal's alarm evaluation alike."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from functions import catalog
from functions.catalog import Function
from infra.drift import HANDLER as MONITOR_HANDLER
from infra.inference import HANDLER as INFERENCE_HANDLER
from infra.rollout import POST_TRAFFIC_HANDLER, PRE_TRAFFIC_HANDLER
from modelrail.rehearsal.alarms import AlarmEvaluator
from modelrail.rehearsal.metrics import MetricStore, emf_datapoints
from spec.models import parse_spec
from tests.functional.conftest import BUCKET, IRIS, cold_start, upload
from tests.infra.conftest import CDK_CONTEXT, Synthesized, context_with
from tests.infra.template_queries import resources
from tests.utils import Context, rest_event

pytestmark = pytest.mark.infra

READERS = {
    INFERENCE_HANDLER: Function.INFERENCE,
    PRE_TRAFFIC_HANDLER: Function.PRE_TRAFFIC,
    POST_TRAFFIC_HANDLER: Function.POST_TRAFFIC,
    MONITOR_HANDLER: Function.MONITOR,
}
RENAMED = "InferenceRequests"
FLOWER = {"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}


def test_every_variable_the_stack_sets_on_a_function_is_one_the_catalog_says_it_reads(main: Synthesized) -> None:
    deployed: set[Function] = set()
    for environment in ("staging", "production"):
        for function in resources(main[environment], "AWS::Lambda::Function").values():
            reader = READERS.get(function["Properties"].get("Handler"))
            if reader is None:
                continue  # CDK's own functions (the bundle upload's)
            deployed.add(reader)
            names = set(function["Properties"].get("Environment", {}).get("Variables", {}))
            reads = {v.name for v in catalog.read_by(reader)}
            required = {v.name for v in catalog.read_by(reader) if v.required and reader not in v.optional_for}
            assert names <= reads, f"{environment} {reader}: sets {sorted(names - reads)}, which it never reads"
            assert required <= names, f"{environment} {reader}: needs {sorted(required - names)}, not set"
    assert deployed == set(READERS.values())


@pytest.fixture
def requests_renamed() -> Iterator[catalog.Metric]:
    """Requests renamed in the catalog itself: the one definition every module holds, changed in place (as
    editing its name in functions/catalog.py would change it for every importer), restored afterwards."""
    metric = catalog.REQUESTS
    original = metric.name
    object.__setattr__(metric, "name", RENAMED)
    try:
        yield metric
    finally:
        object.__setattr__(metric, "name", original)


def handler_output(monkeypatch: pytest.MonkeyPatch, capsys: Any, requests: int) -> list[str]:
    """The real inference handler, cold-started on moto's S3, answering ``requests`` requests: what it printed."""
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        uri, sha256 = upload(s3, IRIS, "iris")
        env = {"MODEL_NAME": "iris", "MODEL_URI": uri, "MODEL_SHA256": sha256, "AWS_LAMBDA_FUNCTION_VERSION": "5"}
        module = cold_start(monkeypatch, env)
        capsys.readouterr()
        for _ in range(requests):
            response = module.lambda_handler(rest_event("POST", "/v2/models/iris/infer", FLOWER), Context())
            assert response["statusCode"] == 200
    return capsys.readouterr().out.splitlines()


def test_a_metric_renamed_in_the_catalog_is_renamed_in_the_alarms_the_dashboard_and_the_rehearsal(
    requests_renamed: catalog.Metric,
    synth: Callable[..., Synthesized],
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    production = CDK_CONTEXT["modelrail"]["environments"]["production"]
    template = synth("renamed", context_with(environments={"production": production}))["production"]

    # The template's rollout alarms: both rates divide by the renamed metric, none by the old name.
    watched = [
        m["MetricStat"]["Metric"]["MetricName"]
        for alarm in resources(template, "AWS::CloudWatch::Alarm").values()
        for m in alarm["Properties"].get("Metrics", [])
        if "MetricStat" in m
    ]
    assert watched.count(RENAMED) == 2  # model-error-rate and non-finite-rate
    assert "Requests" not in watched
    # The dashboard's by-version series.
    (dashboard,) = resources(template, "AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    assert f'MetricName=\\\\\\"{RENAMED}\\\\\\"' in body
    assert 'MetricName=\\\\\\"Requests\\\\\\"' not in body

    # The rehearsal: the handler's EMF records, read as the rehearsal reads them, against the spec's alarm.
    store = MetricStore()
    store.add(emf_datapoints(handler_output(monkeypatch, capsys, requests=3), time=10.0))
    environment = parse_spec(CDK_CONTEXT["modelrail"]).environment("production")
    (definition,) = [d for d in environment.alarm_definitions() if d.name == "model-error-rate"]
    evaluator = AlarmEvaluator(definition, store, model_name="iris", function_name="modelrail-iris", version="5")
    assert evaluator.period_value(0.0) == 0.0  # 3 requests found under the new name, none failed
    assert store.values(catalog.NAMESPACE, RENAMED, {"ModelName": "iris", "ModelVersion": "5"}, 0.0, 60.0) == [1.0] * 3
