"""Which messages of a partition a fold may take: each offset in order, from where the consumer
group's committed position says reading must resume.

A fold drops a message at or below the last offset it folded from that partition as one read
again. That is right only if every message before it was folded, in order. Faust can break
this around a rebalance: a fresh worker's first assignment is not suspended (Faust suspends
only a non-empty one), so the fetcher hands over messages from wherever its positions stand
before Faust seeks to the committed offsets, and a stream skips those of a generation it does
not know yet. A fold then took offset 119 of a partition whose offsets 40-118 came only after
the seek, and dropped them all as read before: the run's verdict missed them.

So, after each rebalance, the worker seeks every partition it folds to where reading resumes
(its committed offset, or its first one if none was committed: Faust's own seek leaves such a
partition where it stood), and the gate lets a message through only if it is the next one
expected or an earlier one (read again after a seek: the fold drops what it has). A message
ahead of the next expected one is held back: not folded, not acknowledged, so the seek brings
it again in order. If the missing offsets never come (deleted from the log), `overdue` names
the partition after `hole_s`, to be read on from the first message held back.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

__all__ = ["HOLE_S", "DeliveryGate"]

HOLE_S = 30.0  # how long missing offsets may keep a partition's later messages waiting


class DeliveryGate:
    def __init__(self, hole_s: float = HOLE_S) -> None:
        self.hole_s = hole_s
        self.generation: int | None = None  # the consumer generation `reset` was told of
        self.expected: dict[Hashable, int] = {}  # partition -> the next offset to take
        self._held: dict[Hashable, tuple[int, float]] = {}  # partition -> first offset held back, since when

    def reset(self, generation: int, starts: Mapping[Hashable, int]) -> None:
        """A rebalance completed: reading resumes at `starts`."""
        self.generation = generation
        self.expected = dict(starts)
        self._held.clear()

    def admit(self, partition: Hashable, offset: int, generation: int | None, now: float) -> bool:
        """Whether to fold the message; if not, it is held back (not acknowledged)."""
        if generation is None or generation != self.generation:
            return False  # read before this worker knew where its assignment resumes
        want = self.expected.get(partition)
        if want is None or offset <= want:
            self.expected[partition] = offset + 1
            self._held.pop(partition, None)
            return True
        self._held.setdefault(partition, (offset, now))
        return False

    def overdue(self, now: float) -> dict[Hashable, int]:
        """Partitions whose missing offsets have not come for `hole_s`: read each on from the
        first message held back (the gate expects it next)."""
        due = {partition: first for partition, (first, since) in self._held.items() if now - since >= self.hole_s}
        for partition, first in due.items():
            self.expected[partition] = first
            del self._held[partition]
        return due
