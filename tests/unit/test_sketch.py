"""esr.core.sketch.LatencySketch: percentiles within 1 % of the exact order statistic, exact merges."""

from __future__ import annotations

import math
import random
import tracemalloc
from array import array
from itertools import pairwise

import orjson
import pytest
from ddsketch import DDSketch
from ddsketch.mapping import LogarithmicMapping
from ddsketch.store import DenseStore

from esr.core.sketch import RELATIVE_ACCURACY, LatencySketch, _ArrayStore, _open

N = 100_000
QUANTILES = (0.5, 0.9, 0.95, 0.99, 0.999)


def _uniform(rng: random.Random) -> float:
    return rng.uniform(1.0, 1_000.0)


def _lognormal(rng: random.Random) -> float:
    return rng.lognormvariate(4.0, 1.0)


def _exponential(rng: random.Random) -> float:
    return rng.expovariate(1 / 100.0)


def _bimodal(rng: random.Random) -> float:
    # most requests fast, a tenth stuck behind a slow dependency
    if rng.random() < 0.9:
        return max(0.5, rng.gauss(50.0, 5.0))
    return max(0.5, rng.gauss(2_000.0, 200.0))


def _heavy_tail(rng: random.Random) -> float:
    return rng.paretovariate(1.5) * 10.0


DISTRIBUTIONS = {"uniform": _uniform, "lognormal": _lognormal, "exponential": _exponential,
                 "bimodal": _bimodal, "pareto": _heavy_tail}


@pytest.fixture(scope="module", params=sorted(DISTRIBUTIONS))
def samples(request: pytest.FixtureRequest) -> list[float]:
    rng = random.Random(f"sketch/{request.param}")
    draw = DISTRIBUTIONS[request.param]
    return [draw(rng) for _ in range(N)]


@pytest.fixture(scope="module")
def sketch(samples: list[float]) -> LatencySketch:
    s = LatencySketch()
    for value in samples:
        s.add(value)
    return s


def sketch_of(values: list[float]) -> LatencySketch:
    s = LatencySketch()
    for value in values:
        s.add(value)
    return s


def test_relative_accuracy_is_at_most_one_percent() -> None:
    assert RELATIVE_ACCURACY <= 0.01


def test_percentiles_within_one_percent_of_the_exact_order_statistic(samples: list[float],
                                                                      sketch: LatencySketch) -> None:
    ordered = sorted(samples)
    for q in QUANTILES:
        exact = ordered[int(q * (N - 1))]
        estimate = sketch.quantile(q)
        assert estimate is not None
        assert abs(estimate - exact) <= 0.01 * exact, (q, estimate, exact)


def test_count_sum_min_max(samples: list[float], sketch: LatencySketch) -> None:
    assert sketch.count == N
    assert sketch.sum == pytest.approx(sum(samples), rel=1e-9)
    assert sketch.min == min(samples)
    assert sketch.max == max(samples)


def test_merging_sketches_of_parts_equals_the_sketch_of_the_whole(samples: list[float],
                                                                   sketch: LatencySketch) -> None:
    cuts = [0, 1, 12_345, 50_000, 99_999, N]  # unequal parts, including a one-value part
    parts = [sketch_of(samples[a:b]) for a, b in pairwise(cuts)]
    total = LatencySketch()
    for part in parts:
        total.merge(part)
    assert total.count == N
    assert (total.min, total.max) == (sketch.min, sketch.max)
    assert total.sum == pytest.approx(sketch.sum, rel=1e-12)
    for q in (0.0, *QUANTILES, 1.0):
        assert total.quantile(q) == sketch.quantile(q)
    assert total.to_dict()["bins"] == sketch.to_dict()["bins"]


def test_round_trip_through_the_wire_form(sketch: LatencySketch) -> None:
    data = sketch.to_dict()
    back = LatencySketch.from_dict(orjson.loads(orjson.dumps(data)))
    assert back.to_dict() == data
    assert (back.count, back.sum, back.min, back.max) == (sketch.count, sketch.sum, sketch.min, sketch.max)
    for q in QUANTILES:
        assert back.quantile(q) == sketch.quantile(q)
    # a decoded sketch still merges like the original
    again = LatencySketch.from_dict(data)
    again.merge(back)
    assert again.count == 2 * N
    assert again.quantile(0.5) == sketch.quantile(0.5)


def test_wire_form_is_compact(sketch: LatencySketch) -> None:
    data = sketch.to_dict()
    assert set(data) == {"count", "sum", "min", "max", "zero", "key0", "bins"}
    assert len(data["bins"]) < 3_000  # bins span log(max/min)/log(1.01), not the sample count
    assert sum(data["bins"]) + data["zero"] == N


def test_empty_sketch() -> None:
    s = LatencySketch()
    assert (s.count, s.sum, s.min, s.max, s.quantile(0.5)) == (0, 0.0, None, None, None)
    data = s.to_dict()
    assert data == {"count": 0, "sum": 0, "min": None, "max": None, "zero": 0, "key0": 0, "bins": []}
    back = LatencySketch.from_dict(data)
    assert back.count == 0 and back.quantile(0.99) is None
    s.merge(LatencySketch())
    assert s.count == 0


def test_zero_latencies_round_trip() -> None:
    s = sketch_of([0.0, 0.0, 5.0, 10.0])
    assert s.quantile(0.0) == 0.0
    back = LatencySketch.from_dict(s.to_dict())
    assert back.to_dict() == s.to_dict()
    assert back.quantile(0.25) == 0.0
    assert back.quantile(1.0) == pytest.approx(10.0, rel=0.01)


def test_negative_latencies_round_trip() -> None:
    """A request answered before its intended send time has a negative latency: the wire form
    keeps it, so a fold rebuilt from a table gives the percentiles the original gave."""
    s = sketch_of([-0.3, -0.03, 0.0, 1.2, 5.0, 10.0])
    data = s.to_dict()
    assert set(data["negative"]) == {"key0", "bins"} and sum(data["negative"]["bins"]) == 2
    back = LatencySketch.from_dict(orjson.loads(orjson.dumps(data)))
    assert back.to_dict() == data
    for q in (0.0, 0.1, 0.2, 0.4, 0.5, 0.8, 1.0):
        assert back.quantile(q) == s.quantile(q)
    assert back.quantile(0.0) == pytest.approx(-0.3, rel=0.01)
    merged = LatencySketch.from_dict(data)
    merged.merge(sketch_of([-1.0]))
    assert merged.quantile(0.0) == pytest.approx(-1.0, rel=0.01)
    assert "negative" not in sketch_of([1.0, 2.0]).to_dict()  # the common wire form is unchanged


@pytest.mark.parametrize("bins", [[1.0], [0.0, 2.0, 0.0, 3.0, 0.0], [5.0, 0.0, 0.0, 0.0, 1.0], [0.0, 0.0, 7.0],
                                  [float(i % 3) for i in range(400)]])
def test_from_dict_lays_the_bins_as_adding_each_weight_would(bins: list[float]) -> None:
    """`from_dict` fills a store in one list; the store is the one DDSketch's `add` per bin gives."""
    data = {"count": sum(bins), "sum": 1.0, "min": 0.5, "max": 9.0, "zero": 0.0, "key0": -3, "bins": bins}
    reference = DenseStore()
    for offset, weight in enumerate(bins):
        if weight:
            reference.add(-3 + offset, weight)
    store = LatencySketch.from_dict(data)._sketch._store  # noqa: SLF001
    assert (store.count, store.min_key, store.max_key) == (reference.count, reference.min_key, reference.max_key)
    assert [store.key_at_rank(r) for r in range(int(sum(bins)))] == [reference.key_at_rank(r)
                                                                    for r in range(int(sum(bins)))]
    back = LatencySketch.from_dict(data).to_dict()
    assert back["bins"] == bins[next(i for i, w in enumerate(bins) if w):len(bins) - next(
        i for i, w in enumerate(reversed(bins)) if w)]


def test_single_value() -> None:
    s = sketch_of([123.0])
    for q in (0.0, 0.5, 1.0):
        assert s.quantile(q) == pytest.approx(123.0, rel=0.01)
    assert (s.min, s.max, s.count) == (123.0, 123.0, 1)


def test_copy_is_independent() -> None:
    s = sketch_of([1.0, 2.0, 3.0])
    clone = s.copy()
    clone.add(1_000.0)
    assert (s.count, s.max) == (3, 3.0)
    assert (clone.count, clone.max) == (4, 1_000.0)


# -- the inlined hot path equals DDSketch's own add -------------------------------------------
def _state(sketch: DDSketch) -> str:
    """Everything a DDSketch knows, by key (not where its list of bins happens to start); as a
    repr, so NaN equals NaN and 1 differs from 1.0."""
    stores = []
    for store in (sketch._store, sketch._negative_store):
        by_key = {store.offset + i: count for i, count in enumerate(store.bins) if count}
        stores.append((by_key, store.count, store.min_key if store.count else None,
                       store.max_key if store.count else None))
    return repr((sketch._count, sketch._sum, sketch._min, sketch._max, sketch._zero_count, stores))


def _awkward_values(rng: random.Random) -> list[float]:
    """Lognormal latencies plus values on and next to bin boundaries, tiny and huge ones, ints."""
    mapping = LogarithmicMapping(RELATIVE_ACCURACY)
    values = [rng.lognormvariate(3.0, 2.0) for _ in range(5_000)]
    for key in range(-200, 1_500, 7):
        edge = mapping.value(key)
        values += [edge, math.nextafter(edge, 0.0), math.nextafter(edge, math.inf)]
    values += [1e-300, 2.5e-308, 1e300, 1, 7, 30_000, 0.001]
    rng.shuffle(values)
    return values


def test_add_equals_ddsketch_add_value_by_value() -> None:
    values = _awkward_values(random.Random(11)) + [0.0, -0.0, -3.5, 1e-320, -1e-320]  # zero and negative too
    mine, theirs = LatencySketch(), DDSketch(RELATIVE_ACCURACY)
    for value in values:
        mine.add(value)
        theirs.add(value)
    assert _state(mine._sketch) == _state(theirs)
    assert mine.quantile(0.0) == theirs.get_quantile_value(0.0)  # zero and negative values are counted
    for q in (0.01, 0.5, 0.95, 0.99, 1.0):
        assert mine.quantile(q) == theirs.get_quantile_value(q)


@pytest.mark.parametrize("seed", range(4))
def test_add_many_equals_add_value_by_value(seed: int) -> None:
    """In batches of any size, onto empty and filled sketches; batches with a zero, a negative
    or a NaN value take the value-by-value path."""
    rng = random.Random(seed)
    values = _awkward_values(rng)
    for odd in (0.0, -2.0, math.nan, 1e-310):
        values.insert(rng.randrange(len(values)), odd)
    batched, one_by_one = LatencySketch(), LatencySketch()
    start = 0
    while start < len(values):
        batch = values[start:start + rng.choice([1, 2, 5, 23, 115, 700])]
        batched.add_many(batch)
        for value in batch:
            one_by_one.add(value)
        assert _state(batched._sketch) == _state(one_by_one._sketch)
        start += len(batch)
    batched.add_many([])
    assert _state(batched._sketch) == _state(one_by_one._sketch)
    assert repr(batched.to_dict()) == repr(one_by_one.to_dict())  # the NaN made the sum NaN


def test_add_many_with_an_infinite_value_raises_as_add_does_after_the_values_before_it() -> None:
    batched, one_by_one = LatencySketch(), LatencySketch()
    batch = [5.0, 9.0, math.inf, 11.0]
    with pytest.raises(OverflowError):
        batched.add_many(batch)
    with pytest.raises(OverflowError):
        for value in batch:
            one_by_one.add(value)
    assert _state(batched._sketch) == _state(one_by_one._sketch)


@pytest.mark.parametrize(("low", "high"), [(0, 0), (5, 5), (-40, 90), (100, 227), (100, 228), (-900, 2_000)])
def test_a_first_batch_lays_out_the_bins_as_ddsketch_does(low: int, high: int) -> None:
    mine, theirs = DenseStore(), DenseStore()
    _open(mine, low, high)
    theirs._extend_range(low, high)
    assert (list(mine.bins), mine.offset, mine.min_key, mine.max_key) == (theirs.bins, theirs.offset,
                                                                          theirs.min_key, theirs.max_key)


@pytest.mark.parametrize("seed", range(6))
def test_the_array_store_lays_out_every_bin_as_ddsketchs_list_store(seed: int) -> None:
    """Keys that grow the range down, up and both ways, one by one and by merges either way:
    the array store holds the same bins at the same places as DenseStore, only in 8 bytes each."""
    rng = random.Random(seed)
    mine, theirs = _ArrayStore(), DenseStore()
    for _ in range(400):
        if rng.random() < 0.1:  # a merge of another store, of either kind
            other_mine, other_theirs = _ArrayStore(), DenseStore()
            for key in [rng.randint(-3_000, 3_000) for _ in range(rng.randint(1, 30))]:
                other_mine.add(key, 2.0)
                other_theirs.add(key, 2.0)
            mine.merge(other_mine if rng.random() < 0.5 else other_theirs)
            theirs.merge(other_theirs)
        else:
            key, weight = int(rng.gauss(0, 10 ** rng.randint(0, 3))), float(rng.randint(1, 3))
            mine.add(key, weight)
            theirs.add(key, weight)
        assert type(mine.bins) is array and list(mine.bins) == theirs.bins
        assert (mine.offset, mine.min_key, mine.max_key, mine.count) == (theirs.offset, theirs.min_key,
                                                                         theirs.max_key, theirs.count)
    copied = _ArrayStore()
    copied.copy(theirs)
    assert type(copied.bins) is array and list(copied.bins) == theirs.bins


def test_a_window_of_latencies_takes_under_8_kb() -> None:
    """Two sketches per window and endpoint: their bins are most of a long replay's fold."""
    rng = random.Random(5)
    sketches = []
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(50):
            sketch = LatencySketch()
            sketch.add_many([rng.lognormvariate(0.0, 0.8) for _ in range(5_000)])
            sketches.append(sketch)
        each = (tracemalloc.get_traced_memory()[0] - before) / len(sketches)
    finally:
        tracemalloc.stop()
    assert sketches[0].count == 5_000
    assert each < 8_000  # as DDSketch's list of floats: about 17,500 bytes


def test_sketches_merge_with_plain_ddsketches() -> None:
    values = _awkward_values(random.Random(3))
    mine, theirs = LatencySketch(), DDSketch(RELATIVE_ACCURACY)
    mine.add_many(values[:2_000])
    for value in values[2_000:]:
        theirs.add(value)
    whole = DDSketch(RELATIVE_ACCURACY)
    for value in values:
        whole.add(value)
    mine._sketch.merge(theirs)
    assert mine.count == len(values)
    assert mine.to_dict()["bins"] == LatencySketch.from_dict(mine.to_dict()).to_dict()["bins"]
    for q in QUANTILES:
        assert mine.quantile(q) == whole.get_quantile_value(q)
