"""esr.core.arrivals: the seeded open-model arrival plan (non-homogeneous Poisson) and user seeds."""

from __future__ import annotations

import math
from itertools import pairwise

import pytest

from esr.core.arrivals import Arrival, ArrivalPlan, user_rng
from esr.core.clock import SimClock
from esr.core.load_profile import LoadPoint, LoadProfile
from esr.core.ticks import shard_of

HOUR = 3_600.0


def make_plan(points: list[tuple], duration: float, warp: float, seed: int) -> ArrivalPlan:
    profile = LoadProfile(tuple(LoadPoint(*p) for p in points), duration)
    return ArrivalPlan(profile, SimClock(warp, duration * HOUR, warp), seed)


def fingerprint(arrivals: list[Arrival]) -> bytes:
    """The schedule byte for byte: repr of every float, not a tolerance."""
    return "\n".join(f"{a.index} {a.real!r} {a.sim!r}" for a in arrivals).encode()


# A mixed profile (a zero first hour, ramps up and steps) that holds ~104k arrivals.
# warp 3600: one simulated hour is one real second, so the load lasts 10 real seconds.
BIG_POINTS = [(1, 6_000), (3, 14_000, True), (5, 14_000), (7, 4_000), (9, 12_000, True)]
BIG_EXPECTED = 20_000 + 28_000 + 28_000 + 16_000 + 12_000


@pytest.fixture(scope="module")
def big_plan() -> ArrivalPlan:
    return make_plan(BIG_POINTS, duration=10, warp=3_600, seed=42)


@pytest.fixture(scope="module")
def big(big_plan: ArrivalPlan) -> list[Arrival]:
    return list(big_plan)


def test_expected_arrivals_of_the_big_profile(big_plan: ArrivalPlan) -> None:
    assert big_plan.profile.expected_arrivals(3_600) == BIG_EXPECTED


# -- determinism ---------------------------------------------------------------------------------
SMALL_POINTS = [(0, 50), (2, 200, True), (3, 80), (5, 10)]


def test_same_seed_gives_the_same_schedule_byte_for_byte() -> None:
    first = list(make_plan(SMALL_POINTS, duration=6, warp=60, seed=1234))
    second = list(make_plan(SMALL_POINTS, duration=6, warp=60, seed=1234))
    assert len(first) > 1_000
    assert fingerprint(first) == fingerprint(second)
    assert first == second


def test_different_seeds_give_different_schedules() -> None:
    a = list(make_plan(SMALL_POINTS, duration=6, warp=60, seed=1))
    b = list(make_plan(SMALL_POINTS, duration=6, warp=60, seed=2))
    assert fingerprint(a) != fingerprint(b)
    # not merely shifted: the first arrival times differ
    assert a[0].real != b[0].real


def test_iterating_a_plan_twice_gives_the_same_schedule(big_plan: ArrivalPlan, big: list[Arrival]) -> None:
    again = list(big_plan)
    assert fingerprint(again) == fingerprint(big)


def test_count_equals_the_length_of_the_list(big_plan: ArrivalPlan, big: list[Arrival]) -> None:
    assert big_plan.count() == len(big)
    small = make_plan(SMALL_POINTS, duration=6, warp=60, seed=5)
    assert small.count() == len(list(small))


# -- the Poisson process -----------------------------------------------------------------------
def test_count_is_within_four_sigma_of_the_expectation(big: list[Arrival]) -> None:
    n = len(big)
    assert abs(n - BIG_EXPECTED) <= 4 * math.sqrt(BIG_EXPECTED), (n, BIG_EXPECTED)


@pytest.mark.parametrize(
    ("from_hour", "to_hour", "expected"),
    [(0, 1, 0), (1, 3, 20_000), (3, 7, 56_000), (7, 9, 16_000), (9, 10, 12_000)],
)
def test_each_part_of_the_profile_gets_its_share(big: list[Arrival], from_hour: int, to_hour: int,
                                                 expected: int) -> None:
    n = sum(1 for a in big if from_hour * HOUR <= a.sim < to_hour * HOUR)
    assert abs(n - expected) <= 4 * math.sqrt(max(expected, 1)), (from_hour, to_hour, n, expected)


def test_real_times_strictly_increase_and_stay_inside_the_load(big_plan: ArrivalPlan, big: list[Arrival]) -> None:
    clock = big_plan.clock
    assert big[0].real > 1.0  # nothing in the implied zero-rate first hour
    assert all(b.real > a.real for a, b in pairwise(big))
    assert all(0.0 <= a.real < clock.load_end_real for a in big)
    assert all(0.0 <= a.sim < clock.load_end_sim for a in big)


def test_indices_are_consecutive_and_sim_follows_the_clock(big_plan: ArrivalPlan, big: list[Arrival]) -> None:
    assert [a.index for a in big] == list(range(len(big)))
    assert all(a.sim == big_plan.clock.sim_at(a.real) for a in big[::97])


def test_rates_are_per_real_second_whatever_the_warp() -> None:
    # The same profile at twice the warp plays in half the real time: half the arrivals.
    slow = make_plan([(0, 1_000)], duration=1, warp=60, seed=3)  # 60 real s
    fast = make_plan([(0, 1_000)], duration=1, warp=120, seed=3)  # 30 real s
    n_slow, n_fast = slow.count(), fast.count()
    assert abs(n_slow - 60_000) <= 4 * math.sqrt(60_000)
    assert abs(n_fast - 30_000) <= 4 * math.sqrt(30_000)
    assert list(slow)[-1].real < 60.0 and list(fast)[-1].real < 30.0


@pytest.mark.parametrize(
    ("start_rate", "first_half_share"),
    [
        (0, 1 / 4),  # 0 -> X: the cumulative rate grows as t^2, so the first half holds 1/4
        (8_000, 1 / 3),  # X/5 -> X: (3a + b) / 4(a + b) = 1/3
    ],
)
def test_ramp_shape(start_rate: float, first_half_share: float) -> None:
    plan = make_plan([(0, start_rate), (1, 40_000, True)], duration=1, warp=3_600, seed=11)
    arrivals = list(plan)
    n = len(arrivals)
    expected = (start_rate + 40_000) / 2
    assert abs(n - expected) <= 4 * math.sqrt(expected)
    first = sum(1 for a in arrivals if a.sim < HOUR / 2)
    share = first / n
    sigma = math.sqrt(first_half_share * (1 - first_half_share) / n)
    assert abs(share - first_half_share) <= 4 * sigma, (share, first_half_share)
    assert abs((n - first) / n - (1 - first_half_share)) <= 4 * sigma


def test_ramp_density_rises_linearly() -> None:
    # 0 -> X over one hour: counts in ten equal slices grow like 1, 3, 5, ..., 19 (odd numbers).
    plan = make_plan([(0, 0), (1, 40_000, True)], duration=1, warp=3_600, seed=12)
    slices = [0] * 10
    for a in plan:
        slices[int(a.sim / 360)] += 1
    total = sum(slices)
    for k, count in enumerate(slices):
        expected = total * (2 * k + 1) / 100
        assert abs(count - expected) <= 4 * math.sqrt(expected) + 1, (k, count, expected)


def test_a_zero_profile_has_no_arrivals() -> None:
    plan = make_plan([(0, 0)], duration=5, warp=60, seed=1)
    assert list(plan) == []
    assert plan.count() == 0


# -- per-user random sources ------------------------------------------------------------------
def test_user_rng_is_deterministic_per_seed_and_index() -> None:
    draws = [user_rng(7, 3).random() for _ in range(2)]
    assert draws[0] == draws[1]
    a = user_rng(7, 3)
    b = user_rng(7, 3)
    assert [a.random() for _ in range(20)] == [b.random() for _ in range(20)]
    assert [user_rng(7, 3).getrandbits(64) for _ in range(3)] == [user_rng(7, 3).getrandbits(64)] * 3


def test_user_rng_differs_across_users_and_seeds() -> None:
    values = {user_rng(seed, index).getrandbits(64) for seed in (1, 2, 3) for index in range(50)}
    assert len(values) == 150


def test_user_rng_does_not_depend_on_the_arrival_stream() -> None:
    before = user_rng(9, 0).random()
    list(make_plan(SMALL_POINTS, duration=6, warp=60, seed=9))  # consuming a plan changes nothing
    assert user_rng(9, 0).random() == before


@pytest.mark.parametrize("shards", [1, 3, 4])
def test_a_shard_holds_exactly_its_share_of_the_plan(big_plan: ArrivalPlan, big: list[Arrival], shards: int) -> None:
    """A Kafka bot shard walks the plan without building the other shards' arrivals; what it
    gets is the whole plan's arrivals of its own index, byte for byte."""
    for shard in range(shards):
        mine = list(big_plan.shard(shard, shards))
        assert fingerprint(mine) == fingerprint([a for a in big if shard_of(a.index, shards) == shard])
    assert fingerprint(list(big_plan.shard(0, 1))) == fingerprint(big)
