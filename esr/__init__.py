"""HMS-ESR: a flight simulator for policy rollouts.

    import esr
    scenario = esr.Scenario(name="smoke", duration_hours=24, time_warp=1440,
                            load_profile=[(0, 5), (18, 20)], assertions=["error_rate < 0.01"])
    verdict = esr.run_scenario(scenario, target="http://127.0.0.1:8080")
    print(verdict.status)
"""

from __future__ import annotations

from typing import Any

from esr.core.assertions import Assertion, AssertionResult, parse_assertion
from esr.core.errors import (
    AssertionSyntaxError,
    EsrError,
    FaultSyntaxError,
    FieldError,
    JudgementError,
    RunLogError,
    ScenarioError,
    TargetRefused,
)
from esr.core.journey import Journey
from esr.core.run_state import RunStatus
from esr.core.scenario import Scenario, load_scenario, scenario_json_schema
from esr.core.verdict import Verdict, judge
from esr.engine.runner import Run
from esr.engine.user import User

__all__ = [
    "Assertion",
    "AssertionResult",
    "AssertionSyntaxError",
    "EsrError",
    "FaultSyntaxError",
    "FieldError",
    "Journey",
    "JudgementError",
    "Run",
    "RunLogError",
    "RunStatus",
    "Scenario",
    "ScenarioError",
    "TargetRefused",
    "User",
    "Verdict",
    "judge",
    "load_scenario",
    "parse_assertion",
    "run_scenario",
    "scenario_json_schema",
]

__version__ = "0.1.0"


def run_scenario(scenario: Scenario, target: str, **kwargs: Any) -> Verdict:
    """Run `scenario` against `target` (a loopback URL or registered name) and return the verdict.

    Blocks until the run ends; use `Run(...).execute()` from async code.
    """
    import asyncio

    from esr.core.targets import TargetRegistry
    from esr.settings import Settings

    settings = Settings.current(home=kwargs.pop("home", None))
    resolved = TargetRegistry.load(settings.registry_file).resolve(target)
    return asyncio.run(Run(scenario, resolved, home=settings.home, **kwargs).execute())
