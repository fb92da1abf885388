"""The benchmark's record of what shared the machine (bench/host.py), from /proc/stat's documented fields."""

from __future__ import annotations

import os

from bench.host import Sample, contention

HZ = os.sysconf("SC_CLK_TCK")


def _ticks(user: int, idle: int, steal: int = 0, guest: int = 0) -> tuple[int, ...]:
    # proc(5), /proc/stat "cpu" line: user nice system idle iowait irq softirq steal guest guest_nice; guest time
    # is part of user's (``user`` here includes ``guest``).
    return (user, 0, 0, idle, 0, 0, 0, steal, guest, 0)


def test_time_the_benchmark_did_not_use_is_others():
    before = Sample(wall=0.0, ticks=_ticks(0, 0), own_s=0.0, load=0.5)
    # 10 s on 2 CPUs: 15 s busy, of which the benchmark's own 5 s; the rest idle.
    after = Sample(wall=10.0, ticks=_ticks(15 * HZ, 5 * HZ), own_s=5.0, load=1.0)
    assert contention(before, after) == {"others_cpus": 1.0, "steal_pct": 0.0, "load_before": 0.5}


def test_steal_is_neither_busy_nor_idle_and_guest_is_not_counted_twice():
    before = Sample(wall=0.0, ticks=_ticks(0, 0), own_s=0.0, load=0.0)
    after = Sample(wall=10.0, ticks=_ticks(10 * HZ, 8 * HZ, steal=2 * HZ, guest=3 * HZ), own_s=10.0, load=0.0)
    assert contention(before, after) == {"others_cpus": 0.0, "steal_pct": 10.0, "load_before": 0.0}


def test_no_proc_stat_no_record():
    absent = Sample(wall=0.0, ticks=None, own_s=0.0, load=0.0)
    assert contention(absent, absent) == {}
