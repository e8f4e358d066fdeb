"""The replay producer of the Kafka runtime: `esr replay` with `ESR_KAFKA` set.

It publishes the replay's start (`source: replay`, so the clock worker leaves it alone), then,
tick by tick at the replay's pace, the logged requests due in each tick's stretch to
`esr.requests`: per shard and tick one or more parts (esr.replay.parts: bounded messages, read
lazily from the log, so neither a message nor the producer's memory grows with the tick), at
least one even when the tick is empty, so the metrics side can check that every tick of every
shard was played. A request's shard follows its source session (the
client address, else the file), so one client's requests stay in order on one bot. The bot
workers send them and the metrics worker judges the run as it judges scenarios.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, cast

import msgspec

from esr.bus.kafka import (
    KafkaSettings,
    encode,
    ensure_topics,
    headers,
    make_producer,
    shard_key,
    topic_partitions,
)
from esr.bus.runlog import new_run_id
from esr.core.events import RunStarted
from esr.core.scenario import Scenario
from esr.core.targets import Target
from esr.core.ticks import PlannedRequest, Tick, tick_count, tick_of, tick_window
from esr.replay.parts import PART_MAX_BYTES, PartCutter
from esr.replay.player import sendable_headers
from esr.replay.record import LogRecord
from esr.replay.schedule import ReplayPlan

__all__ = ["publish_replay", "replay_started", "tick_part"]

START_LEAD_S = 3.0  # between the replay's start message and its first request
TICK_LEAD_S = 1.0  # each tick reaches the bots this long before its stretch begins
QUEUE_KBYTES = 16 * 1024  # the producer's local queue of parts not yet delivered


def replay_started(plan: ReplayPlan, scenario: Scenario, target: Target, *, shards: int,
                   run_id: str | None = None, tick_s: float = 0.5, endpoints: tuple[str, ...] = ()) -> RunStarted:
    assert plan.first is not None
    return RunStarted(
        run_id=run_id or new_run_id(), seq=0, sim_time=0.0, real_time=time.time() + START_LEAD_S,
        scenario=scenario.to_dict(), target=target.url, seed=0,
        sim_start=datetime.fromtimestamp(plan.first, UTC).isoformat(), time_warp=plan.warp,
        drain_warp=plan.warp, load_end_sim=plan.span_s, window_s=scenario.window, arrivals_planned=plan.requests,
        shards=shards, tick_s=tick_s, source="replay", endpoints=endpoints)


def _shard(record: LogRecord, shards: int) -> int:
    session = record.client or record.source.rsplit(":", 1)[0]
    return zlib.crc32(session.encode("utf-8", "surrogateescape")) % shards


def publish_replay(settings: KafkaSettings, records: Iterator[LogRecord], plan: ReplayPlan, scenario: Scenario,
                   target: Target, *, run_id: str | None = None, on_started: Any = None,
                   endpoints: tuple[str, ...] = ()) -> RunStarted:
    """Publish the replay's start (with its `--endpoint` templates, by which the bots label its
    requests) and its requests at the replay's pace; returns its start."""
    counts = ensure_topics(settings).counts
    shards = counts.get(settings.topic("requests")) or topic_partitions(settings, "requests")
    started = replay_started(plan, scenario, target, shards=shards, run_id=run_id,
                             endpoints=endpoints)
    if on_started is not None:
        on_started(started)
    # a bounded local queue: past it `produce` waits for deliveries (the parts are read lazily)
    producer = make_producer(settings, **{"queue.buffering.max.kbytes": QUEUE_KBYTES})
    producer.produce(settings.topic("runs"), key=started.run_id.encode(), value=encode(started),
                     headers=headers("run_started", started.run_id))
    t0 = plan.first
    assert t0 is not None
    count = tick_count(started)
    topic = settings.topic("requests")
    tick_headers = headers("tick", started.run_id)
    budget = PART_MAX_BYTES - len(encode(tick_part(started, 0, 0, count, part=0, more=False))) - ENVELOPE_SLACK
    cutters = [PartCutter(budget) for _ in range(started.shards)]
    parts = [0] * started.shards
    ahead: LogRecord | None = next(records, None)
    index = 0

    def send(k: int, shard: int, requests: list[bytes], *, more: bool) -> None:
        value = encode(tick_part(started, shard, k, count, part=parts[shard], more=more, requests=requests))
        parts[shard] = parts[shard] + 1 if more else 0
        while True:
            try:
                producer.produce(topic, key=shard_key(started.run_id, shard), value=value, partition=shard,
                                 headers=tick_headers)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)

    for k in range(count):
        delay = started.real_time + k * started.tick_s - TICK_LEAD_S - time.time()
        if delay > 0:
            time.sleep(delay)
        while ahead is not None and (k == count - 1 or tick_of(started, ahead.time - t0) <= k):
            body = ahead.body.decode("utf-8", "replace") if ahead.body else None
            shard = _shard(ahead, started.shards)
            full = cutters[shard].add(_encoder.encode(PlannedRequest(
                index=index, sim=ahead.time - t0, method=ahead.method, target=ahead.target,
                headers=list(sendable_headers(ahead.headers).items()), body=body)))
            if full is not None:
                send(k, shard, full, more=True)
            index += 1
            ahead = next(records, None)
        for shard, cutter in enumerate(cutters):
            send(k, shard, cutter.rest(), more=False)
    producer.flush(60)
    return started


_encoder = msgspec.json.Encoder()
ENVELOPE_SLACK = 128  # bytes: a part's envelope is measured once; its numbers' digits vary


def tick_part(started: RunStarted, shard: int, k: int, count: int, *, part: int, more: bool,
          requests: Sequence[bytes] = ()) -> Tick:
    """Part `part` of tick `k` for `shard`, its requests already encoded (each once: the
    size that counted against the bound is what travels)."""
    sim_from, sim_to = tick_window(started, k)
    return Tick(run_id=started.run_id, shard=shard, tick=k, sim_from=sim_from, sim_to=sim_to,
                last=k == count - 1, run=started, part=part, more=more,
                requests=cast("list[PlannedRequest]", [msgspec.Raw(r) for r in requests]))
