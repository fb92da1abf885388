"""How much of the machine the benchmark had: what else ran during it, and what the hypervisor took.

Warm figures of a few microseconds move with whatever else shares the cores, so every run records it next to
its figures. From Linux's /proc/stat (proc(5): the first line sums all CPUs' time in USER_HZ ticks, in the
order user, nice, system, idle, iowait, irq, softirq, steal) and getrusage(2) for the benchmark's own time,
its waited-for children included (the function processes):

- ``others_cpus``: CPUs' worth of time that processes other than the benchmark's used during the run (its
  busy time minus the benchmark's own, over the wall time): 0 on a quiet machine, 1 when another job kept a
  core busy throughout;
- ``steal_pct``: the share of the run's CPU time the hypervisor gave to other guests (steal);
- ``load_before``: the 1-minute load average when the run started (what was running just before).

Where /proc/stat is missing (not Linux), the record is empty.
"""

from __future__ import annotations

import contextlib
import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_STAT = Path("/proc/stat")
_STEAL = 7  # the eighth field after "cpu"


@dataclass(frozen=True)
class Sample:
    wall: float
    ticks: tuple[int, ...] | None
    own_s: float
    load: float


def sample() -> Sample:
    ticks: tuple[int, ...] | None = None
    with contextlib.suppress(OSError, IndexError, ValueError):
        ticks = tuple(int(v) for v in _STAT.read_text().splitlines()[0].split()[1:])
    own = sum(
        usage.ru_utime + usage.ru_stime
        for usage in (resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN))
    )
    return Sample(time.monotonic(), ticks, own, os.getloadavg()[0])


def contention(before: Sample, after: Sample) -> dict[str, Any]:
    """What shared the machine between two samples (see the module's docstring)."""
    if before.ticks is None or after.ticks is None:
        return {}
    delta = [a - b for a, b in zip(after.ticks, before.ticks, strict=False)]
    hz = os.sysconf("SC_CLK_TCK")
    total = sum(delta[:8])  # guest time (fields 9 and 10) is already counted in user and nice
    idle = delta[3] + delta[4]
    steal = delta[_STEAL] if len(delta) > _STEAL else 0
    busy_s = (total - idle - steal) / hz
    wall = after.wall - before.wall
    others = max(0.0, busy_s - (after.own_s - before.own_s)) / wall if wall > 0 else 0.0
    return {
        "others_cpus": round(others, 2),
        "steal_pct": round(100 * steal / total, 1) if total else 0.0,
        "load_before": round(before.load, 2),
    }
