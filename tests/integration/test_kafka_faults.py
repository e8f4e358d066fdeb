"""Faults on the Kafka runtime, on the real broker: the clock worker performs the system's own
faults and publishes the fault events to the faults topic, every bot worker's fault proxy
applies the built-in ones, the metrics worker judges with them; an abort and a killed clock
still restore the target."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from typing import Any

import pytest
from busy import PUNCTUALITY_NOT_JUDGED
from kafka_pipeline import Pipeline, RunProcess
from loopback import wait_until
from switchboard import Switchboard, serve
from test_kafka_runtime import run_topic

from esr.core.events import FaultEnded, FaultStarted

pytestmark = [pytest.mark.integration, pytest.mark.kafka]

ADMIN = "{{ target.url }}/admin/broken"
ACTIONS = {"broken": {"start": {"http": {"method": "POST", "url": ADMIN}},
                      "recover": {"http": {"method": "DELETE", "url": ADMIN}}}}


def work(hours: float, faults: list[str], assertions: list[str], warp: float = 3600,
         rate: float = 40) -> dict[str, Any]:
    """One GET /work per journey; at warp 3600 a simulated hour is a real second."""
    return {"name": "kafka_faults", "duration_hours": hours, "time_warp": warp, "seed": 5,
            "load_profile": [[0, rate]], "window": 60,
            "journeys": [{"name": "work", "steps": [{"name": "get", "request": {"path": "/work"}}]}],
            "failure_injection": faults, "fault_actions": ACTIONS, "assertions": assertions, **PUNCTUALITY_NOT_JUDGED}


@pytest.fixture
async def board() -> AsyncIterator[tuple[Switchboard, str]]:
    system = Switchboard()
    runner, url = await serve(system)
    yield system, url
    await runner.cleanup()


async def test_faults_on_the_kafka_runtime(pipeline: Pipeline, board: tuple[Switchboard, str]) -> None:
    system, url = board
    await pipeline.start_all(bots=2)
    faults = ["broken@hour2+1h", "errors(rate=1, status=502)@hour4+1h"]
    # warp 1200: a simulated hour is three real seconds. A journey due inside a fault but started
    # after it by a stalled generator (a busy machine) counts in the fault's window with the
    # recovered system's answer; at warp 3600 a stall of a third of a second was a third of the fault
    code, verdict, err = await pipeline.run(work(6, faults, [
        "error_rate > 0.9 during broken", "error_rate > 0.9 during errors", "error_rate < 0.05 during hour 0..2",
        # recovery within the hour after the fault, not within 600 simulated seconds (half a real
        # second, less than a stall of a busy machine)
        "recovery_time_s(broken) < 3600"], warp=1200), url)

    assert code == 0, f"{verdict.get('reason')}\n{err}"
    assert verdict["verdict"] == "PASS"
    assert verdict["completeness"]["fault_events_missing"] == 0
    windows = verdict["faults"]["windows"]
    assert [(w["fault"], w["applied"], w["start_sim_hour"], w["end_sim_hour"]) for w in windows] == [
        (faults[0], True, 2.0, 3.0), (faults[1], True, 4.0, 5.0)]
    assert all(w["during"]["error_rate"] > 0.9 for w in windows)
    # the clock performed the system's fault once, with the run's id, and recovered it
    assert [kind for kind, _ in system.calls] == ["start", "recover"]
    assert system.calls[0][1]["run_id"] == verdict["run_id"] and not system.broken
    events = run_topic(pipeline.settings, verdict["run_id"], "faults")
    started = {e.fault: e for e in events if isinstance(e, FaultStarted)}
    ended = {e.fault: e for e in events if isinstance(e, FaultEnded)}
    assert {f: (e.kind, e.ok) for f, e in started.items()} == {faults[0]: ("action", True), faults[1]: ("proxy", True)}
    assert {f: (e.reason, e.end_sim) for f, e in ended.items()} == {faults[0]: ("scheduled", 3 * 3600.0),
                                                                     faults[1]: ("scheduled", 5 * 3600.0)}


async def test_an_aborted_kafka_run_recovers_the_target(pipeline: Pipeline, board: tuple[Switchboard, str]) -> None:
    system, url = board
    await pipeline.start_all(bots=1)

    async def interrupt(run: RunProcess) -> None:
        await wait_until(lambda: system.broken, 120, "the fault started")
        run.send_signal(signal.SIGINT)

    code, verdict, err = await pipeline.run(work(30, ["broken@hour1"], []), url, during=interrupt,
                                            sigint_ignored=True)

    assert code == 3, err
    assert verdict["verdict"] == "ABORTED"
    await wait_until(lambda: not system.broken, 120, "the clock heard of the abort and ran the recovery")
    assert not system.broken and [kind for kind, _ in system.calls] == ["start", "recover"]
    ended = [e for e in run_topic(pipeline.settings, verdict["run_id"], "faults") if isinstance(e, FaultEnded)]
    assert [(e.fault, e.reason, e.ok) for e in ended] == [("broken@hour1", "aborted", True)]


async def test_a_killed_clock_worker_leaves_its_guard_to_recover(pipeline: Pipeline,
                                                                  board: tuple[Switchboard, str]) -> None:
    system, url = board
    workers = await pipeline.start_all(bots=1)
    clock = next(w for w in pipeline.workers if w.role == "clock")
    assert clock not in workers

    async def kill_clock(run: RunProcess) -> None:
        await wait_until(lambda: system.broken, 120, "the fault started")
        clock.kill()  # kill -9: the clock cannot recover anything itself
        await wait_until(lambda: not system.broken, 120, "the killed clock's guard recovered the target")
        run.send_signal(signal.SIGINT)

    code, verdict, err = await pipeline.run(work(30, ["broken@hour1"], []), url, during=kill_clock)

    assert not system.broken, "the guard of the killed clock should have recovered the target"
    assert [kind for kind, _ in system.calls] == ["start", "recover"]
    assert system.calls[1][1]["run_id"] == verdict.get("run_id", system.calls[0][1]["run_id"])
