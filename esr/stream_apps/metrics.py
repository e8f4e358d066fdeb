"""The metrics stream app (`esr worker metrics`): Faust agents that fold bot shards' events
into metric buckets, check completeness and publish each run's verdict to `esr.verdicts`.

The logic is the pure core's: `ShardFold` per (run, partition), `RunAssembly` per run, and
`judge`. Faust supplies the consumer group and the state stores; windows are keyed by
simulated time inside the buckets (Faust's windowed tables expire against the wall clock,
which is wrong for warped and replayed time).

State lives in three tables with changelogs, rebuilt on restart:

    esr-partials   "run|partition|entry" -> a ShardFold's state in pieces: "meta" (tallies and
                   offsets folded), "w<N>" (the buckets of simulated-time window N) and "t<K>"
                   (de-duplication of the users who arrived in tick K); only changed pieces
                   are written
    esr-runs       run id -> the run's start, shard reports, abort and fault events (from
                   `esr.core.fault_spec`, published by the clock worker)
    esr-verdicts   run id -> the verdict, once published

While a run plays, its figures so far (summary metrics, each assertion's value) go to
`esr.core.metrics` once a second, for dashboards.

Batches are acknowledged only after the state that folded them is in its table, so a worker
killed at any point re-reads exactly what its tables lack, and `ShardFold` skips what they
already have. A partition's changed pieces are stored at most every `persist_s` (0.25 s): from
the stream when its batches arrive, from a timer for the last of them, and before a verdict.
Storing after every batch instead wrote the whole per-tick state again for each of the 5-10
batches a second a busy shard sends, which filled Faust's producer buffer ("producer buffer
full") and held the stream, and with it the verdict, for seconds at 10,000 requests/s.
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

from esr.bus.kafka import KafkaSettings, decode_batch, decode_event, encode, headers
from esr.core.assertions import evaluate
from esr.core.events import Event, FaultEnded, FaultStarted, RunAborted, RunStarted, ShardReport, VerdictIssued
from esr.core.metrics import MetricsView
from esr.core.scenario import Scenario
from esr.core.ticks import run_clock
from esr.core.verdict import judge
from esr.observe.prom import WorkerCollector, serve_worker_metrics
from esr.observe.timeline import run_timeline
from esr.stream_apps.assembly import RunAssembly, ShardFold
from esr.stream_apps.credentials import faust_settings, hide_secrets_in_logs

__all__ = ["PERSIST_S", "create_app", "run_metrics_worker"]

PERSIST_S = 0.25  # how often a partition's changed state is stored (and its batches acked)
QUIET_S = 2.0  # an incomplete run past its expected end is judged once its batches stop arriving this long

log = logging.getLogger("esr.metrics")
_RUN_EVENTS = (RunStarted, ShardReport, RunAborted, FaultStarted, FaultEnded)
_run_events = msgspec.json.Decoder(list[RunStarted | ShardReport | RunAborted | FaultStarted | FaultEnded])


def _broker_urls(bootstrap: str) -> list[str]:
    return [f"kafka://{host.strip()}" for host in bootstrap.split(",") if host.strip()]


def create_app(settings: KafkaSettings, *, persist_s: float = PERSIST_S, datadir: str | None = None,
               exporter: WorkerCollector | None = None) -> Any:
    """With an `exporter` (`serve_worker_metrics`), Prometheus reads the runs through it.
    `persist_s` 0 stores every batch's change at once."""
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
        consumer_max_fetch_size=16 * 1024 * 1024,  # batches are large: fetch several per round trip
        broker_session_timeout=10.0,  # a killed worker's partitions come back within seconds
        broker_heartbeat_interval=1.0,
        producer_acks=-1,
        consumer_metadata_max_age_ms=5_000,  # topics grown (ESR_KAFKA_PARTITIONS raised) are read within seconds
        producer_metadata_max_age_ms=5_000,
        **faust_settings(settings.client_config),  # ESR_KAFKA_CONFIG: SASL and TLS for aiokafka
    )
    raw: dict[str, Any] = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw",
           "partitions": settings.partitions}
    events_topic = app.topic(settings.topic("results"), settings.topic("journeys"), **raw)
    runs_topic = app.topic(settings.topic("runs"), settings.topic("faults"), **raw)
    verdicts_topic = app.topic(settings.topic("verdicts"), **raw)
    metrics_topic = app.topic(settings.topic("metrics"), **raw)
    progress_at: dict[str, float] = {}
    table: dict[str, Any] = {"key_type": str, "value_type": bytes, "partitions": settings.partitions, "default": None,
                             "extra_topic_configs": settings.topic_config}  # the changelog's min.insync.replicas
    partials = app.tables.add(_part_table()(app, name="esr-partials", beacon=app.tables.beacon, **table))
    runs = app.Table("esr-runs", **table)
    verdicts = app.Table("esr-verdicts", use_partitioner=True, **table)

    assemblies: dict[str, RunAssembly] = {}
    unacked: dict[str, list[tuple[Any, Any]]] = {}  # part key -> (stream, event) folded, not yet stored
    stored_at: dict[str, float] = {}
    judge_soon = asyncio.Event()
    folded_at: dict[str, float] = {}  # run id -> when a batch of it was last folded

    def stored_pieces(prefix: str) -> dict[str, dict[str, bytes]]:
        """The fold pieces in the table under `prefix`, by part key ("run|partition")."""
        pieces: dict[str, dict[str, bytes]] = {}
        for key, data in list(partials.items()):
            if key.startswith(prefix) and data is not None:
                part_key, _, entry = key.rpartition("|")
                pieces.setdefault(part_key, {})[entry] = data
        return {part_key: entries for part_key, entries in pieces.items() if "meta" in entries}

    def assembly(run_id: str) -> RunAssembly:
        """The run's assembly, rebuilt from the tables the first time it is needed."""
        found = assemblies.get(run_id)
        if found is None:
            found = assemblies[run_id] = RunAssembly(run_id)
            saved = runs.get(run_id)
            if saved is not None:
                for event in _run_events.decode(saved):
                    found.on_run_event(event)
            for part_key, entries in stored_pieces(f"{run_id}|").items():
                found.parts[part_key] = ShardFold.from_entries(entries)
        return found

    def part_of(run: RunAssembly, key: str, batch: Any) -> ShardFold:
        """The partition's fold of the run: rebuilt from the table when the partition came back
        after a rebalance, or new."""
        found = run.parts.get(key)
        if found is None:
            entries = stored_pieces(f"{key}|").get(key)
            found = ShardFold.from_entries(entries) if entries else run.part(key, batch)
            run.parts[key] = found
        return found

    async def store(key: str) -> None:
        """Write the part's changed pieces to its table, then ack the batches they folded."""
        stored_at[key] = time.monotonic()
        pending = unacked.pop(key, None)
        if not pending:
            return
        run = assemblies.get(key.rpartition("|")[0])
        part = run.parts.get(key) if run is not None else None
        if part is not None:
            for entry, data in part.take_dirty().items():
                partials[f"{key}|{entry}"] = data
        for stream, event in pending:
            await stream.ack(event)

    def forget(_app: Any, /, *args: Any, **_: Any) -> None:  # (app, revoked partitions)
        """A rebalance: whoever reads a revoked partition next re-reads what was not stored here
        and rebuilds its fold from the table (as this worker does if it gets the partition back)."""
        gone = {tp.partition for tp in args[0] if tp.topic in events_topic.topics}
        for key in [k for k in unacked if int(k.rpartition("|")[2]) in gone]:
            unacked.pop(key)
        for run in assemblies.values():
            for key in [k for k in run.parts if int(k.rpartition("|")[2]) in gone]:
                run.parts.pop(key)

    app.on_partitions_revoked.connect(forget)

    @app.agent(events_topic)
    async def fold(stream: Any) -> None:
        async for event in stream.noack().events():
            message = event.message
            try:
                batch = decode_batch(event.value)
            except msgspec.DecodeError as exc:  # not ours: say so once per message, keep going
                log.warning("%s/%s@%s: not an event batch (%s)", message.topic, message.partition,
                            message.offset, exc)
                await stream.ack(event)
                continue
            key = f"{batch.run_id}|{message.partition}"
            run = assembly(batch.run_id)
            folded_at[batch.run_id] = time.monotonic()
            part_of(run, key, batch).apply(batch, f"{message.topic}/{message.partition}", message.offset)
            if run.all_final():
                judge_soon.set()
            unacked.setdefault(key, []).append((stream, event))
            if time.monotonic() - stored_at.get(key, 0.0) >= persist_s:
                await store(key)

    @app.timer(max(persist_s, 0.05))
    async def store_the_rest() -> None:
        """The last batches of a quiet partition, which no later batch will bring to the table."""
        now = time.monotonic()
        for key in [k for k in unacked if now - stored_at.get(k, 0.0) >= persist_s]:
            await store(key)

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
            kept: list[Event] = [run.started] if run.started else []
            kept += [r for reports in run.reports.values() for r in reports.values()]
            kept += [run.aborted] if run.aborted else []
            kept += list(run.faults.values())
            runs[event.run_id] = msgspec.json.encode(kept)
            if run.aborted or run.all_final():
                judge_soon.set()

    @app.task
    async def publish() -> None:
        """Twice a second, when a run's next progress message is due (a steady 1 s pace), and
        at once when a run may have become complete: a verdict is published as soon as its last
        event is folded."""
        while True:
            next_progress = min(progress_at.values(), default=time.time()) + 1.0 - time.time()
            try:
                await asyncio.wait_for(judge_soon.wait(), min(0.5, max(0.1, next_progress)))
            except TimeoutError:
                pass
            judge_soon.clear()
            await publish_verdicts()

    async def publish_verdicts() -> None:
        now = time.time()
        for run_id in list(runs.keys()):
            if verdicts.get(run_id) is not None:
                assemblies.pop(run_id, None)
                continue
            run = assembly(run_id)
            if not run.due(now) or (not run.complete() and run.aborted is None
                                    and time.monotonic() - folded_at.get(run_id, 0.0) < QUIET_S):
                if run.started is not None and now - progress_at.get(run_id, 0.0) >= 1.0:
                    progress_at[run_id] = now
                    await metrics_topic.send(key=run_id.encode(), value=orjson.dumps(progress_of(run)),
                                             headers=headers("run_progress", run_id))
                continue
            progress_at.pop(run_id, None)
            folded_at.pop(run_id, None)
            for key in [k for k in unacked if k.startswith(f"{run_id}|")]:
                await store(key)  # the verdict never runs ahead of the state it judged
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
        def partition_for_key(self, key: str) -> int:
            return int(key.rsplit("|", 2)[1])

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
