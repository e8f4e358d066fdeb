"""esr.core.ticks: the clock ticks of the Kafka runtime tile the load period; arrivals spread over shards."""

from __future__ import annotations

import bisect
import math
from collections import Counter
from itertools import pairwise

import msgspec
import pytest
from factories import HOUR, RunEvents
from hypothesis import example, given, settings
from hypothesis import strategies as st

from esr.core.clock import SimClock
from esr.core.events import RunStarted
from esr.core.ticks import (
    Tick,
    clock_skew_line,
    run_clock,
    shard_in_flight,
    shard_of,
    tick_count,
    tick_for,
    tick_window,
)


def started(*, time_warp: float = 360.0, load_end_sim: float = HOUR, tick_s: float = 0.5,
            drain_warp: float | None = None, shards: int = 3) -> RunStarted:
    ev = RunEvents(time_warp=time_warp, drain_warp=drain_warp, load_end_sim=load_end_sim)
    return msgspec.structs.replace(ev.started(), shards=shards, tick_s=tick_s)


def windows(s: RunStarted) -> list[tuple[float, float]]:
    return [tick_window(s, k) for k in range(tick_count(s))]


def assert_tiles(s: RunStarted) -> None:
    """The ticks cover [0, load_end_sim) exactly: no gap, no overlap, each non-empty, the last one ends
    at the end of the load, and only the last tick says so."""
    ws = windows(s)
    assert ws[0][0] == 0.0
    assert ws[-1][1] == s.load_end_sim
    for (_, prev_to), (next_from, _) in pairwise(ws):
        assert prev_to == next_from  # exact: an arrival at a boundary belongs to exactly one tick
    for sim_from, sim_to in ws:
        assert sim_from < sim_to
    n = len(ws)
    lasts = [tick_for(s, 0, k).last for k in range(n)]
    assert lasts == [False] * (n - 1) + [True]


# -- examples -------------------------------------------------------------------------------------
def test_one_hour_at_warp_360_in_half_second_ticks() -> None:
    s = started()  # 3600 sim s / 360 = 10 real s -> 20 ticks of 180 sim s
    assert tick_count(s) == 20
    assert tick_window(s, 0) == (0.0, 180.0)
    assert tick_window(s, 3) == (540.0, 720.0)
    assert tick_window(s, 19) == (3420.0, 3600.0)
    assert_tiles(s)


def test_a_last_partial_tick_is_shorter_and_ends_at_the_load_end() -> None:
    s = started(tick_s=3.0)  # 10 real s in ticks of 3 s: 3 + 3 + 3 + 1
    assert tick_count(s) == 4
    assert windows(s) == [(0.0, 1080.0), (1080.0, 2160.0), (2160.0, 3240.0), (3240.0, 3600.0)]
    assert tick_for(s, 0, 3).last and not tick_for(s, 0, 2).last


def test_a_tick_longer_than_the_load_is_the_only_tick() -> None:
    s = started(tick_s=60.0)
    assert tick_count(s) == 1
    assert tick_window(s, 0) == (0.0, HOUR)
    assert tick_for(s, 2, 0).last is True


def test_an_empty_load_still_has_one_tick() -> None:
    s = started(load_end_sim=0.0)
    assert tick_count(s) == 1
    assert tick_window(s, 0) == (0.0, 0.0)
    assert tick_for(s, 0, 0).last is True


def test_tick_count_ignores_rounding_noise_past_a_whole_number_of_ticks() -> None:
    s = started(time_warp=60.0, load_end_sim=2520.0, tick_s=0.7)  # 42 / 0.7 == 60.00000000000001
    assert (s.load_end_sim / s.time_warp) / s.tick_s > 60
    assert tick_count(s) == 60


def test_tick_count_rounds_a_real_fraction_up() -> None:
    s = started(time_warp=360.0, load_end_sim=HOUR + 36.0, tick_s=0.5)  # 10.1 real s
    assert tick_count(s) == 21
    assert tick_window(s, 20) == (3600.0, HOUR + 36.0)


def test_drain_warp_does_not_change_the_load_ticks() -> None:
    assert windows(started(drain_warp=5000.0)) == windows(started())


def test_run_clock_is_the_runs_clock_mapping() -> None:
    s = started(time_warp=120.0, drain_warp=900.0, load_end_sim=2 * HOUR)
    assert run_clock(s) == SimClock(120.0, 2 * HOUR, 900.0)
    assert run_clock(s).load_end_real == 60.0


def test_tick_for_carries_everything_a_worker_taking_over_needs() -> None:
    s = started(shards=4)
    tick = tick_for(s, 2, 5)
    assert tick == Tick(run_id=s.run_id, shard=2, tick=5, sim_from=900.0, sim_to=1080.0, last=False, run=s)
    assert tick.aborted is False and tick.sim is True
    assert tick.run is s


def test_tick_round_trips_through_json_with_its_tag() -> None:
    tick = tick_for(started(), 1, 19)
    data = msgspec.json.encode(tick)
    assert msgspec.json.decode(data)["type"] == "tick"
    assert msgspec.json.decode(data, type=Tick) == tick


# -- properties -----------------------------------------------------------------------------------
dyadic_tick_s = st.integers(1, 64).map(lambda k: k / 16)  # 1/16 s .. 4 s: k * tick_s is exact
warps = st.one_of(st.sampled_from([1.0, 60.0, 360.0, 2880.0, 8640.0]), st.floats(0.5, 20_000.0))
spans = st.one_of(st.sampled_from([1.0, 20.0, 60.0, 333.0]), st.floats(0.001, 250.0))  # load length in ticks


def load_of(span: float, tick_s: float, warp: float) -> float:
    """A load of about `span` ticks (so a test walks at most a few hundred ticks)."""
    return span * tick_s * warp


@settings(max_examples=150, deadline=None)
@given(warp=warps, span=spans, tick_s=dyadic_tick_s, drain=st.floats(0.5, 50_000.0))
@example(warp=2880.0, span=24 * HOUR / 2880 / 0.5, tick_s=0.5, drain=8640.0)  # the claims example
@example(warp=60.0, span=HOUR / 60 / 0.0625, tick_s=0.0625, drain=60.0)
def test_ticks_tile_the_load_exactly(warp: float, span: float, tick_s: float, drain: float) -> None:
    load = load_of(span, tick_s, warp)
    s = started(time_warp=warp, load_end_sim=load, tick_s=tick_s, drain_warp=drain)
    real = load / warp
    n = tick_count(s)
    assert n >= 1
    assert n == max(1, math.ceil(real / tick_s - 1e-9))
    assert (n - 1) * tick_s < real  # no tick starts at or after the end of the load
    assert_tiles(s)
    ws = windows(s)
    for sim_from, sim_to in ws[:-1]:  # every tick but the last plays tick_s real seconds
        assert sim_to - sim_from == pytest.approx(tick_s * warp, rel=1e-9)
    assert ws[-1][1] - ws[-1][0] <= tick_s * warp * (1 + 1e-9)


@settings(max_examples=100, deadline=None)
@given(warp=warps, span=spans, tick_s=dyadic_tick_s,
       fractions=st.lists(st.floats(0.0, 1.0, exclude_max=True), min_size=1, max_size=20))
def test_every_sim_time_of_the_load_is_in_exactly_one_tick(warp: float, span: float, tick_s: float,
                                                           fractions: list[float]) -> None:
    load = load_of(span, tick_s, warp)
    s = started(time_warp=warp, load_end_sim=load, tick_s=tick_s)
    ws = windows(s)
    points = [f * load for f in fractions] + [sim_from for sim_from, _ in ws]  # boundaries included
    for t in points:
        if not 0.0 <= t < load:
            continue
        owners = [k for k, (a, b) in enumerate(ws) if a <= t < b]
        assert len(owners) == 1
        assert owners[0] == bisect.bisect_right([a for a, _ in ws], t) - 1


def test_ticks_tile_exactly_with_a_decimal_tick_length() -> None:
    """Ticks tile for any tick length, not only binary fractions like the default 0.5 s: with
    tick_s=0.1, `k * t + t` and `(k + 1) * t` differ in the last bit, and an arrival on such a
    boundary would fall between two ticks (held back from one, skipped by the next)."""
    assert_tiles(started(time_warp=360.0, load_end_sim=HOUR, tick_s=0.1))


# -- shards ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("shards", [1, 2, 3, 7, 16])
def test_shard_of_gives_every_shard_the_same_share(shards: int) -> None:
    counts = Counter(shard_of(i, shards) for i in range(shards * 50))
    assert counts == {k: 50 for k in range(shards)}


def test_shard_of_is_round_robin() -> None:
    assert [shard_of(i, 3) for i in range(7)] == [0, 1, 2, 0, 1, 2, 0]
    assert {shard_of(i, 1) for i in range(100)} == {0}


@settings(max_examples=150, deadline=None)
@given(start=st.integers(0, 10**9), length=st.integers(0, 2000), shards=st.integers(1, 64))
def test_any_run_of_consecutive_arrivals_is_spread_evenly(start: int, length: int, shards: int) -> None:
    counts = Counter(shard_of(i, shards) for i in range(start, start + length))
    assert set(counts) <= set(range(shards))
    per_shard = [counts.get(k, 0) for k in range(shards)]
    assert sum(per_shard) == length
    assert max(per_shard) - min(per_shard) <= 1  # every hour of the profile is shared evenly


# -- the clock check a bot worker logs when it opens a shard -------------------------------------
def test_clock_check_in_step_says_how_far_ahead_the_tick_came() -> None:
    s = msgspec.structs.replace(started(), real_time=1_000.0, run_id="r1")
    tick = tick_for(s, 2, 4)  # tick 4's stretch starts at 1_002.0; the clock publishes it at 1_001.0
    line = clock_skew_line(tick, received=1_001.004, published=1_001.0)
    assert line == ("esr worker bots: run r1 shard 2 opens at tick 4: clock check: this machine's clock is +0.004 s "
                    "from the clock worker's (tick received minus published, transit included); its stretch starts "
                    "0.996 s from now by this clock")


def test_clock_check_warns_of_a_clock_ahead_past_the_lead() -> None:
    s = msgspec.structs.replace(started(), real_time=1_000.0, run_id="r1")
    line = clock_skew_line(tick_for(s, 0, 0), received=1_000.5, published=998.9)  # this clock 1.6 s ahead
    assert "this machine's clock is +1.600 s" in line
    assert "it came 0.500 s after its stretch began by this clock: its first arrivals start late" in line
    assert line.endswith("more than 0.25 s apart: synchronise the machines' clocks (chrony or ntpd), or this "
                         "worker starts its arrivals that much early or late (docs/kafka.md, Running on a cluster)")


def test_clock_check_without_a_broker_timestamp_uses_the_schedule() -> None:
    s = msgspec.structs.replace(started(), real_time=1_000.0, run_id="r1")
    line = clock_skew_line(tick_for(s, 0, 0), received=998.7, published=None)  # due at 999.0 by the schedule
    assert "clock is -0.300 s from the clock worker's schedule (the broker gave the tick no timestamp)" in line
    assert "its stretch starts 1.300 s from now" in line and "synchronise" in line


@pytest.mark.parametrize(("max_in_flight", "shards", "share"), [
    (8, 4, 2), (10_000, 4, 2_500), (9, 4, 3), (1, 4, 1), (3, 1, 3), (5, 0, 5)])
def test_a_shard_takes_its_share_of_the_runs_max_in_flight(max_in_flight: int, shards: int, share: int) -> None:
    assert shard_in_flight(max_in_flight, shards) == share
