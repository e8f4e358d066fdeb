"""`LatencySketch`: a mergeable latency distribution with bounded relative error.

A thin wrapper around DDSketch (Datadog's sketch, from PyPI) at 0.5 % relative accuracy, so
every percentile is within 1 % of the exact value, and sketches of parts merge into the sketch
of the whole (buckets from many windows, partitions or workers). `to_dict`/`from_dict` give a
compact wire form for the metrics topic.

Bins are kept in an `array` of doubles (`_ArrayStore`, a DenseStore): 8 bytes a bin, where
DDSketch's list takes 8 plus a float object of 24 for every bin with a count. A fold holds two
sketches per window and endpoint, so this is most of a long replay's memory (a third of it, as
lists).

`add` and `add_many` are the fold's hot path, so they do DDSketch's own `add` inline (its
logarithmic key, then its dense store's bin) instead of through four method calls per value:
the same bins, counts, sum, min and max as `DDSketch.add` value by value (pinned by
tests/unit/test_sketch.py). Zero and negative values, and a key outside the store's range
(`add`), go through DDSketch's own code.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from functools import reduce
from math import ceil, log
from operator import add
from typing import Any

from ddsketch import DDSketch
from ddsketch.ddsketch import BaseDDSketch
from ddsketch.mapping import LogarithmicMapping
from ddsketch.store import DenseStore

__all__ = ["LatencySketch", "RELATIVE_ACCURACY"]

RELATIVE_ACCURACY = 0.005

_MAPPING = LogarithmicMapping(RELATIVE_ACCURACY)  # DDSketch(RELATIVE_ACCURACY)'s own mapping
_MULTIPLIER = _MAPPING._multiplier  # noqa: SLF001
_MIN_POSITIVE = _MAPPING.min_possible  # smaller values count as zero
_LN2 = log(2)  # math.log(v, 2) is log(v) / log(2), bit for bit: LogarithmicMapping.key is
# int(ceil(log(v, 2) * multiplier) + offset) with offset 0.0, so ceil(log(v) / _LN2 * _MULTIPLIER)


def _zeros(n: int) -> array[float]:
    return array("d", bytes(8 * n))


class _ArrayStore(DenseStore):
    """DDSketch's DenseStore with its bins in an array of doubles: the same keys, counts and
    layout (its methods index and extend `bins` alike); only where the list made new lists, an
    array is made."""

    bins: array[float]  # type: ignore[assignment]  # DenseStore says a list; it only indexes and extends it

    def __init__(self) -> None:
        super().__init__()
        self.bins = _zeros(0)

    def copy(self, store: DenseStore) -> None:
        super().copy(store)
        self.bins = array("d", store.bins)

    def _extend_range(self, key: int, second_key: int | None = None) -> None:
        if not self.bins:  # DenseStore's first layout is a list of zeros: the same, as an array
            keys = (key,) if second_key is None else (key, second_key)
            low, high = min(*keys, self.min_key), max(*keys, self.max_key)
            self.bins = _zeros(self._get_new_length(low, high))
            self.offset = low
            self._adjust(low, high)
            return
        super()._extend_range(key, second_key)

    def _shift_bins(self, shift: int) -> None:
        if shift > 0:
            self.bins = _zeros(shift) + self.bins[:-shift]
        else:
            self.bins = self.bins[-shift:] + _zeros(-shift)
        self.offset -= shift


class LatencySketch:
    __slots__ = ("_sketch",)

    def __init__(self) -> None:
        # DDSketch(RELATIVE_ACCURACY), with the one (immutable) mapping for all: a fold makes
        # two sketches per window and endpoint, so a mapping each is half their set-up time
        self._sketch = sketch = DDSketch.__new__(DDSketch)
        BaseDDSketch.__init__(sketch, _MAPPING, _ArrayStore(), _ArrayStore(), 0.0)

    def add(self, value: float) -> None:
        """`DDSketch.add(value)` in one frame instead of five."""
        s = self._sketch
        if value > _MIN_POSITIVE:
            key = ceil(log(value) / _LN2 * _MULTIPLIER)
            store = s._store  # noqa: SLF001
            if store.min_key <= key <= store.max_key:
                store.bins[key - store.offset] += 1.0
                store.count += 1.0
            else:
                store.add(key, 1.0)  # grows the bins the way DDSketch does
            s._count += 1.0  # noqa: SLF001
            s._sum += value  # noqa: SLF001
            if value < s._min:  # noqa: SLF001
                s._min = value  # noqa: SLF001
            if value > s._max:  # noqa: SLF001
                s._max = value  # noqa: SLF001
        else:
            s.add(value)

    def add_many(self, values: Sequence[float]) -> None:
        """`add` for each value in order (RunFold.apply_all adds a bucket's results at once).

        The store's range grows once, to the batch's lowest and highest key, rather than value by
        value: the same bins by key (only where the list of bins starts in memory may differ,
        which nothing reads). A batch with anything but positive finite values goes value by
        value."""
        if not values:
            return
        s = self._sketch
        smallest, largest = min(values), max(values)
        try:
            if not smallest > _MIN_POSITIVE:
                raise ValueError("zero, negative or subnormal")
            keys = [ceil(log(value) / _LN2 * _MULTIPLIER) for value in values]  # NaN, inf: raise
        except (ValueError, OverflowError):
            for value in values:
                self.add(value)
            return
        store = s._store  # noqa: SLF001
        low, high = min(keys), max(keys)
        if not store.bins:
            _open(store, low, high)
        elif low < store.min_key or high > store.max_key:
            store._extend_range(low, high)  # noqa: SLF001
        bins, offset = store.bins, store.offset
        for key in keys:
            bins[key - offset] += 1.0
        n = float(len(keys))
        store.count += n
        s._count += n  # noqa: SLF001
        s._sum = reduce(add, values, s._sum)  # noqa: SLF001  (left to right, as value by value)
        if smallest < s._min:  # noqa: SLF001
            s._min = smallest  # noqa: SLF001
        if largest > s._max:  # noqa: SLF001
            s._max = largest  # noqa: SLF001

    @property
    def count(self) -> int:
        return int(self._sketch.count)

    @property
    def sum(self) -> float:
        return float(self._sketch.sum)

    @property
    def min(self) -> float | None:
        return self._sketch._min if self.count else None  # noqa: SLF001

    @property
    def max(self) -> float | None:
        return self._sketch._max if self.count else None  # noqa: SLF001

    def quantile(self, q: float) -> float | None:
        """The value at quantile `q` (0..1), or None when the sketch is empty."""
        if not self.count:
            return None
        value = self._sketch.get_quantile_value(q)
        return None if value is None else float(value)

    def merge(self, other: LatencySketch) -> None:
        if other.count:
            self._sketch.merge(other._sketch)

    def copy(self) -> LatencySketch:
        clone = LatencySketch()
        clone.merge(self)
        return clone

    def to_dict(self) -> dict[str, Any]:
        """The wire form; "negative" (the bins of values below zero: a request answered before
        its intended send time) only when there are any."""
        s = self._sketch
        store: DenseStore = s._store  # noqa: SLF001
        data = {
            "count": s.count,
            "sum": s.sum,
            "min": s._min if s.count else None,  # noqa: SLF001
            "max": s._max if s.count else None,  # noqa: SLF001
            "zero": s._zero_count,  # noqa: SLF001
            "key0": store.min_key if store.count else 0,
            "bins": _bins(store),
        }
        negative: DenseStore = s._negative_store  # noqa: SLF001
        if negative.count:
            data["negative"] = {"key0": negative.min_key, "bins": _bins(negative)}
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LatencySketch:
        sketch = cls()
        s = sketch._sketch
        if not data["count"]:
            return sketch
        _fill(s._store, data["key0"], data["bins"])  # noqa: SLF001
        negative = data.get("negative")
        if negative:
            _fill(s._negative_store, negative["key0"], negative["bins"])  # noqa: SLF001
        s._zero_count = data["zero"]  # noqa: SLF001
        s._count, s._sum = float(data["count"]), float(data["sum"])  # noqa: SLF001
        s._min, s._max = data["min"], data["max"]  # noqa: SLF001
        return sketch


def _bins(store: DenseStore) -> list[float]:
    """A store's bins from its lowest key to its highest."""
    if not store.count:
        return []
    return list(store.bins[store.min_key - store.offset : store.max_key - store.offset + 1])


def _fill(store: DenseStore, key0: int, bins: list[float]) -> None:
    """An empty store given the bins from `key0` on, in one list (a bin at a time, DenseStore
    grows its range per key: a table's whole window, read back, spends its time there). The
    store ends as adding each weight would leave it: the same keys, counts and key range."""
    first = next((i for i, weight in enumerate(bins) if weight), None)
    if first is None:
        return
    last = len(bins) - next(i for i, weight in enumerate(reversed(bins)) if weight) - 1
    low, high = key0 + first, key0 + last
    _open(store, low, high)
    start = low - store.offset
    weights = [float(w) for w in bins[first:last + 1]]
    store.bins[start:start + len(weights)] = array("d", weights)
    store.count += sum(weights)


def _open(store: DenseStore, low: int, high: int) -> None:
    """What `store._extend_range(low, high)` does to a store with no bins yet (the first batch
    of every window's sketch), in one list instead of four: zeroed bins, a whole number of
    chunks, centred on the range."""
    length = store._get_new_length(low, high)  # noqa: SLF001
    store.bins = _zeros(length)  # type: ignore[assignment]  # an _ArrayStore's (the tests' DenseStore's too)
    store.offset = low + (high - low + 1) // 2 - length // 2
    store.min_key, store.max_key = low, high
