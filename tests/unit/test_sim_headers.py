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


def test_the_idempotency_key_names_the_run_the_user_and_the_request() -> None:
    from esr.core.sim_headers import IDEMPOTENCY_KEY, idempotency_key

    assert IDEMPOTENCY_KEY == "Idempotency-Key"
    assert idempotency_key("20261127-090512-3f9a1c", 42, 3) == "20261127-090512-3f9a1c-u42-r3"
    # what a re-run shard sends again is the same key; any other request has another
    assert idempotency_key("run", 1, 0) == idempotency_key("run", 1, 0)
    keys = {idempotency_key(run, user, n) for run in ("a", "a-u1") for user in (1, 11) for n in (0, 1, 10)}
    assert len(keys) == 12


@given(st.integers(0, 10**9), st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**6))
def test_idempotency_keys_never_collide_within_a_run(u1: int, n1: int, u2: int, n2: int) -> None:
    from esr.core.sim_headers import idempotency_key

    same = idempotency_key("r", u1, n1) == idempotency_key("r", u2, n2)
    assert same == ((u1, n1) == (u2, n2))


@pytest.mark.parametrize(("user", "n", "field"), [(-1, 0, "user"), (0, -2, "n"), (True, 0, "user")])
def test_an_idempotency_key_of_a_negative_number_is_refused(user: int, n: int, field: str) -> None:
    from esr.core.errors import EsrError
    from esr.core.sim_headers import idempotency_key

    with pytest.raises(EsrError, match=f"^idempotency_key: {field} "):
        idempotency_key("run", user, n)
