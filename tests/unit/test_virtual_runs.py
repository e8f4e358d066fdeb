"""Run semantics in virtual time: whole scenarios (a simulated day, waits, SLAs, the drain, a
fault, an abort) played by the embedded `Run` on a virtual clock against an in-memory claims
double, deterministic by seed, and compared event for event with the golden logs in
tests/golden/ (regenerate them with `python tests/golden/regenerate.py` after a deliberate
change, and say why in the commit)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from virtual_run import TARGET, ClaimsDouble, event_lines, play

from esr.core.events import FaultEnded, FaultStarted, JourneyEnded, RequestResult, RunAborted, RunFinished, SlaDecided
from esr.core.fault_actions import FaultAction
from esr.core.scenario import Scenario

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
QUICKSTART = Path(__file__).resolve().parents[2] / "esr" / "examples" / "quickstart.json"

CLAIM = {
    "name": "claim",
    "steps": [
        {"name": "file", "request": {"method": "POST", "path": "/claims"}, "expect": {"status": [201]},
         "extract": {"claim_id": "$.id"}},
        {"name": "paid", "request": {"method": "GET", "path": "/claims/{{ vars.claim_id }}"},
         "poll": {"every": "2h", "until": "$.status == 'paid'", "give_up_after": "72h"}},
    ],
    "sla": [{"from": "file", "to": "paid", "within": "48h"}],
}


def scenario(**changes: Any) -> Scenario:
    data: dict[str, Any] = {
        "name": "virtual_claims", "duration_hours": 6, "time_warp": 3600, "drain_warp": 14400, "seed": 11,
        "load_profile": [[0, 2], [3, 4]], "journeys": [CLAIM],
        "assertions": ["error_rate < 0.01", "sla_48h_success_rate > 0.5"],
    }
    return Scenario.from_dict(data | changes)


# The golden scenarios: what each one pins down.
CASES: dict[str, dict[str, Any]] = {
    "claims_drain": {},  # arrivals, waits of 2 h between polls, 48 h deadlines decided in the drain
    "claims_outage": {"double": {"down": [(2 * 3600.0, 3 * 3600.0)]}},  # 503s for one simulated hour
    "claims_abort": {"abort_after_results": 10},  # cancelled mid-load: the log ends ABORTED
}


def play_case(name: str, home: Path) -> Any:
    case = CASES[name]
    double = ClaimsDouble(seed=11, **case.get("double", {}))
    return play(scenario(), home, double=double, run_id=f"golden-{name}",
                abort_after_results=case.get("abort_after_results"))


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_golden_scenario_replays_event_for_event(name: str, tmp_path: Path) -> None:
    played = play_case(name, tmp_path)
    lines = event_lines(played.events)
    golden = (GOLDEN / f"{name}.jsonl").read_text().splitlines()
    assert len(lines) == len(golden)
    for i, (got, want) in enumerate(zip(lines, golden, strict=True)):
        assert got == want, f"{name}.jsonl line {i + 1} differs"


def test_the_same_seed_gives_the_same_log_and_another_seed_does_not(tmp_path: Path) -> None:
    first = event_lines(play(scenario(), tmp_path / "a").events)
    again = event_lines(play(scenario(), tmp_path / "b").events)
    other = event_lines(play(scenario(seed=12), tmp_path / "c").events)
    assert first == again
    assert first != other and len(first) > 100


def test_a_simulated_day_is_complete_and_every_deadline_is_decided(tmp_path: Path) -> None:
    day = Scenario.from_dict(json.loads(QUICKSTART.read_text()))
    played = play(day, tmp_path)
    c = played.verdict.completeness
    assert c["complete"] and c["requests_sent"] == c["results_recorded"] > 4000
    assert c["arrivals_planned"] == c["journeys_started"] and c["sla_undecided"] == 0
    finished = [e for e in played.events if isinstance(e, RunFinished)]
    assert len(finished) == 1 and finished[0].late_starts == 0  # a virtual clock is never late
    decided = [e for e in played.events if isinstance(e, SlaDecided)]
    assert len(decided) == c["journeys_started"]  # one 48 h deadline per claim, met or missed
    assert played.virtual_s < 24 * 3600 / 4320 + 72 * 3600 / 17280 + 5  # load, then the drain's own warp


def test_the_drain_plays_waits_past_the_load_at_the_drain_warp(tmp_path: Path) -> None:
    played = play(scenario(), tmp_path)
    load_end = 6 * 3600.0
    polls_after = [e for e in played.events if isinstance(e, RequestResult) and e.sim_time > load_end]
    assert polls_after and all(e.step == "paid" for e in polls_after)  # only waiting journeys go on
    ended = [e for e in played.events if isinstance(e, JourneyEnded)]
    decided = {e.user: e.sim_time for e in played.events if isinstance(e, SlaDecided)}
    cut = [e for e in ended if e.outcome == "cut"]
    assert all(e.user in decided and decided[e.user] <= e.sim_time for e in cut)  # only once its deadline is decided
    assert len(ended) == played.verdict.completeness["journeys_started"]
    assert played.verdict.completeness["sla_undecided"] == 0 and played.verdict.status == "PASS"


def test_an_outage_counts_its_errors_in_its_window_only(tmp_path: Path) -> None:
    double = ClaimsDouble(seed=11, down=[(2 * 3600.0, 3 * 3600.0)])
    played = play(scenario(assertions=["error_rate < 0.01 in every 1h"]), tmp_path, double=double)
    errors = [e for e in played.events if isinstance(e, RequestResult) and e.error]
    assert errors and all(2 * 3600 <= e.sim_time < 3 * 3600 + 1 and e.status == 503 for e in errors)
    assert played.verdict.summary["errors"] == len(errors)
    assert played.verdict.status == "FAIL" and "error_rate < 0.01 in every 1h" in played.verdict.reason


def test_a_fault_is_applied_and_removed_at_its_simulated_times(tmp_path: Path) -> None:
    action = FaultAction.model_validate({"start": {"command": ["true"]}, "recover": {"command": ["true"]}})
    target = dataclasses.replace(TARGET, faults={"db_down": action})
    played = play(scenario(failure_injection=["db_down@hour2+1h"]), tmp_path, target=target,
                  double=ClaimsDouble(seed=11, down=[(2 * 3600.0, 3 * 3600.0)]))
    started = [e for e in played.events if isinstance(e, FaultStarted)]
    ended = [e for e in played.events if isinstance(e, FaultEnded)]
    assert [(e.name, e.kind, e.ok, e.start_sim, e.end_sim) for e in started] == [
        ("db_down", "action", True, 7200.0, 10800.0)]
    assert [(e.reason, e.end_sim, e.ok) for e in ended] == [("scheduled", 10800.0, True)]
    assert 7200.0 <= started[0].sim_time < 7200.0 + 60  # applied on the simulated hour, not a wall-clock one
    (window,) = played.verdict.faults["windows"]
    assert (window["applied"], window["ended"], window["recovered"]) == (True, "scheduled", True)
    assert window["during"]["error_rate"] == 1.0  # the double was down exactly while the fault was on


def test_an_abort_ends_the_log_aborted_and_sends_nothing_after(tmp_path: Path) -> None:
    played = play(scenario(), tmp_path, abort_after_results=10)
    assert played.verdict.status == "ABORTED"
    assert sum(isinstance(e, RequestResult) for e in played.events) >= 10  # aborted mid-load, once 10 were in
    aborted = [i for i, e in enumerate(played.events) if isinstance(e, RunAborted)]
    assert len(aborted) == 1
    after = played.events[aborted[0] + 1:]
    assert not any(isinstance(e, RequestResult) for e in after)
    assert played.run.status.value == "ABORTED"
