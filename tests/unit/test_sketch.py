"""esr.core.sketch.LatencySketch: percentiles within 1 % of the exact order statistic, exact merges."""

from __future__ import annotations

import random
from itertools import pairwise

import orjson
import pytest

from esr.core.sketch import RELATIVE_ACCURACY, LatencySketch

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
