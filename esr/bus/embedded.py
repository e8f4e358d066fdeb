"""`EmbeddedBus`: the design's topics inside one process.

Handlers subscribe to topic names (`runs`, `results`, `journeys`, `verdicts`, ...) or to
everything; `publish` calls them in subscription order, synchronously, so the run log and
the metric fold see every event in the same order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from esr.core.events import TOPIC_OF, Event, event_type

__all__ = ["EmbeddedBus", "topic_for"]


Handler = Callable[[Event], None]


def topic_for(event: Event, prefix: str = "esr.") -> str:
    return prefix + TOPIC_OF[event_type(event)]


class EmbeddedBus:
    def __init__(self, prefix: str = "esr.") -> None:
        self.prefix = prefix
        self._handlers: list[tuple[frozenset[str] | None, Handler]] = []

    def subscribe(self, handler: Handler, topics: Iterable[str] | None = None) -> None:
        wanted = None if topics is None else frozenset(self.prefix + t.removeprefix(self.prefix) for t in topics)
        self._handlers.append((wanted, handler))

    def publish(self, event: Event) -> None:
        topic = None
        for wanted, handler in self._handlers:
            if wanted is None:
                handler(event)
                continue
            topic = topic or topic_for(event, self.prefix)
            if topic in wanted:
                handler(event)
