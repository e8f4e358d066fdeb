"""esr.core.load_profile: steps, ramps, the implied zero before the first entry, clipping, totals."""

from __future__ import annotations

import pytest

from esr.core.load_profile import LoadPoint, LoadProfile, Segment


def profile(*points: tuple, duration: float) -> LoadProfile:
    return LoadProfile(tuple(LoadPoint(*p) for p in points), duration)


# -- steps -------------------------------------------------------------------------------------
@pytest.fixture
def steps() -> LoadProfile:
    return profile((0, 5), (8, 20), (18, 40), (22, 10), duration=24)


def test_steps_segments(steps: LoadProfile) -> None:
    assert steps.segments() == [
        Segment(0, 8, 5, 5),
        Segment(8, 18, 20, 20),
        Segment(18, 22, 40, 40),
        Segment(22, 24, 10, 10),
    ]


@pytest.mark.parametrize(
    ("hour", "rate"),
    [(0, 5), (7.999, 5), (8, 20), (17.5, 20), (18, 40), (21.99, 40), (22, 10), (23.99, 10), (24, 0), (30, 0), (-1, 0)],
)
def test_steps_hold_until_the_next_entry(steps: LoadProfile, hour: float, rate: float) -> None:
    assert steps.rate_at(hour) == rate


def test_steps_peak_and_expected_arrivals(steps: LoadProfile) -> None:
    assert steps.peak_rate == 40
    # rate x real seconds: (5*8 + 20*10 + 40*4 + 10*2) sim hours at 3600/60 real s each
    assert steps.expected_arrivals(60) == 420 * 60
    assert steps.expected_arrivals(3_600) == 420
    assert steps.expected_arrivals(60) == 2 * steps.expected_arrivals(120)  # warp compresses the calendar


# -- ramps -------------------------------------------------------------------------------------
def test_ramp_is_linear_from_the_previous_entry() -> None:
    p = profile((0, 10), (4, 30, True), (6, 30), duration=8)
    assert p.segments() == [Segment(0, 4, 10, 30), Segment(4, 6, 30, 30), Segment(6, 8, 30, 30)]
    assert p.rate_at(0) == 10
    assert p.rate_at(1) == 15
    assert p.rate_at(2) == 20
    assert p.rate_at(3.5) == 27.5
    assert p.rate_at(4) == 30
    assert p.peak_rate == 30
    # a ramp contributes its mean rate: 20*4 + 30*2 + 30*2 rate-hours, warp 3600
    assert p.expected_arrivals(3_600) == 200


def test_ramp_down() -> None:
    p = profile((0, 40), (6, 20), (10, 0, True), duration=12)
    assert p.segments() == [Segment(0, 6, 40, 40), Segment(6, 10, 20, 0), Segment(10, 12, 0, 0)]
    assert p.rate_at(8) == 10
    assert p.rate_at(11) == 0
    assert p.expected_arrivals(3_600) == 40 * 6 + 10 * 4


def test_a_step_entry_after_a_ramp_entry_jumps() -> None:
    p = profile((0, 0), (2, 100, True), (3, 10), duration=4)
    assert p.rate_at(1) == 50
    assert p.rate_at(2.5) == 100
    assert p.rate_at(3) == 10


def test_segment_rate_at_and_mean() -> None:
    s = Segment(2, 6, 10, 50)
    assert s.rate_at(2) == 10
    assert s.rate_at(4) == 30
    assert s.rate_at(6) == 50
    assert s.mean_rate == 30
    assert Segment(1, 1, 5, 9).rate_at(1) == 5  # empty segment: no division by zero


# -- the first entry after hour 0 ---------------------------------------------------------------
def test_first_entry_after_hour_zero_implies_zero_before_it() -> None:
    p = profile((2, 10), duration=5)
    assert p.segments() == [Segment(0, 2, 0, 0), Segment(2, 5, 10, 10)]
    assert p.rate_at(0) == 0
    assert p.rate_at(1.99) == 0
    assert p.rate_at(2) == 10
    assert p.expected_arrivals(1) == 10 * 3 * 3_600


def test_first_entry_after_hour_zero_can_ramp_up_from_zero() -> None:
    p = profile((4, 40, True), duration=6)
    assert p.segments() == [Segment(0, 4, 0, 40), Segment(4, 6, 40, 40)]
    assert p.rate_at(1) == 10
    assert p.expected_arrivals(3_600) == 20 * 4 + 40 * 2


# -- clipping to the duration -------------------------------------------------------------------
def test_entries_past_the_end_are_dropped() -> None:
    p = profile((0, 10), (5, 20), (30, 50), duration=12)
    assert p.segments() == [Segment(0, 5, 10, 10), Segment(5, 12, 20, 20)]
    assert p.peak_rate == 20  # the 50 is never played
    assert p.rate_at(12) == 0
    assert p.expected_arrivals(3_600) == 10 * 5 + 20 * 7


def test_entry_exactly_at_the_end_is_dropped() -> None:
    p = profile((0, 5), (10, 99), duration=10)
    assert p.segments() == [Segment(0, 10, 5, 5)]
    assert p.peak_rate == 5


def test_a_ramp_cut_by_the_end_stops_at_its_rate_there() -> None:
    p = profile((0, 0), (20, 40, True), duration=10)
    assert p.segments() == [Segment(0, 10, 0, 20)]
    assert p.peak_rate == 20
    assert p.expected_arrivals(3_600) == 10 * 10  # mean 10 over 10 hours


def test_all_zero_profile() -> None:
    p = profile((0, 0), duration=3)
    assert p.peak_rate == 0
    assert p.expected_arrivals(60) == 0


# -- validation ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "points",
    [(), ((0, 5), (0, 6)), ((4, 5), (2, 6)), ((0, 1), (3, 2), (3, 4))],
)
def test_hours_must_be_strictly_increasing(points: tuple) -> None:
    with pytest.raises(ValueError, match="strictly increasing"):
        profile(*points, duration=10)
