"""The rehearsal's terminal view: alias weights, traffic by version, alarm states and the controller's
decisions, live (rich) on a terminal, as plain lines otherwise."""

from __future__ import annotations

import statistics
import threading
import time
from collections import Counter
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from .alarms import AlarmEvaluator
from .alias import WeightedAlias
from .canary import CanaryAnalysis
from .clock import RehearsalClock
from .drift import DriftWatch

STATUS_LINE_MAX = 160  # a log line a person reads whole
STATE_STYLE = {"OK": "green", "ALARM": "bold red", "INSUFFICIENT_DATA": "yellow"}


class RehearsalView:
    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console()
        self.live_mode = self.console.is_terminal
        self.title = ""
        self.alias: WeightedAlias | None = None
        self.alarms: list[AlarmEvaluator] = []
        self.clock: RehearsalClock | None = None
        self.decisions: list[str] = []
        self.canary: CanaryAnalysis | None = None
        self.drift: DriftWatch | None = None
        self._live: Live | None = None
        self._ticker: threading.Thread | None = None
        self._stop = threading.Event()
        self._last_status = -1
        self._signals: tuple[float, str] | None = None  # (monotonic time, text): drift is recomputed once a second

    def begin(
        self,
        title: str,
        alias: WeightedAlias,
        alarms: list[AlarmEvaluator],
        clock: RehearsalClock,
        *,
        canary: CanaryAnalysis | None = None,
        drift: DriftWatch | None = None,
    ) -> None:
        self.title, self.alias, self.alarms, self.clock = title, alias, alarms, clock
        self.canary, self.drift = canary, drift
        self.decisions = []
        self._last_status = -1
        self._signals = None
        self._stop.clear()
        self.console.rule(f"[bold]{title}")
        if self.live_mode:
            self._live = Live(self.render(), console=self.console, refresh_per_second=4, transient=False)
            self._live.start()
        self._ticker = threading.Thread(target=self._tick, daemon=True)
        self._ticker.start()

    def end(self) -> None:
        self._stop.set()
        if self._ticker:
            self._ticker.join()
        self._signals = None  # the final view shows the final figures
        if self._live:
            self._live.update(self.render())
            self._live.stop()
            self._live = None
        else:
            self._status_line()

    def decision(self, time: float, message: str) -> None:
        line = f"[t={time:7.1f}s] {message}"
        self.decisions.append(line)
        if not self.live_mode:
            self.console.print(line, highlight=False, markup=False)

    def _tick(self) -> None:
        while not self._stop.wait(0.25):
            if self._live:
                self._live.update(self.render())
            elif self.clock and self.alarms:
                period = self.alarms[0].definition.period_seconds
                current = int(self.clock.now() // period)
                if current != self._last_status:
                    self._last_status = current
                    self._status_line()

    def _status_line(self) -> None:
        if not self.alias or not self.clock:
            return
        self.console.print(self.status_line(), highlight=False, markup=False, style="dim", soft_wrap=True)

    def status_line(self) -> str:
        """One line for logs and CI (no terminal): under STATUS_LINE_MAX characters, alarms counted by state
        unless one fires (then named), the monitoring signals last and cut short if need be."""
        assert self.alias is not None
        assert self.clock is not None
        weights = " ".join(f"v{v} {w:.0%}" for v, w in self.alias.weights().items())
        traffic = ", ".join(
            f"v{v} {s.total} req {s.errors} err" + (f" {s.throttled} throttled" if s.throttled else "")
            for v, s in sorted(self.alias.stats.items())
        )
        states = Counter(a.state for a in self.alarms)
        firing = [a.name for a in self.alarms if a.state == "ALARM"]
        alarms = ", ".join(
            f"{n} {state.replace('INSUFFICIENT_DATA', 'no data')}" for state, n in sorted(states.items()) if n
        )
        if firing:
            alarms += f" (ALARM: {', '.join(firing)})"
        line = f"  [t={self.clock.now():7.1f}s] {weights} | {traffic} | alarms {alarms or 'none'} | {self.signals()}"
        return line if len(line) < STATUS_LINE_MAX else line[: STATUS_LINE_MAX - 2] + "…"

    def render(self) -> Any:
        assert self.alias is not None
        assert self.clock is not None
        weights = self.alias.weights()
        versions = Table(title=f"{self.title}: t = {self.clock.now():.0f} s rehearsed (x{self.clock.scale:g})")
        for column in ("version", "weight", "requests", "errors (5xx)", "client errors", "throttled", "p50 ms"):
            versions.add_column(column, justify="right")
        for version, stats in sorted(self.alias.stats.items()):
            p50 = statistics.median(stats.latencies_ms[-200:]) if stats.latencies_ms else 0.0
            versions.add_row(
                version,
                f"{weights.get(version, 0):.0%}",
                str(stats.total),
                str(stats.errors),
                str(stats.client_errors),
                str(stats.throttled),
                f"{p50:.2f}",
            )
        alarms = Table(title="rollout alarms on the new version")
        for column in ("alarm", "state", "latest periods", "threshold"):
            alarms.add_column(column)
        for alarm in self.alarms:
            d = alarm.definition
            values = ", ".join("-" if v is None else f"{v:.3g}{d.unit}" for v in alarm.last_values) or "-"
            rule = d.threshold_text()
            alarms.add_row(
                alarm.name,
                Text(alarm.state, style=STATE_STYLE[alarm.state]),
                values,
                f"{rule} ({d.datapoints_to_alarm} of {d.evaluation_periods})",
            )
        decisions = Text("\n".join(self.decisions[-8:]) or "waiting for the deployment...")
        return Group(versions, alarms, Text(self.signals(), style="cyan"), decisions)

    def signals(self) -> str:
        """The monitoring signals: the traffic's drift from the baseline, and the canary analysis.

        The drift report covers all the traffic so far; the live view refreshes four times a second, so the
        text is kept for a second rather than recomputed on every refresh.
        """
        now = time.monotonic()
        if self._signals is None or now - self._signals[0] >= 1.0:
            self._signals = (now, self._compute_signals())
        return self._signals[1]

    def _compute_signals(self) -> str:
        parts = []
        report = self.drift.report() if self.drift else None
        if report is not None and report.feature_drift_max is not None:
            worst = report.worst("feature", 1)
            shown = (self.drift.baseline or {}).get("feature_names") or {} if self.drift else {}
            name = f" ({shown.get(worst[0].name, worst[0].name)})" if worst else ""
            prediction = f"{report.prediction_drift:.3f}" if report.prediction_drift is not None else "-"
            parts.append(
                f"drift vs baseline: worst feature PSI {report.feature_drift_max:.3f}{name}, predictions {prediction}"
            )
        if self.canary is not None:
            parts.append(self.canary.describe())  # what the drift monitor's scheduled runs published
        return "; ".join(parts) or "drift and canary analysis: waiting for data"
