"""`RunLimits`: how big a run the server accepts, checked before launch from the scenario alone.

One accepted launch with a rate of 1e9 once took 7 GB and froze the server for every other run;
so the server bounds each scenario (planned journeys, peak rate, real duration, requests per
journey) and refuses a bigger one with a 422 naming the limit and how to raise it. Everything
here is arithmetic on the scenario (no arrival is counted one by one), so refusing is cheap.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from esr.core.clock import SimClock
from esr.core.errors import EsrError, FieldError
from esr.core.journey_spec import JourneySpec
from esr.core.plan import drain_bound_sim, max_requests, scenario_journeys
from esr.core.scenario import Scenario

__all__ = ["RunLimits"]


@dataclass(frozen=True, slots=True)
class RunLimits:
    """Each limit is raised with the `esr serve` flag or environment variable named in its error."""

    max_journeys: int = 2_000_000  # expected journeys of one run
    max_rate: float = 5_000.0  # peak journey starts per real second
    max_real_hours: float = 24.0  # real time of the load plus the drain bound
    max_requests_per_journey: int = 1_000

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> RunLimits:
        """`ESR_MAX_JOURNEYS`, `ESR_MAX_RATE`, `ESR_MAX_REAL_HOURS`, `ESR_MAX_REQUESTS_PER_JOURNEY`
        from `environ` (esr.settings passes the process's)."""
        env = environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f"ESR_{f.name.upper()}")
            if raw:
                try:
                    number = float(raw)
                except ValueError:
                    raise EsrError(f"ESR_{f.name.upper()}={raw!r} is not a number") from None
                if not number > 0:
                    raise EsrError(f"ESR_{f.name.upper()}={raw!r} must be positive")
                values[f.name] = int(number) if f.type == "int" else number
        return cls(**values)

    def errors(self, scenario: Scenario, default_journey: JourneySpec) -> list[FieldError]:
        """Every limit the scenario exceeds, as field errors naming the limit."""
        errors = []
        profile = scenario.profile
        if profile.peak_rate > self.max_rate:
            errors.append(FieldError("load_profile", (
                f"peak rate {profile.peak_rate:g} journey starts/s is over this server's limit of {self.max_rate:g} "
                "(esr serve --max-rate, ESR_MAX_RATE)")))
        expected = profile.expected_arrivals(scenario.time_warp)
        if expected > self.max_journeys:
            errors.append(FieldError("load_profile", (
                f"about {expected:,.0f} journeys planned, over this server's limit of {self.max_journeys:,} "
                "(esr serve --max-journeys, ESR_MAX_JOURNEYS)")))
        journeys = scenario_journeys(scenario, default_journey)
        clock = SimClock(scenario.time_warp, scenario.duration_hours * 3600, scenario.effective_drain_warp)
        real_hours = (clock.load_end_real + drain_bound_sim(journeys) / scenario.effective_drain_warp) / 3600
        if real_hours > self.max_real_hours:
            errors.append(FieldError("duration_hours", (
                f"the run would take up to {real_hours:,.1f} real hours (load and drain at warps "
                f"{scenario.time_warp:g} and {scenario.effective_drain_warp:g}), over this server's limit of "
                f"{self.max_real_hours:g} (esr serve --max-real-hours, ESR_MAX_REAL_HOURS)")))
        for i, journey in enumerate(journeys):
            most = max_requests(journey)
            if most is not None and most > self.max_requests_per_journey:
                where = f"journeys[{i}]" if scenario.journeys else "target default journey"
                errors.append(FieldError(where, (
                    f"up to {most:,} requests per journey, over this server's limit of "
                    f"{self.max_requests_per_journey:,} "
                    "(esr serve --max-requests-per-journey, ESR_MAX_REQUESTS_PER_JOURNEY)")))
        return errors
