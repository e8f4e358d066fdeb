"""`OffsetTracker`: which consumed offsets may be committed, when work finishes out of order.

A worker reads messages in order but finishes them in any order (a tick is done when its
journeys have ended). Kafka commits one offset per partition, so the committable offset is
one past the longest run of finished messages from the start of what is pending.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from typing import Generic, TypeVar

__all__ = ["OffsetTracker"]

P = TypeVar("P", bound=Hashable)  # a partition: its number, or (topic, number)


class OffsetTracker(Generic[P]):
    def __init__(self) -> None:
        self._pending: dict[P, deque[int]] = {}  # partition -> offsets in order
        self._done: dict[P, set[int]] = {}
        self._committed: dict[P, int] = {}

    def add(self, partition: P, offset: int) -> None:
        self._pending.setdefault(partition, deque()).append(offset)

    def done(self, partition: P, offset: int) -> None:
        self._done.setdefault(partition, set()).add(offset)

    def forget(self, partition: P) -> None:
        """The partition went to another worker: it re-reads from the last commit."""
        self._pending.pop(partition, None)
        self._done.pop(partition, None)
        self._committed.pop(partition, None)

    def committable(self) -> dict[P, int]:
        """partition -> offset to commit (the next one to read), for partitions that advanced."""
        out = {}
        for partition, pending in self._pending.items():
            done = self._done.get(partition, set())
            last = None
            while pending and pending[0] in done:
                last = pending.popleft()
                done.discard(last)
            if last is not None:
                out[partition] = self._committed[partition] = last + 1
        return out

    def pending(self, partition: P) -> int:
        return len(self._pending.get(partition, ()))
