"""esr.core.toxics.plan_request: what the active built-in faults do to one request, seeded."""

from __future__ import annotations

import random

import pytest

from esr.core.toxics import Action, Bandwidth, Down, Errors, Latency, Plan, Reset, Timeout, plan_request, reset_cut


def plans(toxics: list, n: int = 2000, seed: int = 1) -> list[Plan]:
    rng = random.Random(seed)
    return [plan_request(toxics, rng) for _ in range(n)]


def test_no_fault_forwards_untouched() -> None:
    assert plan_request([], random.Random(0)) == Plan(Action.FORWARD)


def test_down_drops_whatever_else_is_active() -> None:
    assert plan_request([Errors(1.0), Down(), Latency(1.0)], random.Random(0)) == Plan(Action.DROP)


def test_errors_hit_their_share_with_their_status() -> None:
    got = plans([Errors(0.25, 502)], 4000)
    hit = [p for p in got if p.action is Action.ERROR]
    assert {p.status for p in hit} == {502}
    assert len(hit) / len(got) == pytest.approx(0.25, abs=0.03)
    assert all(p.action is Action.FORWARD for p in got if p not in hit)


def test_the_first_errors_fault_that_hits_sets_the_status() -> None:
    got = plans([Errors(1.0, 503), Errors(1.0, 500)], 10)
    assert {p.status for p in got} == {503}


def test_timeouts_swallow_their_share_after_errors_missed() -> None:
    got = plans([Errors(0.5), Timeout(0.5)], 4000)
    share = {a: sum(p.action is a for p in got) / len(got) for a in Action}
    assert share[Action.ERROR] == pytest.approx(0.5, abs=0.03)
    assert share[Action.SWALLOW] == pytest.approx(0.25, abs=0.03)  # half of the other half
    assert share[Action.FORWARD] == pytest.approx(0.25, abs=0.03)


def test_latencies_add_up_and_jitter_stays_in_its_band() -> None:
    got = plans([Latency(0.2, 0.05), Latency(0.1)], 2000)
    delays = [p.delay_s for p in got]
    assert min(delays) >= 0.25 - 1e-9 and max(delays) <= 0.35 + 1e-9
    assert sum(delays) / len(delays) == pytest.approx(0.3, abs=0.005)
    assert plan_request([Latency(0.01, 0.5)], random.Random(3)).delay_s >= 0.0  # never negative


def test_injected_errors_are_shaped_too() -> None:
    plan = plan_request([Errors(1.0), Latency(0.5), Bandwidth(1000.0), Bandwidth(500.0)], random.Random(0))
    assert (plan.action, plan.delay_s, plan.bytes_per_s) == (Action.ERROR, 0.5, 500.0)  # the smallest bandwidth


def test_resets_hit_their_share() -> None:
    reset = Reset(0.5, 100)
    got = plans([reset], 4000)
    assert sum(p.reset is reset for p in got) / len(got) == pytest.approx(0.5, abs=0.03)


def test_the_same_seed_gives_the_same_faults() -> None:
    toxics = [Errors(0.3), Timeout(0.2), Latency(0.1, 0.05), Reset(0.4)]
    assert plans(toxics, 500, seed=9) == plans(toxics, 500, seed=9)
    assert plans(toxics, 500, seed=9) != plans(toxics, 500, seed=10)


@pytest.mark.parametrize(("after", "size", "cut"), [
    (100, 1000, 100), (5000, 1000, 1000), (0, 1000, 0), (None, 1000, 500), (None, 1, 1), (None, 3, 1),
])
def test_reset_cut(after: int | None, size: int, cut: int) -> None:
    assert reset_cut(Reset(1.0, after), size) == cut
