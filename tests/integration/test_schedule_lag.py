"""A journey that falls behind its schedule (a slow target, a busy machine) is judged on its
schedule: each request carries the simulated time it was due at, and a deadline is decided
on the simulated time of the poll that observed the step, never on how late the machine was."""

from __future__ import annotations

import math
from typing import Any

import pytest
from journeys import POLLED_CLAIM

from esr.core.scenario import Scenario
from esr.core.targets import TargetRegistry
from esr.engine.runner import Run

pytestmark = pytest.mark.integration


def claims(hours: float, rate: float, warp: float, seed: int) -> dict[str, Any]:
    """Claims filed for `hours` simulated hours, each polled hourly until paid (the demo target
    pays 12 to 60 simulated hours after filing); the deadline is 48 h."""
    return {
        "name": "demo_claims", "duration_hours": hours, "time_warp": warp, "seed": seed, "load_profile": [[0, rate]],
        "journeys": [POLLED_CLAIM],
        "assertions": ["sla_48h_success_rate > 0.5"],
    }


async def test_polls_slower_than_their_interval_are_judged_on_their_schedule(demo_target: Any) -> None:
    # at warp 36000 a simulated hour is 0.1 s, and every answer takes 0.2 s: each poll is due
    # before the last one came back, so by hour 48 the journeys are far behind the clock
    url, target = await demo_target(latency_ms=200)
    run = Run(Scenario.from_dict(claims(hours=10, rate=40, warp=36000, seed=8)), TargetRegistry().resolve(url))
    verdict = await run.execute()

    filed = list(target.claims.values())
    assert len(filed) == verdict.completeness["arrivals_planned"] > 10
    # the poll k hours after filing is the first to see 'paid' when k >= the claim's hours
    on_time = sum(1 for _, hours in filed if math.ceil(hours) <= 48)
    assert 0 < on_time < len(filed)
    s = verdict.summary
    assert (s["sla_48h_met"], s["sla_48h_missed"]) == (on_time, len(filed) - on_time)
    # a journey whose deadline is decided may be cut at the drain's end; none is cut before
    assert s["journeys_completed"] >= on_time and s["journeys_completed"] + s["journeys_cut"] == len(filed)
    assert verdict.completeness["complete"] is True and verdict.completeness["sla_undecided"] == 0
    # each claim's polls were sent for their due hours: one filing, then polls at 0, 1, ... ceil(hours)
    polls = [2 + math.ceil(hours) for _, hours in filed]
    assert (sum(n for n, (_, hours) in zip(polls, filed, strict=True) if math.ceil(hours) <= 48)
            < target.requests <= sum(polls))
