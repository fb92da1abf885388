"""The open-loop load generator: requests start on a fixed schedule, and each one's latency is measured from the
time it was due, not from when a client got round to sending it.

A closed loop (send, wait, send) slows down with the server and so never sees the queue a real arrival rate would
build: the coordinated-omission pitfall that wrk2 and Vegeta are built around. Here ``max_in_flight`` threads take
the next due request as soon as they are free; a request that falls due while all of them are busy starts late
(counted in ``waited``), and the wait is part of its latency. Requests still unstarted when the run's duration is
over are never sent and count as errors (``not_sent``): a server that cannot keep up shows a shortfall in the rate
and queueing in the latency, never a flattering p99.
"""

from __future__ import annotations

import math
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TextIO

from .histogram import LatencyHistogram
from .schedule import RateProfile
from .targets import Answer, Target

# Kinds of error a request can end in; the budget's error rate counts all but client_4xx (the client's own fault).
ERROR_KINDS = ("client_4xx", "throttled_429", "server_5xx", "timeout", "connection", "not_sent")
ENVIRONMENT_HEADER = "x-environment-id"


def error_kind(answer: Answer) -> str | None:
    if answer.status is None:
        return answer.failure or "connection"
    if answer.status == 429:
        return "throttled_429"
    if 400 <= answer.status < 500:
        return "client_4xx"
    if answer.status >= 500:
        return "server_5xx"
    return None


def server_timing_ms(header: str | None, name: str = "total") -> float | None:
    """``dur`` of the metric ``name`` in a Server-Timing header (``total;dur=3.2, model;dur=1.1``)."""
    if not header:
        return None
    for metric in header.split(","):
        parts = [p.strip() for p in metric.split(";")]
        if parts[0] != name:
            continue
        for parameter in parts[1:]:
            key, _, value = parameter.partition("=")
            if key.strip() == "dur":
                try:
                    return float(value.strip().strip('"'))
                except ValueError:
                    return None
    return None


@dataclass
class Interval:
    """One second of the run: requests by the second they were due in (latency, errors) and answers by the second
    they arrived in (the achieved rate)."""

    due: int = 0
    answered: int = 0
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    errors: Counter[str] = field(default_factory=Counter)


@dataclass
class ColdStart:
    """The first answer seen from an execution environment."""

    environment: str
    version: str | None
    at_s: float  # when it was due, seconds into the run
    latency_ms: float
    function_ms: float | None


@dataclass
class LoadResult:
    profile: RateProfile
    max_in_flight: int
    target: str
    interval_s: float = 1.0
    scheduled: int = 0
    sent: int = 0
    answered: int = 0  # any HTTP status
    answered_in_window: int = 0  # answered before the duration was over: what the achieved rate counts
    waited: int = 0  # started late: every in-flight slot was busy when it fell due
    elapsed_s: float = 0.0
    interrupted: bool = False
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)  # 2xx answers, from their due time
    function: LatencyHistogram = field(default_factory=LatencyHistogram)  # Server-Timing total of the same
    billed: LatencyHistogram = field(default_factory=LatencyHistogram)  # Lambda's billed ms (direct invocations)
    # How late each request was sent after its due time: the in-flight bound's queue, and the load machine's own
    # scheduling. Large while nothing waited for a slot: the generator, not the server, was behind.
    start_lag: LatencyHistogram = field(default_factory=LatencyHistogram)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    error_details: dict[str, str] = field(default_factory=dict)  # one example per kind
    versions: Counter[str] = field(default_factory=Counter)
    environments: dict[str, ColdStart] = field(default_factory=dict)
    environment_header_seen: bool = False
    intervals: list[Interval] = field(default_factory=list)

    @property
    def achieved_rps(self) -> float:
        """Requests answered (any status) per second of the run's duration. Requests never sent, or never answered,
        are the shortfall; answers still arriving just after the end count, so that a long run's last second of
        latency is no shortfall."""
        return self.answered / self.profile.duration_s

    @property
    def target_rps(self) -> float:
        return self.profile.mean_rps

    @property
    def failed(self) -> int:
        """Requests that count against the error budget: all errors but the client's own 4xx."""
        return sum(n for kind, n in self.errors.items() if kind != "client_4xx")

    @property
    def error_rate(self) -> float:
        return self.failed / self.scheduled if self.scheduled else 0.0


class LoadGenerator:
    """Sends ``bodies`` (cycled, in order or shuffled) to ``target`` on ``profile``'s schedule."""

    def __init__(
        self,
        target: Target,
        bodies: Sequence[bytes],
        profile: RateProfile,
        *,
        max_in_flight: int = 64,
        shuffle: bool = False,
        seed: int = 1,
        interval_s: float = 1.0,
        progress: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not bodies:
            raise ValueError("no request bodies to send")
        if max_in_flight < 1:
            raise ValueError(f"--max-in-flight must be at least 1, got {max_in_flight}")
        self.target = target
        self.bodies = list(bodies)
        self.order = list(range(len(self.bodies)))
        if shuffle:
            random.Random(seed).shuffle(self.order)
        self.profile = profile
        self.offsets = profile.offsets()
        self.max_in_flight = max_in_flight
        self.progress = progress
        self.clock = clock
        buckets = max(1, math.ceil(profile.duration_s / interval_s))
        self.result = LoadResult(
            profile,
            max_in_flight,
            target.description,
            interval_s=interval_s,
            scheduled=len(self.offsets),
            intervals=[Interval() for _ in range(buckets)],
        )
        self._next = 0
        self._in_flight = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._start = 0.0

    def run(self) -> LoadResult:
        result = self.result
        for offset in self.offsets:
            result.intervals[self._bucket(offset)].due += 1
        threads = [
            threading.Thread(target=self._work, name=f"load-{n}", daemon=True)
            for n in range(min(self.max_in_flight, max(1, len(self.offsets))))
        ]
        reporter = threading.Thread(target=self._report_progress, name="load-progress", daemon=True)
        self._start = self.clock() + 0.05  # every thread is waiting when the first request falls due
        for thread in threads:
            thread.start()
        reporter.start()
        try:
            for thread in threads:
                while thread.is_alive():
                    thread.join(timeout=0.2)
        except KeyboardInterrupt:
            result.interrupted = True
            self._stop.set()
            for thread in threads:
                thread.join(timeout=5)
        finally:
            self._stop.set()
            reporter.join(timeout=2)
            self.target.close()
        result.elapsed_s = self.clock() - self._start
        self._print_progress(final=True)
        return result

    def _bucket(self, offset_s: float) -> int:
        return min(len(self.result.intervals) - 1, max(0, int(offset_s / self.result.interval_s)))

    def _work(self) -> None:
        end = self._start + self.profile.duration_s
        while not self._stop.is_set():
            with self._lock:
                index = self._next
                self._next += 1
            if index >= len(self.offsets):
                return
            due = self._start + self.offsets[index]
            now = self.clock()
            waited = now > due  # every slot was busy when it fell due: it starts late, and its latency says so
            if not waited and self._stop.wait(due - now):
                return
            if self.clock() > end:
                self._record_unsent(index)
                continue
            body = self.bodies[self.order[index % len(self.order)]]
            sent_at = self.clock()
            with self._lock:
                self._in_flight += 1
                self.result.sent += 1
                self.result.waited += int(waited)
                self.result.start_lag.record(max(0.0, sent_at - due) * 1000)
            answer = self.target.send(body)
            done = self.clock()
            self._record(index, due, done, answer, end)

    def _record_unsent(self, index: int) -> None:
        with self._lock:
            self.result.errors["not_sent"] += 1
            self.result.intervals[self._bucket(self.offsets[index])].errors["not_sent"] += 1
            self.result.error_details.setdefault(
                "not_sent", f"not started before the run's end: all {self.max_in_flight} in-flight slots were busy"
            )

    def _record(self, index: int, due: float, done: float, answer: Answer, end: float) -> None:
        result = self.result
        latency_ms = (done - due) * 1000
        interval = result.intervals[self._bucket(self.offsets[index])]
        kind = error_kind(answer)
        function_ms = server_timing_ms(answer.headers.get("server-timing"))
        version = answer.headers.get("x-model-version")
        environment = answer.headers.get(ENVIRONMENT_HEADER)
        with self._lock:
            self._in_flight -= 1
            if answer.status is not None:
                result.answered += 1
                result.statuses[answer.status] += 1
                if done <= end:
                    result.answered_in_window += 1
                    result.intervals[self._bucket(done - self._start)].answered += 1
            if kind is not None:
                result.errors[kind] += 1
                interval.errors[kind] += 1
                if answer.detail or answer.status:
                    result.error_details.setdefault(kind, answer.detail or f"HTTP {answer.status}")
            else:
                # Only answers that served the request time the service: a 400 is quick, and no latency.
                result.latency.record(latency_ms)
                interval.latency.record(latency_ms)
                if function_ms is not None:
                    result.function.record(function_ms)
                if answer.billed_ms is not None:
                    result.billed.record(answer.billed_ms)
            if version is not None:
                result.versions[version] += 1
            if environment is not None:
                result.environment_header_seen = True
                if environment not in result.environments:
                    result.environments[environment] = ColdStart(
                        environment, version, round(self.offsets[index], 3), latency_ms, function_ms
                    )

    def _report_progress(self) -> None:
        every = 1.0 if self.progress is not None and self.progress.isatty() else 5.0
        while not self._stop.wait(every):
            self._print_progress()

    def _print_progress(self, *, final: bool = False) -> None:
        if self.progress is None:
            return
        result = self.result
        with self._lock:
            elapsed = max(0.0, self.clock() - self._start)
            shown = min(elapsed, self.profile.duration_s)
            rate = result.answered / shown if shown > 0 else 0.0
            p50, p99 = result.latency.percentile(50), result.latency.percentile(99)
            failed, client = result.failed, result.errors["client_4xx"]
            in_flight = self._in_flight
        line = (
            f"{shown:5.1f}/{self.profile.duration_s:g} s  rate {rate:7.1f}/s (target {self.profile.mean_rps:g})  "
            f"p50 {_ms(p50)}  p99 {_ms(p99)}  errors {failed}  4xx {client}  in flight {in_flight}"
        )
        tty = self.progress.isatty()
        if tty:
            self.progress.write("\r" + line + ("\n" if final else ""))
        elif not final:
            self.progress.write(line + "\n")
        self.progress.flush()


def _ms(value: float | None) -> str:
    return "   -   " if value is None else f"{value:6.1f} ms"


def run_load(
    target: Target,
    bodies: Sequence[bytes],
    profile: RateProfile,
    *,
    max_in_flight: int = 64,
    shuffle: bool = False,
    progress: TextIO | None = sys.stderr,
) -> LoadResult:
    return LoadGenerator(target, bodies, profile, max_in_flight=max_in_flight, shuffle=shuffle, progress=progress).run()
