"""CanaryAnalysis: the drift monitor function run on its schedule, as the canary analysis runs in AWS.

The real monitor (functions/monitor/handler.py) is invoked in its own Lambda worker every
``monitoring.schedule_minutes`` of rehearsed time, as its EventBridge rate rule invokes it, with the schedule event's
``time`` in rehearsed time (its window ends there). It reads the records the workers' data capture sent through the
capture stream (sampled, buffered, partitioned on the embedded S3) and publishes its metrics with PutMetricData to
the embedded CloudWatch. After each run, the datapoints of every monitor metric a rollout alarm watches are read
back from there into the rehearsal's metrics, stamped at their rehearsed time: CanaryDisagreement reaches the
canary-disagreement alarm exactly when, and as often as, the monitor publishes it, and not at all for a model the
monitor does not watch (its bundle has no baseline.json) or before enough canary requests were compared.

The paired canary analysis is the monitor's own: it reads the alias ``live`` and invokes the version being replaced
through the Lambda API (lambda_api.py answers it with the rehearsal's alias and workers), with the canary's
captured requests.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from modelrail.local.worker import LambdaWorker
from spec import catalog
from spec.alarms import MetricQuery

from .clock import RehearsalClock
from .metrics import Datapoint, MetricStore


@dataclass
class MonitorRun:
    time: float  # rehearsed seconds: the schedule event's time
    rows: dict[str, int] = field(default_factory=dict)  # captured rows in the window, by version
    error: str | None = None
    published: dict[str, float] = field(default_factory=dict)  # metric name -> value read back for the candidate
    paired: dict[str, Any] | None = None  # the monitor's paired canary report (compared, disagreed, ...)


class CanaryAnalysis:
    def __init__(
        self,
        *,
        store: MetricStore,
        clock: RehearsalClock,
        model: str,
        candidate: str,
        queries: list[MetricQuery],
        schedule_minutes: int,
        min_canary_rows: int,
        paired_min: int = 20,
        start_monitor: Callable[[], LambdaWorker] | None = None,
        cloudwatch: Any = None,
        off: str | None = None,
    ) -> None:
        """``queries``: the alarms' metric queries on monitor metrics; ``start_monitor`` starts the monitor's worker
        (its cold start overlaps the rollout's start); None, with ``off`` saying why: no monitor watches the model,
        as in AWS."""
        self.store = store
        self.clock = clock
        self.model = model
        self.candidate = candidate
        self.queries = [q for q in queries if q.metric.publisher is catalog.Function.MONITOR]
        self.schedule_s = schedule_minutes * 60
        self.min_canary_rows = min_canary_rows
        self.paired_min = paired_min
        self.start_monitor = start_monitor
        self.monitor: LambdaWorker | None = None
        self.cloudwatch = cloudwatch
        self.off = off
        self.runs: list[MonitorRun] = []
        self.latest: float | None = None  # the latest PredictionDivergence the monitor published
        self.disagreement: float | None = None  # the latest CanaryDisagreement
        self.paired: dict[str, Any] | None = None  # the latest paired canary report of the candidate
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> CanaryAnalysis:
        if self.start_monitor is not None:
            self._thread = threading.Thread(target=self._schedule, name="monitor-schedule", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        if self.monitor is not None:
            self.monitor.stop()

    def _schedule(self) -> None:
        """EventBridge's rate rule: a run every ``schedule_s`` rehearsed seconds from the rule's creation (t = 0)."""
        assert self.start_monitor is not None
        try:
            self.monitor = self.start_monitor()
        except Exception as exc:  # shown in the view; the alarm then has no data, as with a broken monitor in AWS
            self.runs.append(MonitorRun(self.clock.now(), error=f"the monitor did not start: {exc}"))
            return
        due = self.schedule_s
        while self.clock.sleep_until(due, self._stop):
            self.run(due)
            due += self.schedule_s

    def run(self, at: float) -> MonitorRun:
        """One scheduled invocation at rehearsed time ``at``, then its published datapoints into the store."""
        assert self.monitor is not None
        moment = self.clock.date(at)
        event = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "time": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": "us-east-1",
            "resources": ["arn:aws:events:us-east-1:000000000000:rule/modelrail-drift-monitor"],
            "detail": {},
        }
        run = MonitorRun(at)
        response = self.monitor.invoke(event).response
        if "reports" in response:
            mine = [r for r in response["reports"] if r.get("model") == self.model]
            run.rows = {str(r["version"]): int(r["rows"]) for r in mine if "rows" in r}
            run.paired = next((r["paired"] for r in mine if "paired" in r and r["version"] == self.candidate), None)
            if run.paired is not None:
                self.paired = run.paired
        else:
            run.error = str(response.get("body") or response)
        for query in self.queries:
            for stamp, value in self._read_back(query, moment):
                dimensions = query.dimensions(model_name=self.model, function_name="", version=self.candidate)
                point = Datapoint(stamp, query.namespace, query.metric_name, frozenset(dimensions.items()), value)
                self.store.add([point])
                run.published[query.metric_name] = value
                if query.metric_name == catalog.PREDICTION_DIVERGENCE.name:
                    self.latest = value
                if query.metric_name == catalog.CANARY_DISAGREEMENT.name:
                    self.disagreement = value
        self.runs.append(run)
        return run

    def _read_back(self, query: MetricQuery, moment: Any) -> list[tuple[float, float]]:
        """The run's datapoints of ``query``'s metric for the candidate, from the embedded CloudWatch.

        The monitor stamps what it publishes with the event's time, and runs at most once a minute, so one
        60-second period from that time holds exactly this run's datapoint.
        """
        dimensions = query.dimensions(model_name=self.model, function_name="", version=self.candidate)
        answer = self.cloudwatch.get_metric_data(
            MetricDataQueries=[
                {
                    "Id": "m",
                    "MetricStat": {
                        "Metric": {
                            "Namespace": query.namespace,
                            "MetricName": query.metric_name,
                            "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()],
                        },
                        "Period": catalog.STANDARD_RESOLUTION_S,
                        "Stat": query.statistic,
                    },
                }
            ],
            StartTime=moment,
            EndTime=moment + timedelta(seconds=catalog.STANDARD_RESOLUTION_S),
        )
        points = []
        for result in answer["MetricDataResults"]:
            for stamp, value in zip(result["Timestamps"], result["Values"], strict=True):
                points.append((self.clock.seconds(stamp), float(value)))
        return points

    def canary_rows(self) -> int | None:
        """Captured rows of the candidate in the latest run's window (None before any run)."""
        return self.runs[-1].rows.get(self.candidate, 0) if self.runs else None

    def summary(self) -> dict[str, Any]:
        """For the report: how many times the monitor ran, what it saw of the canary, what it published."""
        return {
            "monitor": "off: " + str(self.off) if self.start_monitor is None else "on",
            "monitor_runs": len(self.runs),
            "canary_rows": self.canary_rows(),
            "min_canary_rows": self.min_canary_rows,
            "prediction_divergence": round(self.latest, 4) if self.latest is not None else None,
            "canary_disagreement_percent": round(self.disagreement, 2) if self.disagreement is not None else None,
            "paired": self.paired,
        }

    def describe(self) -> str:
        """One line for the live view."""
        if self.start_monitor is None:
            return f"canary analysis: off ({self.off})"
        if not self.runs:
            every = f"every {self.schedule_s / 60:g} min"
            return f"canary analysis: the monitor runs {every}, first at t={self.schedule_s:.0f}s"
        last = self.runs[-1]
        if last.error:
            return f"canary analysis: monitor run at t={last.time:.0f}s failed: {last.error[:120]}"
        rows = f"{self.canary_rows()} captured canary rows"
        mix = "no PredictionDivergence yet" if self.latest is None else f"prediction-mix PSI {self.latest:.3f}"
        return f"canary analysis: {len(self.runs)} monitor runs, {rows}; {self.paired_line()}; {mix}"

    def paired_line(self) -> str:
        """The paired comparison, as the monitor last reported it."""
        if self.paired is None:
            return "paired: not run yet"
        compared, disagreed = self.paired.get("compared", 0), self.paired.get("disagreed", 0)
        line = f"paired: {disagreed} of {compared} canary requests answered otherwise by the old version"
        if self.disagreement is not None:
            return f"{line} (CanaryDisagreement {self.disagreement:.1f}%)"
        return f"{line} (publishes from {self.paired_min} compared)"
