"""The embedded engine's HTTP adapter against a real aiohttp server on loopback: both clients,
headers on the wire, latency from the intended time, timeouts, refused connections, an abort
by real cancellation. The run's rules (the request limit, waits, deadlines, the drain,
saturation, Python journeys, determinism) are tested in virtual time in
tests/unit/test_virtual_engine.py."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from busy import PUNCTUALITY_NOT_JUDGED
from journeys import CLAIM_JOURNEY
from loopback import wait_until

from esr.bus.runlog import read_events
from esr.core.buckets import RunFold
from esr.core.events import RequestResult, RunAborted, VerdictIssued
from esr.core.scenario import Scenario
from esr.core.targets import TargetRegistry
from esr.core.verdict import judge
from esr.engine.runner import Run

pytestmark = pytest.mark.integration



@pytest.fixture(params=["pooled", "aiohttp"])
def http_client(request: pytest.FixtureRequest) -> str:
    """Both HTTP clients must measure and classify alike."""
    return request.param


def scenario(**fields: Any) -> Scenario:
    base: dict[str, Any] = {"name": "t", "duration_hours": 1, "time_warp": 1800, "load_profile": [[0, 40]],
                            "seed": 3, **PUNCTUALITY_NOT_JUDGED}
    return Scenario(**(base | fields))


async def run(s: Scenario, url: str, **kwargs: Any) -> Run:
    r = Run(s, TargetRegistry().resolve(url), **kwargs)
    await r.execute()
    return r


def events_of(r: Run) -> list[Any]:
    return list(read_events(r.log_path))


async def test_counts_are_exact_and_headers_carry_the_sim_tag(demo_target: Any, http_client: str) -> None:
    url, target = await demo_target()
    s = scenario(assertions=["requests > 0", "error_rate == 0"])
    r = await run(s, url, http_client=http_client)
    planned = r.plan.count()
    v = r.verdict
    assert v is not None and v.status == "PASS"
    assert planned > 0
    assert v.generator["requests_resent"] == 0  # only a Kafka shard taken over sends again
    assert v.completeness == {"arrivals_planned": planned, "journeys_started": planned,
                              "requests_sent": planned, "results_recorded": planned, "requests_abandoned": 0,
                              "sla_undecided": 0, "arrivals_not_started": 0, "results_lost": 0,
                              "journey_events_lost": 0, "shard_reports_missing": 0, "fault_events_missing": 0,
                              "duplicates_dropped": 0, "complete": True}
    assert target.requests == planned
    assert v.summary["requests"] == planned and v.summary["journeys_completed"] == planned
    seen = target.seen_headers[0]
    assert seen["X-ESR-Run-Id"] == r.run_id
    assert seen["X-ESR-Sim"] == "true"
    assert seen["X-ESR-Sim-Time"].startswith(r.sim_start.date().isoformat())
    # every request carries its own Idempotency-Key: run, user, request number (one request per journey here)
    keys = [h["Idempotency-Key"] for h in target.seen_headers]  # the first five requests the target saw
    assert len(set(keys)) == len(keys) == 5
    assert {k for k in keys if re.fullmatch(rf"{re.escape(r.run_id)}-u(\d+)-r0", k)} == set(keys)
    assert {int(k.rsplit("-u", 1)[1].split("-")[0]) for k in keys} <= set(range(planned))


async def test_error_kinds_and_rate_are_exact(demo_target: Any, http_client: str) -> None:
    url, _ = await demo_target()
    journey = {"name": "mixed", "steps": [
        {"name": "ok", "request": {"path": "/"}},
        {"name": "server_error", "request": {"path": "/status/500"}, "expect": [500]},
        {"name": "not_found", "request": {"path": "/status/404"}, "expect": [404]},
        {"name": "ok_again", "request": {"path": "/"}},
    ]}
    r = await run(scenario(journeys=[journey], assertions=["error_rate < 0.1"]), url, http_client=http_client)
    v = r.verdict
    assert v is not None
    journeys = v.summary["journeys_started"]
    assert v.summary["requests"] == 4 * journeys
    assert v.summary["errors_5xx"] == journeys and v.summary["errors_4xx"] == journeys
    assert v.summary["error_rate"] == 0.5
    assert v.status == "FAIL" and v.assertions[0].observed == 0.5
    assert v.summary["journeys_completed"] == journeys  # 500 and 404 were expected by the steps


async def test_latency_is_measured_from_the_intended_time(demo_target: Any) -> None:
    url, _ = await demo_target(latency_ms=30)
    # the target adds 30 ms; what a slow or busy machine adds on top must not fail the upper bounds,
    # which only catch a measure of the wrong order (seconds, not milliseconds)
    r = await run(scenario(assertions=["latency_p50_ms > 29", "latency_p99_ms < 5000"]), url)
    v = r.verdict
    assert v is not None and v.status == "PASS", v.reason
    assert 30 <= v.summary["latency_p50_ms"] < 1000
    results = [e for e in events_of(r) if isinstance(e, RequestResult)]
    assert all(e.latency_ms >= e.raw_latency_ms for e in results)


async def test_timeouts_and_refused_connections_are_classified(demo_target: Any, http_client: str) -> None:
    url, _ = await demo_target(latency_ms=400)
    r = await run(scenario(request_timeout=0.05, load_profile=[[0, 10]]), url, http_client=http_client)
    assert r.verdict is not None
    assert r.verdict.summary["errors_timeout"] == r.verdict.summary["requests"] > 0
    import socket

    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    r = await run(scenario(load_profile=[[0, 10]]), closed, http_client=http_client)
    assert r.verdict is not None
    assert r.verdict.summary["errors_connect"] == r.verdict.summary["requests"] > 0
    assert r.verdict.summary["journeys_failed"] == r.verdict.summary["journeys_started"]


async def test_sla_met_when_claims_are_paid_in_time(demo_target: Any, http_client: str) -> None:
    url, _ = await demo_target(process_hours=(10.0, 10.0))
    s = scenario(journeys=[CLAIM_JOURNEY], load_profile=[[0, 10]], drain_warp=36000,
                 assertions=["sla_48h_success_rate == 1", "claims_paid == journeys_completed"])
    r = await run(s, url, http_client=http_client)
    v = r.verdict
    assert v is not None and v.status == "PASS", v.reason
    journeys = v.summary["journeys_started"]
    assert v.summary["sla_48h_met"] == journeys and v.summary["sla_48h_missed"] == 0
    # polls every simulated hour from filing: paid on the 10th poll, 11 requests per journey
    assert v.summary["requests"] == 12 * journeys
    assert v.summary["cloud_cost"] == pytest.approx(0.001 * journeys)


async def test_abort_leaves_a_readable_log_and_an_aborted_verdict(demo_target: Any) -> None:
    url, _ = await demo_target()
    r = Run(scenario(duration_hours=10, time_warp=600), TargetRegistry().resolve(url))
    task = asyncio.create_task(r.execute())
    await wait_until(lambda: r.live.requests > 0, 60, "results before the abort")  # a minute of load left
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    events = events_of(r)
    assert any(isinstance(e, RunAborted) for e in events)
    assert isinstance(events[-1], VerdictIssued) and events[-1].verdict["verdict"] == "ABORTED"
    assert judge(RunFold().apply_all(events), []).status == "ABORTED"
    assert sum(isinstance(e, RequestResult) for e in events) > 0
