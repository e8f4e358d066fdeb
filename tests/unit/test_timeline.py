"""esr.observe.timeline: a run's charts as data, on hand-made events."""

from __future__ import annotations

import pytest
from factories import HOUR, RunEvents, fold

from esr.observe.timeline import finished_timeline, run_timeline

SCENARIO = {"name": "t", "duration_hours": 4, "time_warp": 60, "load_profile": [[0, 5], [2, 10]]}


def events() -> tuple[list, RunEvents]:
    ev = RunEvents(time_warp=60.0, load_end_sim=4 * HOUR, window_s=60.0)
    out = [ev.started(scenario=SCENARIO, arrivals_planned=5)]
    out += [ev.result(sim=30.0, latency_ms=100.0), ev.result(sim=40.0, latency_ms=300.0, status=503, error="5xx")]
    out += [ev.result(sim=2 * HOUR + 10, latency_ms=50.0, error="timeout", status=0)]
    out += [ev.sla(opened=20.0, decided=HOUR, met=True), ev.sla(opened=20.0, decided=3 * HOUR, met=False)]
    out += [ev.fault_started(fault="db_down@hour1+30m", start=HOUR, end=1.5 * HOUR),
            ev.fault_ended(fault="db_down@hour1+30m", end=1.5 * HOUR)]
    out.append(ev.finished(requests_sent=3))
    return out, ev


def test_windows_are_aligned_from_the_start_to_the_last_with_data() -> None:
    t = run_timeline(fold(events()[0]))
    n = 2 * 60 + 1  # windows 0 .. the one at 2 h 0 m
    assert len(t["t"]) == n and t["t"][:3] == [0.0, 60.0, 120.0] and t["t"][-1] == 2 * HOUR
    for name in ("requests", "rate_planned", "rate_achieved", "p50", "p95", "p99", "error_rate", "sla_met",
                 "sla_missed"):
        assert len(t[name]) == n, name
    assert t["requests"][0] == 2 and t["requests"][1] == 0 and t["requests"][-1] == 1
    assert t["rate_achieved"][0] == 2.0  # 2 requests in one real second (a simulated minute at warp 60)
    assert t["rate_planned"][0] == 5.0 and t["rate_planned"][-1] == 10.0
    assert t["p50"][0] == pytest.approx(100.0, rel=0.01) and t["p99"][-1] == pytest.approx(50.0, rel=0.01)
    assert t["p95"][1] is None and t["error_rate"][1] is None  # no requests, no value
    assert t["error_rate"][0] == 0.5 and t["errors_by_kind"] == {
        "5xx": [0.5] + [None] * (n - 2) + [0.0], "timeout": [0.0] + [None] * (n - 2) + [1.0]}
    assert (t["sla_met"][0], t["sla_missed"][0]) == (1, 1)  # counted where they opened
    assert t["sla"] == {"met": 1, "missed": 1, "open": 0}


def test_faults_verdict_and_run_facts() -> None:
    t = finished_timeline(fold(events()[0]))
    assert t["faults"] == [{"fault": "db_down@hour1+30m", "name": "db_down", "kind": "action", "start_sim": HOUR,
                            "end_sim": 1.5 * HOUR, "applied": True, "ended": "scheduled"}]
    assert t["verdict"] == {"verdict": "PASS", "reason": "no assertions to check"}
    assert t["completeness"]["requests_sent"] == 3 and t["completeness"]["complete"] is True
    assert t["run"]["scenario"] == "t" and t["run"]["time_warp"] == 60.0 and t["run"]["window_s"] == 60.0


def test_a_live_run_shows_its_clock_open_slas_and_assertions_so_far() -> None:
    evs, _ = events()
    live = {"status": "RUNNING", "sim_hours": 1.25, "real_seconds": 75.0, "sla_open": 4,
            "assertions": [{"assertion": "error_rate < 0.6", "holds": True, "observed": 0.5, "threshold": 0.6,
                            "detail": ""}]}
    t = run_timeline(fold(evs[:-1]), live=live, decisions=[{"sim_time": 600.0, "decision": "pause_intake"}])
    assert t["clock"] == {"sim_seconds": 1.25 * HOUR, "real_seconds": 75.0, "state": "RUNNING"}
    assert t["sla"]["open"] == 4 and t["verdict"] is None
    assert t["assertions"][0]["observed"] == 0.5
    assert t["decisions"] == [{"sim_time": 600.0, "decision": "pause_intake"}]


def test_an_empty_run_has_no_windows() -> None:
    ev = RunEvents()
    t = run_timeline(fold([ev.started(scenario=SCENARIO)]))
    assert t["t"] == [] and t["requests"] == [] and t["faults"] == []


def test_a_kept_cache_gives_the_same_timeline_as_none() -> None:
    evs, ev = events()
    f = fold(evs[:3])
    cache: dict = {}
    assert run_timeline(f, cache=cache) == run_timeline(f)
    for event in evs[3:] + [ev.result(sim=30.0, latency_ms=900.0)]:  # including a change to a kept window
        f.apply(event)
        assert run_timeline(f, cache=cache) == run_timeline(f)
