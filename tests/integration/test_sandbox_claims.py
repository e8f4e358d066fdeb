"""The sample claims system over HTTP, driven by the engine in simulated time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from busy import PUNCTUALITY_NOT_JUDGED

from esr.core.scenario import Scenario
from esr.core.targets import TargetRegistry
from esr.engine.runner import Run
from esr.sandbox.app import CLAIM_JOURNEY, CLAIMS, ClaimsService, make_claims_app
from esr.sandbox.claims import OfficeConfig
from esr.sandbox.serve import sandbox_target
from esr.sandbox.sut_process import ClaimsProcess

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


@pytest.fixture
async def claims_process() -> AsyncIterator[Any]:
    """The claims system as the sandbox runs it: in a process of its own, on a free port."""
    started: list[ClaimsProcess] = []

    async def start(config: OfficeConfig) -> ClaimsProcess:
        started.append(await ClaimsProcess.start(config, 0))
        return started[-1]

    yield start
    for sut in started:
        await sut.stop()


def chapter_scenario(peak: float, warp: float) -> Scenario:
    """The chapter's walk-through scenario (shared/seed, section 3.1) at `warp`, with its evening
    peak at `peak`; the drain plays fast (only polls are sent then)."""
    return Scenario(
        name="DOL_48h_SLA_Stress", duration_hours=24, time_warp=warp, drain_warp=86400,
        load_profile=[(0, 5), (8, 30), (18, peak)], **PUNCTUALITY_NOT_JUDGED,
        assertions=["latency_p95_ms < 2000", "sla_48h_success_rate > 0.95"])


async def test_claims_are_paid_in_simulated_time_with_a_fork_per_run(claims_system: Any) -> None:
    url, service = await claims_system(OfficeConfig(caseworkers=50, review_minutes=60))
    scenario = Scenario(name="small", duration_hours=2, time_warp=3600, drain_warp=36000, seed=1,
                        load_profile=[(0, 20)], journeys=[CLAIM_JOURNEY], **PUNCTUALITY_NOT_JUDGED,
                        assertions=["sla_48h_success_rate == 1"])
    first = Run(scenario, TargetRegistry().resolve(url))
    await first.execute()
    v = first.verdict
    assert v is not None and v.status == "PASS", v.reason
    office = service.offices[first.run_id]
    assert office.warp == 3600  # it follows the run's warp, sent with every request
    paid = sum(1 for c in office.claims.values() if c.status != "denied")
    assert v.summary["claims_processed"] == paid and len(office.claims) == v.summary["journeys_started"]
    assert 0 < paid < len(office.claims)  # some SSNs have no qualifying wages
    assert v.summary["cloud_cost"] == pytest.approx(0.004 * len(office.claims)
                                                    + 0.0008 * (v.summary["requests"] - len(office.claims)))
    second = Run(scenario, TargetRegistry().resolve(url))
    await second.execute()
    assert set(service.offices) == {first.run_id, second.run_id}
    assert min(service.offices[second.run_id].claims) == 1  # its own numbering, its own data
    async with aiohttp.ClientSession() as session:
        async with session.delete(f"{url}/_esr/runs/{first.run_id}") as response:
            assert response.status == 200
    assert set(service.offices) == {second.run_id}


async def test_capacity_calibration_end_to_end(claims_process: Any) -> None:
    """The chapter's scenario against the sandbox's default office, in its own process as the
    sandbox runs it: peak 40 meets the SLA, peak 80 does not (the pure model's figures:
    tests/unit/test_claims_office.py). Both runs send about 550 requests a second, so an office
    sharing the generator's loop would add its own work to every latency."""
    warp = 4320  # 24 simulated hours in 20 s
    sut = await claims_process(OfficeConfig())
    target = sandbox_target("prod-like-staging.dol.gov", sut.url)
    verdicts = {}
    for peak in (40, 80):
        run = Run(chapter_scenario(peak, warp), target)
        await run.execute()
        assert run.verdict is not None
        verdicts[peak] = run.verdict
    assert verdicts[40].status == "PASS", verdicts[40].reason
    assert verdicts[40].summary["sla_48h_success_rate"] == 1.0
    sla = next(a for a in verdicts[80].assertions if a.assertion == "sla_48h_success_rate > 0.95")
    assert verdicts[80].status == "FAIL" and sla.holds is False and sla.observed < 0.9


async def test_the_claims_process_purges_a_finished_runs_fork_and_keeps_the_others(claims_process: Any) -> None:
    sut = await claims_process(OfficeConfig())
    async with aiohttp.ClientSession() as s:
        for run in ("r1", "r2"):
            assert (await call(s, "POST", f"{sut.url}/claims", run, "08:00", json={"ssn": "900-00-0001"}))[0] == 201
        await sut.purge_soon("r1")
        assert (await call(s, "GET", f"{sut.url}/claims/1", "r1", "09:00"))[0] == 404  # a new, empty fork
        assert (await call(s, "GET", f"{sut.url}/claims/1", "r2", "09:00"))[0] == 200
        assert (await call(s, "DELETE", f"{sut.url}/_esr/runs/r2"))[:2] == (200, {"purged": True})


# -- the office's own faults, over HTTP ------------------------------------------------------------
MONDAY = "2026-03-02T{}:00+00:00"


async def call(session: aiohttp.ClientSession, method: str, url: str, run: str | None = None,
               at: str | None = None, **kwargs: Any) -> tuple[int, Any, Any]:
    """One request, as a run `run` at simulated time `at` (`HH:MM` on a Monday): status, JSON, headers."""
    headers = {**({"X-ESR-Run-Id": run} if run else {}), **({"X-ESR-Sim-Time": MONDAY.format(at)} if at else {})}
    async with session.request(method, url, headers=headers, **kwargs) as response:
        return response.status, await response.json(), response.headers


async def test_db_down_fail_answers_503_and_reads_keep_working(claims_system: Any) -> None:
    url, _ = await claims_system(OfficeConfig(caseworkers=1, review_minutes=60))
    faults = f"{url}/_esr/runs/r1/faults"
    async with aiohttp.ClientSession() as s:
        status, claim, _ = await call(s, "POST", f"{url}/claims", "r1", "08:00", json={"ssn": "900-00-0001"})
        assert status == 201
        body = {"fault": "db_down", "args": [], "params": {}, "sim_time": MONDAY.format("10:00")}
        assert (await call(s, "POST", f"{faults}/db_down", json=body))[:2] == (
            200, {"run_id": "r1", "fault": "db_down", "active": True, "params": {"mode": "fail"}})
        assert (await call(s, "GET", faults))[:2] == (200, {"run_id": "r1", "active": {"db_down": {"mode": "fail"}}})
        status, error, headers = await call(s, "POST", f"{url}/claims", "r1", "10:05", json={"ssn": "900-00-0002"})
        assert (status, error, headers["X-Cost"]) == (503, {"error": "claims database unavailable"}, "0.0008")
        status, read, _ = await call(s, "GET", f"{url}/claims/{claim['id']}", "r1", "10:10")  # the read replica
        assert (status, read["status"]) == (200, "paid")
        status, ledger, _ = await call(s, "GET", f"{url}/treasury/payments", "r1", "10:10")
        assert (status, [p["claim"] for p in ledger["payments"]]) == (200, [claim["id"]])
        assert (await call(s, "DELETE", f"{faults}/db_down", at="11:00"))[:2] == (
            200, {"run_id": "r1", "fault": "db_down", "active": False, "was_active": True})
        assert (await call(s, "DELETE", f"{faults}/db_down", json=body))[:2] == (  # again, e.g. on abort: harmless
            200, {"run_id": "r1", "fault": "db_down", "active": False, "was_active": False})
        status, claim, _ = await call(s, "POST", f"{url}/claims", "r1", "11:05", json={"ssn": "900-00-0002"})
        assert (status, claim["id"]) == (201, 2)
        assert (await call(s, "GET", faults))[1]["active"] == {}


async def test_db_down_queue_holds_claims_until_the_database_is_back(claims_system: Any) -> None:
    url, service = await claims_system(OfficeConfig(caseworkers=1, review_minutes=60))
    async with aiohttp.ClientSession() as s:
        body = {"fault": "db_down", "args": ["queue"], "params": {}, "sim_time": MONDAY.format("09:00")}
        assert (await call(s, "POST", f"{url}/_esr/runs/r1/faults/db_down", json=body))[0] == 200
        status, held, headers = await call(s, "POST", f"{url}/claims", "r1", "09:30", json={"ssn": "900-00-0001"})
        assert (status, held["status"], held["filed_at"], headers["X-Cost"]) == (202, "queued", MONDAY.format("09:30"),
                                                                                 "0.004")
        assert (await call(s, "GET", f"{url}/claims/{held['id']}", "r1", "11:59"))[1]["status"] == "queued"
        body = {"fault": "db_down", "args": [], "params": {}, "sim_time": MONDAY.format("12:00")}
        assert (await call(s, "DELETE", f"{url}/_esr/runs/r1/faults/db_down", json=body))[1]["was_active"] is True
        assert (await call(s, "GET", f"{url}/claims/{held['id']}", "r1", "12:30"))[1]["status"] == "in_review"
        assert (await call(s, "GET", f"{url}/claims/{held['id']}", "r1", "13:00"))[1]["status"] == "approved"
    assert service.offices["r1"].claims[held["id"]].decided.isoformat() == MONDAY.format("13:00")


async def test_caseworkers_out_delays_decisions_until_they_return(claims_system: Any) -> None:
    url, _ = await claims_system(OfficeConfig(caseworkers=2, review_minutes=60))
    async with aiohttp.ClientSession() as s:
        assert (await call(s, "POST", f"{url}/_esr/runs/r1/faults/caseworkers_out", at="08:00",
                           json={"fault": "caseworkers_out", "args": [], "params": {"n": 2}}))[0] == 200
        ids = [(await call(s, "POST", f"{url}/claims", run, "08:10", json={"ssn": "900-00-0001"}))[1]["id"]
               for run in ("r1", "r2")]
        assert (await call(s, "GET", f"{url}/claims/{ids[0]}", "r1", "09:10"))[1]["status"] == "in_review"
        assert (await call(s, "GET", f"{url}/claims/{ids[1]}", "r2", "09:10"))[1]["status"] == "approved"  # other run
        assert (await call(s, "GET", f"{url}/_esr/runs/r1/faults"))[1]["active"] == {"caseworkers_out": {"n": 2}}
        assert (await call(s, "GET", f"{url}/_esr/runs/r2/faults"))[1]["active"] == {}
        assert (await call(s, "DELETE", f"{url}/_esr/runs/r1/faults/caseworkers_out", at="10:00"))[0] == 200
        assert (await call(s, "GET", f"{url}/claims/{ids[0]}", "r1", "10:59"))[1]["status"] == "in_review"
        assert (await call(s, "GET", f"{url}/claims/{ids[0]}", "r1", "11:00"))[1]["status"] == "approved"


@pytest.mark.parametrize(("method", "name", "body", "status", "message"), [
    ("POST", "disk_full", None, 404, "the claims office has no fault 'disk_full'; known: db_down, caseworkers_out"),
    ("DELETE", "disk_full", None, 404, "no fault 'disk_full'"),
    ("POST", "caseworkers_out", None, 400, "caseworkers_out: parameter 'n' is required: a positive whole number"),
    ("POST", "caseworkers_out", {"args": [0]}, 400,
     "parameter 'n' must be a positive whole number of caseworkers; got 0"),
    ("POST", "caseworkers_out", {"params": {"n": "3"}}, 400, "got '3'"),
    ("POST", "db_down", {"params": {"mode": "slow"}}, 400, "parameter 'mode' must be \"fail\""),
    ("POST", "db_down", {"params": {"rate": 1}}, 400, "db_down has no parameter 'rate'"),
    ("POST", "db_down", {"fault": "caseworkers_out"}, 400,
     "the body's fault is 'caseworkers_out' but the path names 'db_down'"),
    ("POST", "db_down", {"run_id": "r2"}, 400, "the body's run_id is 'r2' but the path names 'r1'"),
    ("POST", "db_down", {"sim_time": "noon"}, 400, "\"sim_time\" must be an ISO 8601 time"),
    ("POST", "db_down", {"args": "queue"}, 400, "\"args\" must be a JSON array"),
    ("POST", "db_down", [], 400, "the body must be a JSON object"),
    ("DELETE", "db_down", {"sim_time": 12}, 400, "\"sim_time\" must be an ISO 8601 time"),
])
async def test_a_refused_fault_call_says_why(claims_system: Any, method: str, name: str, body: Any,
                                            status: int, message: str) -> None:
    url, service = await claims_system(OfficeConfig())
    async with aiohttp.ClientSession() as s:
        answer = await call(s, method, f"{url}/_esr/runs/r1/faults/{name}", at="09:00",
                            **({} if body is None else {"json": body}))
    assert answer[0] == status and message in answer[1]["error"], answer[1]
    assert (answer[1]["run_id"], answer[1]["fault"]) == ("r1", name)
    if status == 404:
        assert answer[1]["known"] == ["db_down", "caseworkers_out"]
    assert all(not office.faults for office in service.offices.values())


async def test_a_body_that_is_not_json_and_a_second_start_are_refused(claims_system: Any) -> None:
    url, _ = await claims_system(OfficeConfig())
    async with aiohttp.ClientSession() as s:
        status, error, _ = await call(s, "POST", f"{url}/_esr/runs/r1/faults/db_down", at="09:00", data=b"mode=queue")
        assert (status, error["error"]) == (400,
                                            'send a JSON object {"fault", "args", "params", "sim_time"}, or no body')
        assert (await call(s, "POST", f"{url}/_esr/runs/r1/faults/db_down", at="09:00"))[0] == 200
        status, error, _ = await call(s, "POST", f"{url}/_esr/runs/r1/faults/db_down", at="10:00",
                                      json={"params": {"mode": "queue"}})
        assert status == 409 and error["error"] == ("db_down is already active in this run (with {'mode': 'fail'}); "
                                                    "end it first to start it again")


async def test_purging_a_run_drops_its_faults(claims_system: Any) -> None:
    url, service = await claims_system(OfficeConfig())
    async with aiohttp.ClientSession() as s:
        await call(s, "POST", f"{url}/_esr/runs/r1/faults/db_down", at="09:00")
        await call(s, "POST", f"{url}/_esr/runs/r2/faults/db_down", at="09:00")
        assert (await call(s, "DELETE", f"{url}/_esr/runs/r1"))[:2] == (200, {"purged": True})
        assert (await call(s, "GET", f"{url}/_esr/runs/r1/faults"))[1] == {"run_id": "r1", "active": {}}
        assert "r1" not in service.offices  # a GET makes no office
        assert (await call(s, "POST", f"{url}/claims", "r1", "09:30", json={"ssn": "900-00-0001"}))[0] == 201
        assert (await call(s, "POST", f"{url}/claims", "r2", "09:30", json={"ssn": "900-00-0001"}))[0] == 503
        assert (await call(s, "DELETE", f"{url}/_esr/runs/r3/faults/db_down", at="09:30"))[1]["was_active"] is False
        assert "r3" not in service.offices


async def test_a_run_applies_and_recovers_the_offices_faults(claims_system: Any) -> None:
    """End to end: the sandbox target's fault actions, as ESR performs them, in simulated time."""
    url, service = await claims_system(OfficeConfig(caseworkers=50, review_minutes=60))
    scenario = Scenario(name="faults", duration_hours=3, time_warp=3600, drain_warp=36000, seed=1,
                        load_profile=[(0, 5)], journeys=[CLAIM_JOURNEY], **PUNCTUALITY_NOT_JUDGED,
                        failure_injection=["caseworkers_out(50)@hour0+1h", "db_down(queue)@hour2+30m"])
    run = Run(scenario, sandbox_target("sandbox", url))
    await run.execute()
    office = service.offices[run.run_id]
    assert office.faults == {}
    def filed_between(first: float, last: float) -> list[Any]:  # simulated minutes, clear of the edges
        return [c for c in office.claims.values() if c.status == "in_review"
                and timedelta(minutes=first) <= c.filed - run.sim_start <= timedelta(minutes=last)]

    def started_after(claims: list[Any], minutes: float) -> bool:
        return all(c.started is not None and c.started - run.sim_start >= timedelta(minutes=minutes) for c in claims)

    everyone_out, held = filed_between(1, 58), filed_between(121, 148)
    assert everyone_out and held
    assert started_after(everyone_out, 59) and started_after(held, 149)


async def file(s: aiohttp.ClientSession, url: str, body: Any, key: str | None, run: str = "r1",
               at: str = "08:00") -> tuple[int, Any, Any]:
    """POST /claims as run `run`, with the Idempotency-Key `key` (None: without one)."""
    headers = {"X-ESR-Run-Id": run, "X-ESR-Sim-Time": MONDAY.format(at),
               **({"Idempotency-Key": key} if key is not None else {})}
    async with s.post(f"{url}/claims", json=body, headers=headers) as response:
        return response.status, await response.json(content_type=None), response.headers


async def test_a_claim_is_filed_once_per_idempotency_key(claims_system: Any) -> None:
    url, service = await claims_system(OfficeConfig(caseworkers=1, review_minutes=60))
    claim = {"ssn": "900-00-0001", "name": "A"}
    async with aiohttp.ClientSession() as s:
        first = await file(s, url, claim, "r1-u7-r0")
        assert first[:2] == (201, {"id": 1, "status": "in_review", "filed_at": "2026-03-02T08:00:00+00:00"})
        assert "Idempotent-Replayed" not in first[2]
        again = await file(s, url, {"name": "A", "ssn": "900-00-0001"}, '"r1-u7-r0"', at="08:00")  # same JSON
        assert again[:2] == first[:2] and again[2]["Idempotent-Replayed"] == "true"
        assert len(service.offices["r1"].claims) == 1  # filed once
        # the same key with another claim is a client bug: 422, and nothing filed
        status, problem, headers = await file(s, url, {"ssn": "900-00-0002"}, "r1-u7-r0")
        assert (status, headers["Content-Type"]) == (422, "application/problem+json")
        assert problem["title"] == "Idempotency-Key reused with another request" and "r1-u7-r0" in problem["detail"]
        # another key, no key, another run: filed as before
        assert (await file(s, url, claim, "r1-u8-r0"))[:2] == (201, {**first[1], "id": 2})
        assert (await file(s, url, claim, None))[1]["id"] == 3
        assert (await file(s, url, claim, None))[1]["id"] == 4
        assert (await file(s, url, claim, "r1-u7-r0", run="r2"))[:2] == (201, first[1])
        assert (await file(s, url, claim, "x" * 256))[:2] == (
            400, {"error": "Idempotency-Key must be 1 to 255 characters, not 256"})
        assert len(service.offices["r1"].claims) == 4


async def test_a_refused_filing_is_not_remembered(claims_system: Any) -> None:
    """A 503 filed nothing: sending it again with its key files it once the database is back."""
    url, service = await claims_system(OfficeConfig(caseworkers=1, review_minutes=60))
    claim = {"ssn": "900-00-0001"}
    async with aiohttp.ClientSession() as s:
        down = {"fault": "db_down", "sim_time": MONDAY.format("09:00")}
        assert (await call(s, "POST", f"{url}/_esr/runs/r1/faults/db_down", json=down))[0] == 200
        assert (await file(s, url, claim, "k1", at="09:30"))[0] == 503
        assert (await call(s, "DELETE", f"{url}/_esr/runs/r1/faults/db_down", at="10:00"))[0] == 200
        assert (await file(s, url, claim, "k1", at="10:30"))[:2] == (
            201, {"id": 1, "status": "in_review", "filed_at": "2026-03-02T10:30:00+00:00"})
        assert (await file(s, url, claim, "k1", at="10:31"))[0] == 201
        assert len(service.offices["r1"].claims) == 1
        assert service.purge("r1") and "r1" not in service.replies  # a purged run forgets its keys
