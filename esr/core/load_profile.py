"""`LoadProfile`: journey starts per real second as a function of simulated hour.

A rate holds from its hour until the next entry (a step), or, when the next entry has
`ramp=True`, moves linearly to that entry's rate. Warp compresses the calendar, not the
intensity: rate 40 means the system under test sees 40 journey starts per real second while
that simulated hour is played, whatever the warp.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LoadPoint", "LoadProfile", "Segment"]


@dataclass(frozen=True, slots=True)
class LoadPoint:
    hour: float
    rate: float
    ramp: bool = False


@dataclass(frozen=True, slots=True)
class Segment:
    """Simulated hours [start_hour, end_hour) with the rate going linearly from start to end."""

    start_hour: float
    end_hour: float
    start_rate: float
    end_rate: float

    def rate_at(self, hour: float) -> float:
        if self.end_hour == self.start_hour or self.start_rate == self.end_rate:
            return self.start_rate
        share = (hour - self.start_hour) / (self.end_hour - self.start_hour)
        return self.start_rate + (self.end_rate - self.start_rate) * share

    @property
    def mean_rate(self) -> float:
        return (self.start_rate + self.end_rate) / 2


@dataclass(frozen=True, slots=True)
class LoadProfile:
    points: tuple[LoadPoint, ...]
    duration_hours: float

    def __post_init__(self) -> None:
        hours = [p.hour for p in self.points]
        if not self.points or hours != sorted(hours) or len(set(hours)) != len(hours):
            raise ValueError("load profile hours must be strictly increasing")

    def segments(self) -> list[Segment]:
        """The profile cut at every entry, clipped to [0, duration_hours)."""
        edges: list[Segment] = []
        points = list(self.points)
        if points[0].hour > 0:
            points.insert(0, LoadPoint(0.0, 0.0))
        for i, point in enumerate(points):
            end = points[i + 1].hour if i + 1 < len(points) else self.duration_hours
            end = min(end, self.duration_hours)
            if point.hour >= end:
                continue
            nxt = points[i + 1] if i + 1 < len(points) else None
            end_rate = point.rate
            if nxt is not None and nxt.ramp:
                full = Segment(point.hour, nxt.hour, point.rate, nxt.rate)
                end_rate = full.rate_at(end)
            edges.append(Segment(point.hour, end, point.rate, end_rate))
        return edges

    def rate_at(self, hour: float) -> float:
        for segment in self.segments():
            if segment.start_hour <= hour < segment.end_hour:
                return segment.rate_at(hour)
        return 0.0

    @property
    def peak_rate(self) -> float:
        return max((max(s.start_rate, s.end_rate) for s in self.segments()), default=0.0)

    def expected_arrivals(self, time_warp: float) -> float:
        """Mean journey starts over the whole profile: rate x real seconds, per segment."""
        return sum(
            s.mean_rate * (s.end_hour - s.start_hour) * 3600 / time_warp for s in self.segments()
        )
