"""WeightedAlias: the alias ``live`` as Lambda routes it, each request to one version by the current weights.

It is the gateway's target for the model, and records what every invocation did: requests and errors by
version, and the metrics (EMF from the handler's output, Lambda's own per version) stamped in rehearsed time.

With a reserved concurrency N it throttles as Lambda does a synchronous request past the function's limits: N
invocations in flight at once, all versions together, through the alias or of a version directly
(``invoke_version``: the hooks, the monitor's paired analysis), and 10 x N invocations started in any
wall-clock second (request rates and durations are real in a rehearsal; only its clock is compressed). A throttled
request never runs: Lambda counts it in Throttles under the version the alias routed it to (no Invocations, Errors
or Duration), and API Gateway answers it 500. The local worker runs one invocation at a time, so a request waiting
for it counts as in flight here where Lambda would start another execution environment: the rehearsal throttles at
least as often as AWS at the same client concurrency.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from modelrail.load.capacity import REQUESTS_PER_CONCURRENCY
from modelrail.local.worker import Invocation, LambdaWorker

from .clock import RehearsalClock
from .metrics import MetricStore, emf_datapoints, lambda_datapoints, throttle_datapoints

# Lambda's reasons for throttling a function with reserved concurrency (TooManyRequestsException's Reason, Lambda
# API reference, Invoke): past its concurrency, or past its request rate of 10 x concurrency per second ("Lambda
# scaling behavior", scaling-behavior.html; "Understanding Lambda function scaling", lambda-concurrency.html).
CONCURRENCY_LIMIT = "ReservedFunctionConcurrentInvocationLimitExceeded"
RATE_LIMIT = "ReservedFunctionInvocationRateLimitExceeded"
# What a client of the API receives for a request Lambda throttled: the function never ran, so the Lambda proxy
# integration has no proxy response to pass on and API Gateway answers its own 500 {"message": "Internal server
# error"}, not Lambda's 429 (AWS Knowledge Center, "How do I troubleshoot issues for API Gateway endpoints that
# integrate with Lambda?", api-gateway-internal-server-error: "Throttling occurs"). API Gateway's own 429 is its
# stage throttling, another limit.
THROTTLED_STATUS = 500
THROTTLED_BODY = {"message": "Internal server error"}


# Lambda's answer to an Invoke it throttles: TooManyRequestsException, HTTP 429, with the limit as its Reason (Lambda
# API reference, Invoke, Errors).
INVOKE_THROTTLED_STATUS = 429
INVOKE_THROTTLED_TYPE = "TooManyRequestsException"
INVOKE_THROTTLED_MESSAGE = "Rate Exceeded."


@dataclass
class Throttled(Invocation):
    """A request Lambda throttled: ``reason`` is Lambda's; ``response`` API Gateway's answer for a request through the
    alias, Lambda's Invoke error document for a direct invocation of a version."""

    reason: str = CONCURRENCY_LIMIT


@dataclass
class VersionStats:
    total: int = 0
    errors: int = 0  # 5xx: the version failed the request
    client_errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    first_request_at: float | None = None
    throttled: int = 0  # routed here and throttled by Lambda: never ran, so neither in total nor in errors


class WeightedAlias:
    def __init__(
        self,
        function_name: str,
        clock: RehearsalClock,
        store: MetricStore,
        *,
        seed: int = 0,
        reserved_concurrency: int | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """``reserved_concurrency``: the function's (spec ``function.reserved_concurrency``), None for no limit;
        ``monotonic``: the wall clock the request rate is counted on."""
        self.function_name = function_name
        self.clock = clock
        self.store = store
        self.reserved_concurrency = reserved_concurrency
        self.in_flight = 0  # invocations not yet answered, all versions, through the alias or not
        self._monotonic = monotonic
        self._started: deque[float] = deque()  # wall-clock starts of the invocations of the last second
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

    def _admit(self) -> str | None:
        """Count the request in flight and return None, or return why Lambda throttles it."""
        limit = self.reserved_concurrency
        with self._lock:
            if limit is not None:
                if self.in_flight >= limit:
                    return CONCURRENCY_LIMIT
                now = self._monotonic()
                while self._started and self._started[0] <= now - 1.0:
                    self._started.popleft()
                if len(self._started) >= REQUESTS_PER_CONCURRENCY * limit:
                    return RATE_LIMIT
                self._started.append(now)
            self.in_flight += 1
            return None

    def _stats(self, version: str, now: float) -> VersionStats:
        """The version's stats, its first request (answered or throttled) stamped at ``now``; under the lock."""
        stats = self.stats[version]
        if stats.first_request_at is None:
            stats.first_request_at = now
        return stats

    def _throttle(self, version: str, event: dict[str, Any], reason: str) -> Throttled:
        now = self.clock.now()
        self.store.add(throttle_datapoints(self.function_name, version, now))
        with self._lock:
            self._stats(version, now).throttled += 1
        response = {
            "statusCode": THROTTLED_STATUS,
            "headers": {"content-type": "application/json"},
            "body": json.dumps(THROTTLED_BODY),
        }
        for observe in self.observers:  # the user saw a 500 for a request routed to ``version``
            observe(version, now, event, response)
        return Throttled(response, reason=reason)

    def _run(self, version: str, event: dict[str, Any]) -> Invocation | str:
        """The version's invocation, or why Lambda throttled it (then it never ran)."""
        throttled = self._admit()
        if throttled is not None:
            return throttled
        try:
            return self.workers[version].invoke(event)
        finally:
            with self._lock:
                self.in_flight -= 1

    def invoke_version(self, version: str, event: dict[str, Any]) -> Invocation | Throttled:
        """Lambda's Invoke of one version by its qualified name, outside the alias: the hooks' acceptance gate, the
        monitor's paired analysis. It takes the function's concurrency as the alias's invocations do, so it too may
        be throttled. What the version's handler prints as EMF reaches the metrics, as it reaches CloudWatch; Lambda's
        own metrics of it are under the version's Resource, which no rollout alarm reads, so none is recorded."""
        invocation = self._run(version, event)
        if isinstance(invocation, str):
            error = {"Type": "User", "message": INVOKE_THROTTLED_MESSAGE, "Reason": invocation}
            return Throttled(error, reason=invocation)
        self.store.add(emf_datapoints(invocation.logs, self.clock.now()))
        return invocation

    def invoke(self, event: dict[str, Any]) -> Invocation:
        version = self.choose()
        invocation = self._run(version, event)
        if isinstance(invocation, str):
            return self._throttle(version, event, invocation)
        now = self.clock.now()
        status = int(invocation.response.get("statusCode", 502))
        self.store.add(emf_datapoints(invocation.logs, now))
        self.store.add(
            lambda_datapoints(self.function_name, version, now, error=status == 502, duration_ms=invocation.duration_ms)
        )
        with self._lock:
            stats = self._stats(version, now)
            stats.total += 1
            stats.errors += status >= 500
            stats.client_errors += 400 <= status < 500
            stats.latencies_ms.append(invocation.duration_ms)
        for observe in self.observers:
            observe(version, now, event, invocation.response)
        return invocation
