"""Clock ticks of the Kafka runtime: which simulated time each tick hands to a bot shard.

The load period is cut into ticks of `tick_s` real seconds. Tick `k` covers real seconds
[k * tick_s, (k + 1) * tick_s) after the run's start, that is simulated time [sim_from,
sim_to); the last tick ends exactly at the end of the load. Arrival `i` of the plan belongs to
shard `i % shards`, so every shard gets an even share of every hour of the profile.
"""

from __future__ import annotations

import math

import msgspec

from esr.core.clock import SimClock
from esr.core.events import RunStarted

__all__ = ["PlannedRequest", "Tick", "run_clock", "shard_of", "tick_count", "tick_for", "tick_of", "tick_window"]


class PlannedRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A logged request a replay hands to a bot: sent at simulated time `sim` (its log time
    minus the first request's), numbered `index` in the replay."""

    index: int
    sim: float
    method: str
    target: str
    headers: list[tuple[str, str]] = []
    body: str | None = None


class Tick(msgspec.Struct, frozen=True, kw_only=True, tag="tick", tag_field="type"):
    """"Simulated time [sim_from, sim_to) is due" for one shard of one run. It carries the run's
    start, so a bot worker taking the shard over needs nothing else."""

    run_id: str
    shard: int
    tick: int
    sim_from: float
    sim_to: float
    last: bool
    run: RunStarted
    aborted: bool = False  # the run was aborted: stop the shard now
    requests: list[PlannedRequest] | None = None  # a replay's requests for this stretch (esr.requests)
    sim: bool = True


def run_clock(started: RunStarted) -> SimClock:
    return SimClock(started.time_warp, started.load_end_sim, started.drain_warp)


def tick_count(started: RunStarted) -> int:
    """Ticks per shard: enough to cover the load period (at least one)."""
    real = run_clock(started).load_end_real
    return max(1, math.ceil(real / started.tick_s - 1e-9))


def tick_window(started: RunStarted, tick: int) -> tuple[float, float]:
    """Simulated [from, to) of tick `tick`; the last one ends at the end of the load."""
    clock = run_clock(started)
    last = tick_count(started) - 1
    real_from = tick * started.tick_s
    sim_from = clock.sim_at(real_from) if tick else 0.0
    sim_to = clock.load_end_sim if tick >= last else clock.sim_at((tick + 1) * started.tick_s)  # = next sim_from
    return sim_from, sim_to


def tick_of(started: RunStarted, sim: float) -> int:
    """The tick whose stretch of the load holds simulated time `sim`."""
    real = run_clock(started).real_at(sim)
    return min(max(0, int(real / started.tick_s)), tick_count(started) - 1)


def tick_for(started: RunStarted, shard: int, tick: int) -> Tick:
    sim_from, sim_to = tick_window(started, tick)
    return Tick(run_id=started.run_id, shard=shard, tick=tick, sim_from=sim_from, sim_to=sim_to,
                last=tick == tick_count(started) - 1, run=started)


def shard_of(arrival_index: int, shards: int) -> int:
    return arrival_index % shards
