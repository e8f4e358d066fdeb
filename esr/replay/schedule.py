"""When each replayed request is sent, and what a replay will look like before it runs.

A request logged at time `t` keeps `t` as its simulated time and is sent at
`start + (t - t0) / warp` real seconds, `t0` being the first request's time: warp 120 plays
two hours of log in a minute, and the target sees 120 times the original request rate.
`ReplayPlan` is the dry run's summary, computed in one pass over the stream with bounded
memory: the busiest real second is counted request by request while it holds at most
`EXACT_PEAK` requests, and in thousandths of a real second beyond (at a warp of 1e9 a whole
log falls in one real second).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["EXACT_PEAK", "ReplayPlan", "plan_replay", "send_offset"]

EXACT_PEAK = 100_000  # requests in one real second counted one by one; beyond, in 1/1000 s slots
_SLOTS = 1000  # slots per real second once the peak is counted in slots


def send_offset(t: float, t0: float, warp: float) -> float:
    """Real seconds after the replay's start at which the request logged at `t` is sent."""
    return (t - t0) / warp


@dataclass(frozen=True, slots=True)
class ReplayPlan:
    requests: int
    first: float | None  # Unix seconds of the first and last request
    last: float | None
    warp: float
    peak_rate: float  # requests in the busiest real second of the replay

    @property
    def span_s(self) -> float:
        return (self.last - self.first) if self.first is not None and self.last is not None else 0.0

    @property
    def real_s(self) -> float:
        return self.span_s / self.warp

    def to_dict(self) -> dict[str, float | int | None]:
        return {"requests": self.requests, "first": self.first, "last": self.last, "span_s": self.span_s,
                "warp": self.warp, "real_s": self.real_s, "peak_rate_per_s": self.peak_rate}


def plan_replay(times: Iterable[float], warp: float) -> ReplayPlan:
    """Count, span and peak real rate of requests logged at `times` (in order) at `warp`."""
    if warp <= 0:
        raise ValueError(f"warp must be positive, not {warp}")
    window = deque[float]()  # log times within one real second (warp log seconds) of the newest
    slots: deque[list[int]] | None = None  # past EXACT_PEAK: [slot, requests] of the last real second
    width = warp / _SLOTS
    in_slots = 0
    count, first, last, peak = 0, None, None, 0
    for t in times:
        count += 1
        first = t if first is None else first
        last = t
        if slots is None:
            window.append(t)
            while window[0] <= t - warp:
                window.popleft()
            peak = max(peak, len(window))
            if len(window) > EXACT_PEAK:  # memory stays bounded: from here on, slots of 1/1000 s
                slots, in_slots = deque(), 0
                for held in window:
                    in_slots = _slot_add(slots, int(held // width), in_slots)
                window.clear()
            continue
        key = int(t // width)
        in_slots = _slot_add(slots, key, in_slots)
        while slots[0][0] <= key - _SLOTS:
            in_slots -= slots.popleft()[1]
        peak = max(peak, in_slots)
    return ReplayPlan(count, first, last, warp, float(peak))


def _slot_add(slots: deque[list[int]], key: int, held: int) -> int:
    """One request in slot `key` (the newest, or a late line's: counted in the newest)."""
    if slots and slots[-1][0] >= key:
        slots[-1][1] += 1
    else:
        slots.append([key, 1])
    return held + 1
