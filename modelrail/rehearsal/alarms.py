"""AlarmEvaluator: a CloudWatch alarm from the deployment spec, evaluated on the rehearsal's metrics.

The definition (metrics, statistic, period, threshold, comparison, M of N, missing data) is the very object
the CDK stack turns into an AWS::CloudWatch::Alarm; this module only plays CloudWatch's evaluation: at the end
of each period it computes the value of the latest ``evaluation_periods`` complete periods and applies the
spec's state rule to them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from spec.alarms import AlarmDefinition, AlarmState

from .metrics import MetricStore, statistic


@dataclass
class Transition:
    time: float
    state: AlarmState
    reason: str


@dataclass
class AlarmEvaluator:
    definition: AlarmDefinition
    store: MetricStore
    model_name: str
    function_name: str
    version: str
    state: AlarmState = "INSUFFICIENT_DATA"
    history: list[Transition] = field(default_factory=list)
    last_values: list[float | None] = field(default_factory=list)
    _evaluated_until: float = 0.0

    @property
    def name(self) -> str:
        return self.definition.name

    def period_value(self, start: float) -> float | None:
        """The alarm's value for the period beginning at ``start`` (rehearsed seconds)."""
        end = start + self.definition.period_seconds
        stats = {}
        for query in self.definition.metrics:
            dimensions = query.dimensions(
                model_name=self.model_name, function_name=self.function_name, version=self.version
            )
            stats[query.id] = statistic(
                self.store.values(query.namespace, query.metric_name, dimensions, start, end), query.statistic
            )
        return self.definition.value(stats)

    def evaluate(self, now: float) -> AlarmState:
        """Evaluate every period boundary passed since the last call; returns the current state."""
        period = self.definition.period_seconds
        boundary = (now // period) * period
        while self._evaluated_until + period <= boundary:
            self._evaluated_until += period
            end = self._evaluated_until
            starts = [end - period * (k + 1) for k in reversed(range(self.definition.evaluation_periods))]
            values = [self.period_value(s) if s >= 0 else None for s in starts]
            self.last_values = values
            state = self.definition.state(values, current=self.state)
            if state != self.state:
                shown = ", ".join("-" if v is None else f"{v:.3g}" for v in values)
                reason = (
                    f"[{shown}] against {self.definition.threshold_text()} "
                    f"({self.definition.datapoints_to_alarm} of {self.definition.evaluation_periods})"
                )
                self.history.append(Transition(end, state, reason))
                self.state = state
        return self.state

    def fired_at(self) -> float | None:
        return next((t.time for t in self.history if t.state == "ALARM"), None)
