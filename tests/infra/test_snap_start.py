"""function.snap_start: what the spec refuses (what Lambda refuses), and what the synthesized function carries.

Lambda's limits, from "Improving startup performance with Lambda SnapStart", Supported features and limitations
(https://docs.aws.amazon.com/lambda/latest/dg/snapstart.html): no provisioned concurrency, no Amazon EFS, no
ephemeral storage above 512 MB; SnapStart applies to published versions only.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from spec.base import SpecError
from spec.models import parse_spec
from tests.infra.conftest import CDK_CONTEXT, ROOT, context_with
from tests.infra.template_queries import inference_function, live_alias

PRODUCTION = CDK_CONTEXT["modelrail"]["environments"]["production"]


def spec_with_function(**function: Any) -> dict[str, Any]:
    spec = copy.deepcopy(CDK_CONTEXT["modelrail"])
    spec["environments"]["production"]["function"] = function
    return spec


def refusal(**function: Any) -> str:
    with pytest.raises(SpecError) as caught:
        parse_spec(spec_with_function(**function)).resolve_models(ROOT)
    return str(caught.value)


def test_snap_start_with_provisioned_concurrency_is_refused_naming_both() -> None:
    message = refusal(snap_start=True, provisioned_concurrency=2, ephemeral_storage_mb=512)
    assert "snap_start cannot be combined with provisioned_concurrency (2)" in message


def test_snap_start_with_more_than_512_mb_of_tmp_is_refused() -> None:
    # The committed production function names 1024 MB: turning SnapStart on there alone must say what to change.
    message = refusal(**{**PRODUCTION["function"], "snap_start": True})
    assert "snap_start allows ephemeral_storage_mb up to 512, got 1024" in message


def test_snap_start_alone_takes_the_largest_tmp_snap_start_allows() -> None:
    spec = parse_spec(spec_with_function(snap_start=True))
    settings = spec.environment("production").function
    assert (settings.snap_start, settings.ephemeral_storage_mb, settings.provisioned_concurrency) == (True, 512, 0)
    # Without SnapStart nothing changes: provisioned concurrency and 10 GB of /tmp stay allowed.
    plain = parse_spec(spec_with_function(provisioned_concurrency=2, ephemeral_storage_mb=10240))
    assert plain.environment("production").function.snap_start is False


def test_snap_start_on_published_versions_only_where_the_spec_turns_it_on(
    synth: Callable[..., Any], production: dict[str, Any], staging: dict[str, Any]
) -> None:
    for template in (production, staging):  # as committed: off
        _, function = inference_function(template)
        assert "SnapStart" not in function["Properties"]

    function_settings = {**PRODUCTION["function"], "snap_start": True, "ephemeral_storage_mb": 512}
    environments = {"production": {**PRODUCTION, "function": function_settings}}
    template = synth("snap-start", context_with(environments=environments))["production"]

    _, function = inference_function(template)
    assert function["Properties"]["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    assert function["Properties"]["EphemeralStorage"] == {"Size": 512}
    _, alias = live_alias(template)  # the alias serves a published version (SnapStart never applies to $LATEST)
    assert "ProvisionedConcurrencyConfig" not in alias["Properties"]
