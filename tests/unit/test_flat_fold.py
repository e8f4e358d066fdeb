"""A replay's fold is flat: per endpoint one whole-run bucket, per window the run's figures (and
those of the endpoints judged by window), so its buckets number windows + endpoints, never
windows x endpoints; totals, per-window run figures and verdicts equal an unbounded fold's."""

from __future__ import annotations

import random
from functools import cache

import pytest
from test_heavy_hitters import result

from esr.core.assertions import evaluate, parse_assertion
from esr.core.buckets import REST, RunFold
from esr.core.clock import SimClock
from esr.core.errors import JudgementError
from esr.core.heavy_hitters import OTHER, EndpointCap, SpaceSaving

WINDOWS, LABELS, TOP = 300, 400, 20


@cache
def traffic(n: int = 12_000, seed: int = 3) -> list:
    """`n` results over WINDOWS windows of 60 s, to LABELS endpoints of which each is busy in
    most windows (the worst case of windows x endpoints), 1 in 13 an error."""
    rng = random.Random(seed)
    return [result(i, "GET /hot" if i % 5 == 0 else f"GET /p{rng.randrange(LABELS)}",
                   error="5xx" if i % 13 == 0 else None, sim=rng.uniform(0, WINDOWS * 60),
                   latency=rng.uniform(1, 300)) for i in range(n)]


def folds(events: list, windowed: tuple[str, ...] = ()) -> tuple[RunFold, RunFold]:
    return _folds(tuple(events), windowed)


@cache
def _folds(events: tuple, windowed: tuple[str, ...]) -> tuple[RunFold, RunFold]:
    """Folded once per test module: the tests only read them."""
    flat, exact = RunFold(top_endpoints=TOP, windowed=windowed), RunFold()
    for e in events:
        flat.apply(e)
    exact.apply_all(events)
    return flat, exact


def test_buckets_number_windows_plus_endpoints_not_their_product() -> None:
    flat, exact = folds(traffic())
    assert len(exact.buckets) > 9_000  # what an unbounded fold keeps: most (window, endpoint) pairs
    assert flat.windows == exact.windows == WINDOWS
    assert len(flat.buckets) == WINDOWS  # one per window: REST
    assert {label for _, label in flat.buckets} == {REST}
    assert len(flat.rows) <= TOP + 1 and OTHER in flat.rows and "GET /hot" in flat.rows
    assert flat.endpoints == sorted(flat.rows)


def test_run_figures_per_window_and_whole_rows_equal_an_unbounded_fold() -> None:
    flat, exact = folds(traffic())
    for start in (0, 600, 6000, WINDOWS * 60 - 60):
        mine, theirs = flat.merged(from_sim=start, to_sim=start + 600), exact.merged(from_sim=start, to_sim=start + 600)
        assert (mine.requests, mine.errors, mine.bytes) == (theirs.requests, theirs.errors, theirs.bytes)
        assert mine.latency.quantile(0.95) == theirs.latency.quantile(0.95)  # merged bin for bin
    assert flat.merged().requests == exact.merged().requests == 12_000
    assert flat.merged().latency.quantile(0.99) == exact.merged().latency.quantile(0.99)
    hot = flat.merged(endpoint="GET /hot")
    assert hot.requests == exact.merged(endpoint="GET /hot").requests == 2_400
    assert hot.latency.quantile(0.5) == exact.merged(endpoint="GET /hot").latency.quantile(0.5)
    rows = flat.whole_by_label()
    assert REST not in rows and set(rows) == set(flat.rows)
    assert sum(b.requests for b in rows.values()) == 12_000
    assert sum(b.error_count for b in rows.values()) == exact.merged().error_count


def test_an_endpoint_asked_for_by_window_is_refused_unless_windowed() -> None:
    flat, _ = folds(traffic())
    with pytest.raises(JudgementError, match="figures for the whole replay only"):
        flat.merged(from_sim=0, to_sim=3600, endpoint="GET /hot")


def test_windowed_endpoints_keep_their_windows_and_are_never_let_go() -> None:
    events = traffic()
    flat, exact = folds(events, windowed=("GET /p7",))
    assert len(flat.buckets) <= 2 * WINDOWS  # REST and GET /p7 per window
    assert not flat.untracked("GET /p7") and "GET /p7" in flat.rows
    for start in (0, 3000, 9000):
        mine = flat.merged(from_sim=start, to_sim=start + 3600, endpoint="GET /p7")
        theirs = exact.merged(from_sim=start, to_sim=start + 3600, endpoint="GET /p7")
        assert (mine.requests, mine.errors) == (theirs.requests, theirs.errors)
    assert flat.merged(endpoint="GET /p7").requests == exact.merged(endpoint="GET /p7").requests
    assert flat.merged().requests == 12_000  # REST holds the others: nothing counted twice


@pytest.mark.parametrize("text", [
    "error_rate < 0.1 in every 5m",
    "latency_p95_ms < 280 in every 1h",
    "requests > 90 in every 10m",
    "error_rate < 0.1 during hour 1..3",
    'latency_p95_ms < 290 for endpoint "GET /hot"',
    'error_rate < 0.1 for endpoint "GET /hot" in every 10m',
    'requests > 10 for endpoint "GET /hot" during hour 2..4',
])
def test_verdicts_equal_an_unbounded_folds_when_the_scoped_endpoints_are_windowed(text: str) -> None:
    events = traffic()
    flat, exact = folds(events, windowed=("GET /hot",))
    clock = SimClock(60.0, WINDOWS * 60, 60.0)
    assertion = parse_assertion(text)
    assert evaluate(assertion, flat, clock) == evaluate(assertion, exact, clock)


def test_an_assertion_on_an_endpoint_by_window_that_was_not_windowed_is_not_judged() -> None:
    flat, _ = folds(traffic())
    clock = SimClock(60.0, WINDOWS * 60, 60.0)
    got = evaluate(parse_assertion('error_rate < 0.1 for endpoint "GET /hot" in every 10m'), flat, clock)
    assert got.holds is None and "figures for the whole replay only" in got.detail


def test_plain_partial_folds_merged_into_a_flat_fold_are_capped_the_same_way() -> None:
    """The Kafka runtime: one plain fold per partition, merged into the run's fold, which a
    replay's start makes flat (top_endpoints in its scenario)."""
    events = traffic()
    parts = [RunFold(), RunFold(), RunFold()]
    for e in events:
        parts[e.seq % 3].apply(e)
    run = RunFold(top_endpoints=TOP, windowed=("GET /p7",))
    for part in parts:
        run.merge(part)
    flat, exact = folds(events, windowed=("GET /p7",))
    assert len(run.rows) <= TOP + 2 and "GET /hot" in run.rows and "GET /p7" in run.rows
    assert {label for _, label in run.buckets} == {REST, "GET /p7"}
    assert len(run.buckets) <= 2 * WINDOWS
    assert run.merged().requests == exact.merged().requests == 12_000
    assert run.merged().latency.quantile(0.95) == exact.merged().latency.quantile(0.95)
    assert run.merged(endpoint="GET /hot").requests == 2_400
    assert sum(b.requests for b in run.rows.values()) == 12_000
    assert run.merged(from_sim=600, to_sim=1200).requests == exact.merged(from_sim=600, to_sim=1200).requests
    # a flat fold merged into another: its rows through the cap, its windows as they are
    again = RunFold(top_endpoints=TOP, windowed=("GET /p7",))
    again.merge(flat)
    assert again.merged().requests == 12_000 and len(again.rows) <= TOP + 2
    assert again.merged(from_sim=0, to_sim=3600, endpoint="GET /p7").requests == flat.merged(
        from_sim=0, to_sim=3600, endpoint="GET /p7").requests


def test_weighted_space_saving_counts_and_inherits_the_floor() -> None:
    s = SpaceSaving(2)
    assert s.add("a", 5) is None and s.add("b", 3) is None
    assert s.add("c", 2) == "b"  # the lightest makes room
    assert (s.count("c"), s.error("c")) == (5, 3)
    cap = EndpointCap(2)
    assert cap.see_many("GET /a", 100, 40) == []
    assert cap.tracked("GET /a") and cap.by_errors is not None and cap.by_errors.count("GET /a") == 40
