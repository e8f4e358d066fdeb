"""esr.core.sim_headers: the one formatter of simulated times, and how a target reads them back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from esr.core.sim_headers import SIM_TIME, SimTimeFormat, sim_time

START = datetime(2026, 11, 27, tzinfo=UTC)


@pytest.mark.parametrize(("sim", "text"), [
    (0.0, "2026-11-27T00:00:00.000+00:00"),
    (0.25, "2026-11-27T00:00:00.250+00:00"),
    (3600.0, "2026-11-27T01:00:00.000+00:00"),
    (86_399.9999, "2026-11-27T23:59:59.999+00:00"),
    (86_400.0, "2026-11-28T00:00:00.000+00:00"),
    (-0.5, "2026-11-26T23:59:59.500+00:00"),
])
def test_to_the_millisecond_with_the_zone(sim: float, text: str) -> None:
    assert SimTimeFormat(START)(sim) == text


def test_a_naive_start_is_utc_and_another_zone_is_kept() -> None:
    assert SimTimeFormat(datetime(2026, 11, 27))(1.5) == "2026-11-27T00:00:01.500+00:00"
    east = datetime(2026, 11, 27, 9, tzinfo=timezone(timedelta(hours=5)))
    assert SimTimeFormat(east)(60) == "2026-11-27T09:01:00.000+05:00"


@given(st.lists(st.floats(min_value=0, max_value=400 * 86_400, allow_nan=False), min_size=1, max_size=50))
def test_cached_or_not_it_reads_back_within_a_millisecond(sims: list[float]) -> None:
    shared = SimTimeFormat(START)  # one formatter, sims in any order: the per-second cache never leaks
    for sim in sims:
        text = shared(sim)
        assert text == SimTimeFormat(START)(sim)
        back = sim_time({SIM_TIME: text})
        assert timedelta(0) <= START + timedelta(seconds=sim) - back < timedelta(milliseconds=1)
