"""The setting of the tests that run the real monitor on its schedule over a live canary: two real local workers
(the sample as version 1, a candidate as version 2) capturing through a local stream, behind a rehearsed alias
that sends each half the traffic."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelrail.local.environment import LocalCloud
from modelrail.rehearsal.alias import WeightedAlias
from modelrail.rehearsal.clock import RehearsalClock
from modelrail.rehearsal.metrics import MetricStore
from spec.bundle import ModelBundle
from spec.environment import MonitoringSettings

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class LiveCanary:
    clock: RehearsalClock
    stream: Any
    deployed: dict[str, Any]
    workers: dict[str, Any]
    store: MetricStore
    alias: WeightedAlias

    def stop(self) -> None:
        for worker in self.workers.values():
            worker.stop()


def live_canary(
    cloud: LocalCloud, candidate: str, monitoring: MonitoringSettings, *, stream_name: str, function: str
) -> LiveCanary:
    clock = RehearsalClock(30, epoch=cloud.new_timeline())
    stream = cloud.start_capture_stream(stream_name, clock.date)
    deployed = {
        version: cloud.deploy(ModelBundle.load(ROOT / path))
        for version, path in (("1", "models/iris"), ("2", candidate))
    }
    workers = {
        version: cloud.start_worker(
            d, version, capture_stream=stream.name, sample_rate=monitoring.sample_rate, clock=clock.anchor()
        )
        for version, d in deployed.items()
    }
    store = MetricStore()
    alias = WeightedAlias(function, clock, store)
    for worker in workers.values():
        alias.add_version(worker)
    alias.point_to("1")
    alias.shift("2", 0.5)
    return LiveCanary(clock, stream, deployed, workers, store, alias)
