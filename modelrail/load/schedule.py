"""RateProfile: when each request of an open-loop run is due, from a constant rate, a ramp or steps.

``--rps 50`` holds 50 requests per second; ``--rps 10:100`` ramps linearly from 10 to 100 over the duration;
``--rps 10,20,40`` holds each rate for an equal share of it. The schedule is fixed before the first request:
a slow answer never delays the next request's due time (the open loop that keeps queueing visible).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Segment:
    """A stretch of the run whose rate goes linearly from ``start_rps`` to ``end_rps``."""

    seconds: float
    start_rps: float
    end_rps: float

    def count(self) -> float:
        return self.seconds * (self.start_rps + self.end_rps) / 2

    def offset_of(self, n: float) -> float:
        """Seconds into the segment at which the n-th request (counted from 0 at its start) is due."""
        a, slope = self.start_rps, (self.end_rps - self.start_rps) / self.seconds
        if abs(slope) < 1e-12:
            return n / a
        # n = a t + slope t^2 / 2, solved for t >= 0
        return (-a + math.sqrt(a * a + 2 * slope * n)) / slope


@dataclass(frozen=True)
class RateProfile:
    text: str
    segments: tuple[Segment, ...]

    @classmethod
    def parse(cls, text: str, duration_s: float) -> RateProfile:
        """``"50"``, ``"10:100"`` or ``"10,20,40"`` over ``duration_s`` seconds; ValueError naming what is wrong."""
        if duration_s <= 0:
            raise ValueError(f"--duration must be positive, got {duration_s}")
        try:
            if ":" in text:
                start, end = (float(part) for part in text.split(":"))
                segments: tuple[Segment, ...] = (Segment(duration_s, start, end),)
            elif "," in text:
                rates = [float(part) for part in text.split(",")]
                segments = tuple(Segment(duration_s / len(rates), r, r) for r in rates)
            else:
                rate = float(text)
                segments = (Segment(duration_s, rate, rate),)
        except ValueError:
            raise ValueError(
                f"--rps {text!r}: expected a rate (50), a ramp (10:100) or steps (10,20,40), in requests per second"
            ) from None
        for segment in segments:
            if not (math.isfinite(segment.start_rps) and math.isfinite(segment.end_rps)):
                raise ValueError(f"--rps {text!r}: rates must be finite")
            if segment.start_rps < 0 or segment.end_rps < 0 or segment.start_rps + segment.end_rps == 0:
                raise ValueError(f"--rps {text!r}: rates must be positive (a ramp may start at 0)")
        return cls(text, segments)

    @property
    def duration_s(self) -> float:
        return sum(s.seconds for s in self.segments)

    @property
    def peak_rps(self) -> float:
        return max(max(s.start_rps, s.end_rps) for s in self.segments)

    @property
    def mean_rps(self) -> float:
        return self.expected_requests / self.duration_s

    @property
    def expected_requests(self) -> float:
        return sum(s.count() for s in self.segments)

    def target_rps_at(self, t: float) -> float:
        """The profile's rate ``t`` seconds into the run (for the report's rate-over-time)."""
        start = 0.0
        for segment in self.segments:
            if t < start + segment.seconds:
                return segment.start_rps + (segment.end_rps - segment.start_rps) * (t - start) / segment.seconds
            start += segment.seconds
        return self.segments[-1].end_rps

    def offsets(self) -> list[float]:
        """Each request's due time, seconds from the start, in order: request k is due when the profile's
        cumulative count reaches k (so the first is due at 0, and 50 rps for 3 s makes exactly 150)."""
        due: list[float] = []
        start, before = 0.0, 0.0  # the segment's start time and the cumulative count there
        k = 0
        for segment in self.segments:
            total = segment.count()
            while k < before + total - 1e-9:
                due.append(start + segment.offset_of(k - before))
                k += 1
            start += segment.seconds
            before += total
        return due
