"""ModelDashboard: one CloudWatch dashboard per model, every series split by version so a canary stands apart."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from spec import catalog
from spec.catalog import Dimension, Metric

_PERIOD = Duration.minutes(1)


def _by_version(model_name: str, metric: Metric, statistic: str, label: str) -> cloudwatch.MathExpression:
    """Every version's series of one of modelrail's metrics (CloudWatch SEARCH; dashboards only, never alarms)."""
    schema = ",".join((metric.namespace, *metric.dimensions))
    search = (
        f'SEARCH(\'{{{schema}}} {Dimension.MODEL_NAME}="{model_name}" '
        f"MetricName=\"{metric.name}\"', '{statistic}', {int(_PERIOD.to_seconds())})"
    )
    return cloudwatch.MathExpression(expression=search, using_metrics={}, label=label, period=_PERIOD)


class ModelDashboard(Construct):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        model_name: str,
        function: lambda_.IFunction,
        alarms: Sequence[cloudwatch.IAlarm],
        drift_alarms: Sequence[cloudwatch.IAlarm] = (),
    ) -> None:
        super().__init__(scope, id_)
        m = model_name
        lambda_throttles = function.metric(catalog.THROTTLES.name, period=_PERIOD, statistic="Sum")
        concurrency = function.metric(catalog.CONCURRENT_EXECUTIONS.name, period=_PERIOD, statistic="Maximum")
        self.dashboard = cloudwatch.Dashboard(self, "Dashboard", default_interval=Duration.hours(3))
        self.dashboard.add_widgets(
            cloudwatch.TextWidget(
                markdown=f"# modelrail: {m}\nEvery series is split by Lambda version: during a rollout the new "
                "version is the one with the highest number.",
                width=24,
                height=2,
            )
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(title="Requests by version", left=[_by_version(m, catalog.REQUESTS, "Sum", "")]),
            cloudwatch.GraphWidget(
                title="Errors by version",
                left=[
                    _by_version(m, catalog.MODEL_ERRORS, "Sum", "model errors"),
                    _by_version(m, catalog.NON_FINITE_OUTPUTS, "Sum", "non-finite outputs"),
                    _by_version(m, catalog.UNAVAILABLE, "Sum", "unavailable"),
                    _by_version(m, catalog.CLIENT_ERRORS, "Sum", "client errors"),
                ],
            ),
            cloudwatch.GraphWidget(
                title="Request latency p50 / p99 (ms) by version",
                left=[
                    _by_version(m, catalog.REQUEST_LATENCY, "p50", "p50"),
                    _by_version(m, catalog.REQUEST_LATENCY, "p99", "p99"),
                ],
            ),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Model latency p50 / p99 (ms) by version",
                left=[
                    _by_version(m, catalog.MODEL_LATENCY, "p50", "p50"),
                    _by_version(m, catalog.MODEL_LATENCY, "p99", "p99"),
                ],
            ),
            cloudwatch.GraphWidget(
                title="Cold starts by version", left=[_by_version(m, catalog.COLD_START, "Sum", "")]
            ),
            cloudwatch.GraphWidget(title="Throttles and concurrency", left=[lambda_throttles], right=[concurrency]),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Drift from the baseline (PSI) by version",
                left=[
                    _by_version(m, catalog.FEATURE_DRIFT_MAX, "Maximum", "worst input feature"),
                    _by_version(m, catalog.PREDICTION_DRIFT, "Maximum", "predictions"),
                ],
                left_annotations=[cloudwatch.HorizontalAnnotation(value=0.25, label="significant")],
            ),
            cloudwatch.GraphWidget(
                title="Canary analysis: new vs old version, prediction mix (PSI) and paired disagreement (%)",
                left=[_by_version(m, catalog.PREDICTION_DIVERGENCE, "Maximum", "prediction mix PSI")],
                left_annotations=[cloudwatch.HorizontalAnnotation(value=0.25, label="significant")],
                right=[_by_version(m, catalog.CANARY_DISAGREEMENT, "Maximum", "% answered otherwise")],
            ),
            cloudwatch.GraphWidget(
                title="Data capture by version",
                left=[
                    _by_version(m, catalog.CAPTURED_RECORDS, "Sum", "captured"),
                    _by_version(m, catalog.CAPTURE_DROPPED, "Sum", "dropped"),
                ],
            ),
        )
        self.dashboard.add_widgets(
            cloudwatch.AlarmStatusWidget(
                title="Rollout alarms (new version) and drift alarms", alarms=[*alarms, *drift_alarms], width=24
            )
        )
