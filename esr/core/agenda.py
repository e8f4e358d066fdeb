"""`Agenda`: timed entries in a heap, and which of them are due at a time passed in.

SimPy's event queue in miniature: no clock reads, no I/O. The engine keeps every waiting
journey here (a poll due in an hour is one heap entry of a few dozen bytes, not a task and not
a connection) and arms one event-loop timer for the earliest entry.
"""

from __future__ import annotations

import heapq
import itertools
from typing import Generic, TypeVar

__all__ = ["Agenda"]

T = TypeVar("T")


class Agenda(Generic[T]):
    """Entries due at a time; equal times come out in the order they were added."""

    __slots__ = ("_heap", "_order")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, T]] = []
        self._order = itertools.count()

    def add(self, at: float, item: T) -> None:
        heapq.heappush(self._heap, (at, next(self._order), item))

    @property
    def next_at(self) -> float | None:
        """When the earliest entry is due, or None when the agenda is empty."""
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float) -> list[tuple[float, T]]:
        """Remove and return every entry due at or before `now`, earliest first, with its time."""
        heap, due = self._heap, []
        while heap and heap[0][0] <= now:
            at, _, item = heapq.heappop(heap)
            due.append((at, item))
        return due

    def clear(self) -> list[T]:
        """Remove every entry; returns their items, earliest first."""
        items = [item for _, _, item in sorted(self._heap)]
        self._heap.clear()
        return items

    def __len__(self) -> int:
        return len(self._heap)
