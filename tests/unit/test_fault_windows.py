"""Fault windows on a hand-made timeline: metrics during a fault, the steady state, recovery
time, scoped assertions and the verdict's faults section."""

from __future__ import annotations

import math

import pytest
from factories import HOUR, RunEvents, fold

from esr.core.assertions import evaluate, parse_assertion
from esr.core.errors import JudgementError, RunLogError
from esr.core.events import Event
from esr.core.fault_windows import RecoveryPolicy, recovery_time_s, steady_state
from esr.core.verdict import fold_clock, judge

MINUTE = 60.0
FAULT = "db_down@hour1+30m"


def minute(ev: RunEvents, start: float, *, errors: int = 0, latency_ms: float = 100.0, n: int = 10) -> list[Event]:
    """n results in the minute starting at `start`: `errors` of them 503."""
    return [ev.result(sim=start + i, latency_ms=latency_ms, status=503 if i < errors else 200,
                      error="5xx" if i < errors else None) for i in range(n)]


def timeline(shape: dict[tuple[float, float], dict], *,
             faults: list[tuple[str, float, float | None, float]] | None = None,
             scenario: dict | None = None, load_end: float = 4 * HOUR) -> tuple[list[Event], RunEvents]:
    """Results minute by minute: `shape` maps (from_hour, to_hour) to minute() keywords (steady
    otherwise); `faults` are (entry, start, scheduled end, actual end) in simulated seconds."""
    ev = RunEvents(load_end_sim=load_end)
    events: list[Event] = [ev.started(scenario=scenario)]
    faults = [(FAULT, HOUR, 1.5 * HOUR, 1.5 * HOUR)] if faults is None else faults
    pending = sorted([(start, "start", f) for f in faults for start in [f[1]]]
                     + [(f[3], "end", f) for f in faults if f[3] is not None])
    t = 0.0
    sent = 0
    while t < load_end:
        while pending and pending[0][0] <= t:
            _, what, (text, start, end, actual) = pending.pop(0)
            if what == "start":
                events.append(ev.fault_started(fault=text, start=start, end=end))
            else:
                events.append(ev.fault_ended(fault=text, end=actual))
        kwargs = next((kw for (lo, hi), kw in shape.items() if lo * HOUR <= t < hi * HOUR), {})
        batch = minute(ev, t, **kwargs)
        events += batch
        sent += len(batch)
        t += MINUTE
    events.append(ev.finished(requests_sent=sent))
    return events, ev


BAD = {"errors": 5, "latency_ms": 400.0}
SLOW_START = {"errors": 3, "latency_ms": 300.0}


def test_metrics_during_the_fault_and_the_recovery_time() -> None:
    events, _ = timeline({(1, 1.5): BAD, (1.5, 1.6): SLOW_START})
    f = fold(events)
    steady = steady_state(f)
    assert steady.error_rate == 0.0 and steady.latency_p95_ms == pytest.approx(100.0, rel=0.01)
    assert steady.until_sim == HOUR
    assert recovery_time_s(f, "db_down") == pytest.approx(0.1 * HOUR)  # back at 1.6 h, 6 minutes after the end

    clock = fold_clock(f)
    during = evaluate(parse_assertion("error_rate < 0.4 during db_down", faults={"db_down"}), f, clock)
    assert (during.holds, during.observed) == (False, 0.5)
    p95 = evaluate(parse_assertion("latency_p95_ms < 500 during db_down", faults={"db_down"}), f, clock)
    assert p95.holds is True and p95.observed == pytest.approx(400.0, rel=0.01)
    requests = evaluate(parse_assertion("requests == 300 during db_down", faults={"db_down"}), f, clock)
    assert requests.holds is True  # 30 minutes of 10 requests
    held = evaluate(parse_assertion("recovery_time_s(db_down) < 600", faults={"db_down"}), f, clock)
    assert (held.holds, held.observed, held.threshold) == (True, pytest.approx(360.0), 600.0)
    broken = evaluate(parse_assertion("recovery_time_s(db_down) < 300", faults={"db_down"}), f, clock)
    assert (broken.holds, broken.observed) == (False, pytest.approx(360.0))


def test_the_steady_state_must_hold_for_the_hold_time() -> None:
    # two good minutes, a bad one, then good for good: recovery starts after the bad minute
    shape = {(1, 1.5): BAD, (1.5 + 2 / 60, 1.5 + 3 / 60): SLOW_START}
    f = fold(timeline(shape)[0])
    assert recovery_time_s(f, "db_down") == pytest.approx(3 * MINUTE)
    # with a hold of one minute the first good minute counts
    assert recovery_time_s(f, "db_down", RecoveryPolicy(hold_s=60.0)) == 0.0
    # a margin that tolerates 30 % errors and a latency factor of 3 counts the bad minute as steady
    assert recovery_time_s(f, "db_down", RecoveryPolicy(error_rate_margin=0.35, latency_factor=3.5)) == 0.0


def test_the_recovery_policy_comes_from_the_scenario() -> None:
    scenario = {"name": "t", "recovery": {"error_rate_margin": 0.35, "latency_factor": 3.5, "hold": 60.0}}
    f = fold(timeline({(1, 1.5): BAD, (1.5, 1.6): SLOW_START}, scenario=scenario)[0])
    assert RecoveryPolicy.from_scenario(scenario) == RecoveryPolicy(0.35, 3.5, 60.0)
    assert recovery_time_s(f, "db_down") == 0.0  # the slow start is within this looser steady state


def test_a_system_that_never_recovers() -> None:
    f = fold(timeline({(1, 4): BAD})[0])
    assert recovery_time_s(f, "db_down") == math.inf
    result = evaluate(parse_assertion("recovery_time_s(db_down) < 600", faults={"db_down"}), f, fold_clock(f))
    assert (result.holds, result.observed) == (False, None)
    assert result.detail == "not recovered by the end of the run"
    report = judge(f, []).faults["windows"][0]
    assert (report["recovered"], report["recovery_time_s"]) == (False, None)


def test_a_fault_until_the_run_ends_has_no_recovery() -> None:
    events, _ = timeline({(1, 4): BAD}, faults=[("db_down@hour1", HOUR, None, 4 * HOUR)])
    f = fold(events)
    with pytest.raises(JudgementError, match="lasts until the run ends"):
        recovery_time_s(f, "db_down")
    result = evaluate(parse_assertion("recovery_time_s(db_down) < 600", faults={"db_down"}), f, fold_clock(f))
    assert result.holds is None and "give it a duration" in result.detail
    during = evaluate(parse_assertion("error_rate > 0.4 during db_down", faults={"db_down"}), f, fold_clock(f))
    assert (during.holds, during.observed) == (True, 0.5)
    window = judge(f, []).faults["windows"][0]
    assert window["end_sim_hour"] == 4.0 and window["recovered"] is None
    assert "lasts until the run ends" in window["note"]


def test_no_steady_state_before_a_fault_at_the_start() -> None:
    events, _ = timeline({(0, 0.5): BAD}, faults=[("db_down@hour0+30m", 0.0, 0.5 * HOUR, 0.5 * HOUR)])
    f = fold(events)
    with pytest.raises(JudgementError, match="no requests before the first fault"):
        steady_state(f)
    assert "no requests before the first fault" in judge(f, []).faults["steady_state"]["error"]


def test_a_fault_that_never_started_cannot_be_judged() -> None:
    f = fold(timeline({}, faults=[])[0])
    result = evaluate(parse_assertion("error_rate < 0.5 during db_down", faults={"db_down"}), f, fold_clock(f))
    assert result.holds is None and result.detail == "fault 'db_down' never started in this run"
    assert judge(f, []).faults == {}


def test_two_windows_of_one_fault_merge_and_recovery_is_the_longest() -> None:
    first, second = "db_down@hour1+30m", "db_down@hour2+30m"
    shape = {(1, 1.5): BAD, (1.5, 1.55): SLOW_START, (2, 2.5): BAD, (2.5, 2.7): SLOW_START}
    events, _ = timeline(shape, faults=[(first, HOUR, 1.5 * HOUR, 1.5 * HOUR),
                                        (second, 2 * HOUR, 2.5 * HOUR, 2.5 * HOUR)])
    f = fold(events)
    assert recovery_time_s(f, "db_down") == pytest.approx(0.2 * HOUR)
    requests = evaluate(parse_assertion("requests == 600 during db_down", faults={"db_down"}), f, fold_clock(f))
    assert requests.holds is True
    windows = judge(f, []).faults["windows"]
    assert [w["fault"] for w in windows] == [first, second]
    assert [w["recovery_time_s"] for w in windows] == [pytest.approx(180.0), pytest.approx(720.0)]


def test_the_verdict_reports_each_fault_and_errors_when_one_was_not_applied() -> None:
    events, ev = timeline({(1, 1.5): BAD, (1.5, 1.6): SLOW_START})
    verdict = judge(fold(events), [parse_assertion("error_rate < 0.5 during db_down", faults={"db_down"})])
    assert verdict.status == "FAIL"  # 0.5 is not below 0.5
    section = verdict.faults
    assert section["steady_state"] == {"error_rate": 0.0, "latency_p95_ms": pytest.approx(100.0, rel=0.01),
                                       "until_sim_hour": 1.0}
    assert section["policy"] == {"error_rate_margin": 0.01, "latency_factor": 1.5, "hold_s": 300.0}
    window = section["windows"][0]
    assert window["fault"] == FAULT and window["applied"] is True and window["ended"] == "scheduled"
    assert (window["start_sim_hour"], window["end_sim_hour"]) == (1.0, 1.5)
    assert window["during"]["requests"] == 300 and window["during"]["error_rate"] == 0.5
    assert window["during"]["errors_5xx"] == 150
    assert (window["recovered"], window["recovery_time_s"]) == (True, pytest.approx(360.0))
    assert verdict.to_dict()["faults"] == section

    failed, ev2 = timeline({}, faults=[])
    failed.insert(1, ev2.fault_started(fault="db_down@hour1", start=HOUR, end=None, ok=False,
                                       detail="POST http://127.0.0.1:1/x: connection refused"))
    bad = judge(fold(failed), [])
    assert bad.status == "ERROR"
    assert bad.reason == ("fault 'db_down@hour1' could not be applied, so the rehearsal did not happen: "
                          "POST http://127.0.0.1:1/x: connection refused")


def test_a_fault_end_without_its_start_is_a_log_error() -> None:
    ev = RunEvents()
    with pytest.raises(RunLogError, match="without its fault_started"):
        fold([ev.started(), ev.fault_ended(fault=FAULT, end=HOUR)])


@pytest.mark.parametrize(("scheduled_end", "reason", "note"), [
    (None, "run_ended", "lasts until the run ends"),
    (3 * HOUR, "aborted", "was ended early (aborted)"),
    (5 * HOUR, "run_ended", "was ended early (run_ended)"),
])
def test_a_fault_cut_short_has_no_recovery_time(scheduled_end: float | None, reason: str, note: str) -> None:
    ev = RunEvents(load_end_sim=4 * HOUR)
    events: list[Event] = [ev.started()]
    for t in range(0, 4 * 60):
        events += minute(ev, t * MINUTE, **(BAD if t >= 60 else {}))
    events.insert(1 + 60 * 10, ev.fault_started(fault="db_down@hour1", start=HOUR, end=scheduled_end))
    events.append(ev.fault_ended(fault="db_down@hour1", end=2 * HOUR if reason == "aborted" else 4 * HOUR,
                                 reason=reason))
    events.append(ev.finished(requests_sent=4 * 60 * 10))
    f = fold(events)
    window = judge(f, []).faults["windows"][0]
    assert (window["recovered"], window["recovery_time_s"], window["ended"]) == (None, None, reason)
    assert note in window["note"]
    assert window["end_sim_hour"] == (2.0 if reason == "aborted" else 4.0)
    result = evaluate(parse_assertion("recovery_time_s(db_down) < 600", faults={"db_down"}), f, fold_clock(f))
    assert result.holds is None and note in result.detail


def test_no_requests_after_the_fault_means_no_recovery_to_measure() -> None:
    events, _ = timeline({(3, 4): BAD}, faults=[("db_down@hour3+1h", 3 * HOUR, 4 * HOUR, 4 * HOUR)])
    f = fold(events)
    with pytest.raises(JudgementError, match="no requests after 'db_down@hour3\\+1h' ended"):
        recovery_time_s(f, "db_down")


def test_recovery_counts_windows_starting_at_or_after_an_unaligned_end() -> None:
    # the fault ends 30 s into a minute that is still bad: that minute is not "after" the fault
    end = 1.5 * HOUR + 30
    events, _ = timeline({(1, 1.5 + 1 / 60): BAD}, faults=[("db_down@hour1+30m30s", HOUR, end, end)])
    assert recovery_time_s(fold(events), "db_down") == pytest.approx(30.0)
