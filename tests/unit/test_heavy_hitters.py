"""The endpoint cap: Space-Saving by requests and by errors, the 'other' label's distinct count,
and the fold with a cap (sums over rows equal the totals, sketches merged into 'other')."""

from __future__ import annotations

import random

from esr.core.buckets import RunFold
from esr.core.events import RequestResult
from esr.core.heavy_hitters import OTHER, DistinctCount, EndpointCap, SpaceSaving


def result(seq: int, endpoint: str, *, error: str | None = None, sim: float = 0.0, latency: float = 10.0
           ) -> RequestResult:
    return RequestResult(run_id="r", seq=seq, sim_time=sim, real_time=0.0, user=seq, journey="replay",
                         step="replay", endpoint=endpoint, status=500 if error else 200, latency_ms=latency,
                         raw_latency_ms=latency, bytes=3, error=error)


def test_space_saving_keeps_the_heaviest_and_reports_evictions() -> None:
    ss = SpaceSaving(10)  # a key seen more than total / capacity times (38 here) is never evicted
    stream = ["a"] * 100 + ["b"] * 60 + [f"noise{i}" for i in range(200)] + ["c"] * 20 + ["a", "b"]
    evicted = [k for k in (ss.add(x) for x in stream) if k is not None]
    assert {"a", "b"} <= set(ss.keys())
    assert "a" not in evicted and "b" not in evicted
    assert len(ss) == 10
    assert ss.count("a") == 101  # never evicted: exact
    assert ss.error("a") == 0


def test_space_saving_is_deterministic() -> None:
    rng = random.Random(3)
    stream = [f"k{rng.randrange(40)}" for _ in range(2000)]
    a, b = SpaceSaving(5), SpaceSaving(5)
    assert [a.add(x) for x in stream] == [b.add(x) for x in stream]


def test_distinct_count_is_exact_while_small_and_estimates_beyond() -> None:
    small = DistinctCount(exact_up_to=100)
    for i in range(80):
        small.add(f"GET /x/{i}")
        small.add(f"GET /x/{i}")
    assert (small.count, small.estimated) == (80, False)
    big = DistinctCount(exact_up_to=100)
    for i in range(20_000):
        big.add(f"GET /x/{i}")
    assert big.estimated
    assert abs(big.count - 20_000) < 20_000 * 0.05


def test_cap_keeps_heaviest_by_requests_and_by_errors() -> None:
    cap = EndpointCap(4)
    for i in range(3000):
        cap.see("GET /hot", False)
        if i % 50 == 0:
            cap.see("GET /failing", True)  # few requests, every one an error
        cap.see(f"GET /cold/{i}", False)
    assert cap.tracked("GET /hot") and cap.tracked("GET /failing")
    assert len(cap.labels()) <= 4
    assert not cap.tracked("GET /cold/1")
    assert cap.other.count >= 2900


def test_cap_without_errors_tracks_n_labels_by_requests_and_makes_room_for_errors() -> None:
    cap = EndpointCap(100)
    for _ in range(3):
        for i in range(100):
            assert cap.see(f"GET /p{i}", False) == []  # 100 labels fit a cap of 100
    assert len(cap.labels()) == 100 and cap.other.count == 0
    gone = [g for i in range(60) for g in cap.see(f"GET /e{i}", True)]
    assert len(cap.labels()) <= 100
    assert all(cap.tracked(f"GET /e{i}") for i in range(10, 60))  # the errors half: the latest 50 at least
    assert len(gone) >= 50 and cap.other.count == len(set(gone))


def test_fold_with_a_cap_keeps_totals_exact_and_merges_sketches() -> None:
    rng = random.Random(7)
    capped, exact = RunFold(top_endpoints=10), RunFold()
    events = []
    for seq in range(20_000):
        label = "GET /hot" if seq % 3 == 0 else f"GET /p{rng.randrange(5000)}"
        error = "5xx" if seq % 17 == 0 else None
        events.append(result(seq, label, error=error, sim=seq * 0.1, latency=rng.uniform(1, 500)))
    for e in events:
        capped.apply(e)
    exact.apply_all(events)
    labels = capped.endpoints
    assert len(labels) <= 11 and OTHER in labels and "GET /hot" in labels
    rows = [capped.merged(endpoint=label) for label in labels]
    assert sum(r.requests for r in rows) == 20_000 == capped.merged().requests
    assert sum(r.error_count for r in rows) == exact.merged().error_count
    whole = capped.merged()
    assert whole.latency.count == 20_000
    assert whole.latency.quantile(0.95) == exact.merged().latency.quantile(0.95)  # merged bin for bin
    assert capped.merged(endpoint="GET /hot").requests == exact.merged(endpoint="GET /hot").requests
    assert capped.endpoint_cap is not None and capped.endpoint_cap.other.count > 4000


def test_fold_cap_same_by_apply_and_apply_all() -> None:
    events = [result(i, f"GET /p{i % 300}", sim=i * 1.0) for i in range(3000)]
    one, batch = RunFold(top_endpoints=20), RunFold(top_endpoints=20)
    for e in events:
        one.apply(e)
    batch.apply_all(events)
    assert one.buckets == batch.buckets


def test_fold_without_a_cap_is_unchanged() -> None:
    fold = RunFold()
    fold.apply_all([result(i, f"GET /p{i}") for i in range(2000)])
    assert fold.endpoint_cap is None
    assert len(fold.endpoints) == 2000


def test_a_cap_rebuilt_from_its_state_goes_on_as_the_original() -> None:
    """A stream app keeps the cap in a table: rebuilt from its state (as JSON), it tracks and
    evicts exactly as the cap that never stopped."""
    import msgspec

    rng = random.Random(5)
    stream = [(f"GET /p/{rng.randrange(300)}", rng.random() < 0.1) for _ in range(3000)]
    cap = EndpointCap(8)
    for label, error in stream[:1500]:
        cap.see(label, error)
    again = EndpointCap.from_state(msgspec.json.decode(msgspec.json.encode(cap.to_state())))
    assert [cap.see(label, error) for label, error in stream[1500:]] == \
        [again.see(label, error) for label, error in stream[1500:]]
    assert again.labels() == cap.labels() and again.to_dict() == cap.to_dict()
    assert [again.in_other_at_most(k) for k in sorted(cap.labels())] == \
        [cap.in_other_at_most(k) for k in sorted(cap.labels())]


def test_distinct_counts_merge_as_a_union() -> None:
    a, b = DistinctCount(exact_up_to=100), DistinctCount(exact_up_to=100)
    for i in range(60):
        a.add(f"/a/{i}")
        b.add(f"/a/{i + 30}")  # 30 in both
    a.merge(b)
    assert (a.count, a.estimated) == (90, False)
    b.merge(a)
    b.merge(DistinctCount.from_state(a.to_state()))
    assert b.count == 90
    big, other = DistinctCount(exact_up_to=100), DistinctCount(exact_up_to=100)
    for i in range(10_000):
        big.add(f"/b/{i}")
        other.add(f"/b/{i + 5_000}")
    big.merge(other)
    assert big.estimated and abs(big.count - 15_000) < 15_000 * 0.05
    assert DistinctCount.from_state(big.to_state()).count == big.count
