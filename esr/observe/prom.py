"""Prometheus exposition of runs: `GET /metrics` on the server, the same series from the Kafka
metrics worker (`ESR_METRICS_PORT`).

Nothing is instrumented in the hot path. At each scrape a collector turns each run's state into
a `RunSeries` (plain numbers: `fold_series` from a fold, `verdict_series` from a verdict alone)
and `families` groups every run's numbers into metric families. A run that ended does not
change, so its `RunSeries` is built once and kept; a live run's buckets are merged once per
scrape. Every series is labelled `sim="true"`, `run_id` and `scenario`:

    esr_requests_total{endpoint}                 counter   requests sent
    esr_errors_total{endpoint,kind}              counter   errors by kind (timeout, connect, 4xx, 5xx, protocol)
    esr_request_latency_seconds{endpoint}        histogram _bucket{le}, _sum, _count (from the latency sketch)
    esr_sla_met_total{sla}                       counter   SLA deadlines met
    esr_sla_missed_total{sla}                    counter   SLA deadlines missed
    esr_fault_active{fault}                      gauge     1 while the named fault is on, else 0
    esr_assertion_value{assertion}               gauge     the assertion's observed value (so far)
    esr_assertion_holds{assertion}               gauge     1 holds, 0 fails (absent: no data yet)
    esr_run_info{state}                          gauge     1 (QUEUED, RUNNING, DRAINING, FINISHED, ABORTED)
    esr_verdict{verdict}                         gauge     1 once the run ended (PASS, FAIL, ERROR, ABORTED)
    esr_sim_time_seconds                         gauge     simulated seconds played

The histogram's counts come from the sketch's bins. A value lands in the bin with key
k = ceil(log_gamma(value)), gamma = (1 + a) / (1 - a) at the sketch's relative accuracy a;
`le=B` counts the values at or below zero and every bin whose key is at most key(B), and is
exactly the total when B >= the exact maximum and 0 when B < the exact minimum. The only
values that can be misplaced are those in B's own bin above B, i.e. within a factor gamma
(about 1 %) above the bound. `_sum` and `_count` are exact.

A run known only by its verdict (a run on the Kafka runtime, seen by the server; a worker's
run judged before it restarted) has its totals under `endpoint=""` and no histogram.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from itertools import accumulate
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from ddsketch.mapping import LogarithmicMapping
from prometheus_client import start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

from esr.bus.runlog import read_events, run_log_path
from esr.core.assertions import Assertion, evaluate
from esr.core.buckets import JOURNEY_LABEL, Bucket, RunFold
from esr.core.clock import SimClock
from esr.core.errors import EsrError, RunLogError
from esr.core.sketch import RELATIVE_ACCURACY, LatencySketch

if TYPE_CHECKING:
    from aiohttp import web

    from esr.api.runs import ManagedRun, RunManager
    from esr.core.scenario import Scenario
    from esr.stream_apps.assembly import RunAssembly

__all__ = ["LATENCY_BOUNDS_MS", "EndpointSeries", "RunSeries", "add_metrics_route", "families", "fold_series",
           "latency_buckets", "serve_worker_metrics", "verdict_series"]

LATENCY_BOUNDS_MS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
_MAPPING = LogarithmicMapping(RELATIVE_ACCURACY)  # the key mapping of LatencySketch's DDSketch
_LIVE = ("RUNNING", "DRAINING")
SCRAPE_TIMEOUT_S = 10.0


# -- pure: numbers of one run -----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class EndpointSeries:
    endpoint: str
    requests: int
    errors: dict[str, int]
    latency_le: tuple[int, ...] | None = None  # cumulative at LATENCY_BOUNDS_MS, then +Inf
    latency_sum_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class RunSeries:
    run_id: str
    scenario: str
    state: str
    verdict: str | None = None
    sim_time_s: float | None = None
    endpoints: tuple[EndpointSeries, ...] = ()
    sla_met: dict[str, int] = field(default_factory=dict)
    sla_missed: dict[str, int] = field(default_factory=dict)
    faults: dict[str, bool] = field(default_factory=dict)  # fault name -> on now
    assertions: tuple[tuple[str, float | None, bool | None], ...] = ()  # (assertion, observed, holds)


def latency_buckets(sketch: LatencySketch, bounds: Iterable[float] = LATENCY_BOUNDS_MS) -> tuple[int, ...]:
    """How many values are at most each bound (in the sketch's resolution), then all of them."""
    data = sketch.to_dict()
    total = round(data["count"])
    bounds = tuple(bounds)
    if not total:
        return (0,) * (len(bounds) + 1)
    prefix = list(accumulate(data["bins"]))
    low = total - round(prefix[-1]) if prefix else total  # zeros (and negatives): below every bound
    out = []
    for bound in bounds:
        if bound >= data["max"]:
            out.append(total)
        elif bound < data["min"]:
            out.append(0)
        else:
            index = min(_MAPPING.key(bound) - data["key0"], len(prefix) - 1)
            out.append(low + (round(prefix[index]) if index >= 0 else 0))
    return (*out, total)


def _endpoint(label: str, bucket: Bucket) -> EndpointSeries:
    return EndpointSeries(label, bucket.requests, dict(bucket.errors), latency_buckets(bucket.latency),
                          bucket.latency.sum)


def fold_series(fold: RunFold, *, run_id: str, scenario: str, state: str, sim_time_s: float,
                assertions: Iterable[Mapping[str, Any]], faults: Mapping[str, bool],
                verdict: str | None = None) -> RunSeries:
    """The run's numbers from its fold: each endpoint's whole-run bucket (kept up to date by
    the fold, so a scrape of a playing run merges only the windows that changed)."""
    merged = fold.whole_by_label()
    journeys = merged.pop(JOURNEY_LABEL, Bucket())
    return RunSeries(
        run_id, scenario, state, verdict, sim_time_s,
        tuple(_endpoint(label, merged[label]) for label in sorted(merged)),
        dict(journeys.sla_met), dict(journeys.sla_missed), dict(faults), _assertions(assertions))


_SLA_KEY = re.compile(r"sla_(.+)_(met|missed)")


def verdict_series(verdict: Mapping[str, Any], *, run_id: str, scenario: str, state: str) -> RunSeries:
    """What a verdict alone tells: totals under endpoint "", no histogram."""
    summary = verdict.get("summary") or {}
    endpoints: tuple[EndpointSeries, ...] = ()
    if summary.get("requests") is not None:
        errors = {k.removeprefix("errors_"): round(v) for k, v in summary.items()
                  if k.startswith("errors_") and v is not None}
        endpoints = (EndpointSeries("", round(summary["requests"]), errors),)
    sla: dict[str, dict[str, int]] = {"met": {}, "missed": {}}
    for key, value in summary.items():
        found = _SLA_KEY.fullmatch(key)
        if found and value is not None:
            sla[found.group(2)][found.group(1)] = round(value)
    windows = (verdict.get("faults") or {}).get("windows", [])
    played = (verdict.get("time") or {}).get("sim_hours_played")
    return RunSeries(run_id, scenario, state, verdict.get("verdict"), None if played is None else played * 3600,
                     endpoints, sla["met"], sla["missed"], {w["name"]: False for w in windows},
                     _assertions(verdict.get("assertions", [])))


def ended_series(verdict: Mapping[str, Any], fold: RunFold | None, *, run_id: str, scenario: str,
                 state: str) -> RunSeries:
    """An ended run: from its fold when the fold holds what the verdict counted, else the verdict."""
    requests = (verdict.get("summary") or {}).get("requests") or 0
    if fold is None or fold.started is None or fold.results_recorded != requests:
        return verdict_series(verdict, run_id=run_id, scenario=scenario, state=state)
    return fold_series(fold, run_id=run_id, scenario=scenario, state=state, sim_time_s=fold.last_sim_time,
                       assertions=verdict.get("assertions", []), verdict=verdict.get("verdict"),
                       faults={w.name: False for w in fold.faults.values()})


def live_series(fold: RunFold, scenario: Scenario, assertions: list[Assertion], clock: SimClock, *,
                run_id: str, state: str, sim_time_s: float, active_faults: Iterable[str]) -> RunSeries:
    """A playing run, its assertions judged on the data so far."""
    custom, counters = scenario.custom_metrics, scenario.counter_names
    results = [evaluate(a, fold, clock, custom, counters).to_dict() for a in assertions]
    active = set(active_faults)
    return fold_series(fold, run_id=run_id, scenario=scenario.name, state=state, sim_time_s=sim_time_s,
                       assertions=results, faults={name: name in active for name in sorted(scenario.fault_names)})


def _assertions(results: Iterable[Mapping[str, Any]]) -> tuple[tuple[str, float | None, bool | None], ...]:
    return tuple((r["assertion"], r.get("observed"), r.get("holds")) for r in results)


def families(runs: Iterable[RunSeries]) -> list[Metric]:
    """One family per metric name, every run's samples in it."""
    base = ["sim", "run_id", "scenario"]

    def counter(name: str, doc: str, *extra: str) -> CounterMetricFamily:
        return CounterMetricFamily(name, doc, labels=[*base, *extra])

    def gauge(name: str, doc: str, *extra: str) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, doc, labels=[*base, *extra])

    requests = counter("esr_requests", "Requests sent to the target", "endpoint")
    errors = counter("esr_errors", "Requests that failed, by kind", "endpoint", "kind")
    latency = HistogramMetricFamily("esr_request_latency_seconds", "Latency from the intended send time",
                                    labels=[*base, "endpoint"])
    met = counter("esr_sla_met", "SLA deadlines met", "sla")
    missed = counter("esr_sla_missed", "SLA deadlines missed", "sla")
    fault = gauge("esr_fault_active", "1 while the fault is on", "fault")
    value = gauge("esr_assertion_value", "The assertion's observed value (so far)", "assertion")
    holds = gauge("esr_assertion_holds", "1 when the assertion holds (so far), 0 when it fails", "assertion")
    info = gauge("esr_run_info", "The run's state", "state")
    verdict = gauge("esr_verdict", "The run's verdict, once it ended", "verdict")
    sim_time = gauge("esr_sim_time_seconds", "Simulated seconds played")
    les = [floatToGoString(b / 1000) for b in LATENCY_BOUNDS_MS] + ["+Inf"]
    for run in runs:
        labels = ["true", run.run_id, run.scenario]
        for e in run.endpoints:
            requests.add_metric([*labels, e.endpoint], e.requests)
            for kind, count in sorted(e.errors.items()):
                errors.add_metric([*labels, e.endpoint, kind], count)
            if e.latency_le is not None:
                latency.add_metric([*labels, e.endpoint], list(zip(les, e.latency_le, strict=True)),
                                   e.latency_sum_ms / 1000)
        for tally, family in ((run.sla_met, met), (run.sla_missed, missed)):
            for sla, count in sorted(tally.items()):
                family.add_metric([*labels, sla], count)
        for name, on in sorted(run.faults.items()):
            fault.add_metric([*labels, name], float(on))
        for text, observed, held in run.assertions:
            if observed is not None and not math.isnan(observed):
                value.add_metric([*labels, text], observed)
            if held is not None:
                holds.add_metric([*labels, text], float(held))
        info.add_metric([*labels, run.state], 1.0)
        if run.verdict is not None:
            verdict.add_metric([*labels, run.verdict], 1.0)
        if run.sim_time_s is not None:
            sim_time.add_metric(labels, run.sim_time_s)
    return [requests, errors, latency, met, missed, fault, value, holds, info, verdict, sim_time]


class _Plans:
    """Each run's scenario and parsed assertions, parsed once."""

    def __init__(self) -> None:
        self._plans: dict[str, tuple[Scenario, list[Assertion]]] = {}

    def get(self, run_id: str, make: Callable[[], Scenario]) -> tuple[Scenario, list[Assertion]]:
        plan = self._plans.get(run_id)
        if plan is None:
            scenario = make()
            plan = self._plans[run_id] = (scenario, scenario.parsed_assertions())
        return plan

    def drop(self, run_id: str) -> None:
        self._plans.pop(run_id, None)


# -- the server -------------------------------------------------------------------------------
def _read_fold(home: Path, run_id: str) -> RunFold | None:
    try:
        return RunFold().apply_all(read_events(run_log_path(home, run_id)))
    except RunLogError:
        return None


class ServerCollector(Collector):
    """The server's runs: live ones from their fold, ended ones once from their fold or log."""

    def __init__(self, manager: RunManager) -> None:
        self.manager = manager
        self._ended: dict[str, RunSeries] = {}
        self._plans = _Plans()
        self._lock = asyncio.Lock()

    async def prepare(self) -> None:
        """Build the series of runs that ended since the last scrape, reading logs off the loop."""
        async with self._lock:
            for managed in list(self.manager.runs.values()):
                if managed.verdict is None or managed.run_id in self._ended:
                    continue
                run = managed.run
                fold = run.fold if run is not None else await asyncio.to_thread(_read_fold, self.manager.home,
                                                                                managed.run_id)
                self._ended[managed.run_id] = ended_series(managed.verdict, fold, run_id=managed.run_id,
                                                           scenario=managed.scenario_name, state=managed.state)
                self._plans.drop(managed.run_id)

    def collect(self) -> Iterable[Metric]:
        return families(self._ended.get(m.run_id) or self._live(m) for m in list(self.manager.runs.values()))

    def _live(self, managed: ManagedRun) -> RunSeries:
        from esr.core.ticks import kafka_progress

        run = managed.run
        state = run.status.value if run is not None and managed.verdict is None else managed.state
        if run is None or state not in _LIVE:  # queued, or playing on the Kafka workers
            started = managed.extra.get("started")
            sim = (kafka_progress(started, time.time())["sim_hours"] * 3600
                   if started is not None and state in _LIVE else None)
            return RunSeries(managed.run_id, managed.scenario_name, state, sim_time_s=sim)
        scenario, assertions = self._plans.get(managed.run_id, lambda: run.scenario)
        return live_series(run.fold, scenario, assertions, run.clock, run_id=managed.run_id, state=state,
                           sim_time_s=run.snapshot()["sim_hours"] * 3600, active_faults=run.active_faults)


def add_metrics_route(app: web.Application, manager: RunManager) -> ServerCollector:
    """`GET /metrics`: no token (numbers only), in the format the scraper asks for."""
    from aiohttp import web

    collector = ServerCollector(manager)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)

    async def get_metrics(request: web.Request) -> web.Response:
        await collector.prepare()
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        return web.Response(body=encoder(registry), headers={"Content-Type": content_type})

    app.router.add_get("/metrics", get_metrics)
    return collector


# -- the Kafka metrics worker -----------------------------------------------------------------
class WorkerCollector(Collector):
    """The metrics worker's runs. Scrapes come on the exporter's thread; the worker's state
    belongs to its event loop, so the series are built there. Until `attach`: no runs."""

    def __init__(self) -> None:
        self.assemblies: Mapping[str, RunAssembly] = {}  # run id -> the runs being assembled
        self.verdicts: Mapping[str, bytes | None] = {}  # run id -> its verdict event, once published
        self.runs: Mapping[str, bytes | None] = {}  # run id -> its run events
        self.loop: asyncio.AbstractEventLoop | None = None
        self._ended: dict[str, RunSeries] = {}
        self._plans = _Plans()

    def attach(self, assemblies: Mapping[str, RunAssembly], verdicts: Mapping[str, bytes | None],
               runs: Mapping[str, bytes | None]) -> None:
        """Read the worker's state (its Faust tables and assemblies); call on its running loop."""
        self.assemblies, self.verdicts, self.runs = assemblies, verdicts, runs
        self.loop = asyncio.get_running_loop()

    def ended(self, run: RunAssembly, verdict: Mapping[str, Any]) -> None:
        """Keep a judged run's final numbers (call on the loop, as its verdict is published)."""
        scenario = str(run.started.scenario.get("name", "")) if run.started else ""
        self._ended[run.run_id] = ended_series(verdict, run.run_fold() if run.started else None,
                                               run_id=run.run_id, scenario=scenario, state=_ended_state(verdict))
        self._plans.drop(run.run_id)

    def collect(self) -> Iterable[Metric]:
        if self.loop is None:
            return families(())
        future = asyncio.run_coroutine_threadsafe(self._series(), self.loop)
        return families(future.result(SCRAPE_TIMEOUT_S))

    async def _series(self) -> list[RunSeries]:
        from esr.bus.kafka import decode_event
        from esr.core.scenario import Scenario
        from esr.core.ticks import kafka_progress, run_clock

        for run_id in [r for r in list(self.verdicts.keys()) if r not in self._ended]:  # judged before this worker
            data = self.verdicts.get(run_id)
            if data is not None:
                verdict = decode_event(data).verdict  # type: ignore[attr-defined]
                self._ended[run_id] = verdict_series(verdict, run_id=run_id, scenario=self._scenario_name(run_id),
                                                     state=_ended_state(verdict))
        out = list(self._ended.values())
        for run_id, run in list(self.assemblies.items()):
            started = run.started
            if started is None or run_id in self._ended:
                continue
            scenario, assertions = self._plans.get(run_id, partial(Scenario.from_dict, started.scenario))
            fold = run.live_fold()
            progress = kafka_progress(started, time.time())
            active = [w.name for w in fold.faults.values() if w.ok and w.ended_sim is None]
            out.append(live_series(fold, scenario, assertions, run_clock(started), run_id=run_id,
                                   state=progress["status"], sim_time_s=progress["sim_hours"] * 3600,
                                   active_faults=active))
        return out

    def _scenario_name(self, run_id: str) -> str:
        data = self.runs.get(run_id)
        events = orjson.loads(data) if data is not None else []
        return next((str(e["scenario"].get("name", "")) for e in events if e.get("type") == "run_started"), "")


def _ended_state(verdict: Mapping[str, Any]) -> str:
    return "ABORTED" if verdict.get("verdict") == "ABORTED" else "FINISHED"


def serve_worker_metrics(port: int) -> WorkerCollector:
    """Serve /metrics on 127.0.0.1:`port` from a thread, now; `attach` the worker's state later."""
    collector = WorkerCollector()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    try:
        start_http_server(port, addr="127.0.0.1", registry=registry)
    except OSError as exc:
        raise EsrError(f"cannot serve metrics on 127.0.0.1:{port} ({exc}): choose another ESR_METRICS_PORT") from exc
    return collector
