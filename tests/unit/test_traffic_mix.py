"""The rehearsal's request mix: replayed traffic as given, client mistakes only where asked for (or generated)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from modelrail.rehearsal.traffic import GENERATED_MISTAKES, RequestMix, load_traffic_file
from spec.bundle import ModelBundle

IRIS = Path(__file__).resolve().parents[2] / "models" / "iris"
BODIES = [
    {"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, float(i)]}]}
    for i in range(7)
]


def kinds(mix: RequestMix, n: int = 2000) -> Counter[str]:
    return Counter(mix.next()[1] for _ in range(n))


def test_replayed_traffic_is_sent_as_given() -> None:
    mix = RequestMix(replay=BODIES)
    sent = [mix.next() for _ in range(700)]
    assert {kind for _, kind in sent} == {"ok"}
    assert [json.loads(body) for body, _ in sent[:7]] == BODIES  # in order, unchanged


def test_mistakes_rate_adds_client_mistakes_to_replayed_traffic() -> None:
    counted = kinds(RequestMix(replay=BODIES, mistakes=0.2))
    assert 300 < sum(n for kind, n in counted.items() if kind != "ok") < 500  # 20% of 2000, seeded


def test_generated_traffic_keeps_a_few_client_mistakes_unless_told_otherwise() -> None:
    cases = ModelBundle.load(IRIS).acceptance_cases()
    generated = kinds(RequestMix(cases))
    assert 0.5 * GENERATED_MISTAKES * 2000 < 2000 - generated["ok"] < 1.5 * GENERATED_MISTAKES * 2000
    assert kinds(RequestMix(cases, mistakes=0.0)) == Counter({"ok": 2000})


def test_capture_records_are_traffic_rebuilt_from_their_inputs_in_captured_order(tmp_path: Path) -> None:
    """``rehearse --traffic`` and ``load --traffic`` take what ``serve --capture`` wrote: a folder in the deployed
    layout, gzip objects of records; a record whose inputs were excluded cannot be rebuilt and is left out."""
    import gzip

    def record(i: int, minute: int, excluded: bool = False) -> dict[str, object]:
        return {
            "model": "iris",
            "version": "1",
            "time": f"2026-12-06T10:{minute:02d}:00Z",
            "inputs": BODIES[i]["inputs"],
            "outputs": [{"name": "label", "datatype": "INT64", "shape": [1], "data": [0]}],
            **({"excluded": ["float_input"]} if excluded else {}),
        }

    folder = tmp_path / "capture" / "model=iris" / "version=1" / "hour=2026-12-06-10"
    folder.mkdir(parents=True)
    lines = [record(2, 30), record(0, 10), record(1, 20, excluded=True)]
    (folder / "part-1.gz").write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in lines).encode()))

    assert load_traffic_file(tmp_path / "capture") == [{"inputs": BODIES[0]["inputs"]}, {"inputs": BODIES[2]["inputs"]}]
    (folder / "part-1.gz").write_bytes(gzip.compress((json.dumps(record(1, 20, excluded=True)) + "\n").encode()))
    with pytest.raises(ValueError, match="all 1 have inputs excluded from capture"):
        load_traffic_file(tmp_path / "capture")
