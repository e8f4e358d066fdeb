"""esr.core.buckets: Bucket is a mergeable reducer; RunFold folds a run's events into buckets."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator

import orjson
import pytest
from factories import HOUR, RunEvents, fold

from esr.core.buckets import Bucket, RunFold
from esr.core.errors import RunLogError
from esr.core.events import Event, RequestResult

ENDPOINTS = ("POST /claims", "GET /claims/{claim_id}", "GET /health")
ERRORS = (None, None, None, "5xx", "timeout", "4xx")


def random_run(seed: int, n_users: int = 60) -> list[Event]:
    """A run with every kind of bucketed event, spread over 6 sim hours and 3 endpoints.

    Latencies, bytes and counter values are multiples of 1/8, so every sum is exact in
    floating point whatever the order of addition: equality below is exact, not approximate.
    """
    rng = random.Random(seed)
    ev = RunEvents(load_end_sim=6 * HOUR)
    events: list[Event] = [ev.started(scenario={"name": "t", "late_threshold_ms": 20.0})]
    for user in range(n_users):
        t = rng.uniform(0, 5 * HOUR)
        events.append(ev.journey_started(sim=t, user=user, late_ms=rng.choice([0.0, 5.0, 25.0, 400.0])))
        for _ in range(rng.randint(1, 6)):
            t += rng.uniform(1, 900)
            error = rng.choice(ERRORS)
            events.append(ev.result(sim=t, user=user, endpoint=rng.choice(ENDPOINTS),
                                    latency_ms=rng.randint(1, 80_000) / 8, raw_latency_ms=rng.randint(1, 40_000) / 8,
                                    status=200 if error is None else 500, error=error, nbytes=rng.randint(0, 5_000)))
            if rng.random() < 0.5:
                events.append(ev.counter(sim=t, user=user, name=rng.choice(["cloud_cost", "claims_paid"]),
                                         value=rng.randint(1, 64) / 8))
        events.append(ev.sla(opened=t - 100, decided=t, met=rng.random() < 0.7, user=user,
                             sla=rng.choice(["48h", "2h"])))
        events.append(ev.journey_ended(sim=t + 1, user=user,
                                       outcome=rng.choice(["completed", "failed", "gave_up", "cut"])))
    events.append(ev.finished(sim=6 * HOUR, requests_sent=sum(1 for e in events if isinstance(e, RequestResult))))
    return events


def merge_folds(*folds: RunFold) -> dict[tuple[int, str], Bucket]:
    out: dict[tuple[int, str], Bucket] = {}
    for f in folds:
        for key, bucket in f.buckets.items():
            out.setdefault(key, Bucket()).merge(bucket)
    return out


def merged(*buckets: Bucket) -> Bucket:
    total = Bucket()
    for b in buckets:
        total.merge(b)
    return total


@pytest.fixture(scope="module")
def events() -> list[Event]:
    return random_run(seed=2024)


# -- folding parts and merging equals folding the whole ---------------------------------------
@pytest.mark.parametrize("cut", [1, 37, 200, -1])
def test_split_in_time_then_merge_equals_fold_of_all(events: list[Event], cut: int) -> None:
    whole = fold(events)
    first = fold(events[:cut])
    second = fold([events[0], *events[cut:]])  # every partition knows the run's RunStarted
    assert merge_folds(first, second) == whole.buckets
    assert merged(first.merged(), second.merged()) == whole.merged()


def test_split_by_user_like_kafka_partitions(events: list[Event]) -> None:
    whole = fold(events)
    head, rest = events[0], events[1:]
    parts = [fold([head, *[e for e in rest if getattr(e, "user", None) is not None and e.user % 3 == k]])
             for k in range(3)]
    bucketed = [e for e in rest if hasattr(e, "user")]
    assert sum(p.events for p in parts) == len(bucketed) + 3
    assert merge_folds(*parts) == whole.buckets
    assert sum(p.results_recorded for p in parts) == whole.results_recorded


def test_merge_is_associative_and_commutative(events: list[Event]) -> None:
    f = fold(events)
    buckets = list(f.buckets.values())
    a, b, c = merged(*buckets[0::3]), merged(*buckets[1::3]), merged(*buckets[2::3])
    left = merged(merged(a, b), c)
    right = merged(a, merged(b, c))
    assert left == right
    assert merged(c, b, a) == left
    assert left == f.merged()


def test_merging_an_empty_bucket_changes_nothing(events: list[Event]) -> None:
    total = fold(events).merged()
    before = total.to_dict()
    total.merge(Bucket())
    assert total.to_dict() == before
    assert merged(Bucket(), total) == total


def test_merge_sums_every_field() -> None:
    ev = RunEvents()
    a = fold([ev.result(sim=1, latency_ms=10, error="5xx", nbytes=3), ev.journey_started(sim=1, late_ms=99),
              ev.sla(opened=1, decided=2, met=True), ev.counter(sim=1, name="c", value=1.5),
              ev.journey_ended(sim=2, outcome="failed")]).merged()
    b = fold([ev.result(sim=2, latency_ms=30, error="5xx", nbytes=4), ev.result(sim=3, latency_ms=20, nbytes=5),
              ev.sla(opened=1, decided=2, met=False), ev.counter(sim=1, name="c", value=2.0),
              ev.counter(sim=1, name="d", value=1.0), ev.journey_ended(sim=2, outcome="failed")]).merged()
    a.merge(b)
    assert a.requests == 3
    assert a.errors == {"5xx": 2}
    assert a.error_count == 2
    assert a.bytes == 12
    assert (a.latency.count, a.latency.min, a.latency.max, a.latency.sum) == (3, 10.0, 30.0, 60.0)
    assert (a.journeys_started, a.late_starts) == (1, 1)
    assert a.journeys == {"failed": 2}
    assert (a.sla_met, a.sla_missed) == ({"48h": 1}, {"48h": 1})
    assert a.counters == {"c": 3.5, "d": 1.0}


# -- wire form ------------------------------------------------------------------------------------
def test_to_dict_from_dict_round_trip(events: list[Event]) -> None:
    for bucket in [*fold(events).buckets.values(), fold(events).merged(), Bucket()]:
        data = bucket.to_dict()
        back = Bucket.from_dict(data)
        assert back == bucket
        assert back.to_dict() == data
        wire = orjson.loads(orjson.dumps(data))  # survives JSON on the metrics topic
        assert Bucket.from_dict(wire) == bucket
        assert Bucket.from_dict(wire).latency.quantile(0.95) == bucket.latency.quantile(0.95)


def test_decoded_buckets_keep_merging(events: list[Event]) -> None:
    f = fold(events)
    decoded = [Bucket.from_dict(orjson.loads(orjson.dumps(b.to_dict()))) for b in f.buckets.values()]
    assert merged(*decoded) == f.merged()


def test_from_dict_copies_its_input() -> None:
    data = fold([RunEvents().result(sim=1.0, error="5xx")]).merged().to_dict()
    bucket = Bucket.from_dict(data)
    bucket.errors["5xx"] += 1
    assert data["errors"] == {"5xx": 1}


def test_bucket_equality() -> None:
    assert Bucket() == Bucket()
    assert Bucket() != object()
    b = Bucket()
    b.requests = 1
    assert b != Bucket()


# -- RunFold -------------------------------------------------------------------------------------
def test_results_go_to_the_window_and_endpoint_of_their_sim_time() -> None:
    ev = RunEvents(window_s=300.0)
    f = fold([ev.started(), ev.result(sim=0.0, endpoint="A"), ev.result(sim=299.9, endpoint="A"),
              ev.result(sim=300.0, endpoint="A"), ev.result(sim=301.0, endpoint="B")])
    assert f.window_s == 300.0
    assert {k: b.requests for k, b in f.buckets.items()} == {(0, "A"): 2, (1, "A"): 1, (1, "B"): 1}
    assert f.endpoints == ["A", "B"]
    assert f.results_recorded == 4


def test_journeys_slas_and_counters_are_not_per_endpoint() -> None:
    ev = RunEvents()
    f = fold([ev.journey_started(sim=10.0), ev.counter(sim=70.0, name="c", value=2.0),
              ev.journey_ended(sim=130.0, outcome="gave_up"),
              # an SLA counts in the window where it was opened, not where it was decided
              ev.sla(opened=15.0, decided=48 * HOUR, met=False)])
    assert set(f.buckets) == {(0, ""), (1, ""), (2, "")}
    assert f.buckets[(0, "")].journeys_started == 1
    assert f.buckets[(0, "")].sla_missed == {"48h": 1}
    assert f.buckets[(1, "")].counters == {"c": 2.0}
    assert f.buckets[(2, "")].journeys == {"gave_up": 1}
    assert f.endpoints == []
    assert f.last_sim_time == 48 * HOUR


def test_late_threshold_comes_from_the_scenario() -> None:
    ev = RunEvents()
    starts = [ev.journey_started(sim=1.0, late_ms=late) for late in (5.0, 10.0, 10.5, 30.0)]
    assert fold(starts).merged().late_starts == 2  # default threshold 10 ms, strictly above
    f = fold([ev.started(scenario={"name": "t", "late_threshold_ms": 20.0}), *starts])
    assert f.late_threshold_ms == 20.0
    assert f.merged().late_starts == 1


def test_merged_filters_by_window_start_and_endpoint(events: list[Event]) -> None:
    f = fold(events)
    total = f.merged()
    by_endpoint = merged(*(f.merged(endpoint=e) for e in [*ENDPOINTS, ""]))
    assert by_endpoint == total
    early, late = f.merged(to_sim=2 * HOUR), f.merged(from_sim=2 * HOUR)
    assert merged(early, late) == total
    expected = sum(1 for e in events if isinstance(e, RequestResult) and 2 * HOUR <= e.sim_time < 3 * HOUR)
    assert f.merged(from_sim=2 * HOUR, to_sim=3 * HOUR).requests == expected


def test_run_facts_and_times(events: list[Event]) -> None:
    ev = RunEvents()
    f = fold([ev.started(), ev.result(sim=50.0), ev.aborted(sim=60.0, reason="x"),
              ev.verdict(sim=999_999.0, verdict={"verdict": "PASS"})])
    assert f.started is not None and f.aborted is not None and f.aborted.reason == "x"
    assert f.finished is None
    assert f.verdict is not None and f.verdict.verdict == {"verdict": "PASS"}
    assert f.last_sim_time == 60.0  # a verdict is judged from what came before it
    assert f.events == 4
    whole = fold(events)
    assert whole.finished is not None
    assert whole.last_sim_time == 6 * HOUR


def test_the_whole_run_bucket_follows_every_change_including_late_ones() -> None:
    """merged() of the whole run is kept incrementally: it must always equal a fresh merge,
    also when an answer lands in a window the aggregate already holds."""
    import random

    from esr.core.buckets import Bucket

    rng = random.Random(5)
    ev = RunEvents()
    f = fold([ev.started()])
    for step in range(30):
        for _ in range(rng.randint(1, 20)):
            window = step if rng.random() < 0.8 else rng.randint(0, step)  # sometimes late, in an old window
            f.apply(ev.result(sim=window * 60.0 + rng.random() * 59, latency_ms=rng.uniform(1, 500),
                              endpoint=rng.choice(["GET /a", "GET /b"]), error=rng.choice([None, None, "5xx"])))
        for endpoint in (None, "GET /a", "GET /b"):
            fresh = Bucket()
            for (_, label), bucket in f.buckets.items():
                if endpoint is None or label == endpoint:
                    fresh.merge(bucket)
            for got in (f.merged(endpoint=endpoint), f.merged(from_sim=0.0, endpoint=endpoint)):
                mine, theirs = got.to_dict(), fresh.to_dict()
                for sketch in ("latency", "raw_latency"):  # sums added in another order differ in the last bit
                    assert mine[sketch].pop("sum") == pytest.approx(theirs[sketch].pop("sum"), rel=1e-12)
                assert mine == theirs


# -- apply_all (results grouped by bucket) equals apply, event by event -----------------------
def fold_state(f: RunFold) -> str:
    """Everything a fold knows, buckets in their order, sketches by key; a repr, so 1 != 1.0."""
    buckets = []
    for key, b in f.buckets.items():
        sketches = []
        for sketch in (b.latency, b.raw_latency):
            s = sketch._sketch
            store = s._store
            by_key = {store.offset + i: count for i, count in enumerate(store.bins) if count}
            sketches.append((s._count, s._sum, s._min, s._max, s._zero_count, by_key, store.count,
                             [sketch.quantile(q) for q in (0.0, 0.5, 0.9, 0.99, 1.0)]))
        buckets.append((key, b.version, list(b.errors.items()), b.to_dict(), sketches))
    return repr((buckets, f.events, f.results_recorded, f.last_sim_time, f.last_real_time, f.window_s,
                 f.late_threshold_ms, f.failure_reasons, f.started, f.finished, f.aborted, f.verdict, f.faults))


def one_by_one(events: list[Event]) -> RunFold:
    f = RunFold()
    for e in events:
        f.apply(e)
    return f


def crossing_run(seed: int, window_s: float = 60.0) -> list[Event]:
    """Results of four endpoints, latencies of any float (their sums depend on the order of
    addition), 5 % errors, on and next to window edges, some late into windows already left,
    between journeys, counters, faults and a verdict."""
    rng = random.Random(seed)
    ev = RunEvents(window_s=window_s)
    events: list[Event] = [ev.started(scenario={"name": "t", "late_threshold_ms": 5.0})]
    t = 0.0
    for i in range(3_000):
        t += rng.expovariate(1 / (window_s / 40))
        sim = rng.choice([t, t, t, (t // window_s) * window_s, math.nextafter((t // window_s) * window_s, -1.0),
                          max(0.0, t - rng.uniform(0, 5 * window_s))])
        error = rng.choice([None] * 19 + ["5xx", "timeout", "connect"])
        events.append(ev.result(sim=sim, endpoint=rng.choice(ENDPOINTS + ("GET /search",)), error=error,
                                latency_ms=rng.lognormvariate(4, 1.5), raw_latency_ms=rng.lognormvariate(3, 2),
                                nbytes=rng.randint(0, 9_000), user=i % 50))
        if rng.random() < 0.05:
            events.append(rng.choice([ev.journey_started(sim=t, late_ms=rng.uniform(0, 20)),
                                      ev.journey_ended(sim=t, outcome=rng.choice(["completed", "failed"])),
                                      ev.counter(sim=t, name="claims_paid", value=rng.uniform(0, 3))]))
        if i == 1_500:
            events.append(ev.fault_started(fault="db_down@hour1", start=t, end=t + 600))
    events.append(ev.finished(sim=t + 1, requests_sent=3_000))
    events.append(ev.verdict(sim=t + 2, verdict={"verdict": "PASS"}))
    return events


@pytest.mark.parametrize(("seed", "window_s"), [(1, 60.0), (2, 60.0), (3, 7.5), (4, 0.1), (5, 3_600.0)])
def test_apply_all_equals_apply_event_by_event(seed: int, window_s: float) -> None:
    events = crossing_run(seed, window_s)
    assert fold_state(RunFold().apply_all(events)) == fold_state(one_by_one(events))
    assert fold_state(RunFold().apply_all(iter(events))) == fold_state(one_by_one(events))  # any iterable


def test_apply_all_in_small_batches_and_in_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    events = crossing_run(6)
    monkeypatch.setattr("esr.core.buckets._BATCH", 3)
    assert fold_state(RunFold().apply_all(events)) == fold_state(one_by_one(events))
    parts = RunFold()
    for a, b in [(0, 1), (1, 700), (700, 701), (701, len(events))]:
        parts.apply_all(events[a:b])
    assert fold_state(parts) == fold_state(one_by_one(events))


def test_apply_all_equals_apply_on_the_mixed_run(events: list[Event]) -> None:
    assert fold_state(RunFold().apply_all(events)) == fold_state(one_by_one(events))


def test_apply_all_before_run_started_then_with_its_window() -> None:
    """Results before run_started fall in 60 s windows, after it in the run's (here 10 s)."""
    ev = RunEvents(window_s=10.0)
    events = [ev.result(sim=59.0), ev.result(sim=61.0), ev.started(), ev.result(sim=59.0), ev.result(sim=61.0)]
    f = RunFold().apply_all(events)
    assert fold_state(f) == fold_state(one_by_one(events))
    assert list(f.buckets) == [(0, "GET /claims/{claim_id}"), (1, "GET /claims/{claim_id}"),
                               (5, "GET /claims/{claim_id}"), (6, "GET /claims/{claim_id}")]


def _raises_like_apply(events: list[Event], error: type[Exception]) -> None:
    batched, sequential = RunFold(), RunFold()
    with pytest.raises(error):
        batched.apply_all(events)
    with pytest.raises(error):
        for e in events:
            sequential.apply(e)
    assert fold_state(batched) == fold_state(sequential)  # the results before the bad event are in


def test_apply_all_raises_where_apply_raises_with_the_same_state() -> None:
    ev = RunEvents()
    head = [ev.started(), *(ev.result(sim=s, latency_ms=s + 0.1) for s in (1.0, 70.0, 2.0))]
    _raises_like_apply([*head, ev.started()], RunLogError)  # a second run_started
    _raises_like_apply([*head, ev.fault_ended(fault="x", end=3.0), ev.result(sim=4.0)], RunLogError)
    _raises_like_apply([*head, ev.result(sim=math.nan), ev.result(sim=5.0)], ValueError)
    _raises_like_apply([*head, ev.result(sim=math.inf), ev.result(sim=5.0)], ValueError)


def test_apply_all_adds_the_results_read_before_the_log_turns_bad() -> None:
    ev = RunEvents()
    good = [ev.started(), *(ev.result(sim=s) for s in (1.0, 70.0, 2.0, 200.0))]

    def log() -> Iterator[Event]:
        yield from good
        raise RunLogError("line 6: not JSON")

    f = RunFold()
    with pytest.raises(RunLogError):
        f.apply_all(log())
    assert fold_state(f) == fold_state(one_by_one(good))
