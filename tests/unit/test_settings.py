"""The inference function's environment is validated at cold start, each problem naming its variable."""

from __future__ import annotations

import os

import pytest

from functions.inference.model import session_options
from functions.inference.service import Settings

GOOD = {
    "MODEL_NAME": "iris",
    "MODEL_URI": "s3://artifacts-bucket/models/iris/abc.onnx",
    "MODEL_SHA256": "A" * 64,
    "AWS_LAMBDA_FUNCTION_VERSION": "12",
}


def test_good_environment() -> None:
    settings = Settings.from_environment(GOOD)
    assert settings.model_sha256 == "a" * 64
    assert settings.model_version == "12"
    assert settings.max_batch_rows == 1024


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"MODEL_URI": "https://example.com/m.onnx"}, "MODEL_URI: expected s3://<bucket>/<key>"),
        ({"MODEL_SHA256": "abc"}, "MODEL_SHA256: expected 64 hexadecimal digits, got 'abc'"),
        ({"MAX_BATCH_ROWS": "0"}, "MAX_BATCH_ROWS: expected an integer >= 1, got '0'"),
        ({"MAX_BATCH_ROWS": "ten"}, "MAX_BATCH_ROWS: expected an integer >= 1, got 'ten'"),
        ({"MODEL_NAME": ""}, "MODEL_NAME: expected 1-128 letters, digits"),
        ({"MODEL_NAME": "iris\n"}, "MODEL_NAME: expected 1-128 letters, digits"),
        ({"ORT_INTRA_OP_THREADS": "0"}, "ORT_INTRA_OP_THREADS: expected an integer >= 1, got '0'"),
        ({"CAPTURE_SAMPLE_RATE": "1.5"}, "CAPTURE_SAMPLE_RATE: expected a number from 0 to 1, got '1.5'"),
        ({"CAPTURE_SAMPLE_RATE": "nan"}, "CAPTURE_SAMPLE_RATE: expected a number from 0 to 1, got 'nan'"),
        ({"CAPTURE_STREAM": ""}, "CAPTURE_STREAM: expected a name, got an empty string"),
    ],
)
def test_bad_environment_names_the_variable(override: dict[str, str], expected: str) -> None:
    with pytest.raises(ValueError, match="invalid function environment") as caught:
        Settings.from_environment({**GOOD, **override})
    assert expected in str(caught.value)


def test_missing_variable_is_named() -> None:
    environment = {k: v for k, v in GOOD.items() if k != "MODEL_URI"}
    with pytest.raises(ValueError, match="MODEL_URI: required"):
        Settings.from_environment(environment)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ValueError, match="invalid function environment") as caught:
        Settings.from_environment({**GOOD, "MODEL_SHA256": "abc", "MAX_BATCH_ROWS": "-3", "MODEL_NAME": "a b"})
    assert [p.split(":")[0] for p in str(caught.value).split(": ", 1)[1].split("; ")] == [
        "MODEL_NAME",
        "MODEL_SHA256",
        "MAX_BATCH_ROWS",
    ]


# Lambda Developer Guide, "Configuring Lambda function memory": "At 1,769 MB, a function has the equivalent of one
# vCPU"; the cores it sees are more (2 from 128 to 3,008 MB, up to 6 at 10,240 MB) and its process is throttled to its
# share. The runtime names the memory in AWS_LAMBDA_FUNCTION_MEMORY_SIZE ("Defined runtime environment variables").
@pytest.mark.parametrize(
    ("memory_mb", "cores", "threads"),
    [
        ("128", 2, 1),
        ("1024", 2, 1),  # the spec's default: 0.58 of a vCPU, on 2 visible cores
        ("3008", 2, 1),  # 1.7 vCPUs' worth: one thread runs whole, a second would share the rest with it
        ("3538", 3, 2),
        ("10240", 6, 5),
        ("10240", 2, 2),  # never more threads than cores
        (None, 2, 2),  # not on Lambda (a laptop, the bench's floor without the variable): the cores
        ("", 2, 2),
    ],
)
def test_intra_op_threads_follow_the_functions_vcpu_share(
    monkeypatch: pytest.MonkeyPatch, memory_mb: str | None, cores: int, threads: int
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(cores)), raising=False)
    if memory_mb is None:
        monkeypatch.delenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", raising=False)
    else:
        monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", memory_mb)
    assert session_options().intra_op_num_threads == threads
    assert session_options(intra_op_threads=3).intra_op_num_threads == 3  # ORT_INTRA_OP_THREADS still decides
