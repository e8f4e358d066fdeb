"""How a replay's tick is cut into parts on the requests topic, so every message is bounded.

At a high warp one tick can hold a whole log (a year at `--warp 1e9`): one message per shard
and tick would hold all of it in the producer's memory and go over the broker's message size
(1 MB by default). Instead each shard's requests of a tick leave in parts of at most
`PART_MAX_REQUESTS` requests and `PART_MAX_BYTES` bytes, the tick's envelope included; parts
are numbered from 0 and every one but the last says `more`. A shard with no request in a tick
still gets its one (empty, last) part. A single request bigger than the bound on its own
travels alone in its part. Pure: no I/O.
"""

from __future__ import annotations

__all__ = ["PART_MAX_BYTES", "PART_MAX_REQUESTS", "PartCutter"]

PART_MAX_BYTES = 256 * 1024  # a part's message, envelope included: well under Kafka's default 1 MB
PART_MAX_REQUESTS = 2000  # a part's requests, whatever their size: what a bot decodes at once


class PartCutter:
    """One shard's encoded requests of the tick being published, gathered into parts of at most
    `max_requests` requests whose encodings (and the commas between them) take at most
    `budget` bytes: the bound less the tick's envelope."""

    def __init__(self, budget: int, max_requests: int = PART_MAX_REQUESTS) -> None:
        self.budget = budget
        self.max_requests = max(1, max_requests)
        self._part: list[bytes] = []
        self._size = 0

    def add(self, encoded: bytes) -> list[bytes] | None:
        """Take one request; returns the part it could not join (full), to be sent with
        `more=True`, or None."""
        cost = len(encoded) + 1
        full = None
        if self._part and (self._size + cost > self.budget or len(self._part) >= self.max_requests):
            full, self._part, self._size = self._part, [], 0
        self._part.append(encoded)
        self._size += cost
        return full

    def rest(self) -> list[bytes]:
        """The tick's last part (perhaps empty); the cutter starts the next tick empty."""
        part, self._part, self._size = self._part, [], 0
        return part
