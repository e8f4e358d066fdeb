"""The replay producer of the Kafka runtime: `esr replay` with `ESR_KAFKA` set.

It publishes the replay's start (`source: replay`, so the clock worker leaves it alone), then,
tick by tick at the replay's pace, the logged requests due in each tick's stretch to
`esr.requests`: one message per shard and tick, even when empty, so the metrics side can check
that every tick of every shard was played. A request's shard follows its source session (the
client address, else the file), so one client's requests stay in order on one bot. The bot
workers send them and the metrics worker judges the run as it judges scenarios.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

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
from esr.replay.player import sendable_headers
from esr.replay.record import LogRecord
from esr.replay.schedule import ReplayPlan

__all__ = ["publish_replay", "replay_started"]

START_LEAD_S = 3.0  # between the replay's start message and its first request
TICK_LEAD_S = 1.0  # each tick reaches the bots this long before its stretch begins


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
    producer = make_producer(settings)
    producer.produce(settings.topic("runs"), key=started.run_id.encode(), value=encode(started),
                     headers=headers("run_started", started.run_id))
    t0 = plan.first
    assert t0 is not None
    count = tick_count(started)
    ahead: LogRecord | None = next(records, None)
    index = 0
    for k in range(count):
        delay = started.real_time + k * started.tick_s - TICK_LEAD_S - time.time()
        if delay > 0:
            time.sleep(delay)
        due: list[list[PlannedRequest]] = [[] for _ in range(started.shards)]
        while ahead is not None and (k == count - 1 or tick_of(started, ahead.time - t0) <= k):
            body = ahead.body.decode("utf-8", "replace") if ahead.body else None
            due[_shard(ahead, started.shards)].append(PlannedRequest(
                index=index, sim=ahead.time - t0, method=ahead.method, target=ahead.target,
                headers=list(sendable_headers(ahead.headers).items()), body=body))
            index += 1
            ahead = next(records, None)
        sim_from, sim_to = tick_window(started, k)
        for shard, requests in enumerate(due):
            tick = Tick(run_id=started.run_id, shard=shard, tick=k, sim_from=sim_from, sim_to=sim_to,
                        last=k == count - 1, run=started, requests=requests)
            while True:
                try:
                    producer.produce(settings.topic("requests"), key=shard_key(started.run_id, shard),
                                     value=encode(tick), partition=shard, headers=headers("tick", started.run_id))
                    break
                except BufferError:
                    producer.poll(0.05)
        producer.poll(0)
    producer.flush(60)
    return started
