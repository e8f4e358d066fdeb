"""The embedded engine against a real aiohttp server on loopback."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from loopback import wait_until

import esr
from esr.bus.runlog import read_events
from esr.core.buckets import RunFold
from esr.core.events import JourneyStarted, RequestResult, RunAborted, SlaDecided, VerdictIssued
from esr.core.scenario import Scenario
from esr.core.targets import TargetRegistry
from esr.core.verdict import judge
from esr.engine.runner import Run

pytestmark = pytest.mark.integration

CLAIM_JOURNEY: dict[str, Any] = {
    "name": "claim",
    "data": {"ssn": "ssn", "wages": {"int": [1000, 9000]}},
    "steps": [
        {"name": "file", "request": {"method": "POST", "path": "/claims",
                                     "json": {"ssn": "{{ data.ssn }}", "wages": "{{ data.wages }}"}},
         "expect": {"status": [201]}, "extract": {"claim_id": "$.id"},
         "counters": {"cloud_cost": "header:X-Cost"}},
        {"name": "paid", "request": {"path": "/claims/{{ vars.claim_id }}"},
         "poll": {"every": "1h", "until": "$.status == 'paid'", "give_up_after": "72h"},
         "counters": {"claims_paid": {"value": 1, "when": "$.status == 'paid'"}}},
    ],
    "sla": [{"from": "file", "to": "paid", "within": "48h"}],
}


@pytest.fixture(params=["pooled", "aiohttp"])
def http_client(request: pytest.FixtureRequest) -> str:
    """Both HTTP clients must measure and classify alike."""
    return request.param


def scenario(**fields: Any) -> Scenario:
    base: dict[str, Any] = {"name": "t", "duration_hours": 1, "time_warp": 1800, "load_profile": [[0, 40]],
                            "seed": 3}
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


async def test_sla_missed_at_the_deadline_in_simulated_time(demo_target: Any) -> None:
    url, _ = await demo_target(process_hours=(60.0, 60.0))
    s = scenario(journeys=[CLAIM_JOURNEY], load_profile=[[0, 10]], drain_warp=36000,
                 assertions=["sla_48h_success_rate > 0.95"])
    r = await run(s, url)
    v = r.verdict
    assert v is not None and v.status == "FAIL"
    assert v.summary["sla_48h_missed"] == v.summary["journeys_started"] and v.summary["sla_48h_met"] == 0
    decisions = [e for e in events_of(r) if isinstance(e, SlaDecided)]
    assert decisions and all(e.sim_time == pytest.approx(e.opened_sim + 48 * 3600) for e in decisions)
    # the drain ends once every deadline is decided (by hour 49): journeys still polling are cut,
    # not waited for until their claims are paid (hour 60 at the earliest; 1.1 s real at the drain warp)
    assert v.summary["journeys_cut"] == v.summary["journeys_started"]
    assert r.fold.last_sim_time < 60 * 3600


async def test_judge_from_the_log_equals_the_original_verdict(demo_target: Any) -> None:
    url, _ = await demo_target(latency_ms=2, process_hours=(5.0, 70.0))
    s = scenario(journeys=[CLAIM_JOURNEY], load_profile=[[0, 10]], drain_warp=36000,
                 assertions=["sla_48h_success_rate > 0.5", "latency_p95_ms < 500", "error_rate < 0.01 in every 15m",
                             "cloud_cost / claims_paid < 1"])
    r = await run(s, url)
    events = events_of(r)
    assert isinstance(events[-1], VerdictIssued)
    fold = RunFold().apply_all(events)
    again = judge(fold, s.parsed_assertions(), counters=s.counter_names)
    assert r.verdict is not None
    assert again.to_dict() == r.verdict.to_dict() == events[-1].verdict
    other = judge(fold, [esr.parse_assertion("latency_p99_ms < 0.001")])
    assert other.status == "FAIL"


async def test_same_seed_same_schedule_and_user_data(demo_target: Any) -> None:
    url, target_a = await demo_target()
    url_b, target_b = await demo_target()
    journey = {"name": "j", "data": {"ssn": "ssn", "amount": {"float": [1, 2]}},
               "steps": [{"name": "s", "request": {"method": "POST", "path": "/claims",
                                                   "json": {"ssn": "{{ data.ssn }}", "amount": "{{ data.amount }}"}}}]}
    s = scenario(journeys=[journey], load_profile=[[0, 20]])
    a, b = await run(s, url), await run(s, url_b)

    def starts(r: Run) -> list[tuple[int, float]]:
        return [(e.user, e.sim_time) for e in events_of(r) if isinstance(e, JourneyStarted)]

    assert sorted(starts(a)) == sorted(starts(b)) and len(starts(a)) == a.plan.count()
    assert {c[1] for c in target_a.claims.values()} == {c[1] for c in target_b.claims.values()}


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


class ClaimJourney(esr.Journey):
    name = "python_claim"
    longest_wait = "48h"

    async def run(self, user: esr.User) -> None:
        filed = await user.request("POST", "/claims", json={"ssn": "1"}, label="POST /claims")
        claim = filed.json()["id"]
        user.sla_open("48h", within="48h")
        user.count("filed")
        for _ in range(60):
            await user.wait(hours=1)
            reply = await user.request("GET", f"/claims/{claim}", label="GET /claims/{id}")
            if reply.json()["status"] == "paid":
                user.sla_close("48h")
                return


async def test_python_journey_class(demo_target: Any) -> None:
    url, _ = await demo_target(process_hours=(3.0, 3.0))
    s = scenario(journeys=[ClaimJourney], counters=["filed"], load_profile=[[0, 10]],
                 assertions=["sla_48h_success_rate == 1", "filed == journeys_started"])
    r = await run(s, url)
    v = r.verdict
    assert v is not None and v.status == "PASS", v.reason
    assert v.summary["requests"] == 4 * v.summary["journeys_started"]  # file + 3 hourly polls
    assert set(r.fold.endpoints) == {"POST /claims", "GET /claims/{id}"}


async def test_saturated_generator_is_reported(demo_target: Any) -> None:
    url, _ = await demo_target(latency_ms=200)
    s = scenario(max_in_flight=2, load_profile=[[0, 50]], assertions=["requests > 0"])
    r = await run(s, url)
    v = r.verdict
    assert v is not None
    assert v.generator["saturated"] is True and v.generator["late_starts"] > 0
    assert "saturated" in v.reason
    assert v.completeness["complete"] is True  # late, never dropped


async def test_deadlines_opened_late_are_still_decided(demo_target: Any) -> None:
    """Waiting before the SLA's start extends the drain bound: these misses are counted."""
    url, _ = await demo_target(process_hours=(500.0, 500.0))
    journey = {"name": "late_filer", "steps": [
        {"name": "think", "wait": "30h"},
        {"name": "file", "request": {"method": "POST", "path": "/claims"}, "extract": {"id": "$.id"}},
        {"name": "paid", "request": {"path": "/claims/{{ vars.id }}"},
         "poll": {"every": "6h", "until": "$.status == 'paid'", "give_up_after": "72h"}}],
        "sla": [{"from": "file", "to": "paid", "within": "48h"}]}
    s = scenario(journeys=[journey], load_profile=[[0, 10]], drain_warp=72000,
                 assertions=["sla_48h_success_rate > 0.5"])
    r = await run(s, url)
    v = r.verdict
    assert v is not None and v.status == "FAIL", v.reason
    assert v.summary["sla_48h_missed"] == v.summary["journeys_started"] > 0
    assert v.completeness["complete"] is True


class ForgetfulJourney(esr.Journey):
    """Opens a deadline but declares no longest_wait: the drain still waits for the deadline."""

    name = "forgetful"

    async def run(self, user: esr.User) -> None:
        await user.request("GET", "/", label="GET /")
        user.sla_open("48h", within="48h")
        await user.wait(hours=60)
        user.sla_close("48h")


async def test_an_open_deadline_extends_the_drain_until_it_is_decided(demo_target: Any) -> None:
    url, _ = await demo_target()
    s = scenario(journeys=[ForgetfulJourney], load_profile=[[0, 10]], time_warp=3600, drain_warp=72000,
                 assertions=["sla_48h_success_rate > 0.5"])
    r = await run(s, url)
    v = r.verdict
    assert v is not None and v.status == "FAIL"
    assert v.summary["sla_48h_missed"] == v.summary["journeys_started"] > 0
    assert v.summary["journeys_cut"] == v.summary["journeys_started"]
    assert v.completeness["sla_undecided"] == 0 and v.completeness["complete"] is True


async def test_requests_in_flight_at_the_end_of_the_drain_get_their_answer(demo_target: Any) -> None:
    url, _ = await demo_target(process_hours=(1.0, 1.0))
    journey = {"name": "slow_tail", "steps": [
        {"name": "file", "request": {"method": "POST", "path": "/claims"}, "extract": {"id": "$.id"}},
        {"name": "paid", "request": {"path": "/claims/{{ vars.id }}"},
         "poll": {"every": "1h", "until": "$.status == 'paid'", "give_up_after": "4h"}},
        {"name": "receipt", "request": {"path": "/status/200", "query": {"delay_ms": "1500"}}}],
        "sla": [{"from": "file", "to": "paid", "within": "48h"}]}
    s = scenario(journeys=[journey], load_profile=[[0, 10]], request_timeout=30)  # well over the 1.5 s receipt
    r = await run(s, url)
    v = r.verdict
    assert v is not None
    assert v.completeness["requests_abandoned"] == 0 and v.completeness["complete"] is True
    results = [e for e in events_of(r) if isinstance(e, RequestResult) and e.step == "receipt"]
    assert results and all(e.status == 200 for e in results)


class EndlessJourney(esr.Journey):
    name = "endless"
    longest_wait = "1h"

    async def run(self, user: esr.User) -> None:
        while True:
            await user.wait(hours=1)


async def test_journeys_that_only_wait_hold_no_request_slot(demo_target: Any) -> None:
    """max_in_flight limits requests in flight, not journeys: hundreds of claims wait on their
    hourly polls at once under a limit of 20 requests, and every one is started, polled and decided."""
    from test_schedule_lag import claims

    url, target = await demo_target()
    s = Scenario.from_dict(claims(hours=2, rate=150, warp=3600, seed=5) | {"max_in_flight": 20, "drain_warp": 18000})
    r = Run(s, TargetRegistry().resolve(url))
    open_journeys: list[int] = []
    deadlines_open: list[int] = []

    def progress(run: Run) -> None:
        snapshot = run.snapshot()
        open_journeys.append(snapshot["open_journeys"])
        deadlines_open.append(snapshot["sla_open"])

    await r.execute(progress=progress)
    v = r.verdict
    assert v is not None and v.completeness["complete"] is True, v.reason
    planned = r.plan.count()
    assert v.completeness["journeys_started"] == planned == len(target.claims) > 200
    assert v.summary["sla_48h_met"] + v.summary["sla_48h_missed"] == planned
    assert max(open_journeys) > 150  # waiting at once (none is paid within 12 h), far over the limit
    assert max(deadlines_open) > 150 and r.sla_open == 0  # each waiting claim's 48 h deadline, until decided
    assert 0 < target.peak_in_flight <= 20


async def test_python_journeys_that_only_wait_hold_no_request_slot(demo_target: Any) -> None:
    url, _ = await demo_target()
    s = scenario(journeys=[EndlessJourney], max_in_flight=3, load_profile=[[0, 20]], time_warp=3600)
    r = await asyncio.wait_for(run(s, url), 120)
    v = r.verdict
    assert v is not None and v.completeness["arrivals_not_started"] == 0
    assert v.summary["journeys_cut"] == v.summary["journeys_started"] == r.plan.count() > 3


async def test_a_full_generator_still_ends_and_says_what_never_started(demo_target: Any) -> None:
    """One request slot and 2 s answers: arrivals whose first request never got the slot before
    the catch-up ended (10 s after a 1 s load) never started, and the verdict says so."""
    url, target = await demo_target(latency_ms=2000)
    s = scenario(max_in_flight=1, load_profile=[[0, 20]], time_warp=3600, request_timeout=30)
    r = await asyncio.wait_for(run(s, url), 120)
    v = r.verdict
    assert v is not None and v.status == "ERROR"
    started = v.completeness["journeys_started"]
    assert 0 < started < r.plan.count()
    assert v.completeness["arrivals_not_started"] == r.plan.count() - started
    assert target.peak_in_flight == 1
    assert "never started" in v.reason
