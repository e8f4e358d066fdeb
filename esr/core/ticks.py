"""Clock ticks of the Kafka runtime: which simulated time each tick hands to a bot shard.

The load period is cut into ticks of `tick_s` real seconds. Tick `k` covers real seconds
[k * tick_s, (k + 1) * tick_s) after the run's start, that is simulated time [sim_from,
sim_to); the last tick ends exactly at the end of the load. Arrival `i` of the plan belongs to
shard `i % shards`, so every shard gets an even share of every hour of the profile.
"""

from __future__ import annotations

import math
from typing import Any

import msgspec

from esr.core.clock import SimClock
from esr.core.events import RunStarted
from esr.core.plan import drain_bound_sim
from esr.core.run_state import RunStatus
from esr.core.scenario import Scenario

__all__ = ["GRACE_S", "SKEW_WARN_S", "PlannedRequest", "Tick", "clock_skew_line", "expected_end", "kafka_progress",
           "run_clock", "shard_in_flight", "shard_of", "tick_count", "tick_for", "tick_of", "tick_window"]


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
    # a replay's tick travels on esr.requests in parts 0, 1, ... (a bounded message each): `part`
    # is this one's number, `more` says that parts of this tick follow it (the last says False)
    part: int = 0
    more: bool = False
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


GRACE_S = 30.0  # real seconds past the expected end before a run with missing data is judged


def shard_in_flight(max_in_flight: int, shards: int) -> int:
    """A shard's share of the run's `max_in_flight`: the run's shards together have about as
    many requests in flight as the scenario allows (never fewer), not that many each."""
    return max(1, -(-max_in_flight // max(1, shards)))


def expected_end(started: RunStarted) -> float:
    """Unix time by which every shard should have reported: the load, the longest drain the
    journeys allow, the catch-up of late arrivals, and a grace period."""
    clock = run_clock(started)
    scenario = Scenario.from_dict(started.scenario)
    drain = drain_bound_sim(list(scenario.journeys)) / started.drain_warp
    return started.real_time + clock.load_end_real * 2 + max(10.0, drain) + 10.0 + GRACE_S


def kafka_progress(started: RunStarted, now: float) -> dict[str, Any]:
    """Where the clock of a run on the Kafka runtime stands at Unix time `now` (the workers hold the rest)."""
    clock = run_clock(started)
    real = max(0.0, now - started.real_time)
    sim = clock.sim_at(real)
    scenario = started.scenario
    return {"status": RunStatus.RUNNING.value if real < clock.load_end_real else RunStatus.DRAINING.value,
            "runtime": "kafka", "shards": started.shards, "sim_hours": sim / 3600, "real_seconds": real,
            "duration_hours": scenario.get("duration_hours")}


SKEW_WARN_S = 0.25  # real seconds of clock difference past which a bot worker's clock check warns


def clock_skew_line(tick: Tick, *, received: float, published: float | None, lead_s: float = 1.0) -> str:
    """What a bot worker logs when it opens a shard, so clock skew between machines shows in
    its log before it shows in a verdict. `received` is this worker's Unix time when the tick
    arrived; `published` the tick message's timestamp (CreateTime, set by the clock worker's
    clock), None when the broker gave none. The clock worker publishes tick `k` `lead_s`
    seconds before its stretch, which starts `k * tick_s` after the run's `real_time` (set by
    the machine that started the run), and this worker starts each arrival by its own clock:
    a clock ahead starts arrivals early, and past `lead_s` the tick comes after its stretch
    began, so its first arrivals start late (and count as late starts in the verdict)."""
    run = tick.run
    stretch = run.real_time + tick.tick * run.tick_s
    head = f"esr worker bots: run {tick.run_id} shard {tick.shard} opens at tick {tick.tick}: clock check:"
    if published is None:
        offset = received - (stretch - lead_s)
        against = "the clock worker's schedule (the broker gave the tick no timestamp)"
    else:
        offset = received - published
        against = "the clock worker's (tick received minus published, transit included)"
    ahead = stretch - received
    when = (f"its stretch starts {ahead:.3f} s from now by this clock" if ahead >= 0 else
            f"it came {-ahead:.3f} s after its stretch began by this clock: its first arrivals start late")
    line = f"{head} this machine's clock is {offset:+.3f} s from {against}; {when}"
    if abs(offset) > SKEW_WARN_S:
        line += (f"; more than {SKEW_WARN_S} s apart: synchronise the machines' clocks (chrony or ntpd), or this "
                 "worker starts its arrivals that much early or late (docs/kafka.md, Running on a cluster)")
    return line
