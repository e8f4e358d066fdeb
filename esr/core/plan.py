"""`make_plan`: what a scenario will do, before it runs (`esr plan`).

Warp compresses the calendar, not the intensity, so the plan spells out both: the real
duration, the simulated span, the real request rates the target will see, the journeys per
simulated hour, and how long the drain can last.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from esr.core.arrivals import ArrivalPlan
from esr.core.clock import SimClock
from esr.core.journey import Journey
from esr.core.journey_spec import JourneySpec
from esr.core.scenario import Scenario

__all__ = ["RunPlan", "drain_bound_sim", "make_plan", "scenario_journeys"]


def scenario_journeys(scenario: Scenario, default: JourneySpec) -> list[JourneySpec | type[Journey]]:
    """The journeys a run uses: the scenario's own, or the target's default journey."""
    journeys: list[Any] = [*scenario.journeys, *scenario.python_journeys]
    return journeys or [default]


def drain_bound_sim(journeys: list[JourneySpec | type[Journey]]) -> float:
    """Longest simulated time a journey can stay undecided after the load ends: for each SLA,
    the waiting before its `from` step plus the deadline; without SLAs, all its waiting steps.
    (A deadline still running at the bound extends the drain until it is decided.)"""
    bounds = []
    for journey in journeys:
        if isinstance(journey, JourneySpec):
            bounds.append(max((journey.wait_before(s.from_step) + s.within for s in journey.sla),
                              default=journey.longest_wait()))
        else:
            bounds.append(journey.wait_bound())
    return max(bounds, default=0.0)


def max_requests(journey: JourneySpec | type[Journey]) -> int | None:
    """The most requests one journey can send (every poll to its give-up); None for Python journeys."""
    if not isinstance(journey, JourneySpec):
        return None
    return sum(s.poll.max_polls if s.poll else 1 for s in journey.steps if s.request)


@dataclass(frozen=True, slots=True)
class RunPlan:
    name: str
    sim_hours: float
    time_warp: float
    drain_warp: float
    load_real_seconds: float
    peak_rate: float
    expected_journeys: float
    planned_journeys: int
    journeys_per_sim_hour_at_peak: float
    drain_bound_sim_hours: float
    drain_bound_real_seconds: float
    max_requests_per_journey: dict[str, int | None]
    assertions: list[str]
    failure_injection: list[str]
    note: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def make_plan(scenario: Scenario, default: JourneySpec) -> RunPlan:
    journeys = scenario_journeys(scenario, default)
    clock = SimClock(scenario.time_warp, scenario.duration_hours * 3600, scenario.effective_drain_warp)
    profile = scenario.profile
    drain = drain_bound_sim(journeys)
    peak = profile.peak_rate
    return RunPlan(
        name=scenario.name,
        sim_hours=scenario.duration_hours,
        time_warp=scenario.time_warp,
        drain_warp=scenario.effective_drain_warp,
        load_real_seconds=clock.load_end_real,
        peak_rate=peak,
        expected_journeys=profile.expected_arrivals(scenario.time_warp),
        planned_journeys=ArrivalPlan(profile, clock, scenario.seed).count(),
        journeys_per_sim_hour_at_peak=peak * 3600 / scenario.time_warp,
        drain_bound_sim_hours=drain / 3600,
        drain_bound_real_seconds=drain / scenario.effective_drain_warp,
        max_requests_per_journey={
            (j.name if isinstance(j, JourneySpec) else getattr(j, "name", j.__name__)): max_requests(j)
            for j in journeys},
        assertions=list(scenario.assertions),
        failure_injection=list(scenario.failure_injection),
        note=(
            f"warp {scenario.time_warp:g} compresses the calendar, not the intensity: the target sees "
            f"up to {peak:g} journey starts per real second, and one simulated hour holds rate x "
            f"{3600 / scenario.time_warp:.3g} journey starts. SLA deadlines run on simulated time; the "
            "target's own timers run on real time unless it reads X-ESR-Sim-Time."),
    )
