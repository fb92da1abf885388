"""The rehearsal's alias throttles as Lambda does a function with reserved concurrency N: past N invocations in
flight (all versions together), or past 10 x N invocations started in a wall-clock second, a synchronous request
never runs; Lambda counts it in Throttles under the version the alias routed it to (no Invocations, no Errors) and
API Gateway's Lambda proxy integration answers it 500 {"message": "Internal server error"}.

Documents: "Lambda scaling behavior" (scaling-behavior.html) and "Understanding Lambda function scaling"
(lambda-concurrency.html) for the limits; "Types of metrics for Lambda functions" (monitoring-metrics-types.html:
"Invocations aren't recorded if the invocation request is throttled"); AWS Knowledge Center
api-gateway-internal-server-error ("Throttling occurs") for API Gateway's answer.

The worker is the boundary here: a stand-in with a ``version`` and an ``invoke`` that can be held on an Event, so
that "N invocations in flight" is a state the test sets up, not a race it hopes for. Those are held on version 1 and
the request under test goes to version 2, which answers at once: an alias that failed to throttle it answers 200.
"""

from __future__ import annotations

import json
import math
import threading
from typing import Any

import pytest
from botocore.exceptions import ClientError

from modelrail.local.gateway import LocalGateway
from modelrail.local.worker import Invocation
from modelrail.rehearsal.alias import CONCURRENCY_LIMIT, RATE_LIMIT, Throttled, WeightedAlias
from modelrail.rehearsal.clock import RehearsalClock
from modelrail.rehearsal.controller import _LocalLambda
from modelrail.rehearsal.metrics import MetricStore
from modelrail.rehearsal.scenarios import throttle_warning
from modelrail.rehearsal.view import RehearsalView
from spec import catalog
from spec.environment import EnvironmentSpec

FUNCTION = "modelrail-test-root"
EVENT: dict[str, Any] = {"httpMethod": "POST", "path": "/v2/models/root/infer", "body": "{}"}


class HeldWorker:
    """A version's execution environment whose invocations wait for ``release`` (set: they answer at once)."""

    def __init__(self, version: str, *, held: bool = False) -> None:
        self.version = version
        self.release = threading.Event()
        if not held:
            self.release.set()
        self.entered = threading.Semaphore(0)  # one per invocation that started running
        self.ran = 0

    def invoke(self, event: dict[str, Any]) -> Invocation:
        self.entered.release()
        self.release.wait()
        self.ran += 1
        return Invocation({"statusCode": 200, "body": json.dumps({"ok": True})}, [], 1.0)


class FakeWallClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def alias_of(*workers: HeldWorker, reserved: int | None, wall: FakeWallClock | None = None) -> WeightedAlias:
    alias = WeightedAlias(
        FUNCTION, RehearsalClock(120), MetricStore(), reserved_concurrency=reserved, monotonic=wall or FakeWallClock()
    )
    for worker in workers:
        alias.add_version(worker)  # type: ignore[arg-type]  # the stand-in has what the alias uses
    alias.point_to(workers[0].version)
    return alias


def lambda_metric(alias: WeightedAlias, metric: catalog.Metric, version: str) -> list[float]:
    # Lambda's per-version dimensions of an invocation through the alias live, as CloudWatch shows them.
    dimensions = {"FunctionName": FUNCTION, "Resource": f"{FUNCTION}:live", "ExecutedVersion": version}
    return alias.store.values(metric.namespace, metric.name, dimensions, 0, math.inf)


def hold(alias: WeightedAlias, worker: HeldWorker, count: int) -> list[threading.Thread]:
    """``count`` invocations through the alias, each running (in flight) on ``worker`` when this returns."""
    threads = [threading.Thread(target=alias.invoke, args=(EVENT,)) for _ in range(count)]
    for thread in threads:
        thread.start()
    for _ in threads:
        assert worker.entered.acquire(timeout=30)
    return threads


def test_the_request_past_the_reserved_concurrency_is_throttled_and_never_runs() -> None:
    old, new = HeldWorker("1", held=True), HeldWorker("2")
    alias = alias_of(old, new, reserved=2)
    running = hold(alias, old, 2)

    # The concurrency is the function's, all versions together: a request routed to version 2 is throttled too.
    alias.point_to("2")
    throttled = alias.invoke(EVENT)

    assert isinstance(throttled, Throttled)
    assert throttled.reason == CONCURRENCY_LIMIT
    assert new.ran == 0
    # API Gateway's answer for a Lambda throttle behind a proxy integration: 500, not Lambda's 429.
    assert throttled.response["statusCode"] == 500
    assert json.loads(throttled.response["body"]) == {"message": "Internal server error"}
    assert lambda_metric(alias, catalog.THROTTLES, "2") == [1.0]
    assert lambda_metric(alias, catalog.INVOCATIONS, "2") == []
    assert lambda_metric(alias, catalog.ERRORS, "2") == []
    assert lambda_metric(alias, catalog.DURATION, "2") == []

    old.release.set()
    for thread in running:
        thread.join(timeout=30)
    assert lambda_metric(alias, catalog.INVOCATIONS, "1") == [1.0, 1.0]  # the two in flight ran
    assert lambda_metric(alias, catalog.THROTTLES, "1") == []
    assert alias.invoke(EVENT).response["statusCode"] == 200  # capacity is back once they answered
    assert new.ran == 1
    stats = alias.stats["2"]
    # The version did not fail: a throttle is neither one of its requests nor one of its errors.
    assert (stats.total, stats.errors, stats.throttled) == (1, 0, 1)


def test_a_client_of_the_gateway_sees_api_gateways_500_for_a_throttled_request() -> None:
    worker = HeldWorker("1", held=True)
    alias = alias_of(worker, HeldWorker("2"), reserved=1)
    running = hold(alias, worker, 1)
    alias.point_to("2")
    seen: list[tuple[str, int]] = []
    alias.observers.append(lambda version, _time, _event, response: seen.append((version, response["statusCode"])))

    status, headers, body = LocalGateway({"root": alias}).handle(
        "POST", "/v2/models/root/infer", {"content-type": "application/json"}, b'{"inputs": []}'
    )

    assert (status, json.loads(body)) == (500, {"message": "Internal server error"})
    assert headers["content-type"] == "application/json"
    assert seen == [("2", 500)]  # the rehearsal's request log sees what the user saw
    worker.release.set()
    for thread in running:
        thread.join(timeout=30)


def test_more_than_ten_invocations_per_second_per_unit_of_concurrency_are_throttled() -> None:
    wall = FakeWallClock()
    worker = HeldWorker("1")
    alias = alias_of(worker, reserved=1, wall=wall)
    statuses = []
    for tenth in range(10):  # 10 invocations in one wall-clock second, one at a time: all within the rate
        wall.now = tenth / 10
        statuses.append(alias.invoke(EVENT).response["statusCode"])
    wall.now = 0.95
    eleventh = alias.invoke(EVENT)
    wall.now = 1.05  # the one started at 0.0 is more than a second ago
    twelfth = alias.invoke(EVENT)

    assert statuses == [200] * 10
    assert isinstance(eleventh, Throttled)
    assert eleventh.reason == RATE_LIMIT
    assert twelfth.response["statusCode"] == 200
    assert worker.ran == 11
    assert lambda_metric(alias, catalog.THROTTLES, "1") == [1.0]
    assert sum(lambda_metric(alias, catalog.INVOCATIONS, "1")) == 11


def test_without_reserved_concurrency_nothing_is_throttled() -> None:
    wall = FakeWallClock()
    held, quick = HeldWorker("1", held=True), HeldWorker("2")
    alias = alias_of(held, quick, reserved=None, wall=wall)
    running = hold(alias, held, 5)
    alias.point_to("2")
    answers = [alias.invoke(EVENT).response["statusCode"] for _ in range(100)]  # in the same wall-clock instant

    assert answers == [200] * 100
    held.release.set()
    for thread in running:
        thread.join(timeout=30)
    assert lambda_metric(alias, catalog.THROTTLES, "1") == lambda_metric(alias, catalog.THROTTLES, "2") == []
    assert (alias.stats["1"].total, alias.stats["2"].total) == (5, 100)


def test_the_post_traffic_hooks_invoke_of_a_throttled_alias_fails_as_lambdas_does() -> None:
    worker = HeldWorker("1", held=True)
    alias = alias_of(worker, HeldWorker("2"), reserved=1)
    running = hold(alias, worker, 1)
    alias.point_to("2")

    with pytest.raises(ClientError) as raised:
        _LocalLambda(alias).invoke(FunctionName="f:live", InvocationType="RequestResponse", Payload=b"{}")

    # TooManyRequestsException, HTTP 429: what the hook's LambdaInvoker retries (Lambda API reference, Invoke).
    assert raised.value.response["Error"]["Code"] == "TooManyRequestsException"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    worker.release.set()
    for thread in running:
        thread.join(timeout=30)


def test_the_view_shows_throttled_requests_by_version() -> None:
    worker = HeldWorker("1", held=True)
    alias = alias_of(worker, HeldWorker("2"), reserved=1)
    running = hold(alias, worker, 1)
    alias.point_to("2")
    alias.invoke(EVENT)
    worker.release.set()
    for thread in running:
        thread.join(timeout=30)
    view = RehearsalView()
    view.alias, view.clock = alias, alias.clock

    assert "v1 1 req 0 err, v2 0 req 0 err 1 throttled" in view.status_line()


def environment(reserved: int | None) -> EnvironmentSpec:
    return EnvironmentSpec.model_validate(
        {"name": "staging", "rollout": {"kind": "all_at_once"}, "function": {"reserved_concurrency": reserved}}
    )


def test_rehearse_warns_when_its_own_traffic_exceeds_what_the_reserved_concurrency_allows() -> None:
    # 40/s in the deployment, 5 x 40 = 200/s in the warm-up, against Lambda's 10 x 4 = 40 invocations/s.
    warning = throttle_warning(environment(4), 40.0)
    assert warning is not None
    assert warning.startswith("environments.staging.function.reserved_concurrency 4 allows at most 40 invocations/s")
    assert "sends 40/s (200/s in the warm-up)" in warning
    assert "below the rehearsal's" not in warning  # 4 reserved hold the 4 clients' requests in flight
    # 2 reserved: below the 4 clients, whatever the rate.
    assert "is below the rehearsal's 4 concurrent clients" in (throttle_warning(environment(2), 1.0) or "")
    assert throttle_warning(environment(20), 40.0) is None  # 200/s is what 20 allow
    assert throttle_warning(environment(None), 400.0) is None


def test_the_monitors_paired_invoke_of_a_version_takes_the_functions_concurrency_too() -> None:
    """The paired canary analysis invokes a version by its qualified name, outside the alias: still within the
    function's reserved concurrency (it is the function's, whoever invokes), so Lambda throttles it when the users'
    requests hold it all: the monitor's real boto3 client gets TooManyRequestsException (Lambda API reference,
    Invoke)."""
    import boto3
    from botocore.config import Config

    from modelrail.rehearsal.lambda_api import LocalLambdaApi

    old, new = HeldWorker("1", held=True), HeldWorker("2")
    alias = alias_of(old, new, reserved=1)
    api = LocalLambdaApi(alias).start()
    client = boto3.client(
        "lambda",
        endpoint_url=api.url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=Config(retries={"total_max_attempts": 1}),
    )
    running = hold(alias, old, 1)
    try:
        with pytest.raises(client.exceptions.TooManyRequestsException) as raised:
            client.invoke(FunctionName=f"{FUNCTION}:2", Payload=json.dumps(EVENT).encode())
        assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
        assert new.ran == 0
    finally:
        old.release.set()
        for thread in running:
            thread.join(timeout=30)
    try:
        answer = client.invoke(FunctionName=f"{FUNCTION}:2", Payload=json.dumps(EVENT).encode())
    finally:
        api.stop()
    assert json.loads(answer["Payload"].read())["statusCode"] == 200
    assert new.ran == 1
    # Neither is an invocation through the alias: Lambda's metrics of it are under the version's own Resource.
    assert lambda_metric(alias, catalog.THROTTLES, "2") == lambda_metric(alias, catalog.INVOCATIONS, "2") == []
    assert alias.stats["2"].total == alias.stats["2"].throttled == 0


def test_the_pre_traffic_gate_takes_the_functions_concurrency_and_retries_a_throttle_as_the_hook_does() -> None:
    """The rehearsal's acceptance gate invokes the new version through the deployed hook's own LambdaInvoker: a
    throttled Invoke is retried twice and then reads as that request's 429, as on AWS when the users' traffic holds
    the function's reserved concurrency while the hook runs."""
    from functions.acceptance.criteria import AcceptanceCriteria
    from functions.acceptance.gate import AcceptanceCase
    from modelrail.rehearsal.controller import DeploymentController
    from spec.rollout import RolloutPolicy

    # The users' requests hold the one reserved execution on a version of their own, so that a gate that bypassed
    # the concurrency would get answers at once (and fail this test) rather than wait for them.
    busy, old, new = HeldWorker("3", held=True), HeldWorker("1"), HeldWorker("2")
    alias = alias_of(busy, old, new, reserved=1)
    cases = [AcceptanceCase([{"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0]}], {"y": [1.0]}, 1)]
    controller = DeploymentController(
        model="root",
        alias=alias,
        baseline=old,  # type: ignore[arg-type]  # the stand-in has what the controller uses
        candidate=new,  # type: ignore[arg-type]
        cases=cases,
        criteria=AcceptanceCriteria(),
        policy=RolloutPolicy(kind="all_at_once"),
        alarms=[],
        clock=alias.clock,
        decide=lambda _at, _message: None,
    )
    running = hold(alias, busy, 1)
    try:
        verdict = controller._pre_traffic_hook()
    finally:
        busy.release.set()
        for thread in running:
            thread.join(timeout=30)

    assert not verdict.passed
    assert old.ran == new.ran == 0  # every try was throttled: neither version ran
    assert "TooManyRequestsException" in verdict.table()
