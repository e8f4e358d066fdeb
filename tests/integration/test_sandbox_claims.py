"""The sample claims system over HTTP, driven by the engine in simulated time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from esr.engine.runner import Run
from esr.sandbox.app import CLAIM_JOURNEY, CLAIMS, ClaimsService, make_claims_app
from esr.sandbox.claims import OfficeConfig
from esr.scenario import Scenario
from esr.targets import TargetRegistry

pytestmark = pytest.mark.integration


@pytest.fixture
async def claims_system() -> AsyncIterator[Any]:
    runners: list[web.AppRunner] = []

    async def start(config: OfficeConfig) -> tuple[str, ClaimsService]:
        app = make_claims_app(ClaimsService(config))
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        return f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}", app[CLAIMS]  # type: ignore[union-attr]

    yield start
    for runner in runners:
        await runner.cleanup()


def seed_like(scale: float, warp: float) -> Scenario:
    return Scenario(
        name="DOL_48h_SLA_Stress", duration_hours=24, time_warp=warp, drain_warp=86400, seed=42,
        load_profile=[(0, 5 * scale), (8, 20 * scale), (18, 40 * scale), (22, 10 * scale)],
        journeys=[CLAIM_JOURNEY], window=3600,
        assertions=["sla_48h_success_rate > 0.95", "cloud_cost / claims_processed < 0.05"])


async def test_claims_are_paid_in_simulated_time_with_a_fork_per_run(claims_system: Any) -> None:
    url, service = await claims_system(OfficeConfig(caseworkers=50, review_minutes=60))
    scenario = Scenario(name="small", duration_hours=2, time_warp=3600, drain_warp=36000, seed=1,
                        load_profile=[(0, 20)], journeys=[CLAIM_JOURNEY],
                        assertions=["sla_48h_success_rate == 1"])
    first = Run(scenario, TargetRegistry().resolve(url))
    await first.execute()
    v = first.verdict
    assert v is not None and v.status == "PASS", v.reason
    office = service.offices[first.run_id]
    paid = sum(1 for c in office.claims.values() if c.status != "denied")
    assert v.summary["claims_processed"] == paid and len(office.claims) == v.summary["journeys_started"]
    assert 0 < paid < len(office.claims)  # some SSNs have no qualifying wages
    assert v.summary["cloud_cost"] == pytest.approx(0.004 * len(office.claims) + 0.0008 * (v.summary["requests"] - len(office.claims)))
    second = Run(scenario, TargetRegistry().resolve(url))
    await second.execute()
    assert set(service.offices) == {first.run_id, second.run_id}
    assert min(service.offices[second.run_id].claims) == 1  # its own numbering, its own data
    async with aiohttp.ClientSession() as session:
        async with session.delete(f"{url}/_esr/runs/{first.run_id}") as response:
            assert response.status == 200
    assert set(service.offices) == {second.run_id}


async def test_capacity_calibration_end_to_end(claims_system: Any) -> None:
    """The seed's profile passes at peak 40 and fails at 80 on the 48-hour SLA (review time
    scaled with the warp, see docs/sandbox.md)."""
    warp = 2880
    url, _ = await claims_system(OfficeConfig(review_minutes=warp / 10))
    verdicts = {}
    for scale in (1, 2):
        run = Run(seed_like(scale, warp), TargetRegistry().resolve(url))
        await run.execute()
        assert run.verdict is not None
        verdicts[scale] = run.verdict
    assert verdicts[1].status == "PASS", verdicts[1].reason
    assert verdicts[2].status == "FAIL"
    assert verdicts[2].assertions[0].holds is False and verdicts[2].assertions[0].observed < 0.95
