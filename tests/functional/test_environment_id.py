"""Every answer names the execution environment that gave it (x-environment-id), so that a client under load
(`modelrail load`) can count cold starts as the first answers of environments it has not seen before."""

from __future__ import annotations

from collections.abc import Callable

from tests.functional.conftest import IRIS, Function

SETOSA = {"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}


def test_one_environment_one_id_on_every_answer(deploy: Callable[..., Function]) -> None:
    function = deploy(IRIS, "iris")
    answers = [
        function.infer(SETOSA),  # 200
        function.infer({"inputs": [{**SETOSA["inputs"][0], "shape": [1, 5]}]}),  # 400: the client's mistake
        function.call("GET", "/v2/models/other"),  # 404
        function.infer(SETOSA),
    ]
    assert [a.status for a in answers] == [200, 400, 404, 200]
    ids = {a.headers.get("x-environment-id") for a in answers}
    assert len(ids) == 1
    (environment,) = ids
    assert environment is not None
    assert len(environment) >= 8


def test_each_cold_start_is_a_new_id(deploy: Callable[..., Function]) -> None:
    first = deploy(IRIS, "iris").infer(SETOSA).headers["x-environment-id"]
    second = deploy(IRIS, "iris").infer(SETOSA).headers["x-environment-id"]  # the handler imported afresh
    assert first != second
