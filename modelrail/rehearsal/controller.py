"""DeploymentController: CodeDeploy's Lambda deployment, played on the local alias.

BeforeAllowTraffic runs the real acceptance gate against the new version directly; then the environment's
policy shifts the alias step by step while every rollout alarm is evaluated on the new version's metrics;
AfterAllowTraffic runs the real post-traffic check through the alias. A failed hook, an alarm in ALARM or a
stop rolls the alias back to the old version, as CodeDeploy's automatic rollback does.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from botocore.exceptions import ClientError

from functions.acceptance import posttraffic
from functions.acceptance.codedeploy import LambdaInvoker
from functions.acceptance.criteria import AcceptanceCriteria
from functions.acceptance.gate import AcceptanceCase, Verdict, evaluate, served_signature
from functions.acceptance.replay import Unavailable
from modelrail.local.worker import LambdaWorker
from spec.catalog import Env
from spec.rollout import RolloutPolicy

from .alarms import AlarmEvaluator
from .alias import INVOKE_THROTTLED_MESSAGE, INVOKE_THROTTLED_STATUS, INVOKE_THROTTLED_TYPE, Throttled, WeightedAlias
from .clock import RehearsalClock
from .verdict import RequestLog

Outcome = Literal["promoted", "blocked", "rolled_back"]  # CodeDeploy's; the rehearsal may judge one inconclusive


@dataclass
class RolloutResult:
    outcome: Outcome
    reason: str
    decided_at: float
    verdict: Verdict | None = None


class _LocalLambda:
    """Lambda's Invoke for the real hook code: ``<function>:live`` through the alias, ``<function>:<version>`` that
    version directly; both take the function's concurrency."""

    def __init__(self, alias: WeightedAlias) -> None:
        self.alias = alias

    def invoke(self, FunctionName: str, InvocationType: str, Payload: bytes) -> dict[str, Any]:  # noqa: N803
        qualifier = FunctionName.rpartition(":")[2]
        event = json.loads(Payload)
        if qualifier in self.alias.workers:
            invocation = self.alias.invoke_version(qualifier, event)
        else:
            invocation = self.alias.invoke(event)
        if isinstance(invocation, Throttled):
            # Invoke on a throttled function fails with TooManyRequestsException, HTTP 429, the limit hit as its
            # Reason, which the hooks' LambdaInvoker retries.
            error = {"Code": INVOKE_THROTTLED_TYPE, "Message": INVOKE_THROTTLED_MESSAGE}
            metadata = {"HTTPStatusCode": INVOKE_THROTTLED_STATUS}
            raise ClientError({"Error": error, "Reason": invocation.reason, "ResponseMetadata": metadata}, "Invoke")
        return {"StatusCode": 200, "Payload": io.BytesIO(json.dumps(invocation.response).encode())}


class DeploymentController:
    def __init__(
        self,
        *,
        model: str,
        alias: WeightedAlias,
        baseline: LambdaWorker,
        candidate: LambdaWorker,
        cases: list[AcceptanceCase],
        criteria: AcceptanceCriteria,
        policy: RolloutPolicy,
        alarms: list[AlarmEvaluator],
        clock: RehearsalClock,
        decide: Callable[[float, str], None],
        stop: threading.Event | None = None,
        replay: Callable[[], Sequence[dict[str, Any]] | Unavailable] | None = None,
    ) -> None:
        """``replay``: the old version's captured requests for the gate to replay (read when the hook runs), or why
        there are none; None leaves the replay out of the gate."""
        self.model = model
        self.replay = replay
        self.alias = alias
        self.baseline = baseline
        self.candidate = candidate
        self.cases = cases
        self.criteria = criteria
        self.policy = policy
        self.alarms = alarms
        self.clock = clock
        self._decide = decide
        self.stop = stop or threading.Event()
        self.requests = RequestLog()  # every user request through the alias from the deployment's start
        self.evaluated_until = 0.0  # rehearsed time of the alarms' latest evaluation

    def decide(self, message: str) -> None:
        self._decide(self.clock.now(), message)

    def run(self) -> RolloutResult:
        old, new = self.baseline.version, self.candidate.version
        self.decide(f"deployment started: version {old} -> {new}, {describe(self.policy)}")
        self.alias.observers.append(self.requests.observe)

        verdict = self._pre_traffic_hook()
        if not verdict.passed:
            reason = f"pre-traffic hook failed: {', '.join(verdict.failing())}"
            self.decide(f"{reason}; version {new} gets no traffic")
            return RolloutResult("blocked", reason, self.clock.now(), verdict)
        replayed = next((c.measured for c in verdict.criteria if c.name == "replay agreement"), None)
        shown = f"replay: {replayed}" if replayed else verdict.criteria[-1].measured
        self.decide(f"pre-traffic hook passed ({len(self.cases)} acceptance cases, {shown})")

        start = self.clock.now()
        for minute, percent in self.policy.schedule():
            stopped = self._watch_until(start + minute * 60)
            if stopped:
                return self._roll_back(stopped, verdict)
            self.alias.shift(new, percent / 100)
            self.decide(f"alias live: {100 - percent}% version {old}, {percent}% version {new}")

        stopped = self._watch_until(self.clock.now())
        if stopped:
            return self._roll_back(stopped, verdict)
        self.requests.close()  # the post-traffic hook's probes are not user traffic
        served = posttraffic.check_alias(
            {Env.NEW_VERSION_ARN.name: f"local:{new}", Env.MODEL_NAME.name: self.model}, _LocalLambda(self.alias)
        )
        if served != [new] * posttraffic.PROBES:
            return self._roll_back(f"post-traffic hook failed: the alias answered with versions {served}", verdict)
        self.decide(f"post-traffic hook passed: the alias answers with version {new}; deployment succeeded")
        return RolloutResult("promoted", "all hooks passed and no alarm fired", self.clock.now(), verdict)

    def _pre_traffic_hook(self) -> Verdict:
        """The acceptance gate on the new version, invoked directly (never through the alias)."""
        # The deployed hook's own invoker (its retries of a throttled Invoke included), on the versions' qualified
        # names: the gate's requests take the function's concurrency, and reach the new version's metrics, as on AWS.
        lambda_client = _LocalLambda(self.alias)
        baseline = served_signature(LambdaInvoker(lambda_client, f"local:{self.baseline.version}"), self.model)
        invoke = LambdaInvoker(lambda_client, f"local:{self.candidate.version}")
        self.decide(f"pre-traffic hook: acceptance gate on version {self.candidate.version}")
        records = self.replay() if self.replay is not None else None
        return evaluate(
            self.model, invoke, self.cases, self.criteria, baseline_metadata=baseline, replay_records=records
        )

    def _watch_until(self, until: float) -> str | None:
        """Evaluate the alarms until rehearsed time ``until``; the reason to stop, if any."""
        while True:
            now = self.clock.now()
            self.evaluated_until = now
            for alarm in self.alarms:
                if alarm.evaluate(now) == "ALARM":
                    return f"alarm {alarm.name} in ALARM: {alarm.history[-1].reason}"
            if self.stop.is_set():
                return "deployment stopped by the operator"
            if now >= until:
                return None
            self.clock.sleep_until(min(until, now + 5), self.stop)

    def _roll_back(self, reason: str, verdict: Verdict) -> RolloutResult:
        self.alias.point_to(self.baseline.version)
        self.decide(f"{reason}; rolled back: alias live is 100% version {self.baseline.version}")
        return RolloutResult("rolled_back", reason, self.clock.now(), verdict)


def describe(policy: RolloutPolicy) -> str:
    if policy.kind == "all_at_once":
        return "all at once"
    if policy.kind == "canary":
        return f"canary {policy.percentage}% for {policy.interval_minutes} min"
    return f"linear {policy.percentage}% every {policy.interval_minutes} min"
