"""Alarm thresholds carry their units wherever the rehearsal prints them."""

from __future__ import annotations

from spec.models import load_spec


def test_every_rollout_alarm_threshold_names_its_unit() -> None:
    shown = {a.name: a.threshold_text() for a in load_spec().environment("production").alarm_definitions()}
    assert shown["model-error-rate"] == "> 1%"
    assert shown["latency-p99"] == "> 500 ms"
    assert shown["non-finite-rate"] == "> 0%"
    assert all(text.endswith(("%", " ms", " PSI")) for text in shown.values()), shown
