"""What a rehearsed rollout proved: whether the candidate's own traffic gave its alarms anything to judge, and the
failed share of all requests in the deployment window next to the candidate's own.

CodeDeploy promotes a version when no alarm fired; with missing data not breaching, that includes a candidate
that scored no rows at all (every request a client mistake) or whose few requests never reached an evaluated
alarm period. Such a rollout is inconclusive: nothing was shown about the candidate on real traffic.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .alarms import AlarmEvaluator


@dataclass(frozen=True)
class Answer:
    time: float  # rehearsed seconds
    version: str
    status: int

    @property
    def client_error(self) -> bool:
        return 400 <= self.status < 500

    @property
    def failed(self) -> bool:
        return self.status >= 500


class RequestLog:
    """Every request through the alias while the log is open: when, which version answered, with what status."""

    def __init__(self) -> None:
        self._answers: list[Answer] = []
        self._lock = threading.Lock()
        self._open = True

    def observe(self, version: str, time: float, event: dict[str, Any], response: dict[str, Any]) -> None:
        with self._lock:
            if self._open:
                self._answers.append(Answer(time, version, int(response.get("statusCode", 502))))

    def close(self) -> None:
        """Stop recording (the post-traffic hook's probes are not user traffic)."""
        with self._lock:
            self._open = False

    def answers(self, version: str | None = None) -> list[Answer]:
        with self._lock:
            return [a for a in self._answers if version is None or a.version == version]


def unjudged(log: RequestLog, candidate: str, alarms: Sequence[AlarmEvaluator], evaluated_until: float) -> str | None:
    """Why the candidate's rollout showed nothing about it, or None when an alarm judged its traffic.

    The candidate must have answered at least one row (2xx), and some rollout alarm must have had a datapoint in an
    evaluated period (ended by ``evaluated_until``) that holds one of the candidate's own non-4xx answers.
    """
    answers = log.answers(candidate)
    if not answers:
        return "the candidate received no user requests"
    scored = [a for a in answers if a.status < 400]
    if not scored:
        client = sum(a.client_error for a in answers)
        if client == len(answers):
            return f"the candidate scored no rows: all {len(answers)} of its requests were answered 4xx"
        return f"the candidate scored no rows: {client} of its {len(answers)} requests 4xx, the rest 5xx"
    judged = [a for a in answers if not a.client_error]
    for alarm in alarms:
        period = alarm.definition.period_seconds
        starts = sorted({(a.time // period) * period for a in judged})
        if any(start + period <= evaluated_until and alarm.period_value(start) is not None for start in starts):
            return None
    periods = sorted({a.definition.period_seconds for a in alarms})
    return (
        f"no rollout alarm had a datapoint from the candidate's {len(scored)} scored requests in an evaluated "
        f"period ({', '.join(f'{p} s' for p in periods) or 'no alarms'}): too little traffic reached it"
    )


def deployment_window(log: RequestLog, candidate: str, decided_at: float) -> dict[str, Any] | None:
    """Failed (5xx) shares, from the candidate's first request to the decision: of all requests through the alias,
    and of the candidate's own. None when the candidate never answered a request."""
    mine = [a for a in log.answers(candidate) if a.time <= decided_at]
    if not mine:
        return None
    first = min(a.time for a in mine)
    window = [a for a in log.answers() if first <= a.time <= decided_at]
    failed = sum(a.failed for a in window)
    candidate_failed = sum(a.failed for a in mine)
    return {
        "seconds": round(decided_at - first, 1),
        "requests": len(window),
        "failed": failed,
        "failed_share": round(failed / len(window), 4),
        "candidate_requests": len(mine),
        "candidate_failed": candidate_failed,
        "candidate_client_errors": sum(a.client_error for a in mine),
        "candidate_failed_share": round(candidate_failed / len(mine), 4),
    }


REPLAY = "replay"  # the gate's replay rows are "replay", "replay agreement", ... (functions/acceptance/replay.py)


def deciding_layer(outcome: str, reason: str, verdict: Any) -> dict[str, Any]:
    """Which layer of rollout defence decided: the acceptance set (the bundle's own cases, signature, finite
    outputs, latency), replay (captured live requests answered by the new version before any user), or a canary
    alarm (named); or the post-traffic hook, the operator, or none (promoted: every layer passed it).

    A gate that fails on both its own criteria and replay is decided by the acceptance set, the first layer."""
    if outcome == "blocked" and verdict is not None:
        failing = list(verdict.failing())
        replay = [name for name in failing if name == REPLAY or name.startswith(f"{REPLAY} ")]
        own = [name for name in failing if name not in replay]
        layer = "acceptance set" if own or not replay else "replay"
        return {"layer": layer, "criteria": own or replay}
    if outcome == "rolled_back":
        if reason.startswith("alarm "):
            return {"layer": "canary alarm", "alarm": reason.removeprefix("alarm ").split(" ", 1)[0]}
        if reason.startswith("post-traffic hook"):
            return {"layer": "post-traffic hook"}
        return {"layer": "operator"}
    return {"layer": None, "note": "no layer stopped it"}


def describe_layer(decided: dict[str, Any]) -> str:
    layer = decided.get("layer")
    if layer is None:
        return "no layer stopped it"
    if layer == "canary alarm":
        return f"canary alarm {decided['alarm']}"
    if decided.get("criteria"):
        return f"{layer} (failed: {', '.join(decided['criteria'])})"
    return str(layer)
