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

Batches are acknowledged only after the state that folded them is in its table (by default
right away: a batch holds up to 2,000 events, so that is a few small writes per batch; with
`persist_s` set, at most that many seconds later), so a worker killed at any point re-reads
exactly what its tables lack, and `ShardFold` skips what they already have.
"""

from __future__ import annotations

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

__all__ = ["create_app", "run_metrics_worker"]

log = logging.getLogger("esr.metrics")
_RUN_EVENTS = (RunStarted, ShardReport, RunAborted, FaultStarted, FaultEnded)
_run_events = msgspec.json.Decoder(list[RunStarted | ShardReport | RunAborted | FaultStarted | FaultEnded])


def _broker_urls(bootstrap: str) -> list[str]:
    return [f"kafka://{host.strip()}" for host in bootstrap.split(",") if host.strip()]


def create_app(settings: KafkaSettings, *, persist_s: float = 0.0, datadir: str | None = None,
               exporter: WorkerCollector | None = None) -> Any:
    """With an `exporter` (`serve_worker_metrics`), Prometheus reads the runs through it."""
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
    partials = app.Table("esr-partials", **table)
    runs = app.Table("esr-runs", **table)
    verdicts = app.Table("esr-verdicts", use_partitioner=True, **table)

    assemblies: dict[str, RunAssembly] = {}
    unacked: dict[str, list[Any]] = {}  # partial key -> events folded but not yet stored
    stored_at: dict[str, float] = {}

    def assembly(run_id: str) -> RunAssembly:
        """The run's assembly, rebuilt from the tables the first time it is needed."""
        found = assemblies.get(run_id)
        if found is None:
            found = assemblies[run_id] = RunAssembly(run_id)
            saved = runs.get(run_id)
            if saved is not None:
                for event in _run_events.decode(saved):
                    found.on_run_event(event)
            prefix = f"{run_id}|"
            pieces: dict[str, dict[str, bytes]] = {}
            for key, data in list(partials.items()):
                if key.startswith(prefix) and data is not None:
                    part_key, _, entry = key.rpartition("|")
                    pieces.setdefault(part_key, {})[entry] = data
            for part_key, entries in pieces.items():
                if "meta" in entries:
                    found.parts[part_key] = ShardFold.from_entries(entries)
        return found

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
            run.part(key, batch).apply(batch, f"{message.topic}/{message.partition}", message.offset)
            unacked.setdefault(key, []).append(event)
            now = time.monotonic()
            if now - stored_at.get(key, 0.0) >= persist_s:
                for entry, data in run.parts[key].take_dirty().items():
                    partials[f"{key}|{entry}"] = data
                stored_at[key] = now
                for done in unacked.pop(key):
                    await stream.ack(done)

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

    @app.timer(0.5)
    async def publish_verdicts() -> None:
        now = time.time()
        for run_id in list(runs.keys()):
            if verdicts.get(run_id) is not None:
                assemblies.pop(run_id, None)
                continue
            run = assembly(run_id)
            if not run.due(now):
                if run.started is not None and now - progress_at.get(run_id, 0.0) >= 1.0:
                    progress_at[run_id] = now
                    await metrics_topic.send(key=run_id.encode(), value=orjson.dumps(progress_of(run)),
                                             headers=headers("run_progress", run_id))
                continue
            progress_at.pop(run_id, None)
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
