"""Same seed, same verdict: the bundled quickstart, played ten times in a row against the demo
target, gives the same verdict and the same counts every time."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import pytest
from busy import PUNCTUALITY_NOT_JUDGED

from esr.core.scenario import Scenario
from esr.core.targets import TargetRegistry
from esr.engine.runner import Run
from esr.sandbox.demo_target import DemoTargetConfig, start

pytestmark = pytest.mark.integration

SPEED_UP = 10  # the property does not depend on the warp; this keeps ten runs under a minute


def _quickstart() -> dict[str, Any]:
    data = json.loads(resources.files("esr").joinpath("examples/quickstart.json").read_text(encoding="utf-8"))
    return data | {"time_warp": data["time_warp"] * SPEED_UP, "drain_warp": data["drain_warp"] * SPEED_UP,
                   **PUNCTUALITY_NOT_JUDGED}


def _what_must_repeat(verdict: Any) -> dict[str, Any]:
    """Everything but wall-clock measurements (latencies, rates and late starts depend on the machine:
    a loaded one starts the odd arrival more than late_threshold_ms late)."""
    summary = {k: v for k, v in verdict.summary.items()
               if "latency" not in k and not k.endswith("_rps") and not k.startswith("late_start")}
    measured = ("latency", "throughput")
    assertions = [(a.assertion, a.holds, None if a.assertion.startswith(measured) else a.observed)
                  for a in verdict.assertions]
    status = verdict.status
    if status == "FAIL" and all(a.holds for a in verdict.assertions if not a.assertion.startswith(measured)):
        status = "PASS but for a latency bar a busy machine missed"  # as the quickstart test allows
    return {"status": status, "summary": summary, "assertions": [a[0::2] for a in assertions],
            "holds": [a[1] for a in assertions if not a[0].startswith(measured)],
            "completeness": dict(verdict.completeness)}


async def test_the_quickstart_gives_the_same_verdict_and_counts_ten_times_in_a_row() -> None:
    scenario = Scenario.from_dict(_quickstart())
    seen: list[dict[str, Any]] = []
    for _ in range(10):
        # the bundled target as `esr demo` starts it, fresh for each run
        runner, url = await start(DemoTargetConfig(latency_ms=2, jitter_ms=1, seed=scenario.seed))
        try:
            verdict = await Run(scenario, TargetRegistry().resolve(url)).execute()
        finally:
            await runner.cleanup()
        seen.append(_what_must_repeat(verdict))
    first = seen[0]
    assert first["completeness"]["complete"] is True
    assert first["summary"]["sla_48h_met"] > 0 and first["summary"]["sla_48h_missed"] > 0
    assert first["summary"]["claims_paid"] > 0
    for i, other in enumerate(seen[1:], start=2):
        assert other == first, f"run {i} differs from run 1"
