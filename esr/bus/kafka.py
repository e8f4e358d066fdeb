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

import random
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Union

import msgspec

from esr.bus.client_config import ClientConfig, read_client_config
from esr.core.errors import EsrError
from esr.core.events import EVENT_TYPES, TOPIC_OF, Event, EventBatch, event_type
from esr.core.ticks import Tick

if TYPE_CHECKING:
    from esr.settings import Settings

__all__ = [
    "MAX_MESSAGE_BYTES",
    "TOPICS",
    "EventBatch",
    "KafkaError",
    "KafkaSettings",
    "PartitionCounts",
    "Tick",
    "TopicChanges",
    "check_replication",
    "decode_batch",
    "decode_event",
    "decode_tick",
    "encode",
    "consistent_partitioner",
    "ensure_topics",
    "group_members",
    "headers",
    "make_consumer",
    "make_producer",
    "run_partition",
    "shard_key",
    "topic_of",
    "topic_changes",
    "topic_partitions",
]

# topic -> what it carries (DESIGN.md section 2); every name gets the prefix, "esr." by default.
# "partials" is the metrics workers' own: each partition's folded changes, keyed by run id, for
# the worker that owns the run (docs/kafka.md)
TOPICS = ("runs", "ticks", "requests", "results", "journeys", "faults", "metrics", "decisions", "verdicts",
          "partials")
# the largest message a topic ESR creates takes: a metrics worker's stored change can hold up to
# --top-endpoints rows of a replay (about 0.5-7 KB each) besides its windows and ticks
MAX_MESSAGE_BYTES = 16 * 1024 * 1024


class KafkaError(EsrError):
    """The broker could not be reached or refused an operation."""


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    """Where the broker is, how the topics are laid out and how clients log in (`ESR_KAFKA`,
    `ESR_KAFKA_PREFIX`, `ESR_KAFKA_PARTITIONS`, `ESR_KAFKA_CONFIG`, `ESR_KAFKA_REPLICATION`,
    `ESR_KAFKA_MIN_ISR`). `partitions` is also the number of bot shards of a run;
    `client_config` goes into every client ESR makes; `replication` and `min_isr` apply to the
    topics ESR creates and to the metrics app's changelogs, so that a broker lost keeps every
    acknowledged message (replication 3, min ISR 2 on a cluster of 3)."""

    bootstrap: str
    prefix: str = "esr."
    partitions: int = 4
    client_overrides: dict[str, Any] = field(default_factory=dict)
    client_config: ClientConfig | None = None
    replication: int = 1
    min_isr: int = 1

    @classmethod
    def from_settings(cls, settings: Settings) -> KafkaSettings:
        if not settings.kafka:
            raise KafkaError("no Kafka broker given: pass --kafka HOST:PORT or set ESR_KAFKA")
        config = read_client_config(settings.kafka_config) if settings.kafka_config else None
        return cls(settings.kafka, settings.kafka_prefix, settings.kafka_partitions, client_config=config,
                   replication=settings.kafka_replication, min_isr=settings.kafka_min_isr)

    @property
    def topic_config(self) -> dict[str, str]:
        """The configuration of every topic ESR (or Faust, for its changelogs) creates: messages
        up to `MAX_MESSAGE_BYTES`, for the metrics workers' state (a replay's endpoint rows)."""
        return {"min.insync.replicas": str(self.min_isr), "max.message.bytes": str(MAX_MESSAGE_BYTES)}

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


def run_partition(key: bytes, partitions: int) -> int:
    """The partition of a message keyed `key` on a topic of `partitions` partitions, as ESR's
    confluent-kafka producers place it (librdkafka's default partitioner, "consistent_random":
    CRC-32 of the key modulo the partition count). The metrics workers place what they send
    the same way, so a run's messages on every topic of equal partition count share one
    partition number, which Faust gives to one worker."""
    return zlib.crc32(key) % partitions


def consistent_partitioner(key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
    """`run_partition` as an aiokafka (Faust) partitioner; a message without a key goes to any
    available partition."""
    if key is None:
        return random.choice(available or all_partitions)
    ordered = sorted(all_partitions)
    return ordered[run_partition(key, len(ordered))]


def headers(kind: str, run_id: str) -> list[tuple[str, bytes]]:
    """The sim tag every message carries, so auditors and consumers can filter simulated traffic."""
    return [("sim", b"true"), ("type", kind.encode()), ("run_id", run_id.encode())]


# -- clients ----------------------------------------------------------------------------------
def _config(settings: KafkaSettings, defaults: Mapping[str, Any] | None = None,
            overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A client's config: the broker, ESR's defaults for the client, then the ESR_KAFKA_CONFIG
    file (security, and any tuning it gives: the keys ESR's guarantees rest on are refused when
    the file is read), then the caller's overrides."""
    file = settings.client_config.confluent() if settings.client_config else {}
    # log_level 4: librdkafka's warnings and errors (a refused connection) reach stderr, not its
    # notices and info (a client closed with an event left in its queue said so before `esr serve`'s first line)
    return {"bootstrap.servers": settings.bootstrap, "client.id": "esr", "log_level": 4, **settings.client_overrides,
            **(defaults or {}), **file, **(overrides or {})}


def _client(settings: KafkaSettings, factory: Any, config: dict[str, Any]) -> Any:
    """`factory(config)`, with librdkafka's refusal of a property from ESR_KAFKA_CONFIG named
    by the file's line (and no secret in the message)."""
    from confluent_kafka import KafkaException

    try:
        return factory(config)
    except KafkaException as exc:
        if settings.client_config is None:
            raise KafkaError(f"the Kafka client refused its configuration: {exc.args[0].str()}") from None
        raise KafkaError(f"ESR_KAFKA_CONFIG {settings.client_config.client_error(exc.args[0].str())}") from None


def make_producer(settings: KafkaSettings, **overrides: Any) -> Any:
    """An idempotent producer (acks=all, retries until `message.timeout.ms`, default 2 minutes)."""
    from confluent_kafka import Producer

    return _client(settings, Producer, _config(settings, {
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "compression.type": "lz4",
        "message.timeout.ms": 120_000,
    }, overrides))


def make_consumer(settings: KafkaSettings, group: str | None, **overrides: Any) -> Any:
    """A consumer that commits only when told (`enable.auto.commit=false`)."""
    from confluent_kafka import Consumer

    return _client(settings, Consumer, _config(settings, {
        "group.id": group or "esr-reader",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
    }, overrides))


def _admin(settings: KafkaSettings, **overrides: Any) -> Any:
    from confluent_kafka.admin import AdminClient

    return _client(settings, AdminClient, _config(settings, overrides=overrides))


_AUTHENTICATION = -169  # confluent_kafka.KafkaError._AUTHENTICATION


def _list_topics(settings: KafkaSettings, timeout: float) -> Any:
    """The broker's topics, or a KafkaError: at once when the broker refuses the login (a
    wrong password in ESR_KAFKA_CONFIG retried for the whole timeout would look like a hang),
    else once `timeout` seconds pass without an answer."""
    from confluent_kafka import KafkaException

    refused: list[str] = []

    def on_error(err: Any) -> None:
        if err.code() == _AUTHENTICATION:
            refused.append(err.str())

    admin = _admin(settings, error_cb=on_error)
    deadline = time.monotonic() + timeout
    while True:
        asked = time.monotonic()
        wait = min(1.0, max(0.05, deadline - asked))
        try:
            return admin.list_topics(timeout=wait)
        except KafkaException as exc:
            admin.poll(0)  # serves error_cb
            if refused:
                raise KafkaError(_login_refused(settings, refused[0])) from None
            # a failure before the slice ran out (nothing listening, say) is final, as is the deadline
            if time.monotonic() - asked < wait * 0.9 or time.monotonic() >= deadline:
                raise KafkaError(f"cannot reach the Kafka broker at {settings.bootstrap}: {exc}") from None


def _login_refused(settings: KafkaSettings, detail: str) -> str:
    config = settings.client_config
    shown = config.mask(detail) if config else detail
    where = (f"check the login in ESR_KAFKA_CONFIG={config.source} (sasl.username, sasl.password, sasl.mechanism)"
             if config else "set ESR_KAFKA_CONFIG to a file with the login (docs/kafka.md)")
    return f"the Kafka broker at {settings.bootstrap} refused ESR's login: {shown}; {where}"


@dataclass(frozen=True, slots=True)
class TopicChanges:
    """What `ensure_topics` did: topics created, grown `(topic, from, to)`, left above the
    configured count `(topic, count)` (Kafka cannot take partitions away), every topic's
    partition count afterwards, topics left with another replication factor than the configured
    one `(topic, replicas)` (ESR cannot change it), and topics whose min.insync.replicas was
    raised to the configured one `(topic, from)` (never lowered: a process started without
    `ESR_KAFKA_MIN_ISR` must not weaken the topics; and only where their replicas can meet it)."""

    created: tuple[str, ...] = ()
    grown: tuple[tuple[str, int, int], ...] = ()
    above: tuple[tuple[str, int], ...] = ()
    counts: dict[str, int] = field(default_factory=dict)
    replicas: tuple[tuple[str, int], ...] = ()
    min_isr_raised: tuple[tuple[str, int], ...] = ()

    def lines(self, settings: KafkaSettings) -> list[str]:
        """What the command that ran `ensure_topics` prints about it (nothing when all is as configured)."""
        shards = self.counts.get(settings.topic("ticks"), settings.partitions)
        out = []
        if self.grown:
            grown = ", ".join(f"{topic} {old} -> {new}" for topic, old, new in self.grown)
            out.append(f"esr: grew {len(self.grown)} topics to ESR_KAFKA_PARTITIONS={settings.partitions} partitions: "
                       f"{grown}; new runs get {shards} bot shards, runs already playing keep theirs")
        if self.above:
            (first, n), *rest = self.above
            listed = ", ".join([f"{first} has {n} partitions", *(f"{topic} {count}" for topic, count in rest)])
            out.append(f"esr: {listed}, more than ESR_KAFKA_PARTITIONS={settings.partitions}: left as "
                       f"{'they are' if rest else 'it is'} (Kafka cannot take partitions away); runs get {shards} "
                       "bot shards")
        if self.replicas:
            (first, n), *others = self.replicas
            listed = ", ".join([f"{first} has {n} {'replica' if n == 1 else 'replicas'}",
                                *(f"{topic} {count}" for topic, count in others)])
            out.append(f"esr: {listed}, not ESR_KAFKA_REPLICATION={settings.replication}: ESR cannot change the "
                       "replication factor of an existing topic; change it with kafka-reassign-partitions.sh "
                       "--bootstrap-server BROKER --reassignment-json-file PLAN.json --execute (a plan that lists "
                       f"{settings.replication} brokers for every partition; see docs/kafka.md, Replication), or "
                       "start over on new topics with another ESR_KAFKA_PREFIX")
        if self.min_isr_raised:
            raised = self.min_isr_raised
            changed = ", ".join(f"{topic} {old} -> {settings.min_isr}" for topic, old in raised)
            out.append(f"esr: raised min.insync.replicas to ESR_KAFKA_MIN_ISR={settings.min_isr} on "
                       f"{len(raised)} {'topic' if len(raised) == 1 else 'topics'}: {changed}")
        return out


def _changelogs(settings: KafkaSettings, name: str) -> bool:
    """The metrics app's table changelogs (Faust names them `APP_ID-TABLE-changelog`): Faust
    requires them to have as many partitions as the topics their tables are fed from."""
    return name.startswith(settings.group("metrics") + "-") and name.endswith("-changelog")


def topic_changes(settings: KafkaSettings, existing: Mapping[str, int],
                  replicas: Mapping[str, int] | None = None, min_isr: Mapping[str, int] | None = None) -> TopicChanges:
    """What `ensure_topics` has to do, given the partition count (and replication factor, and
    min.insync.replicas) of each topic on the broker: create the design's missing topics, grow
    those of ours below `settings.partitions` (the metrics app's changelogs too, which must match
    the topics they follow), leave those above, name those of ours whose replication is not
    `settings.replication`, and raise to `settings.min_isr` those of ours with a lower min ISR,
    unless they have fewer replicas than that (no write could be acknowledged)."""
    wanted = settings.partitions
    ours = [settings.topic(t) for t in TOPICS]
    created = tuple(t for t in ours if t not in existing)
    mine = ours + sorted(t for t in existing if _changelogs(settings, t))
    grown = tuple((t, existing[t], wanted) for t in mine if t in existing and existing[t] < wanted)
    above = tuple((t, existing[t]) for t in ours if t in existing and existing[t] > wanted)
    counts = {t: max(existing.get(t, wanted), wanted) for t in mine}
    replicas, min_isr = replicas or {}, min_isr or {}
    other = tuple((t, replicas[t]) for t in mine
                  if t in existing and replicas.get(t, settings.replication) != settings.replication)
    isr = tuple((t, min_isr[t]) for t in mine if t in existing and min_isr.get(t, settings.min_isr) < settings.min_isr
                and replicas.get(t, settings.replication) >= settings.min_isr)
    return TopicChanges(created, grown, above, counts, other, isr)


def check_replication(settings: KafkaSettings, brokers: int) -> None:
    """A replication factor the cluster can hold, said before any topic is made with it."""
    if settings.replication > brokers:
        raise KafkaError(f"ESR_KAFKA_REPLICATION={settings.replication} is more than the cluster at "
                         f"{settings.bootstrap} has brokers ({brokers}): set it to at most {brokers}, "
                         "or add brokers")


def ensure_topics(settings: KafkaSettings, timeout: float = 30.0) -> TopicChanges:
    """Create the design's topics (with `settings.partitions` each, `settings.replication`
    replicas and `settings.min_isr` as min.insync.replicas) if they do not exist, grow
    existing ones with fewer partitions to that count and raise a lower min ISR to
    `settings.min_isr`; what it did comes back (see `TopicChanges.lines` for what the commands print)."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import NewPartitions, NewTopic

    admin = _admin(settings)
    metadata = _list_topics(settings, timeout)
    check_replication(settings, len(metadata.brokers))
    topics = {name: meta for name, meta in metadata.topics.items() if meta.error is None and meta.partitions}
    replicas = {name: len(next(iter(meta.partitions.values())).replicas) for name, meta in topics.items()}
    counts = {name: len(meta.partitions) for name, meta in topics.items()}
    mine = topic_changes(settings, counts).counts  # our topics (and changelogs), existing or to be created
    changes = topic_changes(settings, counts, replicas, _min_isr(admin, [t for t in mine if t in topics], timeout))
    if changes.created:
        wanted = [NewTopic(t, settings.partitions, settings.replication, config=settings.topic_config)
                  for t in changes.created]
        for topic, future in admin.create_topics(wanted, operation_timeout=timeout).items():
            try:
                future.result(timeout)
            except KafkaException as exc:
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise KafkaError(f"cannot create topic {topic}: {exc}") from None
        _wait_visible(settings, changes.created, timeout)
    if changes.min_isr_raised:
        _set_min_isr(admin, settings, [t for t, _ in changes.min_isr_raised], timeout)
    if changes.grown:
        more = [NewPartitions(t, new) for t, _, new in changes.grown]
        for topic, future in admin.create_partitions(more, operation_timeout=timeout).items():
            try:
                future.result(timeout)
            except KafkaException as exc:  # another process grew it first: fine if it has enough now
                if "INVALID_PARTITIONS" not in str(exc) or topic_partitions(
                        settings, topic, timeout, prefixed=True) < settings.partitions:
                    raise KafkaError(f"cannot grow topic {topic} to {settings.partitions} partitions "
                                     f"(ESR_KAFKA_PARTITIONS): {exc}") from None
    return changes


def _wait_visible(settings: KafkaSettings, names: Sequence[str], timeout: float) -> None:
    """Until the broker's metadata lists the topics just created: the controller accepts a
    topic before every broker serves it, and a worker started at once would find it missing."""
    deadline = time.monotonic() + timeout
    while True:
        listed = _list_topics(settings, timeout).topics
        if all(name in listed and listed[name].error is None and listed[name].partitions for name in names):
            return
        if time.monotonic() > deadline:
            raise KafkaError(f"topics created but not served by {settings.bootstrap} within {timeout:g} s: "
                             + ", ".join(n for n in names if n not in listed or not listed[n].partitions))
        time.sleep(0.1)


def _min_isr(admin: Any, topics: list[str], timeout: float) -> dict[str, int]:
    """The min.insync.replicas of existing topics (those the broker would not describe are left out)."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import ConfigResource

    if not topics:
        return {}
    found = {}
    for resource, future in admin.describe_configs([ConfigResource("topic", t) for t in topics],
                                                   request_timeout=timeout).items():
        try:
            entry = future.result(timeout).get("min.insync.replicas")
        except KafkaException:
            continue
        if entry is not None and entry.value and entry.value.isdigit():
            found[resource.name] = int(entry.value)
    return found


def _set_min_isr(admin: Any, settings: KafkaSettings, topics: list[str], timeout: float) -> None:
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

    entry = ConfigEntry("min.insync.replicas", str(settings.min_isr), incremental_operation=AlterConfigOpType.SET)
    resources = [ConfigResource("topic", t, incremental_configs=[entry]) for t in topics]
    for resource, future in admin.incremental_alter_configs(resources, request_timeout=timeout).items():
        try:
            future.result(timeout)
        except KafkaException as exc:
            raise KafkaError(f"cannot set min.insync.replicas={settings.min_isr} (ESR_KAFKA_MIN_ISR) on topic "
                             f"{resource.name}: {exc}") from None


def topic_partitions(settings: KafkaSettings, name: str, timeout: float = 10.0, *, prefixed: bool = False) -> int:
    """How many partitions a topic has (the shard count of runs on this broker); `name` is
    "ticks" (the prefix added), or a full topic name with `prefixed`."""
    topic_name = name if prefixed else settings.topic(name)
    meta = _admin(settings).list_topics(topic_name, timeout=timeout)
    topic = meta.topics.get(topic_name)
    if topic is None or topic.error is not None or not topic.partitions:
        raise KafkaError(f"topic {topic_name} does not exist on {settings.bootstrap}")
    return len(topic.partitions)


def group_members(settings: KafkaSettings, group: str, timeout: float = 5.0) -> int | None:
    """Members of a consumer group, as the broker describes it (None if it cannot say)."""
    admin = _admin(settings)  # held until the answer: a client gone leaves the future unanswered
    try:
        return len(admin.describe_consumer_groups([group])[group].result(timeout).members)
    except Exception:  # noqa: BLE001 - a courtesy for log lines: they go out without it
        return None


class PartitionCounts:
    """Partition counts of topics as one client (a producer) sees them, asked again when a
    partition past the known count is wanted (the topic grew since), so the client's own
    metadata knows the new partitions before it produces to them."""

    def __init__(self, client: Any, timeout: float = 10.0) -> None:
        self.client = client
        self.timeout = timeout
        self._counts: dict[str, int] = {}

    def partition(self, topic: str, shard: int) -> int:
        """The partition of a shard's messages: the shard's own, while the topic has it."""
        count = self._counts.get(topic, 0)
        if shard >= count:
            meta = self.client.list_topics(topic, timeout=self.timeout).topics.get(topic)
            count = len(meta.partitions) if meta is not None and meta.error is None and meta.partitions else 0
            if count == 0:
                raise KafkaError(f"topic {topic} does not exist on the broker")
            self._counts[topic] = count
        return shard % count
