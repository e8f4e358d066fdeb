"""The clock producer (`esr worker clock`): turns each run's start into ticks per bot shard.

It reads `run_started` and `run_aborted` from the runs topic (group `esr.core.clock`) and, for each
run, publishes tick `k` of every shard `lead_s` real seconds before the tick's stretch of
simulated time begins, so the bot owning the shard can start each arrival on time. Shard `s`
goes to partition `s % partitions` of the tick topic. An aborted run gets one more tick per
shard, marked `aborted`. A restarted clock re-reads runs it had not finished ticking and sends
only the ticks still due; bots ignore a tick number they have seen.

It also plays each run's fault timeline: at a fault's simulated start it performs the fault's
start action (the system's own faults; built-in faults are applied by every bot worker's fault
proxy) and publishes `fault_started` to the faults topic; at its end, the recovery action and
`fault_ended`. Faults without a duration end when the run's verdict appears on the verdict
topic, or when the run is aborted. A guard process holds the recovery actions meanwhile, so a
clock killed mid-fault still restores the target; a restarted clock applies again the faults
whose window is not over.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from esr.bus.kafka import (
    KafkaSettings,
    PartitionCounts,
    decode_event,
    encode,
    headers,
    make_consumer,
    make_producer,
    shard_key,
    topic_of,
)
from esr.core.events import Event, FaultEnded, FaultEndReason, FaultStarted, RunAborted, RunStarted, event_type
from esr.core.scenario import Scenario
from esr.core.sim_headers import SimTimeFormat
from esr.core.ticks import GRACE_S, Tick, expected_end, run_clock, tick_count, tick_for
from esr.faults.guard import FaultGuard
from esr.faults.injector import FaultInjector, wait_set
from esr.faults.plan import PlannedFault, fault_moments, plan_faults
from esr.producers.offsets import OffsetTracker

__all__ = ["ClockProducer", "run_clock_worker"]


class ClockProducer:
    def __init__(self, settings: KafkaSettings, *, lead_s: float = 1.0) -> None:
        self.settings = settings
        self.group = settings.group("clock")
        self.lead_s = lead_s
        self._runs: dict[str, tuple[asyncio.Task, RunStarted, int]] = {}  # run id -> (task, start, next tick)
        self._offsets: OffsetTracker[int] = OffsetTracker()
        self._faults: dict[str, _RunFaults] = {}  # runs whose faults are playing

    async def serve(self, stop: asyncio.Event) -> None:
        self.producer = make_producer(self.settings)
        self._partitions = PartitionCounts(self.producer)
        consumer = make_consumer(self.settings, self.group)
        consumer.subscribe([self.settings.topic("runs")], on_assign=lambda _, parts: print(
            f"esr worker clock: owns partitions {sorted(p.partition for p in parts)}", file=sys.stderr, flush=True))
        # verdicts end the faults that last until the run ends (read from now on, never committed)
        verdicts = make_consumer(self.settings, f"{self.group}-verdicts-{uuid.uuid4().hex[:8]}",
                                 **{"auto.offset.reset": "latest"})
        verdicts.subscribe([self.settings.topic("verdicts")])
        loop = asyncio.get_running_loop()
        try:
            while not stop.is_set():
                msgs = consumer.consume(100, 0)
                for msg in msgs:
                    if msg.error() is None:
                        self._on_message(loop, msg)
                for msg in verdicts.consume(100, 0):  # read always, so the group's start position is now
                    if msg.error() is None and msg.key() and msg.key().decode() in self._faults:
                        self._faults[msg.key().decode()].stop("run_ended")
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
            for faults in list(self._faults.values()):  # the clock stops: nothing may stay broken
                faults.stop("clock_stopped")
            await asyncio.gather(*(f.task for f in list(self._faults.values())), return_exceptions=True)
            consumer.close()
            verdicts.close()
            self.producer.flush(10)

    def _on_message(self, loop: asyncio.AbstractEventLoop, msg: Any) -> None:
        partition, offset = msg.partition(), msg.offset()
        self._offsets.add(partition, offset)
        event = decode_event(msg.value())
        if type(event) is RunStarted and event.source == "replay":
            pass  # `esr replay` sends a replay's ticks itself, with its requests
        elif type(event) is RunStarted and event.run_id not in self._runs:
            task = loop.create_task(self._tick(event))
            self._runs[event.run_id] = (task, event, 0)
            if event.scenario.get("failure_injection"):
                faults = _RunFaults(event, loop.create_task(self._play_faults(event)))
                self._faults[event.run_id] = faults
                done = asyncio.gather(task, faults.task, return_exceptions=True)
                done.add_done_callback(lambda _: self._offsets.done(partition, offset))
            else:
                task.add_done_callback(lambda _: self._offsets.done(partition, offset))
            return
        if type(event) is RunAborted and event.run_id in self._runs:
            task, started, _ = self._runs[event.run_id]
            task.cancel()  # no more ticks; the bots still draining hear of it from the aborted tick
            self._send_aborted(started)
            if event.run_id in self._faults:
                self._faults[event.run_id].stop("aborted")
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

    # -- faults ---------------------------------------------------------------------------
    async def _play_faults(self, started: RunStarted) -> None:
        """The run's fault timeline (see the module docstring)."""
        scenario = Scenario.from_dict(started.scenario)
        faults = plan_faults(scenario.failure_injection, scenario.fault_actions, started.target, started.target)
        clock = run_clock(started)
        state = self._faults[started.run_id]
        guard = None
        if any(f.action is not None and f.action.recover is not None for f in faults):
            guard = await asyncio.to_thread(FaultGuard.spawn, started.run_id, started.target)
        injector = FaultInjector(faults, run_id=started.run_id, target_url=started.target, guard=guard)
        state.injector = injector
        try:
            for sim, starting, fault in fault_moments(faults):
                due = started.real_time + clock.real_at(sim)
                end = fault.spec.end_sim
                if starting and end is not None and time.time() > started.real_time + clock.real_at(end):
                    continue  # its whole window is past (a restarted clock): not applied any more
                if await wait_set(state.stopped, due - time.time()):
                    break  # the run ended or was aborted before this moment
                if starting:
                    await self._start_fault(started, injector, fault, sim)
                elif fault.key in state.started:
                    await self._end_fault(started, injector, fault, sim, "scheduled")
            if any(f.key in state.started and f.key not in state.ended for f in faults):
                await wait_set(state.stopped, expected_end(started) + GRACE_S - time.time())
        finally:  # an action under way was finished first: nothing is cut off half-done
            sim_now = clock.sim_at(max(0.0, time.time() - started.real_time))
            for fault in faults:
                if fault.key in state.started and fault.key not in state.ended:
                    end = sim_now if fault.spec.end_sim is None else min(fault.spec.end_sim, sim_now)
                    await self._end_fault(started, injector, fault, end, state.reason)
            if guard is not None:
                await asyncio.to_thread(guard.close)
            await asyncio.to_thread(self.producer.flush, 10)
            self._faults.pop(started.run_id, None)

    async def _start_fault(self, started: RunStarted, injector: FaultInjector, fault: PlannedFault, sim: float) -> None:
        if fault.toxic is not None:  # every bot worker's proxy applies it by the same clock
            ok, detail = True, f"applied by each bot worker's fault proxy: {fault.toxic}"
        else:
            try:
                ok, detail = await injector.start(fault, SimTimeFormat(datetime.fromisoformat(started.sim_start))(sim))
            except Exception as exc:  # noqa: BLE001 - recorded: the verdict says it was not applied
                ok, detail = False, f"{type(exc).__name__}: {exc}"
        self._faults[started.run_id].started.add(fault.key)
        self._publish(FaultStarted(
            run_id=started.run_id, seq=0, sim_time=sim, real_time=time.time(), fault=fault.key, name=fault.name,
            kind=fault.kind, start_sim=fault.spec.start_sim, end_sim=fault.spec.end_sim, ok=ok, detail=detail))
        if not ok:
            self._faults[started.run_id].ended.add(fault.key)  # nothing to undo

    async def _end_fault(self, started: RunStarted, injector: FaultInjector, fault: PlannedFault, sim: float,
                         reason: FaultEndReason) -> None:
        self._faults[started.run_id].ended.add(fault.key)
        ok, detail = True, "removed from each bot worker's fault proxy"
        if fault.toxic is None:
            try:
                ok, detail = await injector.end(fault, SimTimeFormat(datetime.fromisoformat(started.sim_start))(sim))
            except Exception as exc:  # noqa: BLE001 - recorded; the guard still holds its recovery
                ok, detail = False, f"{type(exc).__name__}: {exc}"
        self._publish(FaultEnded(
            run_id=started.run_id, seq=0, sim_time=sim, real_time=time.time(), fault=fault.key, name=fault.name,
            reason=reason, end_sim=sim, ok=ok, detail=detail))

    def _publish(self, event: Event) -> None:
        self.producer.produce(topic_of(event, self.settings), key=event.run_id.encode(), value=encode(event),
                              headers=headers(event_type(event), event.run_id))
        self.producer.poll(0)

    def _send_aborted(self, started: RunStarted) -> None:
        _, _, next_tick = self._runs[started.run_id]
        for shard in range(started.shards):
            tick = tick_for(started, shard, min(next_tick, tick_count(started) - 1))
            self._send(Tick(run_id=tick.run_id, shard=shard, tick=next_tick, sim_from=tick.sim_from,
                            sim_to=tick.sim_from, last=True, run=started, aborted=True))
        self.producer.flush(10)

    def _send(self, tick: Tick) -> None:
        topic = self.settings.topic("ticks")  # a run's shards are the topic's partitions at its start: shard s on s
        self.producer.produce(topic, key=shard_key(tick.run_id, tick.shard), value=encode(tick),
                              partition=self._partitions.partition(topic, tick.shard),
                              headers=headers("tick", tick.run_id))


@dataclass(slots=True)
class _RunFaults:
    started_event: RunStarted
    task: asyncio.Task
    injector: FaultInjector | None = None
    started: set[str] = field(default_factory=set)
    ended: set[str] = field(default_factory=set)
    reason: FaultEndReason = "run_ended"  # why the faults still on are ended
    stopped: asyncio.Event = field(default_factory=asyncio.Event)

    def stop(self, reason: FaultEndReason) -> None:
        if not self.stopped.is_set():
            self.reason = reason
            self.stopped.set()


def run_clock_worker(settings: KafkaSettings) -> None:
    from esr.producers import serve_until_stopped

    serve_until_stopped(ClockProducer(settings).serve)
