"""esr.core.verdict.judge: PASS, FAIL, ERROR and ABORTED from a fold alone, and the saturation warning."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from factories import HOUR, RUN_ID, RunEvents, fold

from esr.bus.codec import decode, encode
from esr.core.assertions import parse_assertion
from esr.core.events import Event, RequestResult, RunFinished
from esr.core.verdict import EXIT_CODES, Verdict, judge


def run_events(*, n: int = 40, slow: int = 0, errors: int = 0, late: int = 0, sent: int | None = None,
               end: str = "finished", drain_warp: float = 60.0, late_threshold_ms: float | None = None,
               **scenario_fields: Any) -> list[Event]:
    """A 4-hour run at warp 60: n journeys with one request each, 100 ms (slow ones 3 s)."""
    ev = RunEvents(time_warp=60.0, drain_warp=drain_warp, load_end_sim=4 * HOUR)
    scenario = {"name": "t", **scenario_fields}
    if late_threshold_ms is not None:
        scenario["late_threshold_ms"] = late_threshold_ms
    events: list[Event] = [ev.started(scenario=scenario, arrivals_planned=n)]
    for i in range(n):
        t = i * (4 * HOUR / n)
        events.append(ev.journey_started(sim=t, user=i, late_ms=500.0 if i < late else 0.0))
        error = "5xx" if i < errors else None
        events.append(ev.result(sim=t + 1, user=i, latency_ms=3_000.0 if i < slow else 100.0,
                                status=500 if error else 200, error=error))
        events.append(ev.journey_ended(sim=t + 2, user=i, outcome="failed" if error else "completed"))
    if end == "finished":
        events.append(ev.finished(sim=4 * HOUR, requests_sent=n if sent is None else sent, journeys_started=n,
                                  arrivals_planned=n, late_starts=late))
    elif end == "aborted":
        events.append(ev.aborted(sim=4 * HOUR, reason="operator pressed abort", requests_sent=n))
    return events


def verdict_of(events: list[Event], *assertions: str, **kwargs: object) -> Verdict:
    return judge(fold(events), [parse_assertion(a) for a in assertions], **kwargs)  # type: ignore[arg-type]


# -- PASS / FAIL ------------------------------------------------------------------------------
def test_pass() -> None:
    v = verdict_of(run_events(), "latency_p95_ms < 2000", "error_rate < 0.01")
    assert v.status == "PASS"
    assert v.exit_code == 0
    assert v.reason == "all 2 assertions held"
    assert [a.holds for a in v.assertions] == [True, True]
    assert v.assertions[0].observed == pytest.approx(100.0, rel=0.01)
    assert v.assertions[1].observed == 0.0
    assert v.completeness == {"arrivals_planned": 40, "journeys_started": 40, "requests_sent": 40,
                              "results_recorded": 40, "requests_abandoned": 0, "sla_undecided": 0,
                              "arrivals_not_started": 0, "results_lost": 0, "journey_events_lost": 0,
                              "shard_reports_missing": 0, "fault_events_missing": 0,
                              "duplicates_dropped": 0, "complete": True}
    assert v.run_id == RUN_ID


def test_pass_without_assertions() -> None:
    v = verdict_of(run_events())
    assert (v.status, v.reason, v.assertions) == ("PASS", "no assertions to check", ())


def test_fail_names_the_failed_assertions() -> None:
    v = verdict_of(run_events(slow=4, errors=2), "latency_p95_ms < 2000", "error_rate < 0.01", "requests == 40")
    assert v.status == "FAIL"
    assert v.exit_code == 1
    assert v.reason == "failed: latency_p95_ms < 2000; error_rate < 0.01"
    assert [a.holds for a in v.assertions] == [False, False, True]
    assert v.assertions[0].observed == pytest.approx(3_000.0, rel=0.01)
    assert v.assertions[1].observed == 0.05


def test_fail_on_a_bad_hour_only() -> None:
    # the 4 slow requests are all in the first of 4 hours: the run passes, the hour does not
    v = verdict_of(run_events(slow=4), "latency_p50_ms < 2000", "latency_p95_ms < 2000 in every 1h")
    assert v.status == "FAIL"
    assert v.assertions[1].detail == "first failing window starts at sim hour 0"


# -- ERROR ------------------------------------------------------------------------------------
def test_error_when_results_are_missing() -> None:
    v = verdict_of(run_events(sent=43), "requests > 0")
    assert v.status == "ERROR"
    assert v.exit_code == 2
    assert v.reason == "data incomplete: 3 of 43 results missing"
    assert v.completeness["complete"] is False
    assert (v.completeness["requests_sent"], v.completeness["results_recorded"]) == (43, 40)
    assert v.assertions[0].holds is True  # the assertions are still reported


def test_error_even_when_a_failing_assertion_would_fail() -> None:
    v = verdict_of(run_events(sent=41, errors=40), "error_rate < 0.01")
    assert v.status == "ERROR"


def test_error_when_an_assertion_has_no_data() -> None:
    v = verdict_of(run_events(), "sla_48h_success_rate > 0.9", "requests == 40")
    assert v.status == "ERROR"
    assert v.reason.startswith("cannot judge 'sla_48h_success_rate > 0.9': ")
    assert "no 48h deadline decided" in v.reason
    assert v.assertions[0].holds is None


def test_no_data_beats_a_failed_assertion() -> None:
    # FAIL means every figure was there; one figure missing makes the run unjudgeable
    v = verdict_of(run_events(), "requests > 1000", "sla_48h_success_rate > 0.9")
    assert v.status == "ERROR"


def test_no_requests_at_all_is_error_not_pass() -> None:
    v = verdict_of(run_events(n=0), "latency_p95_ms < 2000")
    assert v.status == "ERROR"
    assert "no requests recorded" in v.reason


# -- ABORTED ----------------------------------------------------------------------------------
def test_aborted_by_an_event() -> None:
    v = verdict_of(run_events(end="aborted"), "requests > 0")
    assert v.status == "ABORTED"
    assert v.exit_code == 3
    assert v.reason == "the run was aborted: operator pressed abort"
    assert v.completeness["requests_sent"] == 40


def test_log_without_a_finish_is_aborted() -> None:
    v = verdict_of(run_events(end="none"), "requests > 0")
    assert v.status == "ABORTED"
    assert v.reason == "the run log ends before the run finished (the process stopped)"
    assert v.completeness["complete"] is False
    assert v.completeness["requests_sent"] is None


def test_aborted_beats_missing_data() -> None:
    events = run_events(end="aborted")
    events = [e for e in events if not isinstance(e, RequestResult) or e.user % 2]  # half the results lost
    assert verdict_of(events).status == "ABORTED"


def test_empty_log_is_aborted() -> None:
    v = judge(fold([]), [])
    assert (v.status, v.run_id, v.time) == ("ABORTED", "?", {})


def test_exit_codes() -> None:
    assert EXIT_CODES == {"PASS": 0, "FAIL": 1, "ERROR": 2, "ABORTED": 3}


# -- saturation -------------------------------------------------------------------------------
def test_saturation_warning_on_pass() -> None:
    v = verdict_of(run_events(n=100, late=2), "requests == 100")
    assert v.status == "PASS"
    assert v.generator == {"late_starts": 2, "late_start_rate": 0.02, "late_threshold_ms": 10.0, "saturated": True,
                           "max_late_start_share": 0.05, "shards": 1, "requests_resent": 0}
    assert v.reason == ("all 1 assertions held (warning: the generator was saturated: 2.0% of journeys started"
                        " more than 10 ms late)")


def test_saturation_warning_on_fail() -> None:
    v = verdict_of(run_events(n=100, late=5), "requests == 1")
    assert v.status == "FAIL"
    assert v.reason.endswith("(warning: the generator was saturated: 5.0% of journeys started more than 10 ms late)")


def test_one_percent_late_is_not_saturated() -> None:
    v = verdict_of(run_events(n=100, late=1), "requests == 100")
    assert v.generator["saturated"] is False
    assert v.generator["late_start_rate"] == 0.01
    assert v.reason == "all 1 assertions held"


def test_no_saturation_warning_on_error() -> None:
    v = verdict_of(run_events(n=100, late=50, sent=101))
    assert v.status == "ERROR"
    assert v.generator["saturated"] is True
    assert "warning" not in v.reason


# -- late starts: the load was not delivered ----------------------------------------------------
def test_more_late_starts_than_the_share_is_an_error_never_a_pass() -> None:
    v = verdict_of(run_events(n=120, late=10), "requests == 120")  # 8.3 %
    assert (v.status, v.exit_code) == ("ERROR", 2)
    assert v.reason == ("the generator started 8.3% of journeys more than 10 ms late (more than the 5% "
                        "max_late_start_share allows): the load this run claims was not delivered")
    assert [a.holds for a in v.assertions] == [True]  # the assertions are still reported
    assert v.generator["late_start_rate"] == pytest.approx(10 / 120)


def test_exactly_the_share_late_still_passes() -> None:
    v = verdict_of(run_events(n=100, late=5), "requests == 100")
    assert v.status == "PASS"
    assert "warning: the generator was saturated: 5.0%" in v.reason


def test_the_share_comes_from_the_scenario() -> None:
    assert verdict_of(run_events(n=100, late=20, max_late_start_share=0.25)).status == "PASS"
    v = verdict_of(run_events(n=100, late=2, max_late_start_share=0.01))
    assert v.status == "ERROR" and "more than the 1% max_late_start_share allows" in v.reason
    assert v.generator["max_late_start_share"] == 0.01
    assert verdict_of(run_events(n=100, late=0, max_late_start_share=0)).status == "PASS"


def test_a_failing_run_with_late_starts_stays_a_failure_with_a_warning() -> None:
    v = verdict_of(run_events(n=100, late=30), "requests == 1")
    assert v.status == "FAIL"
    assert v.reason.endswith("(warning: the generator started 30.0% of journeys more than 10 ms late, more than "
                             "the 5% max_late_start_share allows: the load this run claims was not delivered)")


def test_incomplete_data_is_named_before_late_starts() -> None:
    v = verdict_of(run_events(n=100, late=50, sent=101))
    assert v.status == "ERROR" and v.reason.startswith("data incomplete")


def test_a_replay_is_not_judged_on_late_starts() -> None:
    """A replay sends logged requests, no journeys: its late sends are reported, not judged (docs/replay.md)."""
    events = run_events(n=100, late=50)
    events[0] = msgspec.structs.replace(events[0], source="replay")  # type: ignore[call-arg]
    assert verdict_of(events).status == "PASS"


def test_late_threshold_from_the_scenario() -> None:
    v = verdict_of(run_events(n=100, late=50, late_threshold_ms=1_000.0))
    assert v.generator["late_starts"] == 0
    assert v.generator["late_threshold_ms"] == 1_000.0
    assert v.generator["saturated"] is False


# -- the rest of the verdict ------------------------------------------------------------------
def test_summary_and_time() -> None:
    v = verdict_of(run_events(errors=2, drain_warp=240.0), "requests == 40")
    assert v.summary["requests"] == 40.0
    assert v.summary["errors"] == 2.0
    assert v.summary["error_rate"] == 0.05
    assert v.summary["journeys_completed"] == 38.0
    assert v.summary["journeys_failed"] == 2.0
    assert v.summary["throughput_rps"] == pytest.approx(40 / 240)  # 4 sim hours at warp 60
    assert v.time["time_warp"] == 60.0
    assert v.time["load_sim_hours"] == 4.0
    assert v.time["load_real_seconds"] == 240.0
    assert v.time["sim_hours_played"] == 4.0
    assert v.time["sim_start"] == "2024-01-01T00:00:00+00:00"
    assert "one simulated hour took 60 real seconds" in v.time["note"]
    assert "drain warp" not in v.time["note"]  # nothing was played after the load ended
    assert "drain warp" not in verdict_of(run_events()).time["note"]
    drained = run_events(drain_warp=240.0)
    ev = RunEvents(time_warp=60.0, drain_warp=240.0, load_end_sim=4 * HOUR)
    drained.insert(-1, ev.journey_ended(sim=6 * HOUR, user=99))
    assert "after the load the clock ran at drain warp 240" in verdict_of(drained).time["note"]


def test_to_dict() -> None:
    v = verdict_of(run_events(), "requests == 40")
    d = v.to_dict()
    assert set(d) == {"run_id", "verdict", "reason", "assertions", "summary", "completeness", "generator", "time",
                      "journey_failures", "faults", "metric_definitions"}
    assert d["faults"] == {} and d["metric_definitions"] == {}  # a run without faults or custom metrics
    assert d["verdict"] == "PASS"
    assert d["assertions"] == [{"assertion": "requests == 40", "holds": True, "observed": 40.0, "threshold": 40.0,
                                "detail": ""}]


def test_rejudging_the_decoded_log_gives_the_same_verdict() -> None:
    events = run_events(slow=3, errors=1, late=1)
    assertions = ["latency_p95_ms < 2000", "error_rate < 0.05 in every 1h", "journeys_completed > 30"]
    original = verdict_of(events, *assertions).to_dict()
    replayed = [decode(encode(e), f"log:{i}") for i, e in enumerate(events, 1)]
    assert verdict_of(replayed, *assertions).to_dict() == original
    assert verdict_of(events, *assertions).to_dict() == original  # and judging is repeatable


@pytest.mark.parametrize(("gap", "words"), [
    ({"requests_abandoned": 3}, "3 requests still in flight when the run ended"),
    ({"sla_undecided": 2}, "2 SLA deadlines still open when the run ended"),
    ({"arrivals_not_started": 5}, "5 planned journeys never started"),
])
def test_every_gap_makes_the_run_incomplete(gap: dict[str, int], words: str) -> None:
    events = run_events()
    finished = events[-1]
    assert isinstance(finished, RunFinished)
    events[-1] = msgspec.structs.replace(finished, **gap)
    v = verdict_of(events, "requests == 40")
    assert v.status == "ERROR" and v.completeness["complete"] is False
    assert v.reason.startswith(f"data incomplete: {words}")


# -- shards -----------------------------------------------------------------------------------
def test_the_verdict_states_the_runs_shard_count() -> None:
    events = run_events(n=10)
    events[0] = msgspec.structs.replace(events[0], shards=6)  # type: ignore[type-var]
    v = verdict_of(events, "requests == 10")
    assert v.generator["shards"] == 6
    assert v.to_dict()["generator"]["shards"] == 6
    assert Verdict.from_dict(v.to_dict()).generator["shards"] == 6


def test_an_embedded_run_is_one_shard_and_a_log_without_a_start_states_none() -> None:
    assert verdict_of(run_events(n=10)).generator["shards"] == 1
    assert verdict_of(run_events(n=10)[1:]).generator["shards"] is None
