"""`LatencySketch`: a mergeable latency distribution with bounded relative error.

A thin wrapper around DDSketch (Datadog's sketch, from PyPI) at 0.5 % relative accuracy, so
every percentile is within 1 % of the exact value, and sketches of parts merge into the sketch
of the whole (buckets from many windows, partitions or workers). `to_dict`/`from_dict` give a
compact wire form for the metrics topic.
"""

from __future__ import annotations

from typing import Any

from ddsketch import DDSketch
from ddsketch.store import DenseStore

__all__ = ["LatencySketch", "RELATIVE_ACCURACY"]

RELATIVE_ACCURACY = 0.005


class LatencySketch:
    __slots__ = ("_sketch", "add")

    def __init__(self) -> None:
        self._sketch = DDSketch(relative_accuracy=RELATIVE_ACCURACY)
        self.add = self._sketch.add  # the hot path: no extra frame per value

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
        s = self._sketch
        store: DenseStore = s._store  # noqa: SLF001
        bins = store.bins[store.min_key - store.offset : store.max_key - store.offset + 1] if store.count else []
        return {
            "count": s.count,
            "sum": s.sum,
            "min": s._min if s.count else None,  # noqa: SLF001
            "max": s._max if s.count else None,  # noqa: SLF001
            "zero": s._zero_count,  # noqa: SLF001
            "key0": store.min_key if store.count else 0,
            "bins": bins,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LatencySketch:
        sketch = cls()
        s = sketch._sketch
        if not data["count"]:
            return sketch
        for offset, weight in enumerate(data["bins"]):
            if weight:
                s._store.add(data["key0"] + offset, weight)  # noqa: SLF001
        s._zero_count = data["zero"]  # noqa: SLF001
        s._count, s._sum = float(data["count"]), float(data["sum"])  # noqa: SLF001
        s._min, s._max = data["min"], data["max"]  # noqa: SLF001
        return sketch
