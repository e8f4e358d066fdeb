"""Faults in a real run on loopback: the system's own faults through its admin endpoint, built-in
faults through the fault proxy, the timeline in the run log, and the cleanup paths."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from busy import PUNCTUALITY_NOT_JUDGED
from loopback import wait_until
from switchboard import BROKEN, Switchboard, serve

from esr.bus.runlog import read_events as read_log
from esr.bus.runlog import run_log_path
from esr.core.buckets import RunFold
from esr.core.events import FaultEnded, FaultStarted, RequestResult
from esr.core.fault_actions import FaultAction
from esr.core.scenario import Scenario
from esr.core.targets import Target
from esr.engine.runner import Run

pytestmark = pytest.mark.integration

HOUR = 3600.0
# A slow or busy machine starts a request, or a fault, a little after its time. Near a fault's
# start and end a request's simulated time can thus fall on either side of what it met, so the
# checks there leave out this much either side: 15 simulated minutes, 0.25 s real at the warp of 3600.
EDGE = 900.0


@pytest.fixture
async def board() -> AsyncIterator[tuple[Switchboard, Target]]:
    system = Switchboard()
    runner, url = await serve(system)
    yield system, Target("switchboard", url, faults={"broken": BROKEN})
    await runner.cleanup()


def scenario(faults: list[str], assertions: list[str] | None = None, hours: float = 3, rate: float = 40,
             warp: float = 3600) -> Scenario:
    """One simulated hour per real second (at the default warp): 40 requests per simulated hour."""
    return Scenario(name="faults", duration_hours=hours, time_warp=warp, load_profile=[(0, rate)], seed=3,
                    journeys=[{"name": "work", "steps": [{"name": "get", "request": {"path": "/work"}}]}],
                    failure_injection=faults, assertions=assertions or [], window=60, **PUNCTUALITY_NOT_JUDGED)


def read_events(home: Path, run_id: str) -> list[Any]:
    return list(read_log(run_log_path(home, run_id)))


def results(home: Path, run_id: str) -> list[RequestResult]:
    return [e for e in read_events(home, run_id) if type(e) is RequestResult]


async def test_a_system_fault_plays_on_the_timeline(board: tuple[Switchboard, Target], tmp_path: Path) -> None:
    system, target = board
    # the window's first minute may hold a request or two sent while the admin call was under
    # way (a busy machine): they met the healthy system, so "during" is 0.9, not 1 (docs/faults.md)
    run = Run(scenario(["broken@hour1+1h"], ["error_rate > 0.9 during broken", "recovery_time_s(broken) < 600",
                                             "error_rate < 0.01 during hour 0..1"]), target, home=tmp_path)
    verdict = await run.execute()
    assert verdict.status == "PASS", verdict.reason
    events = read_events(tmp_path, run.run_id)
    started = [e for e in events if type(e) is FaultStarted]
    ended = [e for e in events if type(e) is FaultEnded]
    assert [(e.fault, e.name, e.kind, e.start_sim, e.end_sim, e.ok) for e in started] == [
        ("broken@hour1+1h", "broken", "action", HOUR, 2 * HOUR, True)]
    assert started[0].detail == f"POST {target.url}/admin/broken: 200"
    assert [(e.reason, e.end_sim, e.ok) for e in ended] == [("scheduled", 2 * HOUR, True)]
    assert HOUR <= started[0].sim_time < HOUR + EDGE and 2 * HOUR <= ended[0].sim_time < 2 * HOUR + EDGE
    # the admin endpoint got the fault, its run and its simulated time
    assert [kind for kind, _ in system.calls] == ["start", "recover"]
    body = system.calls[0][1]
    assert (body["run_id"], body["fault"], body["args"], body["params"]) == (run.run_id, "broken", [], {})
    called = (datetime.fromisoformat(body["sim_time"]) - run.sim_start).total_seconds()
    assert HOUR <= called < HOUR + EDGE  # at the start of hour 1
    assert not system.broken
    # every result records the faults active when it was sent, and they match what the system did
    during = [r for r in results(tmp_path, run.run_id) if r.faults]
    outside = [r for r in results(tmp_path, run.run_id) if not r.faults]
    assert during and outside
    assert {r.faults for r in during} == {("broken",)}
    inside = [r for r in during if HOUR + EDGE < r.sim_time < 2 * HOUR - EDGE]
    away = [r for r in outside if not HOUR - EDGE < r.sim_time < 2 * HOUR + EDGE]
    assert inside and all(r.status == 503 for r in inside)
    assert away and all(r.status == 200 for r in away)
    window = verdict.faults["windows"][0]
    assert window["during"]["error_rate"] > 0.9 and window["recovered"] is True
    assert verdict.faults["steady_state"]["error_rate"] == 0.0


async def test_an_abort_recovers_the_system(board: tuple[Switchboard, Target], tmp_path: Path) -> None:
    system, target = board
    run = Run(scenario(["broken@hour1"], hours=20), target, home=tmp_path)
    task = asyncio.get_running_loop().create_task(run.execute())
    await wait_until(lambda: system.broken, 60, "the fault started")  # 20 s of load: it stays on
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not system.broken
    assert [kind for kind, _ in system.calls] == ["start", "recover"]
    ended = [e for e in read_events(tmp_path, run.run_id) if type(e) is FaultEnded]
    assert [(e.fault, e.reason, e.ok) for e in ended] == [("broken@hour1", "aborted", True)]
    assert run.verdict is not None and run.verdict.status == "ABORTED"


async def test_a_fault_until_the_run_ends_is_recovered_at_the_end(board: tuple[Switchboard, Target],
                                                                  tmp_path: Path) -> None:
    system, target = board
    run = Run(scenario(["broken@hour2"]), target, home=tmp_path)
    verdict = await run.execute()
    assert not system.broken and [kind for kind, _ in system.calls] == ["start", "recover"]
    ended = [e for e in read_events(tmp_path, run.run_id) if type(e) is FaultEnded]
    assert [e.reason for e in ended] == ["run_ended"] and ended[0].end_sim >= 3 * HOUR
    assert verdict.faults["windows"][0]["ended"] == "run_ended"


async def test_a_fault_that_cannot_start_makes_the_verdict_error(tmp_path: Path) -> None:
    system = Switchboard(start_status=500)
    runner, url = await serve(system)
    try:
        run = Run(scenario(["broken@hour1+1h"], ["error_rate < 0.5"]), Target("s", url, faults={"broken": BROKEN}),
                  home=tmp_path)
        verdict = await run.execute()
    finally:
        await runner.cleanup()
    assert verdict.status == "ERROR"
    assert verdict.reason.startswith("fault 'broken@hour1+1h' could not be applied, so the rehearsal did not "
                                     f"happen: POST {url}/admin/broken: 500")
    assert [kind for kind, _ in system.calls] == ["start", "recover"]  # undone to be sure
    assert not any(r.faults for r in results(tmp_path, run.run_id))


async def test_an_unknown_fault_is_refused_before_launch(board: tuple[Switchboard, Target]) -> None:
    from esr.core.errors import ScenarioError

    _, target = board
    with pytest.raises(ScenarioError, match="unknown fault 'brokn'.*switchboard defines: broken"):
        Run(scenario(["brokn@hour1"]), target)


async def test_proxy_faults_in_a_run(tmp_path: Path, board: tuple[Switchboard, Target]) -> None:
    _, target = board
    faults = ["errors(rate=1, status=502)@hour1+1h", "latency(300ms)@hour3+1h"]
    run = Run(scenario(faults, ["errors_5xx > 0 during errors", "latency_p50_ms >= 300 during latency",
                                "latency_p50_ms < 300 during hour 0..1"], hours=5), target, home=tmp_path)
    verdict = await run.execute()
    assert verdict.status == "PASS", verdict.reason
    got = results(tmp_path, run.run_id)
    in_errors = [r for r in got if r.faults == ("errors",)]
    in_latency = [r for r in got if r.faults == ("latency",)]
    # a request sent in the fault's last instant may reach the proxy just after it: EDGE's margin
    assert in_errors and all(r.status == 502 for r in in_errors if r.sim_time < 2 * HOUR - EDGE)
    assert in_latency and min(r.latency_ms for r in in_latency if r.sim_time < 4 * HOUR - EDGE) >= 300
    assert all(r.status == 200 for r in got if not r.faults and not HOUR - EDGE < r.sim_time < HOUR + EDGE)
    kinds = {e.fault: e.kind for e in read_events(tmp_path, run.run_id) if type(e) is FaultStarted}
    assert kinds == {faults[0]: "proxy", faults[1]: "proxy"}
    fold = RunFold().apply_all(read_events(tmp_path, run.run_id))
    assert [w.end_reason for w in fold.faults.values()] == ["scheduled", "scheduled"]


async def test_credentials_in_the_target_url_reach_the_system_through_the_fault_proxy(tmp_path: Path) -> None:
    """The proxy sits where the target's host and port were; the URL's user and password stay."""
    system = Switchboard(authorization="Basic " + base64.b64encode(b"ana:s3cret").decode())
    runner, url = await serve(system)
    try:
        target = Target("s", url.replace("http://", "http://ana:s3cret@"))
        run = Run(scenario(["latency(20ms)@hour1+1h"], hours=3), target, home=tmp_path)
        verdict = await run.execute()
    finally:
        await runner.cleanup()
    got = results(tmp_path, run.run_id)
    assert verdict.status == "PASS", verdict.reason
    assert len(got) > 60 and {r.status for r in got} == {200}
    assert any(r.faults == ("latency",) for r in got) and any(not r.faults for r in got)


async def test_a_start_that_times_out_after_taking_effect_is_undone(tmp_path: Path) -> None:
    system = Switchboard(start_delay_s=2.0)
    runner, url = await serve(system)
    slow = FaultAction.model_validate({
        "start": {"http": {"method": "POST", "url": "{{ target.url }}/admin/broken", "timeout": "0.5s"}},
        "recover": {"http": {"method": "DELETE", "url": "{{ target.url }}/admin/broken"}}})
    try:
        run = Run(scenario(["broken@hour1+1h"]), Target("s", url, faults={"broken": slow}), home=tmp_path)
        verdict = await run.execute()
    finally:
        await runner.cleanup()
    assert verdict.status == "ERROR" and "could not be applied" in verdict.reason
    assert "timed out" in verdict.reason and "recovery run to be sure" in verdict.reason
    assert [kind for kind, _ in system.calls] == ["start", "recover"] and not system.broken


async def test_a_failed_recovery_is_tried_again_by_the_guard(tmp_path: Path) -> None:
    system = Switchboard(recover_failures=1)
    runner, url = await serve(system)
    try:
        run = Run(scenario(["broken@hour1+1h"]), Target("s", url, faults={"broken": BROKEN}), home=tmp_path)
        verdict = await run.execute()
        await wait_until(lambda: not system.broken, 60, "the guard's second recovery")  # it retries when the run ends
    finally:
        await runner.cleanup()
    window = verdict.faults["windows"][0]
    assert window["recovery_action_ok"] is False and "500" in window["recovery_detail"]
    assert [kind for kind, _ in system.calls] == ["start", "recover", "recover"] and not system.broken


async def test_results_record_the_faults_on_when_they_were_sent(board: tuple[Switchboard, Target],
                                                                 tmp_path: Path) -> None:
    _, target = board
    hang = scenario(["timeout(rate=1)@hour1+1h"], hours=3).model_copy(update={"request_timeout": 0.3})
    run = Run(hang, target, home=tmp_path)
    await run.execute()
    timed_out = [r for r in results(tmp_path, run.run_id) if r.error == "timeout"]
    # one sent just before the toxic went on may reach the proxy after it: EDGE's margin
    assert timed_out and all(r.faults == ("timeout",) for r in timed_out if r.sim_time > HOUR + EDGE)
    assert all(HOUR - EDGE < r.sim_time < 2 * HOUR + EDGE for r in timed_out)
