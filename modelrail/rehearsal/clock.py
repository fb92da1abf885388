"""RehearsalClock: rehearsed seconds run ``scale`` times faster than the wall clock, from a rehearsed date.

Everything timed in the rehearsal runs on it: alarm periods, rollout steps, the monitor's schedule and the capture
stream's buffering here, and (through :meth:`anchor`) the Lambda workers' own clocks, so data capture stamps and
flushes its records in the same rehearsed time the monitor's window is measured in.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta


class RehearsalClock:
    def __init__(self, scale: float, epoch: datetime | None = None) -> None:
        if scale <= 0:
            raise ValueError(f"--time-scale must be positive, got {scale}")
        self.scale = scale
        self._start = time.monotonic()
        # The rehearsed date at t = 0: a whole minute, as EventBridge's schedule fires on minutes.
        self.epoch = (epoch or datetime.now(UTC)).astimezone(UTC).replace(second=0, microsecond=0)

    def now(self) -> float:
        """Rehearsed seconds since the clock started."""
        return (time.monotonic() - self._start) * self.scale

    def date(self, rehearsed: float | None = None) -> datetime:
        """The rehearsed date at ``rehearsed`` seconds (now by default)."""
        return self.epoch + timedelta(seconds=self.now() if rehearsed is None else rehearsed)

    def seconds(self, moment: datetime) -> float:
        """Rehearsed seconds of a rehearsed date."""
        return (moment - self.epoch).total_seconds()

    def anchor(self) -> tuple[float, float, float]:
        """(monotonic start, scale, epoch as POSIX time): what another process needs to run on this clock
        (CLOCK_MONOTONIC is one clock for every process of the machine)."""
        return self._start, self.scale, self.epoch.timestamp()

    def sleep_until(self, rehearsed: float, interrupt: threading.Event | None = None, step: float = 0.05) -> bool:
        """Wait until rehearsed time ``rehearsed``; False if ``interrupt`` was set first."""
        while True:
            remaining = (rehearsed - self.now()) / self.scale
            if remaining <= 0:
                return True
            if interrupt is not None and interrupt.wait(min(step, remaining)):
                return False
            if interrupt is None:
                time.sleep(min(step, remaining))
