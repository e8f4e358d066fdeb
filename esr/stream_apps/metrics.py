"""The metrics stream app (`esr worker metrics`): Faust agents that fold bot shards' events
into metric buckets, check completeness and publish each run's verdict to `esr.verdicts`.

Any number of metrics workers share the partitions (one Faust app, one consumer group). Each
folds the result and journey batches of its partitions (`ShardFold` per run and partition) and
sends each change it stores to `esr.partials`, keyed by run id (`Partial`). Faust gives one
worker the same partition number of every topic of equal partition count, and the app's
producer places a key as ESR's other producers do (`run_partition`), so the worker reading a
run's partition of `esr.partials` also reads its start, reports and faults on `esr.runs` and
`esr.faults`: that worker, the run's owner, merges the partials into the run's `RunAssembly` and
alone judges it. The logic is the pure core's: `ShardFold`, `RunAssembly` and `judge`. Windows
are keyed by simulated time inside the buckets (Faust's windowed tables expire against the wall
clock, which is wrong for warped and replayed time).

State lives in four tables with changelogs, rebuilt on restart or takeover:

    esr-partials   "run|partition|entry" -> a ShardFold's state in pieces: "meta" (tallies and
                   offsets folded), "w<N>" (the buckets of simulated-time window N) and "t<K>"
                   (de-duplication of the users who arrived in tick K); only changed pieces
                   are written (the folding side, by the events' partitions)
    esr-merged     the same entries as the run's owner merged them from `esr.partials`
    esr-runs       run id -> the run's start, shard reports, abort and fault events (from
                   `esr.core.fault_spec`, published by the clock worker)
    esr-verdicts   run id -> the verdict, once published

While a run plays, its owner sends its figures so far (summary metrics, each assertion's value)
to `esr.metrics` once a second, for dashboards; less often when computing them takes more than
a tenth of that (PERIODIC_SHARE: a fold of a million distinct paths), so folding keeps the time.

Batches are acknowledged only after the state that folded them is in its changelog and its
partial on the partials topic (both deliveries awaited), and never by a store that a rebalance
overtook, so a worker killed at any point re-reads exactly what its tables lack, and `ShardFold`
skips what they already have. A partition's changed pieces are stored at most every
`persist_s` (0.25 s; a change that writes more than `STORE_BYTES_PER_S` / 4, or a store that took more
than a tenth of that, waits longer in proportion): from the stream when its batches arrive,
from a timer for the last of them, and before a verdict. Storing after every batch instead
wrote the whole per-tick state again for each of the 5-10 batches a second a busy shard sends,
which filled Faust's producer buffer ("producer buffer full") and held the stream, and with it
the verdict, for seconds at 10,000 requests/s. A worker that takes partitions over (another died or left)
rebuilds their folds from the table and sends each whole once: the dead worker's last change
may never have reached the run's owner.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Mapping
from typing import Any

import msgspec
import orjson
from aiokafka.errors import KafkaError as AioKafkaError

from esr.bus.kafka import (
    MAX_MESSAGE_BYTES,
    KafkaSettings,
    consistent_partitioner,
    decode_batch,
    decode_event,
    encode,
    headers,
    run_partition,
)
from esr.core.assertions import evaluate
from esr.core.events import Event, FaultEnded, FaultStarted, RunAborted, RunStarted, ShardReport, VerdictIssued
from esr.core.metrics import MetricsView
from esr.core.scenario import Scenario
from esr.core.ticks import run_clock
from esr.core.verdict import judge
from esr.observe.prom import WorkerCollector, serve_worker_metrics
from esr.observe.timeline import run_timeline
from esr.stream_apps.assembly import RunAssembly, ShardFold, decode_partial, encode_partial
from esr.stream_apps.credentials import faust_settings, hide_secrets_in_logs
from esr.stream_apps.delivery_gate import DeliveryGate
from esr.stream_apps.free_memory import release_free_memory

__all__ = ["PERSIST_S", "create_app", "run_metrics_worker", "store_pace"]

PERSIST_S = 0.25  # how often a partition's changed state is stored (and its batches acked)
# a partition whose changes are large (a replay of many distinct paths rewrites its endpoint rows)
# stores them less often: at most this many bytes a second (its changelog entries and its partial
# message), so the broker and Faust's producer buffer are not flooded with rewrites of the same
# rows, and each store folds more batches in
STORE_BYTES_PER_S = 1024 * 1024
STREAM_BUFFER = 64  # messages a stream reads ahead of its agent (Faust's stream_buffer_maxsize)
# messages the consumer hands over per poll, all partitions together: the rest of a fetch stays
# in its buffer as bytes, not decoded into records the agents are not ready for
POLL_RECORDS = 100
FETCH_BYTES = 2 * 1024 * 1024  # what one fetch takes of a partition (a larger message still comes whole)
TRIM_S = 1.0  # how often freed heap pages go back to the system (release_free_memory)
QUIET_S = 2.0  # an incomplete run past its expected end is judged once its batches stop arriving this long
STALL_S = 1.0  # the judge task woke this much late, or judging took this long: the quiet count starts again
PROGRESS_S = 1.0  # how often a run's owner sends its figures so far
# the share of the worker's time that stores and progress messages may take each: a run whose
# fold is large (a replay of a million distinct paths) is stored and reported less often, so
# that folding keeps most of the time
PERIODIC_SHARE = 0.1

log = logging.getLogger("esr.metrics")
_RUN_EVENTS = (RunStarted, ShardReport, RunAborted, FaultStarted, FaultEnded)
_run_events = msgspec.json.Decoder(list[RunStarted | ShardReport | RunAborted | FaultStarted | FaultEnded])


def is_quiet(run_id: str, now: float, came_at: float, free_since: float, waiting: tuple[str, ...]) -> bool:
    """Whether a past-due run with data missing is judged now: nothing of it (batch, partial,
    report: a working bot reports every second) came for QUIET_S while the worker was free to read
    it (`free_since`: a stall of its own, such as a large fold's store or progress, starts the
    count again), and none of its parts (`waiting`: "run|partition" keys) has folded batches
    waiting to be stored or for their store's delivery."""
    prefix = f"{run_id}|"
    return now - max(came_at, free_since) >= QUIET_S and not any(key.startswith(prefix) for key in waiting)


def paced_gap(base_s: float, spent_s: float) -> float:
    """The wait before doing again what just took `spent_s`: at least `base_s`, and long enough
    that it takes at most PERIODIC_SHARE of the worker's time."""
    return max(base_s, spent_s / PERIODIC_SHARE)


def store_pace(dirty: dict[str, bytes], persist_s: float) -> float:
    """The wait before a partition's next store after storing `dirty` (`take_dirty()`'s entries):
    `persist_s`, or longer for a large change, so that what the stores write (each entry to the
    changelog, and "last" once more as the partial message) stays under STORE_BYTES_PER_S."""
    written = sum(map(len, dirty.values())) + len(dirty["last"])
    return max(persist_s, written / STORE_BYTES_PER_S)


def _broker_urls(bootstrap: str) -> list[str]:
    return [f"kafka://{host.strip()}" for host in bootstrap.split(",") if host.strip()]


def create_app(settings: KafkaSettings, *, persist_s: float = PERSIST_S, datadir: str | None = None,
               exporter: WorkerCollector | None = None) -> Any:
    """With an `exporter` (`serve_worker_metrics`), Prometheus reads the runs through it.
    `persist_s` 0 stores every batch's change at once."""
    from faust.types import TP

    app_id = settings.group("metrics")
    hide_secrets_in_logs(settings.client_config)
    app = _idempotent_app()(
        app_id,
        broker=_broker_urls(settings.bootstrap),
        store="memory://",
        datadir=datadir or f"/tmp/esr-faust-{app_id}",
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication,  # changelogs and the assignor's leader topic
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        stream_wait_empty=False,  # batches wait for their state to be stored before their ack
        web_enabled=False,
        table_standby_replicas=0,
        # per partition: a few batches per round trip (each up to 2,000 events); the consumer holds a
        # fetch of every partition it reads ahead of the agents (16 MiB: the worker peaked at 453 MiB
        # on a 1,000,000-line replay at warp 1e9, 2 MiB: 242 MiB)
        consumer_max_fetch_size=FETCH_BYTES,
        # messages read ahead of the agents, per stream: a batch holds up to 2,000 events (a partial
        # up to a partition's stored change); Faust's 4,096 would let a worker that folds slower
        # than the bots send (a replay at a high warp) queue gigabytes of them
        stream_buffer_maxsize=STREAM_BUFFER,
        broker_max_poll_records=POLL_RECORDS,
        broker_session_timeout=10.0,  # a killed worker's partitions come back within seconds
        broker_heartbeat_interval=1.0,
        producer_acks=-1,
        producer_max_request_size=MAX_MESSAGE_BYTES,  # a stored change can be large (a replay's rows)
        producer_partitioner=consistent_partitioner,  # a run's key lands where ESR's other producers put it
        consumer_metadata_max_age_ms=5_000,  # topics grown (ESR_KAFKA_PARTITIONS raised) are read within seconds
        producer_metadata_max_age_ms=5_000,
        **faust_settings(settings.client_config),  # ESR_KAFKA_CONFIG: SASL and TLS for aiokafka
    )
    raw: dict[str, Any] = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw",
           "partitions": settings.partitions}
    events_topic = app.topic(settings.topic("results"), settings.topic("journeys"), **raw)
    runs_name = settings.topic("runs")
    runs_topic = app.topic(runs_name, settings.topic("faults"), **raw)
    partials_topic = app.topic(settings.topic("partials"), **raw)
    verdicts_topic = app.topic(settings.topic("verdicts"), **raw)
    metrics_topic = app.topic(settings.topic("metrics"), **raw)
    progress_at: dict[str, float] = {}
    progress_gap: dict[str, float] = {}  # run id -> seconds to its next progress message (PROGRESS_S or more)
    table: dict[str, Any] = {"key_type": str, "value_type": bytes, "partitions": settings.partitions, "default": None,
                             "extra_topic_configs": settings.topic_config}  # the changelog's min.insync.replicas
    # fed from the events topics: the folds of this worker's partitions
    partials = app.tables.add(_part_table()(app, name="esr-partials", beacon=app.tables.beacon, **table))
    merged = app.Table("esr-merged", **table)  # fed from the partials topic: the folds of the runs it owns
    runs = app.Table("esr-runs", **table)
    verdicts = app.Table("esr-verdicts", use_partitioner=True, **table)

    folds: dict[str, ShardFold] = {}  # "run|partition" -> the fold of a partition this worker reads
    # run id -> a run this worker owns; the parts it folds itself are its folds (the same objects,
    # up to date without waiting for their partials), the others are merged from partials
    assemblies: dict[str, RunAssembly] = {}
    unacked: dict[str, list[tuple[Any, Any]]] = {}  # part key -> (stream, event) folded, not yet stored
    stored_at: dict[str, float] = {}
    store_gap: dict[str, float] = {}  # part key -> seconds until its next store (persist_s, or more for large ones)
    gained: set[int] = set()  # events partitions assigned in the rebalance under way
    rebalances = [0]  # how many began: a store that spans one acks nothing
    judge_soon = asyncio.Event()
    folded_at: dict[str, float] = {}  # run id -> when a batch, partial or run event of it last came
    storing: set[str] = set()  # part keys whose store is under way (their batches wait for its delivery)
    awake = [0.0]  # since when the worker has kept up with its judge task's wake-ups (no stall)
    gate = DeliveryGate()  # each partition's batches in offset order, from its committed offset

    def pieces(table: Any, prefix: str) -> dict[str, dict[str, bytes]]:
        """A table's entries under `prefix`, by part key ("run|partition"), for folds it holds whole."""
        found: dict[str, dict[str, bytes]] = {}
        for key, data in list(table.items()):
            if key.startswith(prefix) and data is not None:
                part_key, _, entry = key.rpartition("|")
                found.setdefault(part_key, {})[entry] = data
        return {part_key: entries for part_key, entries in found.items() if "meta" in entries}

    def assembly(run_id: str) -> RunAssembly:
        """A run this worker owns, rebuilt from its tables the first time it is needed."""
        found = assemblies.get(run_id)
        if found is None:
            saved = runs.get(run_id)
            events: list[Event] = list(_run_events.decode(saved)) if saved is not None else []
            prefix = f"{run_id}|"
            found = assemblies[run_id] = RunAssembly.restore(run_id, events, pieces(merged, prefix))
            found.parts.update({key: fold for key, fold in folds.items() if key.startswith(prefix)})
        return found

    def owns(run_id: str) -> bool:
        """Whether this worker reads the run's partition of the runs topic (and so of the
        partials topic, co-partitioned with it): the one worker that judges the run."""
        count = partition_count(runs_name)
        if not count:
            return False
        return TP(runs_name, run_partition(run_id.encode(), count)) in app.consumer.assignment()

    def partition_count(topic: str) -> int:
        """The topic's partition count in the consumer's metadata (Faust's `topic_partitions`
        answers on the group's leader only: aiokafka keeps that snapshot for assigning)."""
        faust_consumer: Any = app.consumer
        partitions = faust_consumer._thread._ensure_consumer().partitions_for_topic(topic)  # noqa: SLF001
        return len(partitions) if partitions else 0

    def adopt(key: str, fold: ShardFold) -> ShardFold:
        """A fold this worker now reads; if it owns the run too, the run reads the fold itself."""
        folds[key] = fold
        run = assemblies.get(key.rpartition("|")[0])
        if run is not None:
            run.parts[key] = fold
        return fold

    def forget(_app: Any, /, *args: Any, **_: Any) -> None:  # (app, revoked partitions)
        """A rebalance: runs are rebuilt from the tables Faust recovers; whoever reads a revoked
        partition next re-reads what was not stored here and rebuilds its fold from the table."""
        rebalances[0] += 1
        assemblies.clear()
        gone = {tp.partition for tp in args[0] if tp.topic in events_topic.topics}
        for key in [k for k in folds if int(k.rpartition("|")[2]) in gone]:
            folds.pop(key)
            unacked.pop(key, None)
            store_gap.pop(key, None)

    def say_owned(_app: Any, /, *args: Any, **_: Any) -> None:  # (app, the whole assignment)
        owned = sorted(tp.partition for tp in args[0] if tp.topic == runs_name)
        gained.update(tp.partition for tp in args[0] if tp.topic in events_topic.topics)
        print(f"esr worker metrics: owns partitions {owned} of {runs_name} (and of the topics it reads alike): "
              "it folds those and judges the runs keyed to them", file=sys.stderr, flush=True)

    async def take_over(_app: Any, /, *args: Any, **_: Any) -> None:  # the tables are recovered
        """Where reading resumes, for the gate; then folds of the partitions just assigned,
        rebuilt from the recovered table and sent whole to their runs' owners (before this
        worker reads on): the worker that read them before may have stored a change it never sent."""
        await reopen_gate()
        for partition in sorted(gained):
            suffix = f"|{partition}"
            for key, entries in pieces(partials, "").items():
                if key.endswith(suffix) and key not in folds and verdicts.get(key.rpartition("|")[0]) is None:
                    fold = adopt(key, ShardFold.from_entries(entries))
                    await publish(key, fold.entries())
        gained.clear()

    async def reopen_gate() -> None:
        """Seek to the committed offsets (as Faust does next) and tell the gate: batches read
        before, from positions the seek replaces, are held back and come again in order."""
        consumer: Any = app.consumer
        mine = [tp for tp in consumer.assignment() if tp.topic in events_topic.topics]
        generation = app.consumer_generation_id
        committed: Mapping[Any, int | None] = {}
        first: Mapping[Any, int] = {}
        try:
            committed = await consumer.seek_to_committed()
            first = await consumer.earliest_offsets(*mine) if mine else {}
        except (TimeoutError, AioKafkaError) as exc:  # another rebalance under way: it reopens the gate
            log.warning("where reading resumes is not known yet (%s)", exc)
            mine = []  # the gate then takes any offset, as the folds' own check alone did
        starts = {tp: max(committed.get(tp) or 0, first.get(tp) or 0) for tp in mine}  # none committed: the first
        for tp, offset in starts.items():  # Faust's seek leaves a partition without a commit where it stood
            await consumer.seek(tp, offset)
        gate.reset(generation, starts)

    app.on_partitions_revoked.connect(forget)
    app.on_partitions_assigned.connect(say_owned)
    app.on_rebalance_complete.connect(take_over)

    async def publish(key: str, dirty: dict[str, bytes]) -> Any:
        """A fold's change, to the worker that owns the run: handed to the producer now (not
        attached to the batch, which would hold it until the next commit, up to 2.8 s); the
        future of its delivery comes back, for the batch's ack to wait on, as on the table's."""
        run_id = key.rpartition("|")[0]
        return await partials_topic.send(key=run_id.encode(), value=encode_partial(run_id, key, dirty),
                                         headers=headers("partial", run_id), force=True)

    def fold_of(key: str, batch: Any) -> ShardFold:
        """The partition's fold of the run: this worker's, or rebuilt from the table (the
        partition came back after a rebalance), or new."""
        found = folds.get(key)
        if found is None:
            entries = pieces(partials, f"{key}|").get(key)
            found = adopt(key, ShardFold.from_entries(entries) if entries else ShardFold.for_batch(batch))
        return found

    async def store(key: str) -> None:
        """Write the part's changed pieces to its table and send them to the run's owner, then
        ack the batches they folded, unless a rebalance came meanwhile: Faust then recovers the
        table from its changelog up to the end it saw, which may be before these writes, so the
        batches are left unacked, to be read again and folded into the table's state."""
        started = stored_at[key] = time.monotonic()
        pending = unacked.pop(key, None)
        if not pending:
            return
        storing.add(key)
        try:
            await _store(key, pending, started)
        finally:
            storing.discard(key)

    async def _store(key: str, pending: list[tuple[Any, Any]], started: float) -> None:
        generation = rebalances[0]
        part = folds.get(key)
        if part is not None:
            dirty = part.take_dirty()
            for entry, data in dirty.items():
                partials[f"{key}|{entry}"] = data
            store_gap[key] = paced_gap(store_pace(dirty, persist_s), time.monotonic() - started)
            delivered = [*partials.take_sent(), await publish(key, dirty)]
            try:
                await asyncio.gather(*delivered)  # in the changelog and on the partials topic, then acked
            except AioKafkaError as exc:  # the broker lost them: all of it again at the next store
                log.warning("%s: state not stored (%s); storing it again", key, exc)
                part.all_dirty()
                if rebalances[0] == generation:
                    unacked[key] = pending + unacked.get(key, [])
                return
        if rebalances[0] != generation:
            return
        for stream, event in pending:
            await stream.ack(event)

    @app.agent(events_topic)
    async def fold(stream: Any) -> None:
        async for event in stream.noack().events():
            message = event.message
            if not gate.admit(message.tp, message.offset, message.generation_id, time.monotonic()):
                event.value = message.value = None  # not acked either: it comes again, in order
                continue
            try:
                batch = decode_batch(event.value)
            except msgspec.DecodeError as exc:  # not ours: say so once per message, keep going
                log.warning("%s/%s@%s: not an event batch (%s)", message.topic, message.partition,
                            message.offset, exc)
                await stream.ack(event)
                continue
            key = f"{batch.run_id}|{message.partition}"
            fold_of(key, batch).apply(batch, f"{message.topic}/{message.partition}", message.offset)
            event.value = message.value = None  # folded: its ack needs only the offset, not the bytes
            unacked.setdefault(key, []).append((stream, event))
            folded_at[batch.run_id] = time.monotonic()
            run = assemblies.get(batch.run_id)
            if run is not None and run.all_final():  # a run this worker owns
                judge_soon.set()
            if time.monotonic() - stored_at.get(key, 0.0) >= store_gap.get(key, persist_s):
                await store(key)

    @app.timer(max(persist_s, 0.05))
    async def store_the_rest() -> None:
        """The last batches of a quiet partition, which no later batch will bring to the table."""
        now = time.monotonic()
        for key in [k for k in unacked if now - stored_at.get(k, 0.0) >= store_gap.get(k, persist_s)]:
            await store(key)

    @app.timer(TRIM_S)
    async def read_past_holes() -> None:
        """A partition whose missing offsets never came (deleted from the log): read on."""
        for tp, offset in gate.overdue(time.monotonic()).items():
            log.warning("%s: offsets before %s never came; reading on from there", tp, offset)
            await app.consumer.seek(tp, offset)

    @app.timer(TRIM_S)
    async def release_memory() -> None:
        """The heap pages the folds' stores and the batches read have freed, back to the system."""
        release_free_memory()

    @app.agent(partials_topic)
    async def merge(stream: Any) -> None:
        async for value in stream:
            try:
                partial = decode_partial(value)
            except msgspec.DecodeError as exc:
                log.warning("%s: not a partial (%s)", partials_topic, exc)
                continue
            entries = partial.entries()
            run = assembly(partial.run_id)
            folded_at[partial.run_id] = time.monotonic()
            local = folds.get(partial.part)
            if local is None or run.parts.get(partial.part) is not local:  # folded by another worker
                run.merge(partial.part, entries)
            for entry, data in entries.items():  # kept for whoever owns the run after a rebalance
                merged[f"{partial.part}|{entry}"] = data
            if run.all_final():
                judge_soon.set()

    @app.agent(runs_topic)
    async def run_events(stream: Any) -> None:
        async for value in stream:
            try:
                event = decode_event(value)
            except msgspec.DecodeError as exc:
                log.warning("%s: not an event (%s)", runs_topic, exc)
                continue
            if type(event) not in _RUN_EVENTS:
                continue
            run = assembly(event.run_id)
            run.on_run_event(event)
            folded_at[event.run_id] = time.monotonic()
            kept: list[Event] = [run.started] if run.started else []
            kept += [r for reports in run.reports.values() for r in reports.values()]
            kept += [run.aborted] if run.aborted else []
            kept += list(run.faults.values())
            runs[event.run_id] = msgspec.json.encode(kept)
            if run.aborted or run.all_final():
                judge_soon.set()

    @app.task
    async def judge_runs() -> None:
        """Twice a second, when a run's next progress message is due (a steady 1 s pace, or
        slower for a large fold), and at once when a run may have become complete: a verdict is
        published as soon as its last event is folded."""
        while True:
            next_progress = min((at + progress_gap.get(run_id, PROGRESS_S) for run_id, at in progress_at.items()),
                                default=time.time()) - time.time()
            wait = min(0.5, max(0.1, next_progress))
            woke = time.monotonic() + wait
            try:
                await asyncio.wait_for(judge_soon.wait(), wait)
            except TimeoutError:
                pass
            if time.monotonic() - woke > STALL_S:  # the worker was too busy to read: nothing came, nothing was sent
                awake[0] = time.monotonic()
            judge_soon.clear()
            began = time.monotonic()
            await publish_verdicts()
            if time.monotonic() - began > STALL_S:  # judging (a large fold's progress) held the worker
                awake[0] = time.monotonic()

    def quiet(run_id: str) -> bool:
        return is_quiet(run_id, time.monotonic(), folded_at.get(run_id, 0.0), awake[0], (*unacked, *storing))

    async def publish_verdicts() -> None:
        now = time.time()
        for run_id in list(runs.keys()):
            if not owns(run_id):  # another worker's (a table keeps what it wrote before a rebalance)
                continue
            if verdicts.get(run_id) is not None:
                assemblies.pop(run_id, None)
                continue
            run = assembly(run_id)
            if not run.due(now) or (not run.complete() and run.aborted is None and not quiet(run_id)):
                due = progress_at.get(run_id, 0.0) + progress_gap.get(run_id, PROGRESS_S)
                if run.started is not None and now >= due:
                    progress_at[run_id] = now
                    began = time.monotonic()  # this run's figures only, not the runs judged before it
                    figures = orjson.dumps(progress_of(run))
                    progress_gap[run_id] = paced_gap(PROGRESS_S, time.monotonic() - began)
                    await metrics_topic.send(key=run_id.encode(), value=figures,
                                             headers=headers("run_progress", run_id))
                continue
            if not run.complete() and run.aborted is None:
                log.warning("run %s: past its expected end, and nothing of it came for %.1f s (the worker "
                            "free to read for %.1f s): judged with what arrived", run_id,
                            time.monotonic() - folded_at.get(run_id, 0.0), time.monotonic() - awake[0])
            progress_at.pop(run_id, None)
            progress_gap.pop(run_id, None)
            folded_at.pop(run_id, None)
            for key in [k for k in unacked if k.startswith(f"{run_id}|")]:
                await store(key)  # the verdict never runs ahead of the state it judged (its own part)
            verdict = judge_assembly(run)
            if exporter is not None:
                exporter.ended(run, verdict.verdict)
            final = progress_of(run) | {"final": True,  # the figures at the end, and the dashboards' last picture
                                        "timeline": run_timeline(run.run_fold(), verdict=verdict.verdict)}
            await metrics_topic.send(key=run_id.encode(), value=orjson.dumps(final),
                                     headers=headers("run_progress", run_id))
            await verdicts_topic.send(key=run_id.encode(), value=encode(verdict),
                                      headers=headers("verdict", run_id))
            verdicts[run_id] = encode(verdict)
            log.info("run %s: %s (%s)", run_id, verdict.verdict["verdict"], verdict.verdict["reason"])

    @app.task
    async def announce() -> None:  # agents start after the tables are recovered
        if exporter is not None:
            exporter.attach(assemblies, verdicts, runs)
        print(f"esr worker metrics: ready ({app_id})", file=sys.stderr, flush=True)

    return app


def _part_table() -> Any:
    """A `faust.Table` whose keys ("run|partition|entry") name their changelog partition, so a
    fold's pieces can be stored from a timer too: Faust's tables take the partition of the event
    being processed, and refuse writes outside a stream."""
    import faust

    class PartTable(faust.Table):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.sent: list[Any] = []

        def partition_for_key(self, key: str) -> int:
            return int(key.rsplit("|", 2)[1])

        def on_key_set(self, key: str, value: bytes) -> None:
            """As Faust's, keeping the changelog message's future: Faust's commit does not wait
            for its producer buffer (it gives up after 0.1 s without a send), so a batch is
            acked only once its state is in the changelog (`take_sent`)."""
            partition = self.partition_for_key(key)
            self.sent.append(self.send_changelog(partition, key, value))
            self._maybe_set_key_ttl(key, partition)
            self._sensor_on_set(self, key, value)

        def take_sent(self) -> list[Any]:
            sent, self.sent = self.sent, []
            return sent

    return PartTable


def _idempotent_app() -> Any:
    """`faust.App` whose producer is idempotent (acks=all, `enable_idempotence`), as
    `esr.bus.kafka.make_producer`'s are: Faust turns idempotence on only inside transactions, and
    without it a send retried while a broker of a replicated cluster is lost could be written
    twice or out of order (changelog pieces, progress, the verdict)."""
    import faust
    from faust.transport.drivers.aiokafka import Producer

    class IdempotentProducer(Producer):  # type: ignore[misc]
        def _settings_extra(self) -> Mapping[str, Any]:
            return {**super()._settings_extra(), "acks": "all", "enable_idempotence": True}

    class App(faust.App):  # type: ignore[misc]
        def _new_producer(self) -> Any:
            return IdempotentProducer(self.transport, loop=self.loop, beacon=self.beacon)

    return App


def progress_of(run: RunAssembly) -> dict[str, Any]:
    """A running run's figures so far, for dashboards: the summary metrics, each assertion's
    value and whether it holds so far, and what is still missing."""
    assert run.started is not None
    fold = run.live_fold()
    scenario = Scenario.from_dict(run.started.scenario)
    clock = run_clock(run.started)
    custom, counters = scenario.custom_metrics, scenario.counter_names
    view = MetricsView(fold.merged(), clock.real_span(0.0, fold.last_sim_time), custom, counters)
    assertions = [evaluate(a, fold, clock, custom, counters).to_dict() for a in scenario.parsed_assertions()]
    real = max(0.0, time.time() - run.started.real_time)
    live = {"status": "RUNNING" if real < clock.load_end_real else "DRAINING", "sim_hours": clock.sim_at(real) / 3600,
            "real_seconds": real, "assertions": assertions}
    return {
        "type": "run_progress", "run_id": run.run_id, "sim": True, "sim_time": fold.last_sim_time,
        "real_time": time.time(), "summary": view.summary(),
        "assertions": assertions,
        "duplicates_dropped": sum(p.duplicates for p in run.parts.values()),
        "requests_resent": sum(p.resent for p in run.parts.values()),
        **run.gaps(),
        "timeline": run_timeline(fold, live=live),
    }


def judge_assembly(run: RunAssembly) -> VerdictIssued:
    """The run's verdict as an event: the same `judge` the embedded runtime calls."""
    assert run.started is not None
    fold = run.run_fold()
    scenario = Scenario.from_dict(run.started.scenario)
    verdict = judge(fold, scenario.parsed_assertions(), custom=scenario.custom_metrics,
                    counters=scenario.counter_names, definitions=scenario.metric_definitions)
    last = fold.finished or fold.aborted
    return VerdictIssued(run_id=run.run_id, seq=0, sim_time=last.sim_time if last else 0.0,
                         real_time=time.time(), verdict=verdict.to_dict())


def run_metrics_worker(settings: KafkaSettings, *, loglevel: str = "warn", metrics_port: int | None = None) -> None:
    """Serve until SIGINT or SIGTERM (Faust's worker handles both); with `metrics_port`
    (ESR_METRICS_PORT), Prometheus metrics on 127.0.0.1:PORT/metrics."""
    import faust

    port = metrics_port
    app = create_app(settings, exporter=serve_worker_metrics(port) if port is not None else None)
    faust.Worker(app, loglevel=loglevel, quiet=True).execute_from_commandline()
