"""Event transports: the embedded in-process bus (and, later, Kafka)."""

from esr.bus.embedded import EmbeddedBus, topic_for

__all__ = ["EmbeddedBus", "topic_for"]
