"""esr.observe.prom: the Prometheus series of a run, from its fold or its verdict, exact."""

from __future__ import annotations

import random
from typing import Any

import pytest
from factories import HOUR, RUN_ID, RunEvents, fold
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from esr.core.scenario import Scenario
from esr.core.sketch import RELATIVE_ACCURACY, LatencySketch
from esr.core.ticks import run_clock
from esr.core.verdict import judge
from esr.observe.prom import (
    LATENCY_BOUNDS_MS,
    RunSeries,
    ended_series,
    families,
    fold_series,
    latency_buckets,
    live_series,
    verdict_series,
)

GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
CLAIMS, HEALTH = "POST /claims", "GET /health"


def scrape(*runs: RunSeries) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The text a scrape returns, parsed back: (sample name, labels) -> value."""
    text = generate_latest(_registry(*runs)).decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def find(samples: dict, name: str, **labels: str) -> float:
    hits = [v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= ls]
    assert len(hits) == 1, f"{name}{labels}: {len(hits)} samples"
    return hits[0]


def hand_made_run() -> list[Any]:
    """Two endpoints over two windows, errors of two kinds, SLAs met and missed, one fault."""
    ev = RunEvents(load_end_sim=2 * HOUR)
    return [
        ev.started(scenario={"name": "claims"}, arrivals_planned=3),
        ev.result(sim=10.0, endpoint=CLAIMS, latency_ms=0.5),
        ev.result(sim=20.0, endpoint=CLAIMS, latency_ms=40.0, status=500, error="5xx"),
        ev.result(sim=4000.0, endpoint=CLAIMS, latency_ms=40.0),
        ev.result(sim=4100.0, endpoint=CLAIMS, latency_ms=600.0, status=0, error="timeout"),
        ev.result(sim=30.0, endpoint=HEALTH, latency_ms=3.0),
        ev.result(sim=5000.0, endpoint=HEALTH, latency_ms=20_000.0, status=0, error="timeout"),
        ev.sla(opened=10.0, decided=3000.0, met=True),
        ev.sla(opened=4000.0, decided=6000.0, met=True),
        ev.sla(opened=4100.0, decided=7000.0, met=False),
        ev.sla(opened=20.0, decided=50.0, met=False, sla="2h"),
        ev.fault_started(fault="db_down@hour1", start=HOUR, end=1.5 * HOUR),
        ev.fault_ended(fault="db_down@hour1", end=1.5 * HOUR),
        ev.finished(sim=2 * HOUR, requests_sent=6, journeys_started=3, arrivals_planned=3),
    ]


def test_latency_buckets_are_exact_away_from_the_bounds() -> None:
    sketch = LatencySketch()
    for value in (0.0, 0.5, 3.0, 7.0, 40.0, 40.0, 120.0, 600.0, 20_000.0):
        sketch.add(value)
    assert latency_buckets(sketch) == (2, 2, 3, 4, 4, 6, 6, 7, 7, 8, 8, 8, 8, 9)
    assert latency_buckets(LatencySketch()) == (0,) * (len(LATENCY_BOUNDS_MS) + 1)


def test_a_value_on_a_bound_is_counted_under_it() -> None:
    sketch = LatencySketch()
    for bound in LATENCY_BOUNDS_MS:
        sketch.add(float(bound))
    assert latency_buckets(sketch) == (*range(1, len(LATENCY_BOUNDS_MS) + 1), len(LATENCY_BOUNDS_MS))


@pytest.mark.parametrize("seed", range(5))
def test_latency_buckets_are_cumulative_and_within_the_sketch_resolution(seed: int) -> None:
    rng = random.Random(seed)
    values = [rng.lognormvariate(4, 2) for _ in range(3000)] + [rng.choice(LATENCY_BOUNDS_MS) * rng.uniform(0.99, 1.01)
                                                              for _ in range(300)]
    sketch = LatencySketch()
    for value in values:
        sketch.add(value)
    counts = latency_buckets(sketch)
    assert list(counts) == sorted(counts) and counts[-1] == len(values)
    for bound, count in zip(LATENCY_BOUNDS_MS, counts, strict=False):
        exact_below = sum(v <= bound for v in values)
        # only values in the bound's own sketch bin, less than a factor gamma above it, may join
        assert exact_below <= count <= sum(v <= bound * GAMMA for v in values)


def test_fold_series_carries_exact_numbers_and_the_sim_label() -> None:
    events = hand_made_run()
    series = fold_series(fold(events), run_id=RUN_ID, scenario="claims", state="RUNNING", sim_time_s=5400.0,
                         assertions=[{"assertion": "error_rate < 0.5", "observed": 0.5, "holds": False},
                                     {"assertion": "latency_p95_ms < 100 for endpoint \"X\"", "observed": None,
                                      "holds": None}],
                         faults={"db_down": True, "slow_disk": False})
    samples = scrape(series)
    assert all(dict(labels)["sim"] == "true" and dict(labels)["run_id"] == RUN_ID
               and dict(labels)["scenario"] == "claims" for _, labels in samples)
    assert find(samples, "esr_requests_total", endpoint=CLAIMS) == 4
    assert find(samples, "esr_requests_total", endpoint=HEALTH) == 2
    assert find(samples, "esr_errors_total", endpoint=CLAIMS, kind="5xx") == 1
    assert find(samples, "esr_errors_total", endpoint=CLAIMS, kind="timeout") == 1
    assert find(samples, "esr_errors_total", endpoint=HEALTH, kind="timeout") == 1
    assert find(samples, "esr_request_latency_seconds_count", endpoint=CLAIMS) == 4
    assert find(samples, "esr_request_latency_seconds_sum", endpoint=CLAIMS) == pytest.approx(0.6805)
    le = {bound: find(samples, "esr_request_latency_seconds_bucket", endpoint=CLAIMS, le=str(bound))
          for bound in ("0.001", "0.025", "0.05", "0.5", "1.0", "+Inf")}
    assert le == {"0.001": 1, "0.025": 1, "0.05": 3, "0.5": 3, "1.0": 4, "+Inf": 4}
    assert find(samples, "esr_request_latency_seconds_bucket", endpoint=HEALTH, le="10.0") == 1
    assert find(samples, "esr_sla_met_total", sla="48h") == 2
    assert find(samples, "esr_sla_missed_total", sla="48h") == 1
    assert find(samples, "esr_sla_missed_total", sla="2h") == 1
    assert find(samples, "esr_fault_active", fault="db_down") == 1
    assert find(samples, "esr_fault_active", fault="slow_disk") == 0
    assert find(samples, "esr_assertion_value", assertion="error_rate < 0.5") == 0.5
    assert find(samples, "esr_assertion_holds", assertion="error_rate < 0.5") == 0
    assert not [k for k in samples if k[0].startswith("esr_assertion") and "endpoint" in dict(k[1])["assertion"]]
    assert find(samples, "esr_run_info", state="RUNNING") == 1
    assert find(samples, "esr_sim_time_seconds") == 5400.0
    assert not [k for k in samples if k[0] == "esr_verdict"]


def test_an_ended_run_reads_its_fold_and_its_verdict() -> None:
    events = hand_made_run()
    run = fold(events)
    verdict = judge(run, []).to_dict()
    series = ended_series(verdict, run, run_id=RUN_ID, scenario="claims", state="FINISHED")
    samples = scrape(series)
    assert find(samples, "esr_verdict", verdict=verdict["verdict"]) == 1
    assert find(samples, "esr_run_info", state="FINISHED") == 1
    assert find(samples, "esr_fault_active", fault="db_down") == 0
    assert find(samples, "esr_sim_time_seconds") == 2 * HOUR
    assert sum(v for (n, _), v in samples.items() if n == "esr_requests_total") == verdict["summary"]["requests"]
    assert sum(v for (n, _), v in samples.items() if n == "esr_errors_total") == verdict["summary"]["errors"]


def test_a_verdict_alone_gives_totals_under_an_empty_endpoint() -> None:
    run = fold(hand_made_run())
    verdict = judge(run, []).to_dict() | {"assertions": [
        {"assertion": "error_rate < 0.01", "holds": False, "observed": 0.5, "threshold": 0.01, "detail": ""},
        {"assertion": "sla_48h_success_rate > 0.9", "holds": None, "observed": None, "threshold": 0.9,
         "detail": "no data"}]}
    empty = fold(hand_made_run()[:1])  # a log with the start only (a run played on the Kafka workers)
    series = ended_series(verdict, empty, run_id=RUN_ID, scenario="claims", state="FINISHED")
    assert series == verdict_series(verdict, run_id=RUN_ID, scenario="claims", state="FINISHED")
    samples = scrape(series)
    assert find(samples, "esr_requests_total", endpoint="") == 6
    assert find(samples, "esr_errors_total", endpoint="", kind="timeout") == 2
    assert find(samples, "esr_errors_total", endpoint="", kind="5xx") == 1
    assert find(samples, "esr_sla_met_total", sla="48h") == 2 and find(samples, "esr_sla_missed_total", sla="2h") == 1
    assert find(samples, "esr_assertion_holds", assertion="error_rate < 0.01") == 0
    assert not [k for k in samples if dict(k[1]).get("assertion", "").startswith("sla_")]
    assert not [k for k in samples if k[0].startswith("esr_request_latency")]
    assert find(samples, "esr_fault_active", fault="db_down") == 0
    assert find(samples, "esr_sim_time_seconds") == 2 * HOUR
    aborted = verdict_series({"verdict": "ABORTED", "summary": {}, "assertions": []}, run_id="q", scenario="s",
                             state="ABORTED")
    assert aborted.endpoints == () and aborted.sim_time_s is None


def test_a_live_run_is_judged_on_its_data_so_far() -> None:
    events = hand_made_run()[:-1]  # still playing
    scenario = Scenario.from_dict({"name": "claims", "duration_hours": 2, "time_warp": 60, "load_profile": [[0, 1]],
                                   "failure_injection": ["db_down@hour1"],
                                   "assertions": ["error_rate < 0.25", "latency_p50_ms < 1000"]})
    run = fold(events)
    assert run.started is not None
    series = live_series(run, scenario, scenario.parsed_assertions(), run_clock(run.started), run_id=RUN_ID,
                         state="DRAINING", sim_time_s=7000.0, active_faults=["db_down"])
    samples = scrape(series)
    assert find(samples, "esr_assertion_value", assertion="error_rate < 0.25") == 0.5
    assert find(samples, "esr_assertion_holds", assertion="error_rate < 0.25") == 0
    assert find(samples, "esr_assertion_holds", assertion="latency_p50_ms < 1000") == 1
    assert find(samples, "esr_fault_active", fault="db_down") == 1
    assert find(samples, "esr_run_info", state="DRAINING") == 1


def test_every_run_shares_one_family_per_name() -> None:
    a = RunSeries("a", "s", "QUEUED")
    b = RunSeries("b", "s", "FINISHED", verdict="PASS", sim_time_s=60.0)
    text = generate_latest(_registry(a, b)).decode()
    assert text.count("# TYPE esr_run_info gauge") == 1
    assert 'esr_run_info{run_id="a",scenario="s",sim="true",state="QUEUED"} 1.0' in text
    assert 'esr_verdict{run_id="b",scenario="s",sim="true",verdict="PASS"} 1.0' in text
    samples = scrape(a, b)
    assert find(samples, "esr_sim_time_seconds", run_id="b") == 60.0
    assert not [k for k in samples if k[0] in ("esr_sim_time_seconds", "esr_verdict") and ("run_id", "a") in k[1]]


def _registry(*runs: RunSeries) -> CollectorRegistry:
    class One:
        def collect(self) -> Any:
            return families(runs)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(One())  # type: ignore[arg-type]
    return registry


