"""WeightedAlias: the alias ``live`` as Lambda routes it, each request to one version by the current weights.

It is the gateway's target for the model, and records what every invocation did: requests and errors by
version, and the metrics (EMF from the handler's output, Lambda's own per version) stamped in rehearsed time.
"""

from __future__ import annotations

import random
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from modelrail.local.worker import Invocation, LambdaWorker

from .clock import RehearsalClock
from .metrics import MetricStore, emf_datapoints, lambda_datapoints


@dataclass
class VersionStats:
    total: int = 0
    errors: int = 0  # 5xx: the version failed the request
    client_errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    first_request_at: float | None = None


class WeightedAlias:
    def __init__(self, function_name: str, clock: RehearsalClock, store: MetricStore, *, seed: int = 0) -> None:
        self.function_name = function_name
        self.clock = clock
        self.store = store
        self.workers: dict[str, LambdaWorker] = {}
        self.primary: str | None = None
        self.secondary: str | None = None
        self.secondary_weight = 0.0
        self.stats: dict[str, VersionStats] = defaultdict(VersionStats)
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        # Called with (version, time, event, response) after every invocation through the alias.
        self.observers: list[Callable[[str, float, dict[str, Any], dict[str, Any]], None]] = []

    def add_version(self, worker: LambdaWorker) -> None:
        self.workers[worker.version] = worker

    def point_to(self, version: str) -> None:
        with self._lock:
            self.primary, self.secondary, self.secondary_weight = version, None, 0.0

    def shift(self, version: str, weight: float) -> None:
        """Route ``weight`` (0..1) of requests to ``version``, the rest to the primary version."""
        with self._lock:
            if weight >= 1.0:
                self.primary, self.secondary, self.secondary_weight = version, None, 0.0
            else:
                self.secondary, self.secondary_weight = version, weight

    def weights(self) -> dict[str, float]:
        with self._lock:
            weights = {self.primary: 1.0 - self.secondary_weight} if self.primary else {}
            if self.secondary:
                weights[self.secondary] = self.secondary_weight
            return weights

    def choose(self) -> str:
        with self._lock:
            if self.secondary and self._random.random() < self.secondary_weight:
                return self.secondary
            assert self.primary is not None, "the alias points nowhere"
            return self.primary

    def invoke(self, event: dict[str, Any]) -> Invocation:
        version = self.choose()
        invocation = self.workers[version].invoke(event)
        now = self.clock.now()
        status = int(invocation.response.get("statusCode", 502))
        self.store.add(emf_datapoints(invocation.logs, now))
        self.store.add(
            lambda_datapoints(self.function_name, version, now, error=status == 502, duration_ms=invocation.duration_ms)
        )
        with self._lock:
            stats = self.stats[version]
            if stats.first_request_at is None:
                stats.first_request_at = now
            stats.total += 1
            stats.errors += status >= 500
            stats.client_errors += 400 <= status < 500
            stats.latencies_ms.append(invocation.duration_ms)
        for observe in self.observers:
            observe(version, now, event, invocation.response)
        return invocation
