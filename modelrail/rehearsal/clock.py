"""RehearsalClock: rehearsed seconds run ``scale`` times faster than the wall clock."""

from __future__ import annotations

import threading
import time


class RehearsalClock:
    def __init__(self, scale: float) -> None:
        if scale <= 0:
            raise ValueError(f"--time-scale must be positive, got {scale}")
        self.scale = scale
        self._start = time.monotonic()

    def now(self) -> float:
        """Rehearsed seconds since the clock started."""
        return (time.monotonic() - self._start) * self.scale

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
