"""Bot workers: a consumer group over the tick topic; each worker runs the shards it owns.

`ShardRun` drives the run's `Scheduler` for one shard's arrivals, paced by ticks: each tick
hands it the arrivals of a stretch of simulated time, which its `Pacer` starts at their
intended times exactly as the embedded runtime does. Its events leave in `EventBatch`es per
tick. A tick is done when every journey that arrived in it has ended; the worker then sends
the shard's cumulative `ShardReport` and commits the tick's offset, in that order. If the
worker dies, the shard's partition moves to another worker, which re-runs it from the last
committed tick under a new attempt; the metrics side counts what both sent exactly once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import gc
import itertools
import os
import socket
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import msgspec

from esr.bus.kafka import (
    KafkaSettings,
    PartitionCounts,
    decode_tick,
    encode,
    group_members,
    headers,
    make_consumer,
    make_producer,
    shard_key,
)
from esr.core.arrivals import Arrival, ArrivalPlan
from esr.core.clock import SimClock
from esr.core.endpoints import EndpointFolder, EndpointTemplateError
from esr.core.errors import TargetRefused
from esr.core.events import AnyEvent, Event, EventBatch, JourneyStarted, RequestResult, RunStarted, ShardReport
from esr.core.journey import PreparedRequest
from esr.core.run_state import RunStatus
from esr.core.scenario import Scenario
from esr.core.scheduler import GeneratorCounts, Scheduler
from esr.core.sim_headers import SimTimeFormat
from esr.core.targets import Target, TargetRegistry
from esr.core.ticks import PlannedRequest, Tick, clock_skew_line, expected_end, shard_in_flight
from esr.engine.pacer import BOT_TIMER_RESOLUTION, Clocks, Pacer
from esr.engine.response import Sender
from esr.engine.runner import journey_table
from esr.engine.sender import connection_budget, make_sender
from esr.faults.plan import fault_moments, plan_faults
from esr.producers.assignment import IdleNotice, idle_line
from esr.producers.offsets import OffsetTracker

__all__ = ["GC_YOUNG_THRESHOLD", "BotWorker", "ShardRun", "collect_rarely"]

BATCH_MAX = 2000  # events per EventBatch message
# A replay shard's requests received and not yet answered past which the worker pauses its
# partition of the requests topic (a tick's parts wait on the broker; ESR_BOT_BACKLOG); it
# resumes once they are down to this share of it
BACKLOG = 10_000
BACKLOG_RESUME_SHARE = 0.4
PREFETCH_KBYTES = 16 * 1024  # what the consumer fetches ahead of the worker, all partitions together
FLUSH_S = 0.05  # how often buffered events leave
REPORT_EVERY_S = 1.0  # a shard at work reports at least this often (cumulative: the same counts again)
# Allocations (less deallocations) of container objects between two young collections; Python's
# default is 700. A bot worker keeps ~2,000 requests in flight, each a task, a future, frames and
# events for a tenth of a second or more: at 700 they all survived the young collections into the
# older ones, and collecting took a third of the worker's CPU at 15,000 requests/s. At 50,000 they
# have ended before a collection comes, as most of a worker's objects do.
GC_YOUNG_THRESHOLD = 50_000


@dataclass(slots=True)
class _TickTally:
    open: int = 1  # journeys not ended, plus one while the tick's arrivals are being played
    journeys: int = 0
    journey_events: int = 0
    results: int = 0
    late: int = 0


class ShardRun:
    """One shard of a Kafka run, on this worker, under one attempt: a `Scheduler` fed by ticks
    and paced in real time by a `Pacer`, its events batched per tick."""

    def __init__(self, started: RunStarted, shard: int, attempt: str,
                 publish: Callable[[str, EventBatch], None], *, registry_file: Path,
                 http_client: str = "pooled", clocks: Clocks | None = None) -> None:
        clocks = clocks or Clocks(timer_resolution=BOT_TIMER_RESOLUTION)  # CPU before sub-ms precision
        self.scenario = scenario = Scenario.from_dict(started.scenario)
        self.target = Target(started.target, started.target)
        self.run_id = started.run_id
        self.http_client = http_client
        self.registry_file = registry_file  # read at each shard's start: the worker's registry decides
        self.started = started
        self.shard = shard
        self.attempt = attempt
        self.status = RunStatus.QUEUED
        self.clock = SimClock(scenario.time_warp, scenario.duration_hours * 3600, scenario.effective_drain_warp)
        self.plan = ArrivalPlan(scenario.profile, self.clock, scenario.seed)
        self.in_flight = shard_in_flight(scenario.max_in_flight, started.shards)  # its share of the run's
        self.scheduler = Scheduler(
            journey_table(scenario, self.target), self.clock, run_id=self.run_id, seed=scenario.seed,
            max_in_flight=self.in_flight, late_threshold_ms=scenario.late_threshold_ms, emit=self._emit,
            on_ended=self._journey_ended)
        self.pacer = Pacer(self.scheduler, clocks, sim_header=SimTimeFormat(datetime.fromisoformat(started.sim_start)),
                           time_warp=self.clock.time_warp, request_timeout=scenario.request_timeout)
        self.faults = plan_faults(scenario.failure_injection, dict(scenario.fault_actions), self.target.name,
                                  self.target.url)
        self._publish = publish
        self._arrivals: Iterator[Arrival] = self.plan.shard(shard, started.shards)  # as ticks.shard_of splits them
        self._next: Arrival | None = None
        self._tick_of: dict[int, int] = {}  # user -> tick it arrived in
        self._ticks: dict[int, _TickTally] = {}
        self.first_tick: int | None = None
        self.done_upto = -1  # every tick up to this one is done
        self.last_seen = -1
        self.final = False  # the last tick and the drain are done
        self._buffers: dict[tuple[str, int], list[Event]] = {}
        self._tasks: list[asyncio.Task] = []
        self._plays: list[asyncio.Task] = []
        self._overdue: dict[int, float] = {}  # user -> ms late, for arrivals re-run after a takeover
        self.tp: tuple[str, int] | None = None  # the (topic, partition) its ticks come from
        self.refused = ""  # why this worker will not send to the run's target
        self._proxy: Any = None
        self._fault_timers: list[asyncio.TimerHandle] = []

    @property
    def counts(self) -> GeneratorCounts:
        return self.scheduler.counts

    # -- life cycle -----------------------------------------------------------------------
    def open(self) -> None:
        self._loop = asyncio.get_running_loop()
        pacer = self.pacer
        # the run's origin on this machine's monotonic clock, from the start's Unix time
        pacer.begin(pacer.now() + (self.started.real_time - pacer.wall()), self.started.real_time, None)
        try:  # whoever can write to the runs topic names the target: this worker's registry decides
            allowed = TargetRegistry.load(self.registry_file).resolve(self.started.target)
            self.target = dataclasses.replace(self.target, url=allowed.url)  # with its credentials, if registered
        except TargetRefused as exc:
            self.refused = f"bot worker {socket.gethostname()}:{os.getpid()} refused {self.started.target}: {exc}"
            return
        pacer.sender = self._make_sender(self.target.url)
        self.status = self.status.to(RunStatus.RUNNING)
        self._tasks.append(self._loop.create_task(self._flush_periodically_kafka()))
        self._follow_faults()

    def _make_sender(self, url: str) -> Sender:
        return make_sender(self.http_client, url, timeout=self.scenario.request_timeout,
                           max_connections=connection_budget(self.in_flight),
                           keep_headers=any(j.reads_headers for j in self.scenario.journeys))

    def _follow_faults(self) -> None:
        """Apply the run's built-in faults in this worker's own fault proxy, and mark results
        with the faults active, both by the run's clock (the clock worker performs the system's
        own faults and publishes the fault events)."""
        if not self.faults:
            return
        if any(f.toxic is not None for f in self.faults):
            from urllib.parse import urlsplit

            from esr.faults.proxy import FaultProxy

            parts = urlsplit(self.target.url)
            self._proxy = FaultProxy(parts.hostname or "127.0.0.1", parts.port or 80, seed=self.scenario.seed)
            # created before any tick's play task, so it runs first: no request goes around the proxy
            self._tasks.append(self._loop.create_task(self._through_proxy()))
        active: dict[str, str] = {}

        def switch(starting: bool, fault: Any) -> None:
            if starting:
                active[fault.key] = fault.name
                if fault.toxic is not None:
                    self._proxy.apply(fault.key, fault.toxic)
            elif active.pop(fault.key, None) is not None and fault.toxic is not None:
                self._proxy.clear(fault.key)
            self.pacer.active_faults = tuple(dict.fromkeys(active.values()))

        for sim, starting, fault in fault_moments(self.faults):
            self._fault_timers.append(self._loop.call_at(self.pacer.loop_at_sim(sim), switch, starting, fault))

    async def _through_proxy(self) -> None:
        await self._proxy.start()
        direct, self.pacer.sender = self.pacer.sender, self._make_sender(self._proxy.address_of(self.target.url))
        if direct is not None:
            await direct.close()

    async def close(self) -> None:
        """Stop everything (the shard is done, or its partition went to another worker)."""
        for task in self._tasks + self._plays:
            task.cancel()
        for timer in self._fault_timers:
            timer.cancel()
        await self.pacer.abort()
        await asyncio.gather(*self._tasks, *self._plays, return_exceptions=True)
        if self.pacer.sender is not None:
            await self.pacer.sender.close()
        if self._proxy is not None:
            await self._proxy.close()

    def on_tick(self, tick: Tick) -> None:
        if self.refused:
            self._refuse(tick)
            return
        if tick.tick <= self.last_seen or self.final:
            return  # a tick the clock sent again after a restart
        self.last_seen = tick.tick
        if self.first_tick is None:
            self.first_tick = tick.tick
            self.done_upto = tick.tick - 1
        self._ticks[tick.tick] = _TickTally()
        if tick.aborted:
            self._plays.append(self._loop.create_task(self.abort()))
            return
        due = []
        while True:
            arrival = self._next if self._next is not None else next(self._arrivals, None)
            self._next = None
            if arrival is None:
                break
            if arrival.sim >= tick.sim_to and not tick.last:
                self._next = arrival
                break
            if arrival.sim >= tick.sim_from:
                due.append(arrival)
            # else: before the first tick this attempt owns; the worker that committed it ran it
        self._plays.append(self._loop.create_task(self._play(tick, due)))

    def _refuse(self, tick: Tick) -> None:
        """Send nothing: the shard is done at its first tick, every arrival of it not started."""
        if self.final:
            return
        self.first_tick = self.last_seen = tick.tick
        self.done_upto = tick.tick - 1
        self._ticks[tick.tick] = _TickTally(open=0)
        self.counts.arrivals_not_started = sum(1 for _ in self._arrivals)  # none of them will start
        self.final = True
        self.status = self.status.to(RunStatus.FINISHED)
        self._advance()

    async def abort(self) -> None:
        """The run was aborted: cut every journey; the shard is done."""
        plays = [task for task in self._plays if task is not asyncio.current_task()]
        for task in plays:
            task.cancel()
        await asyncio.gather(*plays, return_exceptions=True)
        await self.pacer.abort()
        for tally in self._ticks.values():
            tally.open = 0
        self.final = True
        self.status = self.status.to(RunStatus.ABORTED)
        self._advance()

    async def _play(self, tick: Tick, arrivals: list[Arrival]) -> None:
        """Start the tick's arrivals at their intended times, never before (as `Pacer.play`).

        A shard taken over from a dead worker has arrivals already past due: they start now,
        and their latency counts from now (the delay was the generator's, not the target's);
        their journey_started events still say how late they were, so the verdict's
        generator figures show the disruption."""
        tally = self._ticks[tick.tick]
        pacer = self.pacer
        t0 = pacer.origin
        for arrival in arrivals:
            at = t0 + arrival.real
            now = pacer.now()
            if self.first_tick and now - at > self.scenario.late_threshold_ms / 1000:
                self._overdue[arrival.index] = (now - at) * 1000
                arrival = Arrival(arrival.index, now - t0, arrival.sim)
            if now < at:
                await pacer.wait_for(at)
            self._tick_of[arrival.index] = tick.tick
            tally.open += 1
            pacer.arrive(arrival)
        tally.open -= 1
        if tick.last:
            await pacer.sleep_until(t0 + self.clock.load_end_real)
            self.status = self.status.to(RunStatus.DRAINING)
            await pacer.drain()
            for t in self._ticks.values():  # cut journeys ended; arrivals never started are counted
                t.open = 0
            self.final = True
            self.status = self.status.to(RunStatus.FINISHED)
        self._advance()

    def _journey_ended(self, user: int) -> None:
        tick = self._tick_of.pop(user, None)
        if tick is not None:
            self._ticks[tick].open -= 1
            self._advance()

    def _advance(self) -> None:
        while (t := self._ticks.get(self.done_upto + 1)) is not None and t.open <= 0:
            self.done_upto += 1

    # -- events ---------------------------------------------------------------------------
    def _emit(self, event: Event) -> None:
        user = getattr(event, "user", None)
        tick = self._tick_of.get(user, self.last_seen) if user is not None else self.last_seen
        kind = type(event)
        tally = self._ticks.get(tick)
        if kind is RequestResult:
            topic = "results"
            if tally:
                tally.results += 1
        else:
            topic = "journeys"
            if tally:
                tally.journey_events += 1
            if type(event) is JourneyStarted and self._overdue:
                late = self._overdue.pop(event.user, None)
                if late is not None:
                    event = msgspec.structs.replace(event, late_ms=late)
            if type(event) is JourneyStarted and tally:
                tally.journeys += 1
                if event.late_ms > self.scenario.late_threshold_ms:
                    tally.late += 1
        self._buffers.setdefault((topic, tick), []).append(event)

    def flush(self) -> None:
        buffers, self._buffers = self._buffers, {}
        for (topic, tick), events in buffers.items():
            for i in range(0, len(events), BATCH_MAX):
                self._publish(topic, EventBatch(
                    run_id=self.run_id, shard=self.shard, attempt=self.attempt, tick=tick,
                    window_s=self.scenario.window, late_threshold_ms=self.scenario.late_threshold_ms,
                    top_endpoints=self.scenario.top_endpoints,
                    windowed_endpoints=self.scenario.windowed_endpoints or [],
                    events=cast("list[AnyEvent]", events[i:i + BATCH_MAX])))  # a runner emits only these

    async def _flush_periodically_kafka(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_S)
            self.flush()
            self.pacer.keep_collections_short()

    def report(self) -> ShardReport:
        """This attempt's cumulative figures for its ticks up to `done_upto`."""
        assert self.first_tick is not None
        ticks = [t for k, t in self._ticks.items() if self.first_tick <= k <= self.done_upto]
        c = self.counts
        return ShardReport(
            run_id=self.run_id, seq=0, sim_time=self.pacer.sim_now(), real_time=self.pacer.wall(), shard=self.shard,
            attempt=self.attempt, first_tick=self.first_tick, last_tick=self.done_upto, final=self.final,
            journeys_started=sum(t.journeys for t in ticks), requests_sent=sum(t.results for t in ticks),
            journey_events=sum(t.journey_events for t in ticks), late_starts=sum(t.late for t in ticks),
            journeys_cut=c.journeys_cut if self.final else 0,
            requests_abandoned=c.requests_abandoned if self.final else 0,
            sla_undecided=c.sla_undecided if self.final else 0,
            arrivals_not_started=c.arrivals_not_started if self.final else 0, refused=self.refused)


class ReplayShardRun(ShardRun):
    """One shard of a replay on the Kafka runtime: each tick (from `esr.requests`) carries the
    logged requests to send in its stretch of time, instead of arrivals of a profile."""

    @functools.cached_property
    def endpoints(self) -> EndpointFolder:
        """The replay's `--endpoint` templates (from its start), then the heuristics."""
        try:
            return EndpointFolder(self.started.endpoints)
        except EndpointTemplateError as exc:  # `esr replay` checks them; a start written by hand may not
            print(f"esr worker bots: run {self.run_id}: {exc}; labelling by the heuristics alone",
                  file=sys.stderr)
            return EndpointFolder()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._parts: deque[Tick] = deque()  # parts received, in order, not yet played
        self._received = asyncio.Event()
        self._sends: set[asyncio.Task] = set()
        self._last_part = -1  # of tick `last_seen`
        self._skipped: int | None = None  # a tick whose first part this attempt never read
        self.unanswered = 0  # requests received whose answer has not come: the worker pauses past a bound

    def on_tick(self, tick: Tick) -> None:
        """Take one part of a tick: its requests join the shard's queue, played in order. A tick
        is done when its last part (`more` False) has arrived and every request of its parts has
        its answer (`_TickTally.open` holds one for the parts still to come)."""
        if self.refused:
            self._refuse(tick)
            return
        if tick.requests is None or tick.aborted:
            super().on_tick(tick)
            return
        if self.final or (tick.tick, tick.part) <= (self.last_seen, self._last_part):
            return  # read again: this attempt has it
        if tick.tick != self.last_seen:
            if tick.part != 0:  # its first parts were not read (not expected: parts are committed by whole
                if tick.tick != self._skipped:  # ticks): never played, never reported, so the verdict says so
                    self._skipped = tick.tick
                    print(f"esr worker bots: run {self.run_id} shard {self.shard}: tick {tick.tick} begins at "
                          f"part {tick.part}, not 0; skipping it", file=sys.stderr, flush=True)
                return
            self.last_seen = tick.tick
            if self.first_tick is None:
                self.first_tick = tick.tick
                self.done_upto = tick.tick - 1
            self._ticks[tick.tick] = _TickTally()
        self._last_part = tick.part
        self._parts.append(tick)
        self.unanswered += len(tick.requests)
        self._received.set()
        if not self._plays:
            self._plays.append(self._loop.create_task(self._play_parts()))

    async def close(self) -> None:
        for send in list(self._sends):  # a revoked shard's new owner sends them again
            send.cancel()
        await super().close()

    def _refuse(self, tick: Tick) -> None:
        """Send nothing. A replay's shard has no profile of arrivals to count as not started:
        what it would have sent is the log's, and the verdict says nothing was sent."""
        if not self.final:
            self._arrivals = iter(())
        super()._refuse(tick)

    async def _play_parts(self) -> None:
        """Start the requests of the parts received at their logged times, never before, part
        after part; a part ending its tick (`more` False) lets the tick be done."""
        pacer = self.pacer
        while True:
            while not self._parts:
                self._received.clear()
                await self._received.wait()
            tick = self._parts.popleft()
            tally = self._ticks[tick.tick]
            for planned in tick.requests or ():
                at = pacer.loop_at_sim(planned.sim)
                if pacer.now() < at:
                    await pacer.wait_for(at)
                tally.open += 1
                self._tick_of[planned.index] = tick.tick
                send = self._loop.create_task(self._send_planned(planned, at, tally))
                self._sends.add(send)
                send.add_done_callback(self._sends.discard)
            if tick.more:
                continue
            tally.open -= 1
            if tick.last:  # the replay ends when every request sent has its answer (or its timeout)
                await asyncio.gather(*self._sends, return_exceptions=True)
                deadline = pacer.now() + self.scenario.request_timeout + 1.0
                while any(t.open > 0 for t in self._ticks.values()) and pacer.now() < deadline:
                    await asyncio.sleep(0.01)
                for t in self._ticks.values():
                    t.open = 0
                self.final = True
                self.status = self.status.to(RunStatus.FINISHED)
                self._advance()
                return
            self._advance()

    async def _send_planned(self, planned: PlannedRequest, intended: float, tally: _TickTally) -> None:
        label = self.endpoints.fold(planned.method, planned.target).label
        request = PreparedRequest(planned.method, planned.target, label, "replay",
                                  headers=dict(planned.headers), body=planned.body)
        try:
            await self.pacer.send(request, intended, planned.index, "replay", sim=planned.sim)
        except asyncio.CancelledError:
            pass
        finally:
            tally.open -= 1
            self.unanswered -= 1
            self._tick_of.pop(planned.index, None)
            self._advance()


class BotWorker:
    """`esr worker bots`: joins the `esr-bots` group on the tick topic and runs owned shards."""

    def __init__(self, settings: KafkaSettings, *, registry_file: Path, http_client: str = "pooled",
                 commit_every_s: float = 0.25, backlog: int = BACKLOG) -> None:
        self.settings = settings
        self.backlog = backlog
        self.backlog_resume = int(backlog * BACKLOG_RESUME_SHARE)
        self.registry_file = registry_file
        self.group = settings.group("bots")
        self.http_client = http_client
        self.commit_every_s = commit_every_s
        self.worker_id = f"{socket.gethostname()}-{os.getpid()}"
        self._attempts = itertools.count(1)
        self.shards: dict[tuple[str, int], ShardRun] = {}
        self._finished: set[tuple[str, int]] = set()
        self._offsets: OffsetTracker[tuple[str, int]] = OffsetTracker()
        # shard key -> [(tick, (topic, partition), offset)]
        self._tick_offsets: dict[tuple[str, int], list[tuple[int, Any, int]]] = {}
        self._reported: dict[tuple[str, int], tuple[int, bool]] = {}
        self._reported_at: dict[tuple[str, int], float] = {}  # shard key -> when its last report left
        self._revoked: list[ShardRun] = []
        self._uncommitted: dict[tuple[str, int], int] = {}  # commits that failed, retried next round
        self._idle = IdleNotice()
        self._idle_check = False  # an assignment left it without a partition of the tick topic: say so
        # requests partitions paused -> the replay shard whose backlog paused it, and the messages
        # of that partition read (in the same batch) after the pause, taken up again at the resume
        self._paused: dict[tuple[str, int], tuple[str, int]] = {}
        self._held: dict[tuple[str, int], list[Any]] = {}
        self._assigned = False  # a new assignment: clear any pause librdkafka kept over it
        self._said_paused: set[tuple[str, int]] = set()

    def _publish(self, topic: str, batch: EventBatch) -> None:
        # a shard's batches on the shard's own partition, also after the topic grew mid-run: the
        # metrics side drops a re-run's repeats per partition, so they must meet the originals
        name = self.settings.topic(topic)
        self._produce(name, shard_key(batch.run_id, batch.shard), encode(batch), headers("event_batch", batch.run_id),
                      partition=self._partitions.partition(name, batch.shard))

    def _produce(self, topic: str, key: bytes, value: bytes, hdrs: list[tuple[str, bytes]],
                 partition: int | None = None) -> None:
        where = {} if partition is None else {"partition": partition}
        while True:
            try:
                self.producer.produce(topic, key=key, value=value, headers=hdrs, **where)
                return
            except BufferError:  # the local queue is full: let deliveries drain
                self.producer.poll(0.05)

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        ticks = sorted(p.partition for p in partitions if p.topic == self.settings.topic("ticks"))
        requests = sorted(p.partition for p in partitions if p.topic == self.settings.topic("requests"))
        print(f"esr worker bots: {self.worker_id} owns partitions {ticks} (replay requests: {requests})",
              file=sys.stderr, flush=True)
        self._idle_check = self._idle.assigned(ticks)  # said from the serve loop, not inside the rebalance
        self._assigned = True

    async def _say_idle(self) -> None:
        """The idle line, once per spell without a partition of the tick topic."""
        self._idle_check = False
        topic = self.settings.topic("ticks")
        partitions = len(self.consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        workers = await asyncio.to_thread(group_members, self.settings, self.group)
        print(idle_line(topic, partitions=partitions, workers=workers, group=self.group), file=sys.stderr, flush=True)

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        gone = {(p.topic, p.partition) for p in partitions}
        for tp in gone:
            self._offsets.forget(tp)
            self._uncommitted.pop(tp, None)
            self._paused.pop(tp, None)  # the next owner reads them again from the last commit
            self._held.pop(tp, None)
        for key, shard in list(self.shards.items()):
            if shard.tp in gone:
                self._revoked.append(self.shards.pop(key))
                self._tick_offsets.pop(key, None)

    async def serve(self, stop: asyncio.Event) -> None:
        collect_rarely()
        self.producer = make_producer(self.settings)
        self._partitions = PartitionCounts(self.producer)
        self.consumer = make_consumer(self.settings, self.group, **{
            "partition.assignment.strategy": "roundrobin",
            "session.timeout.ms": 6000, "heartbeat.interval.ms": 1000,
            "topic.metadata.refresh.interval.ms": 5000,  # grown topics rebalance the group within seconds
            "queued.max.messages.kbytes": PREFETCH_KBYTES})
        self.consumer.subscribe([self.settings.topic("ticks"), self.settings.topic("requests")],
                                on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_revoke)
        last_commit = 0.0
        try:
            while not stop.is_set():
                msgs = self.consumer.consume(100, 0)
                for msg in msgs:
                    if msg.error() is None:
                        self._take(msg)
                self._resume_drained()
                while self._revoked:
                    await self._revoked.pop().close()
                if self._idle_check:
                    await self._say_idle()
                now = time.monotonic()
                if now - last_commit >= self.commit_every_s:
                    last_commit = now
                    await self._commit()
                self.producer.poll(0)
                await asyncio.sleep(0 if msgs else 0.01)
        finally:
            for shard in list(self.shards.values()):
                await shard.close()
            self.consumer.close()  # leaves the group now: the shards move without waiting for a timeout
            self.producer.flush(10)

    def _take(self, msg: Any) -> None:
        """Handle one message, or hold it when its partition is paused; pause a partition of the
        requests topic once a replay shard on it has more than `backlog` requests unanswered,
        so that a tick's parts wait on the broker, not in this worker's memory."""
        tp = (msg.topic(), msg.partition())
        held = self._held.get(tp)
        if held is not None:
            held.append(msg)  # read before the pause took effect: kept in order, taken up at the resume
            return
        shard = self._on_message(msg)
        if isinstance(shard, ReplayShardRun) and shard.unanswered > self.backlog and not shard.final:
            from confluent_kafka import TopicPartition

            self.consumer.pause([TopicPartition(*tp)])
            key = self._paused[tp] = (shard.run_id, shard.shard)
            self._held[tp] = []
            if key not in self._said_paused:
                self._said_paused.add(key)
                print(f"esr worker bots: run {shard.run_id} shard {shard.shard}: {shard.unanswered:,} requests "
                      f"unanswered: reading {tp[0]} [{tp[1]}] paused until they are down to {self.backlog_resume:,} "
                      f"(ESR_BOT_BACKLOG={self.backlog}; said once per shard)", file=sys.stderr, flush=True)

    def _resume_drained(self) -> None:
        """Resume the paused partitions whose shard is down to `backlog_resume` requests (or done,
        or gone), first taking up the messages held since the pause (which may pause it again)."""
        if self._assigned:  # librdkafka may keep a partition paused over a rebalance: this worker's state decides
            self._assigned = False
            self._resync_pauses()
        for tp, key in list(self._paused.items()):
            shard = self.shards.get(key)
            if isinstance(shard, ReplayShardRun) and shard.unanswered > self.backlog_resume and not shard.final:
                continue
            from confluent_kafka import TopicPartition

            del self._paused[tp]
            held = self._held.pop(tp, [])
            for i, msg in enumerate(held):
                self._take(msg)
                if tp in self._paused:  # paused again: the rest stays held, in order
                    self._held[tp].extend(held[i + 1:])
                    break
            else:
                self.consumer.resume([TopicPartition(*tp)])

    def _resync_pauses(self) -> None:
        from confluent_kafka import TopicPartition

        free = [p for p in self.consumer.assignment() if (p.topic, p.partition) not in self._paused]
        if free:
            self.consumer.resume([TopicPartition(p.topic, p.partition) for p in free])

    def _on_message(self, msg: Any) -> ShardRun | None:
        received = time.time()
        tp, offset = (msg.topic(), msg.partition()), msg.offset()
        self._offsets.add(tp, offset)
        tick = decode_tick(msg.value())
        key = (tick.run_id, tick.shard)
        if key in self._finished:
            self._offsets.done(tp, offset)
            return None
        shard = self.shards.get(key)
        if shard is None:
            if time.time() > expected_end(tick.run):  # a run long over: nothing to do
                self._offsets.done(tp, offset)
                return None
            kind = ReplayShardRun if tick.run.source == "replay" else ShardRun
            shard = kind(tick.run, tick.shard, f"{self.worker_id}:{next(self._attempts)}", self._publish,
                         registry_file=self.registry_file, http_client=self.http_client)
            shard.tp = tp
            shard.open()
            self.shards[key] = shard
            stamp_kind, stamp_ms = msg.timestamp()
            print(clock_skew_line(tick, received=received, published=stamp_ms / 1000 if stamp_kind else None),
                  file=sys.stderr, flush=True)
        shard.on_tick(tick)
        # every part of a tick under the tick's number: all are done when the tick is (the last
        # part's offset is committed then), so a takeover re-reads the tick from its first part
        self._tick_offsets.setdefault(key, []).append((tick.tick, tp, offset))
        return shard

    async def _commit(self) -> None:
        """Report what each shard finished, make sure it reached the broker, then commit."""
        reported = False
        for key, shard in list(self.shards.items()):
            if shard.first_tick is None:
                continue
            state = (shard.done_upto, shard.final)
            changed = state != self._reported.get(key) and shard.done_upto >= shard.first_tick
            # a shard still at work says so at least every REPORT_EVERY_S, even when no tick ended
            # (a replay's one tick can last minutes): the metrics worker judges a past-due run with
            # gaps only once its shards fall quiet
            alive = not shard.final and time.monotonic() - self._reported_at.get(key, 0.0) >= REPORT_EVERY_S
            if changed or alive:
                shard.flush()
                report = shard.report()
                self._produce(self.settings.topic("runs"), shard.run_id.encode(), encode(report),
                              headers("shard_report", shard.run_id))
                self._reported_at[key] = time.monotonic()
                if changed:
                    self._reported[key] = state
                    reported = True
            pending = self._tick_offsets.get(key, [])
            # a final shard has reported all it will: what came after (parts or ticks a refused
            # or aborted shard ignores) is done too
            while pending and (pending[0][0] <= shard.done_upto or shard.final):
                _, tp, offset = pending.pop(0)
                self._offsets.done(tp, offset)
            if shard.final and not pending:
                del self.shards[key]
                self._tick_offsets.pop(key, None)
                self._finished.add(key)
                asyncio.get_running_loop().create_task(shard.close())
                if not self.shards:  # idle: what the runs' pacers froze (Pacer.keep_collections_short) is
                    gc.unfreeze()  # collectable again, so a long-lived worker does not keep their cycles
        commits = {**self._uncommitted, **self._offsets.committable()}
        if not commits:
            return
        if reported and await asyncio.to_thread(self.producer.flush, 30) > 0:
            return  # the broker did not take the reports: commit later rather than lose them
        from confluent_kafka import TopicPartition

        try:
            self.consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in commits.items()],
                                 asynchronous=False)
            self._uncommitted = {}
        except Exception:  # noqa: BLE001 - e.g. the broker is restarting: the next round retries
            self._uncommitted = commits


def collect_rarely() -> None:
    """A bot worker's garbage collector: the imported modules frozen out of every collection (as a
    run's set-up is, esr.engine.runner), young collections every GC_YOUNG_THRESHOLD allocations."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


def run_bots(settings: KafkaSettings, *, registry_file: Path, http_client: str = "pooled",
             backlog: int = BACKLOG) -> None:
    """Serve until SIGINT or SIGTERM (then leave the group, so shards move at once); targets are
    checked against the registry in `registry_file` (ESR_TARGETS, else $ESR_HOME/targets.json)."""
    from esr.producers import serve_until_stopped

    serve_until_stopped(BotWorker(settings, registry_file=registry_file, http_client=http_client,
                                  backlog=backlog).serve)
