"""The endpoint cap: at most N endpoint labels tracked one by one, the rest in one "other" label.

A replay of a log with a million distinct paths must not keep a million rows. `EndpointCap`
chooses the labels kept without knowing the future, with two Space-Saving summaries (Metwally,
Agrawal and El Abbadi, 2005): the N/2 heaviest labels by errors, and by requests the heaviest
that fit in the rest (N while there are no errors, never fewer than N/2); a label in either is
tracked. Space-Saving admits every new label, evicting the one with the
smallest count, and the newcomer inherits that count as its possible overestimate (`error`): a
label seen more than total/capacity times is never evicted. When a label leaves both summaries,
its data is merged into "other" by whoever keeps data (the fold's buckets, the replay's
comparison), so totals stay exact. `DistinctCount` counts the labels "other" holds: exactly up to
4,096 labels, then by HyperLogLog (4,096 registers, about 1.6 % standard error).

Pure: no clock, no I/O; the same events give the same tracked labels, so `esr judge` re-folds a
replay's log to the same rows.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from hashlib import blake2b
from math import log
from typing import Any

__all__ = ["OTHER", "DistinctCount", "EndpointCap", "SpaceSaving"]

OTHER = "other"  # the label of every endpoint not tracked individually
_REBUILD = 4  # the lazy heap is rebuilt when it holds this many entries per counter


class SpaceSaving:
    """The `capacity` heaviest keys of a stream, with counts that overestimate by at most `error`.

    The key with the smallest count is found in a lazy min-heap of (count, update order, key):
    stale entries are skipped when popped and the heap is rebuilt when it grows past a few
    entries per counter, so an update costs O(log capacity). Ties evict the key updated longest
    ago, so the result depends on the stream only."""

    __slots__ = ("_entries", "_heap", "_tick", "capacity")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"a Space-Saving summary needs at least one counter, not {capacity}")
        self.capacity = capacity
        self._entries: dict[str, list[int]] = {}  # key -> [count, error, tick of its last update]
        self._heap: list[tuple[int, int, str]] = []
        self._tick = 0

    def add(self, key: str, weight: int = 1) -> str | None:
        """Count `key` `weight` times (weighted Space-Saving: a fold merged from partial folds
        adds a label's whole count at once); returns the key evicted to make room for it, if any."""
        self._tick += 1
        entry = self._entries.get(key)
        evicted = None
        if entry is not None:
            entry[0] += weight
            entry[2] = self._tick
        elif len(self._entries) < self.capacity:
            entry = self._entries[key] = [weight, 0, self._tick]
        else:
            evicted, floor = self._pop_min()
            entry = self._entries[key] = [floor + weight, floor, self._tick]
        heapq.heappush(self._heap, (entry[0], entry[2], key))
        if len(self._heap) > _REBUILD * self.capacity + 16:
            self._heap = [(c, t, k) for k, (c, _, t) in self._entries.items()]
            heapq.heapify(self._heap)
        return evicted

    def shrink(self, capacity: int) -> list[str]:
        """Lower the capacity (at least 1), evicting the lightest keys beyond it."""
        self.capacity = max(1, capacity)
        return [self._pop_min()[0] for _ in range(len(self._entries) - self.capacity)]

    def _pop_min(self) -> tuple[str, int]:
        heap, entries = self._heap, self._entries
        while True:
            count, tick, key = heapq.heappop(heap)
            entry = entries.get(key)
            if entry is not None and entry[2] == tick:
                del entries[key]
                return key, count

    def to_state(self) -> list[Any]:
        """Plain data `from_state` rebuilds it from (a stream app keeps it in a table)."""
        return [self.capacity, self._tick, [[k, *entry] for k, entry in self._entries.items()]]

    @classmethod
    def from_state(cls, state: list[Any]) -> SpaceSaving:
        capacity, tick, entries = state
        summary = cls(capacity)
        summary._tick = tick
        summary._entries = {k: [count, error, at] for k, count, error, at in entries}
        summary._heap = [(c, t, k) for k, (c, _, t) in summary._entries.items()]
        heapq.heapify(summary._heap)
        return summary

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def keys(self) -> Iterator[str]:
        return iter(self._entries)

    def count(self, key: str) -> int:
        """The key's count (0 when not kept): at least its true count since it was admitted."""
        entry = self._entries.get(key)
        return entry[0] if entry is not None else 0

    def error(self, key: str) -> int:
        """How much of `count(key)` may be another key's: its requests seen before it was last
        admitted, at most (0: counted exactly since the stream began)."""
        entry = self._entries.get(key)
        return entry[1] if entry is not None else 0


class DistinctCount:
    """How many distinct strings were added: exact up to `exact_up_to`, then a HyperLogLog
    estimate (2**12 registers), so memory stays a few kilobytes whatever comes."""

    __slots__ = ("_exact", "_exact_up_to", "_registers")

    P = 12
    M = 1 << P

    def __init__(self, exact_up_to: int = 4096) -> None:
        self._exact_up_to = exact_up_to
        self._exact: set[str] | None = set()
        self._registers = bytearray(self.M)

    def add(self, item: str) -> None:
        if self._exact is not None:
            self._exact.add(item)
            if len(self._exact) <= self._exact_up_to:
                return
            items, self._exact = self._exact, None
            for one in items:
                self._register(one)
            return
        self._register(item)

    def _register(self, item: str) -> None:
        h = int.from_bytes(blake2b(item.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big")
        index = h >> (64 - self.P)
        rest = h & ((1 << (64 - self.P)) - 1)
        rank = (64 - self.P) - rest.bit_length() + 1
        if rank > self._registers[index]:
            self._registers[index] = rank

    def merge(self, other: DistinctCount) -> None:
        """Count `other`'s strings too (a union: strings in both count once)."""
        if other._exact is not None:
            for item in other._exact:
                self.add(item)
            return
        if self._exact is not None:
            items, self._exact = self._exact, None
            for one in items:
                self._register(one)
        self._registers = bytearray(map(max, self._registers, other._registers))

    def to_state(self) -> dict[str, Any]:
        if self._exact is not None:
            return {"exact_up_to": self._exact_up_to, "exact": sorted(self._exact)}
        return {"exact_up_to": self._exact_up_to, "registers": self._registers.hex()}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> DistinctCount:
        count = cls(state["exact_up_to"])
        if "exact" in state:
            count._exact = set(state["exact"])
        else:
            count._exact, count._registers = None, bytearray.fromhex(state["registers"])
        return count

    @property
    def estimated(self) -> bool:
        return self._exact is None

    @property
    def count(self) -> int:
        if self._exact is not None:
            return len(self._exact)
        m = self.M
        alpha = 0.7213 / (1 + 1.079 / m)
        estimate = alpha * m * m / sum(2.0 ** -r for r in self._registers)
        zeros = self._registers.count(0)
        if estimate <= 2.5 * m and zeros:
            estimate = m * log(m / zeros)  # linear counting for small cardinalities
        return round(estimate)


class EndpointCap:
    """Which endpoint labels are tracked one by one (at most `top`: up to half the heaviest by
    errors, the rest the heaviest by requests), and how many distinct labels went to "other"."""

    __slots__ = ("by_errors", "by_requests", "on_untracked", "other", "top")

    def __init__(self, top: int) -> None:
        if top < 1:
            raise ValueError(f"the endpoint cap must keep at least one endpoint, not {top}")
        self.top = top
        # the requests summary has the counters the errors summary does not use: all N until
        # errors come, never fewer than N/2; together they track at most N labels
        self.by_requests = SpaceSaving(top)
        self.by_errors = SpaceSaving(top // 2) if top >= 2 else None
        self.other = DistinctCount()  # labels whose requests are (at least partly) in "other"
        self.on_untracked: list[Callable[[str], None]] = []  # told of each label that leaves, after `see`'s caller

    def see(self, label: str, error: bool) -> list[str]:
        """Count one request to `label` (tracked afterwards); returns the labels no longer tracked,
        whose data the caller merges into "other"."""
        return self.see_many(label, 1, 1 if error else 0)

    def see_many(self, label: str, requests: int, errors: int) -> list[str]:
        """`see` for `requests` requests to `label`, `errors` of them errors, at once (a partial
        fold's bucket merged into a capped one)."""
        gone = []
        if errors and self.by_errors is not None:
            evicted = self.by_errors.add(label, errors)
            if evicted is not None:
                gone.append(evicted)
            room = self.top - len(self.by_errors)
            if room < self.by_requests.capacity:
                gone.extend(self.by_requests.shrink(room))
        evicted = self.by_requests.add(label, max(1, requests))
        if evicted is not None:
            gone.append(evicted)
        out = [g for g in gone if not self.tracked(g)]
        for g in out:
            self.other.add(g)
            for listener in self.on_untracked:
                listener(g)
        return out

    def tracked(self, label: str) -> bool:
        return label in self.by_requests or (self.by_errors is not None and label in self.by_errors)

    def labels(self) -> set[str]:
        kept = set(self.by_requests.keys())
        if self.by_errors is not None:
            kept.update(self.by_errors.keys())
        return kept

    def in_other_at_most(self, label: str) -> int:
        """Requests of a tracked label that may have been counted in "other" before it was last
        admitted (Space-Saving's overestimate; 0 when it was tracked from its first request)."""
        return self.by_requests.error(label)

    def to_state(self) -> dict[str, Any]:
        """Plain data `from_state` rebuilds it from (listeners are not part of it)."""
        return {"top": self.top, "by_requests": self.by_requests.to_state(),
                "by_errors": self.by_errors.to_state() if self.by_errors is not None else None,
                "other": self.other.to_state()}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> EndpointCap:
        cap = cls(state["top"])
        cap.by_requests = SpaceSaving.from_state(state["by_requests"])
        if state["by_errors"] is not None:
            cap.by_errors = SpaceSaving.from_state(state["by_errors"])
        cap.other = DistinctCount.from_state(state["other"])
        return cap

    def to_dict(self) -> dict[str, object]:
        return {"top": self.top, "tracked": len(self.labels()), "other_labels": self.other.count,
                "other_labels_estimated": self.other.estimated}
