"""RunLimits: arithmetic on the scenario, raised by the operator."""

from __future__ import annotations

import pytest

from esr.core.errors import EsrError
from esr.core.journey_spec import DEFAULT_JOURNEY
from esr.core.run_limits import RunLimits
from esr.core.scenario import Scenario
from esr.sandbox.serve import sandbox_target

CHAPTER = {"name": "DOL_48h_SLA_Stress", "duration_hours": 24, "time_warp": 60,
           "load_profile": [[0, 5], [8, 30], [18, 40]],
           "assertions": ["latency_p95_ms < 2000", "sla_48h_success_rate > 0.95"]}


def test_the_chapters_scenario_is_within_the_default_limits() -> None:
    target = sandbox_target("prod-like-staging.dol.gov", "http://127.0.0.1:9701")
    scenario = Scenario.from_dict(target.fill_in(CHAPTER))
    assert RunLimits().errors(scenario, target.default_journey) == []


def test_a_rate_of_a_billion_is_refused_without_counting_its_arrivals() -> None:
    scenario = Scenario.from_dict(CHAPTER | {"load_profile": [[0, 1e9]], "time_warp": 1, "duration_hours": 25})
    paths = [e.path for e in RunLimits().errors(scenario, DEFAULT_JOURNEY)]
    assert paths.count("load_profile") == 2 and "duration_hours" in paths  # rate, journeys, and 25 real hours


def test_limits_come_from_the_environment_and_must_be_positive() -> None:
    limits = RunLimits.from_environment({"ESR_MAX_RATE": "2e9", "ESR_MAX_JOURNEYS": "1e12"})
    assert limits.max_rate == 2e9 and limits.max_journeys == 10**12 and limits.max_real_hours == 24.0
    scenario = Scenario.from_dict(CHAPTER | {"load_profile": [[0, 1e9]], "time_warp": 86400})
    assert limits.errors(scenario, DEFAULT_JOURNEY) == []
    for bad in ("x", "0", "-3"):
        with pytest.raises(EsrError, match="ESR_MAX_RATE"):
            RunLimits.from_environment({"ESR_MAX_RATE": bad})
