"""The clock producer (`esr worker clock`): turns each run's start into ticks per bot shard.

It reads `run_started` and `run_aborted` from the runs topic (group `esr.clock`) and, for each
run, publishes tick `k` of every shard `lead_s` real seconds before the tick's stretch of
simulated time begins, so the bot owning the shard can start each arrival on time. Shard `s`
goes to partition `s % partitions` of the tick topic. An aborted run gets one more tick per
shard, marked `aborted`. A restarted clock re-reads runs it had not finished ticking and sends
only the ticks still due; bots ignore a tick number they have seen.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

from ..bus.kafka import KafkaSettings, decode_event, encode, headers, make_consumer, make_producer, shard_key
from ..events import RunAborted, RunStarted
from ..offsets import OffsetTracker
from ..ticks import Tick, tick_count, tick_for

__all__ = ["ClockProducer", "run_clock_worker"]


class ClockProducer:
    def __init__(self, settings: KafkaSettings, *, lead_s: float = 1.0) -> None:
        self.settings = settings
        self.group = settings.group("clock")
        self.lead_s = lead_s
        self._runs: dict[str, tuple[asyncio.Task, RunStarted, int]] = {}  # run id -> (task, start, next tick)
        self._offsets = OffsetTracker()

    async def serve(self, stop: asyncio.Event) -> None:
        self.producer = make_producer(self.settings)
        consumer = make_consumer(self.settings, self.group)
        consumer.subscribe([self.settings.topic("runs")], on_assign=lambda _, parts: print(
            f"esr worker clock: owns partitions {sorted(p.partition for p in parts)}", file=sys.stderr, flush=True))
        loop = asyncio.get_running_loop()
        try:
            while not stop.is_set():
                msgs = consumer.consume(100, 0)
                for msg in msgs:
                    if msg.error() is None:
                        self._on_message(loop, msg)
                commits = self._offsets.committable()
                if commits:
                    from confluent_kafka import TopicPartition

                    topic = self.settings.topic("runs")
                    consumer.commit(offsets=[TopicPartition(topic, p, o) for p, o in commits.items()])
                self.producer.poll(0)
                await asyncio.sleep(0 if msgs else 0.02)
        finally:
            for task, _, _ in self._runs.values():
                task.cancel()
            consumer.close()
            self.producer.flush(10)

    def _on_message(self, loop: asyncio.AbstractEventLoop, msg: Any) -> None:
        partition, offset = msg.partition(), msg.offset()
        self._offsets.add(partition, offset)
        event = decode_event(msg.value())
        if type(event) is RunStarted and event.source == "replay":
            pass  # `esr replay` sends a replay's ticks itself, with its requests
        elif type(event) is RunStarted and event.run_id not in self._runs:
            task = loop.create_task(self._tick(event))
            task.add_done_callback(lambda _: self._offsets.done(partition, offset))
            self._runs[event.run_id] = (task, event, 0)
            return
        if type(event) is RunAborted and event.run_id in self._runs:
            task, started, _ = self._runs[event.run_id]
            task.cancel()  # no more ticks; the bots still draining hear of it from the aborted tick
            self._send_aborted(started)
        self._offsets.done(partition, offset)

    async def _tick(self, started: RunStarted) -> None:
        count = tick_count(started)
        for k in range(count):
            due = started.real_time + k * started.tick_s - self.lead_s
            if time.time() > due + self.lead_s + started.tick_s * 4:
                continue  # long past (a restart): the bots' reports will show the gap
            delay = due - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            for shard in range(started.shards):
                self._send(tick_for(started, shard, k))
            task, _, _ = self._runs[started.run_id]
            self._runs[started.run_id] = (task, started, k + 1)
        await asyncio.to_thread(self.producer.flush, 30)

    def _send_aborted(self, started: RunStarted) -> None:
        _, _, next_tick = self._runs[started.run_id]
        for shard in range(started.shards):
            tick = tick_for(started, shard, min(next_tick, tick_count(started) - 1))
            self._send(Tick(run_id=tick.run_id, shard=shard, tick=next_tick, sim_from=tick.sim_from,
                            sim_to=tick.sim_from, last=True, run=started, aborted=True))
        self.producer.flush(10)

    def _send(self, tick: Tick) -> None:
        self.producer.produce(self.settings.topic("ticks"), key=shard_key(tick.run_id, tick.shard), value=encode(tick),
                              partition=tick.shard % self.settings.partitions, headers=headers("tick", tick.run_id))


def run_clock_worker(settings: KafkaSettings) -> None:
    from . import serve_until_stopped

    serve_until_stopped(ClockProducer(settings).serve)
