"""Open-model arrival planning: a seeded, non-homogeneous Poisson process over the profile.

Arrivals never wait on each other (no closed loop of users): the times come from the profile
and the seed alone, so the same seed gives the same schedule, byte for byte. Steps use
exponential gaps at the segment's rate; ramps use thinning (Lewis-Shedler) at the segment's
peak rate.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

from esr.core.clock import SimClock
from esr.core.load_profile import LoadProfile

__all__ = ["Arrival", "ArrivalPlan", "user_rng"]


@dataclass(frozen=True, slots=True)
class Arrival:
    index: int
    real: float  # seconds after the run's real start
    sim: float  # seconds after sim_start


def user_rng(seed: int, index: int) -> random.Random:
    """The random source of user `index`: its journey choice and generated data."""
    return random.Random(f"esr-user/{seed}/{index}")


@dataclass(frozen=True, slots=True)
class ArrivalPlan:
    profile: LoadProfile
    clock: SimClock
    seed: int

    def __iter__(self) -> Iterator[Arrival]:
        return self.shard(0, 1)

    def shard(self, shard: int, shards: int) -> Iterator[Arrival]:
        """The plan's arrivals whose index is `shard` modulo `shards` (a Kafka bot shard's share):
        the same random draws as the whole plan, but an `Arrival` is built only for its own."""
        rng = random.Random(f"esr-arrivals/{self.seed}")
        expovariate, uniform = rng.expovariate, rng.random
        sim_at = self.clock.sim_at
        index = 0
        warp = self.clock.time_warp
        for segment in self.profile.segments():
            start = segment.start_hour * 3600 / warp
            end = segment.end_hour * 3600 / warp
            peak = max(segment.start_rate, segment.end_rate)
            if peak <= 0:
                continue
            ramped = segment.start_rate != segment.end_rate
            t = start
            while True:
                t += expovariate(peak)
                if t >= end:
                    break
                if ramped:
                    rate = segment.rate_at(t * warp / 3600)
                    if uniform() * peak >= rate:
                        continue
                if index % shards == shard:
                    yield Arrival(index, t, sim_at(t))
                index += 1

    def count(self) -> int:
        """How many arrivals the plan holds (walks the plan once; nothing is kept)."""
        return sum(1 for _ in self)
