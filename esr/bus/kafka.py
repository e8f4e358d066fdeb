"""The Kafka transport: topics, producers, consumers and the messages that cross them.

Every message is JSON (the run log's encoding, so a consumer nobody here wrote can read it)
with headers `sim=true`, `type` and `run_id`. Producers are idempotent with `acks=all`, so a
broker restart makes them retry rather than lose or repeat a message.

Two message shapes besides plain events:

- `Tick` (esr.core.ticks): the clock producer's "simulated time [sim_from, sim_to) is due" for one
  bot shard, carrying the run's `RunStarted`.
- `EventBatch` (esr.stream_apps.assembly): the events one bot shard produced for the journeys of one tick,
  batched per topic (a message per event would cap the pipeline at the stream app's
  per-message cost, about 17k messages/s for Faust on two cores).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Union

import msgspec

from esr.core.errors import EsrError
from esr.core.events import EVENT_TYPES, TOPIC_OF, Event, EventBatch, event_type
from esr.core.ticks import Tick

if TYPE_CHECKING:
    from esr.settings import Settings

__all__ = [
    "TOPICS",
    "EventBatch",
    "KafkaError",
    "KafkaSettings",
    "Tick",
    "decode_batch",
    "decode_event",
    "decode_tick",
    "encode",
    "ensure_topics",
    "headers",
    "make_consumer",
    "make_producer",
    "shard_key",
    "topic_of",
    "topic_partitions",
]

# topic -> what it carries (DESIGN.md section 2); every name gets the prefix, "esr." by default
TOPICS = ("runs", "ticks", "requests", "results", "journeys", "faults", "metrics", "decisions", "verdicts")


class KafkaError(EsrError):
    """The broker could not be reached or refused an operation."""


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    """Where the broker is and how the topics are laid out (`ESR_KAFKA`, `ESR_KAFKA_PREFIX`,
    `ESR_KAFKA_PARTITIONS`). `partitions` is also the number of bot shards of a run."""

    bootstrap: str
    prefix: str = "esr."
    partitions: int = 4
    client_overrides: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> KafkaSettings:
        if not settings.kafka:
            raise KafkaError("no Kafka broker given: pass --kafka HOST:PORT or set ESR_KAFKA")
        return cls(settings.kafka, settings.kafka_prefix, settings.kafka_partitions)

    def topic(self, name: str) -> str:
        return self.prefix + name

    def group(self, role: str) -> str:
        """Consumer group (and Faust app id) of a worker role, e.g. "esr.bots": runs under
        another prefix are another pipeline, with groups of their own."""
        return self.prefix + role

    def with_prefix(self, prefix: str) -> KafkaSettings:
        return replace(self, prefix=prefix)


# -- messages ---------------------------------------------------------------------------------
_encoder = msgspec.json.Encoder()
_tick_decoder = msgspec.json.Decoder(Tick)
_batch_decoder = msgspec.json.Decoder(EventBatch)
_event_decoder = msgspec.json.Decoder(Union[tuple(EVENT_TYPES.values())])  # noqa: UP007


def encode(message: msgspec.Struct) -> bytes:
    return _encoder.encode(message)


def decode_tick(data: bytes) -> Tick:
    return _tick_decoder.decode(data)


def decode_batch(data: bytes) -> EventBatch:
    return _batch_decoder.decode(data)


def decode_event(data: bytes) -> Event:
    return _event_decoder.decode(data)


def topic_of(event: Event, settings: KafkaSettings) -> str:
    return settings.topic(TOPIC_OF[event_type(event)])


def shard_key(run_id: str, shard: int) -> bytes:
    """Key of a shard's ticks and batches: one shard's messages stay in order on one partition."""
    return f"{run_id}|{shard}".encode()


def headers(kind: str, run_id: str) -> list[tuple[str, bytes]]:
    """The sim tag every message carries, so auditors and consumers can filter simulated traffic."""
    return [("sim", b"true"), ("type", kind.encode()), ("run_id", run_id.encode())]


# -- clients ----------------------------------------------------------------------------------
def _common(settings: KafkaSettings) -> dict[str, Any]:
    return {"bootstrap.servers": settings.bootstrap, "client.id": "esr", **settings.client_overrides}


def make_producer(settings: KafkaSettings, **overrides: Any) -> Any:
    """An idempotent producer (acks=all, retries until `message.timeout.ms`, default 2 minutes)."""
    from confluent_kafka import Producer

    return Producer({
        **_common(settings),
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "compression.type": "lz4",
        "message.timeout.ms": 120_000,
        **overrides,
    })


def make_consumer(settings: KafkaSettings, group: str | None, **overrides: Any) -> Any:
    """A consumer that commits only when told (`enable.auto.commit=false`)."""
    from confluent_kafka import Consumer

    config = {
        **_common(settings),
        "group.id": group or "esr-reader",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        **overrides,
    }
    return Consumer(config)


def ensure_topics(settings: KafkaSettings, timeout: float = 30.0) -> None:
    """Create the design's topics (with `settings.partitions` each) if they do not exist."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(_common(settings))
    try:
        existing = set(admin.list_topics(timeout=timeout).topics)
    except KafkaException as exc:
        raise KafkaError(f"cannot reach the Kafka broker at {settings.bootstrap}: {exc}") from None
    wanted = [NewTopic(settings.topic(t), settings.partitions, 1) for t in TOPICS if settings.topic(t) not in existing]
    if not wanted:
        return
    for topic, future in admin.create_topics(wanted, operation_timeout=timeout).items():
        try:
            future.result(timeout)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise KafkaError(f"cannot create topic {topic}: {exc}") from None


def topic_partitions(settings: KafkaSettings, name: str, timeout: float = 10.0) -> int:
    """How many partitions a topic has (the shard count of runs on this broker)."""
    from confluent_kafka.admin import AdminClient

    meta = AdminClient(_common(settings)).list_topics(settings.topic(name), timeout=timeout)
    topic = meta.topics.get(settings.topic(name))
    if topic is None or topic.error is not None or not topic.partitions:
        raise KafkaError(f"topic {settings.topic(name)} does not exist on {settings.bootstrap}")
    return len(topic.partitions)
