"""The run's rules in virtual time: the request limit (max_in_flight) and its queue, waits that
hold no slot, deadlines and the drain, saturation and arrivals that never started, Python
journeys through `User`, determinism by seed, judging from the log. Each scenario is played by
the embedded `Run` on a virtual clock against `ClaimsDouble` (tests/unit/virtual_run.py), so
values are exact; tests/integration/test_engine.py tests the HTTP adapter in real time."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, TypeVar

import pytest
from journeys import CLAIM_JOURNEY, POLLED_CLAIM
from virtual_run import ClaimsDouble, Played, play

import esr
from esr.core.buckets import RunFold
from esr.core.events import Event, JourneyEnded, JourneyStarted, RequestResult, SlaDecided, VerdictIssued
from esr.core.scenario import Scenario
from esr.core.scheduler import CATCH_UP_MIN_S
from esr.core.verdict import judge
from esr.engine.runner import START_LEAD_S, Run

E = TypeVar("E", bound=Event)

HOURS_48 = 48 * 3600.0


def scenario(**fields: Any) -> Scenario:
    base: dict[str, Any] = {"name": "t", "duration_hours": 1, "time_warp": 1800, "load_profile": [[0, 40]],
                            "seed": 3}
    return Scenario(**(base | fields))


def of(played: Played, kind: type[E]) -> list[E]:
    return [e for e in played.events if isinstance(e, kind)]


# -- deadlines and the drain -----------------------------------------------------------------

def test_a_deadline_is_missed_at_its_simulated_time_and_the_drain_ends_there(tmp_path: Path) -> None:
    double = ClaimsDouble(seed=3, process_hours=(60.0, 60.0))
    s = scenario(journeys=[CLAIM_JOURNEY], load_profile=[[0, 10]], drain_warp=36000,
                 assertions=["sla_48h_success_rate > 0.95"])
    played = play(s, tmp_path, double=double)
    v = played.verdict
    assert v.status == "FAIL"
    started = v.summary["journeys_started"]
    assert v.summary["sla_48h_missed"] == started > 0 and v.summary["sla_48h_met"] == 0
    decisions = of(played, SlaDecided)
    assert len(decisions) == started
    assert all(not e.met and e.sim_time == e.opened_sim + HOURS_48 for e in decisions)
    # the drain ends once every deadline is decided: journeys still polling are cut, not waited
    # for until their claims are paid (hour 60 at the earliest)
    assert v.summary["journeys_cut"] == started
    assert played.run.fold.last_sim_time < 60 * 3600
    assert max(e.sim_time for e in of(played, RequestResult)) <= max(e.sim_time for e in decisions)
    assert v.completeness["sla_undecided"] == 0 and v.completeness["complete"] is True


def test_deadlines_opened_late_are_still_decided(tmp_path: Path) -> None:
    """Waiting before the SLA's start extends the drain bound: these misses are counted."""
    journey = {"name": "late_filer", "steps": [
        {"name": "think", "wait": "30h"},
        {"name": "file", "request": {"method": "POST", "path": "/claims"}, "extract": {"id": "$.id"}},
        {"name": "paid", "request": {"path": "/claims/{{ vars.id }}"},
         "poll": {"every": "6h", "until": "$.status == 'paid'", "give_up_after": "72h"}}],
        "sla": [{"from": "file", "to": "paid", "within": "48h"}]}
    s = scenario(journeys=[journey], load_profile=[[0, 10]], drain_warp=72000,
                 assertions=["sla_48h_success_rate > 0.5"])
    played = play(s, tmp_path, double=ClaimsDouble(seed=3, process_hours=(500.0, 500.0)))
    v = played.verdict
    assert v.status == "FAIL", v.reason
    started = v.summary["journeys_started"]
    assert v.summary["sla_48h_missed"] == started > 0
    decisions = of(played, SlaDecided)
    assert len(decisions) == started
    assert all(e.opened_sim >= 30 * 3600 and e.sim_time == e.opened_sim + HOURS_48 for e in decisions)
    assert v.completeness["sla_undecided"] == 0 and v.completeness["complete"] is True


class ForgetfulJourney(esr.Journey):
    """Opens a deadline but declares no longest_wait: the drain still waits for the deadline."""

    name = "forgetful"

    async def run(self, user: esr.User) -> None:
        await user.request("GET", "/", label="GET /")
        user.sla_open("48h", within="48h")
        await user.wait(hours=60)
        user.sla_close("48h")


def test_an_open_deadline_extends_the_drain_until_it_is_decided(tmp_path: Path) -> None:
    s = scenario(journeys=[ForgetfulJourney], load_profile=[[0, 10]], time_warp=3600, drain_warp=72000,
                 assertions=["sla_48h_success_rate > 0.5"])
    played = play(s, tmp_path, double=ClaimsDouble(seed=3))
    v = played.verdict
    assert v.status == "FAIL"
    started = v.summary["journeys_started"]
    assert v.summary["sla_48h_missed"] == started > 0
    assert v.summary["journeys_cut"] == started
    decided = {e.user: e for e in of(played, SlaDecided)}
    assert len(decided) == started and all(e.sim_time == e.opened_sim + HOURS_48 for e in decided.values())
    # each journey is cut only once its deadline is decided, and before its 60 h wait is over
    ended = of(played, JourneyEnded)
    assert all(decided[e.user].sim_time <= e.sim_time < decided[e.user].opened_sim + 60 * 3600 for e in ended)
    assert v.completeness["sla_undecided"] == 0 and v.completeness["complete"] is True


def test_requests_in_flight_at_the_end_of_the_drain_get_their_answer(tmp_path: Path) -> None:
    journey = {"name": "slow_tail", "steps": [
        {"name": "file", "request": {"method": "POST", "path": "/claims"}, "extract": {"id": "$.id"}},
        {"name": "paid", "request": {"path": "/claims/{{ vars.id }}"},
         "poll": {"every": "1h", "until": "$.status == 'paid'", "give_up_after": "4h"}},
        {"name": "receipt", "request": {"path": "/status/200", "query": {"delay_ms": "1500"}}}],
        "sla": [{"from": "file", "to": "paid", "within": "48h"}]}
    s = scenario(journeys=[journey], load_profile=[[0, 10]], request_timeout=30)  # well over the 1.5 s receipt
    played = play(s, tmp_path, double=ClaimsDouble(seed=3, process_hours=(1.0, 1.0)))
    v = played.verdict
    assert v.completeness["requests_abandoned"] == 0 and v.completeness["complete"] is True
    receipts = [e for e in of(played, RequestResult) if e.step == "receipt"]
    # every journey is settled once paid, and sends its receipt at once: each one gets its answer
    assert len(receipts) == v.summary["journeys_started"] > 0 and all(e.status == 200 for e in receipts)
    assert all(e.raw_latency_ms >= 1500 for e in receipts)
    assert v.summary["journeys_completed"] == v.summary["journeys_started"]


# -- the request limit: waits hold no slot, saturation, arrivals that never started ------------

def test_journeys_that_only_wait_hold_no_request_slot(tmp_path: Path) -> None:
    """max_in_flight limits requests in flight, not journeys: hundreds of claims wait on their
    hourly polls at once under a limit of 20 requests, and every one is started, polled and decided."""
    s = Scenario.from_dict({
        "name": "demo_claims", "duration_hours": 2, "time_warp": 3600, "seed": 5, "load_profile": [[0, 150]],
        "max_in_flight": 20, "drain_warp": 18000,
        "journeys": [POLLED_CLAIM],
        "assertions": ["sla_48h_success_rate > 0.5"]})
    double = ClaimsDouble(seed=5)  # answers of 5-40 ms: at times 20 are in flight, and more queue
    open_journeys: list[int] = []
    deadlines_open: list[int] = []

    def progress(run: Run) -> None:
        snapshot = run.snapshot()
        open_journeys.append(snapshot["open_journeys"])
        deadlines_open.append(snapshot["sla_open"])

    played = play(s, tmp_path, double=double, progress=progress)
    v = played.verdict
    assert v.completeness["complete"] is True, v.reason
    planned = played.run.plan.count()
    assert v.completeness["journeys_started"] == planned == len(double.claims) > 200
    assert v.summary["sla_48h_met"] + v.summary["sla_48h_missed"] == planned == len(of(played, SlaDecided))
    assert max(open_journeys) > 150  # waiting at once (none is paid within 12 h), far over the limit
    assert max(deadlines_open) > 150 and played.run.sla_open == 0  # each claim's 48 h deadline, until decided
    assert double.peak_in_flight == 20 and v.generator["late_starts"] == 0


class EndlessJourney(esr.Journey):
    name = "endless"
    longest_wait = "1h"

    async def run(self, user: esr.User) -> None:
        while True:
            await user.wait(hours=1)


def test_python_journeys_that_only_wait_hold_no_request_slot(tmp_path: Path) -> None:
    s = scenario(journeys=[EndlessJourney], max_in_flight=3, load_profile=[[0, 20]], time_warp=3600)
    played = play(s, tmp_path, double=ClaimsDouble(seed=3))
    v = played.verdict
    assert v.completeness["arrivals_not_started"] == 0 and v.completeness["complete"] is True
    assert v.summary["journeys_cut"] == v.summary["journeys_started"] == played.run.plan.count() > 3
    assert v.generator["late_starts"] == 0


def test_a_saturated_generator_starts_late_and_says_so(tmp_path: Path) -> None:
    """Two request slots and 200 ms answers for 50 arrivals in 2 s: journeys start late, and
    the verdict, whose assertion held, is ERROR: the load it claims was not delivered. None is
    dropped."""
    double = ClaimsDouble(seed=3, latency_ms=(200.0, 200.0))
    s = scenario(max_in_flight=2, load_profile=[[0, 50]], assertions=["requests > 0"])
    played = play(s, tmp_path, double=double)
    v = played.verdict
    assert v.generator["saturated"] is True and [a.holds for a in v.assertions] == [True]
    assert v.status == "ERROR" and v.reason == (
        f"the generator started {v.generator['late_start_rate']:.1%} of journeys more than 10 ms late (more than "
        "the 5% max_late_start_share allows): the load this run claims was not delivered")
    late = [e for e in of(played, JourneyStarted) if e.late_ms > v.generator["late_threshold_ms"]]
    assert v.generator["late_starts"] == len(late) > 0
    assert v.completeness["complete"] is True  # late, never dropped
    planned = played.run.plan.count()
    assert v.summary["requests"] == double.requests == planned and double.peak_in_flight == 2


def test_a_full_generator_still_ends_and_says_what_never_started(tmp_path: Path) -> None:
    """One request slot and 2 s answers: arrivals whose first request never got the slot before
    the catch-up ended (10 s after a 1 s load) never started, and the verdict says so."""
    double = ClaimsDouble(seed=3, latency_ms=(2000.0, 2000.0))
    s = scenario(max_in_flight=1, load_profile=[[0, 20]], time_warp=3600, request_timeout=30)
    played = play(s, tmp_path, double=double)
    v = played.verdict
    assert v.status == "ERROR" and "never started" in v.reason
    planned = played.run.plan.count()
    started = v.completeness["journeys_started"]
    # the slot passes every 2 s from the first arrival on, until the catch-up ends
    first = next(iter(played.run.plan)).real
    catch_up_end = 1.0 + max(1.0, CATCH_UP_MIN_S)
    assert started == math.ceil((catch_up_end - first) / 2.0) < planned
    assert v.completeness["arrivals_not_started"] == planned - started
    assert double.peak_in_flight == 1 and double.requests == started
    # the request in flight when the catch-up ended gets its answer, and the run ends then
    assert played.virtual_s == pytest.approx(START_LEAD_S + first + 2.0 * started, abs=0.05)


# -- Python journeys, determinism, the log -----------------------------------------------------

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


def test_a_python_journey_class_plays_through_user(tmp_path: Path) -> None:
    s = scenario(journeys=[ClaimJourney], counters=["filed"], load_profile=[[0, 10]],
                 assertions=["sla_48h_success_rate == 1", "filed == journeys_started"])
    played = play(s, tmp_path, double=ClaimsDouble(seed=3, process_hours=(3.0, 3.0)))
    v = played.verdict
    assert v.status == "PASS", v.reason
    started = v.summary["journeys_started"]
    assert started == played.run.plan.count() > 0 and v.summary["journeys_completed"] == started
    assert v.summary["requests"] == 4 * started  # file + 3 hourly polls
    assert set(played.run.fold.endpoints) == {"POST /claims", "GET /claims/{id}"}
    assert v.summary["sla_48h_met"] == started


def test_same_seed_same_schedule_and_user_data(tmp_path: Path) -> None:
    journey = {"name": "j", "data": {"ssn": "ssn", "amount": {"float": [1, 2]}},
               "steps": [{"name": "s", "request": {"method": "POST", "path": "/claims",
                                                   "json": {"ssn": "{{ data.ssn }}", "amount": "{{ data.amount }}"}}}]}

    def run_with(seed: int, home: Path) -> tuple[list[tuple[int, float]], list[Any]]:
        double = ClaimsDouble(seed=3)
        played = play(scenario(journeys=[journey], load_profile=[[0, 20]], seed=seed), home, double=double)
        starts = [(e.user, e.sim_time) for e in of(played, JourneyStarted)]
        assert len(starts) == played.run.plan.count() == len(double.filed_with) > 0
        return starts, list(double.filed_with.values())

    starts_a, data_a = run_with(3, tmp_path / "a")
    starts_b, data_b = run_with(3, tmp_path / "b")
    assert starts_a == starts_b and data_a == data_b
    assert len({d["ssn"] for d in data_a}) == len(data_a)  # each user its own data
    starts_c, data_c = run_with(4, tmp_path / "c")
    assert starts_c != starts_a and data_c != data_a


def test_judge_from_the_log_equals_the_original_verdict(tmp_path: Path) -> None:
    double = ClaimsDouble(seed=3, latency_ms=(2.0, 2.0), process_hours=(5.0, 70.0))
    s = scenario(journeys=[CLAIM_JOURNEY], load_profile=[[0, 10]], drain_warp=36000,
                 assertions=["sla_48h_success_rate > 0.5", "latency_p95_ms < 500", "error_rate < 0.01 in every 15m",
                             "cloud_cost / claims_paid < 1"])
    played = play(s, tmp_path, double=double)
    events = played.events
    assert isinstance(events[-1], VerdictIssued)
    assert played.verdict.summary["sla_48h_met"] > 0 and played.verdict.summary["sla_48h_missed"] > 0
    fold = RunFold().apply_all(events)
    again = judge(fold, s.parsed_assertions(), counters=s.counter_names)
    assert again.to_dict() == played.verdict.to_dict() == events[-1].verdict
    other = judge(fold, [esr.parse_assertion("latency_p99_ms < 0.001")])
    assert other.status == "FAIL"
