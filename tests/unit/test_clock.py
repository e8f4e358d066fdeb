"""esr.core.clock.SimClock: the pure real <-> sim mapping, across the load/drain boundary."""

from __future__ import annotations

import dataclasses
import math

import pytest

from esr.core.clock import SimClock

DAY = 86_400.0


@pytest.fixture
def clock() -> SimClock:
    # one simulated day at warp 60 (1440 real s), then the drain at warp 240
    return SimClock(time_warp=60.0, load_end_sim=DAY, drain_warp=240.0)


def test_load_end_real(clock: SimClock) -> None:
    assert clock.load_end_real == 1_440.0


@pytest.mark.parametrize(
    ("real", "sim"),
    [
        (0.0, 0.0),
        (1.0, 60.0),
        (60.0, 3_600.0),
        (1_440.0, DAY),  # the boundary belongs to the load
        (1_441.0, DAY + 240.0),  # then the drain warp
        (1_440.0 + 15.0, DAY + 3_600.0),
    ],
)
def test_sim_at_known_points(clock: SimClock, real: float, sim: float) -> None:
    assert clock.sim_at(real) == pytest.approx(sim, rel=1e-15, abs=1e-12)
    assert clock.real_at(sim) == pytest.approx(real, rel=1e-15, abs=1e-12)


@pytest.mark.parametrize(
    "real", [0.0, 0.001, 1.0, 719.5, 1_439.999, 1_440.0, 1_440.000_001, 1_440.5, 2_000.0, 1e6]
)
def test_real_at_inverts_sim_at(clock: SimClock, real: float) -> None:
    assert math.isclose(clock.real_at(clock.sim_at(real)), real, rel_tol=1e-12, abs_tol=1e-9)


@pytest.mark.parametrize(
    "sim", [0.0, 59.0, 3_600.0, DAY - 1.0, DAY, DAY + 0.5, DAY + 3_600.0, 3 * DAY]
)
def test_sim_at_inverts_real_at(clock: SimClock, sim: float) -> None:
    assert math.isclose(clock.sim_at(clock.real_at(sim)), sim, rel_tol=1e-12, abs_tol=1e-9)


def test_mapping_is_continuous_and_increasing_at_the_boundary(clock: SimClock) -> None:
    eps = 1e-6
    before, at, after = clock.sim_at(1_440 - eps), clock.sim_at(1_440), clock.sim_at(1_440 + eps)
    assert before < at < after
    assert at - before == pytest.approx(eps * 60, rel=1e-6)
    assert after - at == pytest.approx(eps * 240, rel=1e-6)


@pytest.mark.parametrize(
    ("from_sim", "to_sim", "real"),
    [
        (0.0, 3_600.0, 60.0),  # one sim hour in the load: 60 real s at warp 60
        (DAY, DAY + 3_600.0, 15.0),  # one sim hour in the drain: 15 real s at warp 240
        (DAY - 3_600.0, DAY + 3_600.0, 75.0),  # an hour on each side of the boundary
        (0.0, DAY, 1_440.0),
        (5_000.0, 5_000.0, 0.0),
    ],
)
def test_real_span(clock: SimClock, from_sim: float, to_sim: float, real: float) -> None:
    assert clock.real_span(from_sim, to_sim) == pytest.approx(real, rel=1e-12)


def test_equal_warps_give_one_linear_mapping() -> None:
    clock = SimClock(time_warp=120.0, load_end_sim=7_200.0, drain_warp=120.0)
    for real in (0.0, 30.0, 60.0, 61.0, 1_000.0):
        assert clock.sim_at(real) == pytest.approx(real * 120.0)


@pytest.mark.parametrize(("warp", "drain"), [(0.0, 1.0), (-1.0, 1.0), (1.0, 0.0), (1.0, -60.0)])
def test_warps_must_be_positive(warp: float, drain: float) -> None:
    with pytest.raises(ValueError, match="must be > 0"):
        SimClock(time_warp=warp, load_end_sim=3_600.0, drain_warp=drain)


def test_clock_is_frozen(clock: SimClock) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        clock.time_warp = 1.0  # type: ignore[misc]
