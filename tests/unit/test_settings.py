"""The inference function's environment is validated at cold start, each problem naming its variable."""

from __future__ import annotations

import pytest

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
        ({"MAX_BATCH_ROWS": "0"}, "MAX_BATCH_ROWS: Input should be greater than or equal to 1"),
        ({"MODEL_NAME": ""}, "MODEL_NAME: String should match pattern"),
    ],
)
def test_bad_environment_names_the_variable(override: dict[str, str], expected: str) -> None:
    with pytest.raises(ValueError, match="invalid function environment") as caught:
        Settings.from_environment({**GOOD, **override})
    assert expected in str(caught.value)


def test_missing_variable_is_named() -> None:
    environment = {k: v for k, v in GOOD.items() if k != "MODEL_URI"}
    with pytest.raises(ValueError, match="MODEL_URI: Field required"):
        Settings.from_environment(environment)
