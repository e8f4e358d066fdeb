"""`ReplayRun`: sends logged requests again at `warp` times their original pace, and judges them.

Each request keeps its logged time as its simulated time (`sim_start` is the first request's
time) and is sent at `start + (t - t0) / warp`; latency counts from that intended time, as in a
scenario run. Results go to the same run log and `RunFold`, so the verdict, `esr judge` and the
assertions work exactly as for scenarios. `ReplayComparison` tallies, per endpoint, what the
log says happened then and what happened now, for the replay report.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from esr.bus import EmbeddedBus
from esr.bus.runlog import RunLog, new_run_id
from esr.core.buckets import RunFold
from esr.core.clock import SimClock
from esr.core.endpoints import EndpointFolder
from esr.core.errors import EsrError, FieldError, ScenarioError
from esr.core.events import RunAborted, RunFinished, RunStarted, VerdictIssued
from esr.core.heavy_hitters import OTHER, EndpointCap
from esr.core.journey import PreparedRequest
from esr.core.scenario import REPLAY_MAX_HOURS, REPLAY_MAX_WARP, Scenario
from esr.core.scheduler import Scheduler
from esr.core.sketch import LatencySketch
from esr.core.targets import Target
from esr.core.verdict import Verdict, judge
from esr.engine.pacer import Clocks, Pacer
from esr.engine.response import Sender
from esr.engine.sender import connection_budget, make_sender
from esr.replay.record import LogRecord
from esr.replay.schedule import ReplayPlan
from esr.settings import Settings

__all__ = ["REPLAY_MAX_WINDOWS", "MetricWindow", "ReplayComparison", "ReplayPlanError", "ReplayRun", "check_warp",
           "metric_window", "replay_scenario", "sendable_headers"]

REPLAY_MAX_WINDOWS = 2_000  # metric windows a replay keeps at most, whatever its log's span
DEFAULT_WINDOW_S = 60.0
# the widths a replay's window widens through: those dividing an hour, hours dividing a day, then whole days
_WIDTHS = (60, 120, 180, 240, 300, 360, 600, 720, 900, 1200, 1800, 3600, 7200, 10800, 14400, 21600, 28800, 43200,
           86400)
START_LEAD_S = 0.2
CHANGED_KEPT = 20
_HOP_BY_HOP = frozenset({"host", "user-agent", "content-length", "connection", "keep-alive", "transfer-encoding", "te",
                         "trailer", "upgrade", "proxy-authorization", "proxy-connection", "expect"})


def sendable_headers(headers: tuple[tuple[str, str], ...]) -> dict[str, str]:
    """The logged request headers a replay sends again: not hop-by-hop ones, not Host or
    User-Agent (the sender sets them), not ESR's own sim tags."""
    return {k: v for k, v in headers if k.lower() not in _HOP_BY_HOP and not k.lower().startswith("x-esr-")}


# logged times and header sets repeat line after line: each is turned into text or a dict once
@functools.lru_cache(maxsize=4096)
def _sim_time(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds")


@functools.lru_cache(maxsize=4096)
def _sendable(headers: tuple[tuple[str, str], ...]) -> dict[str, str]:
    return sendable_headers(headers)  # shared between requests: senders only read it


def _status_class(status: int | None) -> str:
    return "-" if not status else f"{status // 100}xx"


@dataclass
class _Side:
    count: int = 0
    statuses: Counter = field(default_factory=Counter)
    latency: LatencySketch = field(default_factory=LatencySketch)


@dataclass
class ReplayComparison:
    """Per endpoint: counts, status mix and latency then (from the log) and now; the requests
    whose outcome changed, by (then, now) status class, with the first few as examples.

    With an `EndpointCap` (`esr replay --top-endpoints`), rows are kept for the labels it tracks
    only: a label it lets go has its sides and changes merged into the `other` row, so counts
    over all rows stay exact and the report's size is bounded."""

    then: dict[str, _Side] = field(default_factory=dict)
    now: dict[str, _Side] = field(default_factory=dict)
    changed: dict[str, Counter] = field(default_factory=dict)  # endpoint -> (then class, now class) -> count
    examples: list[dict[str, Any]] = field(default_factory=list)
    rules: dict[str, str] = field(default_factory=dict)  # endpoint -> the rule that folded it
    cap: EndpointCap | None = None

    def follow(self, cap: EndpointCap) -> None:
        """Keep rows for the labels `cap` tracks; the others go to `other` as it lets them go."""
        self.cap = cap
        cap.on_untracked.append(self.untrack)

    def add(self, label: str, record: LogRecord, status: int, latency_ms: float, rule: str = "none") -> None:
        self.rules[label] = rule
        then = self.then.get(label)
        if then is None:
            then = self.then[label] = _Side()
            self.now[label] = _Side()
        then.count += 1
        then.statuses[record.status or 0] += 1
        if record.duration_ms is not None:
            then.latency.add(record.duration_ms)
        now = self.now[label]
        now.count += 1
        now.statuses[status] += 1
        now.latency.add(latency_ms)
        if record.status is not None and _status_class(record.status) != _status_class(status):
            changes = self.changed.get(label)
            if changes is None:
                changes = self.changed[label] = Counter()
            changes[(_status_class(record.status), _status_class(status))] += 1
            if len(self.examples) < CHANGED_KEPT:
                self.examples.append({"source": record.source, "request": f"{record.method} {record.target}",
                                      "then": record.status, "now": status or None})

    def untrack(self, label: str) -> None:
        """Merge `label`'s row into the `other` row."""
        self.rules.pop(label, None)
        for sides in (self.then, self.now):
            side = sides.pop(label, None)
            if side is None:
                continue
            into = sides.get(OTHER)
            if into is None:
                into = sides[OTHER] = _Side()
            into.count += side.count
            into.statuses.update(side.statuses)
            into.latency.merge(side.latency)
        changes = self.changed.pop(label, None)
        if changes:
            self.changed.setdefault(OTHER, Counter()).update(changes)

    def to_dict(self) -> dict[str, Any]:
        def side(s: _Side) -> dict[str, Any]:
            p = s.latency.quantile
            return {"count": s.count, "statuses": {str(k or "none"): v for k, v in sorted(s.statuses.items())},
                    "latency_p50_ms": p(0.5), "latency_p95_ms": p(0.95)}

        cap = self.cap
        rows: dict[str, Any] = {}
        for label in sorted(self.then, key=lambda name: (name == OTHER, name)):  # other last
            row: dict[str, Any] = {"rule": self.rules.get(label, "none"), "then": side(self.then[label]),
                                   "now": side(self.now[label])}
            if cap is not None and label == OTHER:
                row["rule"] = OTHER
                row["labels"] = cap.other.count
                row["labels_estimated"] = cap.other.estimated
            elif cap is not None:
                row["in_other_at_most"] = cap.in_other_at_most(label)
            rows[label] = row
        changed = [{"endpoint": e, "then": a, "now": b, "count": n}
                   for e, changes in self.changed.items() for (a, b), n in changes.items()]
        out: dict[str, Any] = {
            "endpoints": rows,
            "changed": sorted(changed, key=lambda c: -c["count"]),
            "changed_examples": self.examples,
        }
        if cap is not None:
            out["endpoint_cap"] = cap.to_dict()
        return out


class ReplayPlanError(EsrError):
    """A replay that cannot be described: a --warp or a log span past what a replay plays, a bad
    --assert, a bad derived metric of the --scenario file, a --window that would make too many
    windows; said in the replay's terms."""


def _width(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def _windows_over(span_s: float, width: float) -> int:
    return int(span_s // width) + 1


@dataclass(frozen=True, slots=True)
class MetricWindow:
    """A replay's metric window: the one asked for (`--window`, the --scenario file's `window`),
    else the default 60 s widened just enough that the log's span holds at most
    `REPLAY_MAX_WINDOWS` windows; stated in the plan and the report."""

    window_s: float
    windows: int  # windows the log's span covers at this width
    span_s: float
    asked_by: str | None = None  # "--window", or the --scenario file: the user chose it

    @property
    def widened(self) -> bool:
        return self.asked_by is None and self.window_s > DEFAULT_WINDOW_S

    def describe(self) -> str:
        if self.asked_by is not None:
            why = f"as {self.asked_by} asks"
        elif self.widened:
            why = (f"widened from {_width(DEFAULT_WINDOW_S)} so that the log's {self.span_s / 86400:,.1f} days "
                   f"make at most {REPLAY_MAX_WINDOWS:,} windows")
        else:
            why = "the default"
        return f"{_width(self.window_s)} ({self.windows:,} windows over the log's span; {why})"

    def to_dict(self) -> dict[str, Any]:
        return {"window_s": self.window_s, "windows": self.windows, "max_windows": REPLAY_MAX_WINDOWS,
                "chosen": "asked" if self.asked_by is not None else "widened" if self.widened else "default",
                "asked_by": self.asked_by, "text": self.describe()}


def metric_window(span_s: float, asked: float | None = None, asked_by: str = "--window") -> MetricWindow:
    """The window a replay of a log spanning `span_s` folds its metrics by. A window asked for is
    used as it is, or refused when it makes more than `REPLAY_MAX_WINDOWS` windows (never widened
    behind the user's back): the message names the smallest width that fits."""
    if asked is not None:
        windows = _windows_over(span_s, asked)
        if windows > REPLAY_MAX_WINDOWS:
            fits = metric_window(span_s)
            raise ReplayPlanError(
                f"{asked_by} {_width(asked)} makes {windows:,} metric windows over the log's span of "
                f"{span_s / 86400:,.1f} days; a replay keeps at most {REPLAY_MAX_WINDOWS:,}: give "
                f"{asked_by} {_width(max(fits.window_s, asked))} or more, or replay a slice with --slice START/END")
        return MetricWindow(asked, windows, span_s, asked_by)
    for width in _WIDTHS:
        if _windows_over(span_s, width) <= REPLAY_MAX_WINDOWS:
            return MetricWindow(float(width), _windows_over(span_s, width), span_s)
    days = max(2, math.ceil(span_s / 86400 / (REPLAY_MAX_WINDOWS - 1)))
    while _windows_over(span_s, days * 86400) > REPLAY_MAX_WINDOWS:
        days += 1
    return MetricWindow(days * 86400.0, _windows_over(span_s, days * 86400), span_s)


def windowed_endpoints(scenario: Scenario) -> list[str]:
    """The endpoints an assertion judges over a time scope ('in every', 'during'): a replay keeps
    their figures per window; every other endpoint's, for the whole run only."""
    found = [a.endpoint for a in scenario.parsed_assertions()
             if a.endpoint is not None and (a.every_s is not None or a.from_hour is not None or a.fault is not None)]
    return sorted(set(found))


def check_warp(warp: float) -> None:
    """`--warp` is positive and at most 1e9 (a year of log in 0.03 real seconds)."""
    if not warp > 0:
        raise ReplayPlanError(f"--warp must be a positive number, not {warp:g}")
    if warp > REPLAY_MAX_WARP:
        raise ReplayPlanError(f"--warp {warp:g} is over the fastest a replay plays ({REPLAY_MAX_WARP:g}, "
                              "a year of log in 0.03 s); give --warp 1e9 or less")


def replay_scenario(plan: ReplayPlan, assertions: list[str], name: str = "replay",
                    derived_metrics: dict[str, str] | None = None, scenario_file: str | None = None,
                    top_endpoints: int | None = None, window: float | None = None,
                    window_by: str = "--window", max_in_flight: int | None = None,
                    request_timeout: float | None = None) -> Scenario:
    """The run's scenario as the log records it: the replay's span, warp, window and assertions.

    It is marked `derived_from: log`, so it takes a replay's bounds (`--warp` up to 1e9, a log's
    span of years), not those of a scenario written by hand; its errors name what the user gave
    (`--warp`, `--assert`, `--window`, the --scenario file), never the fields of this description.
    Its window is `metric_window`'s: at most `REPLAY_MAX_WINDOWS` over the log's span. With
    `top_endpoints`, the fold keeps rows for that many endpoint labels, the rest under `other`,
    and is flat: per window only the run's figures and those of the endpoints that an assertion
    judges over a time scope (`windowed_endpoints`). `max_in_flight` and `request_timeout`
    (`--max-in-flight`, `--timeout`) travel in it to the bot workers of the Kafka runtime."""
    check_warp(plan.warp)
    if plan.span_s > REPLAY_MAX_HOURS * 3600:
        raise ReplayPlanError(f"the log spans {plan.span_s / 86_400 / 365.25:,.0f} years, more than a replay "
                              f"plays ({REPLAY_MAX_HOURS / 24 / 366:,.0f} years): replay a slice with --slice "
                              "START/END, or check the log's times")
    hours = max(plan.span_s, 1.0) / 3600
    rate = max(plan.requests / max(plan.real_s, 1e-3), 0.001)
    if top_endpoints is not None and top_endpoints < 1:
        raise ReplayPlanError(f"--top-endpoints must be 1 or more, not {top_endpoints}")
    chosen = metric_window(plan.span_s, window, window_by)
    data: dict[str, Any] = {"name": name, "derived_from": "log", "duration_hours": hours, "time_warp": plan.warp,
                            "load_profile": [[0, rate]], "assertions": list(assertions),
                            "derived_metrics": dict(derived_metrics or {}), "window": chosen.window_s}
    if top_endpoints is not None:
        data["top_endpoints"] = top_endpoints
    if max_in_flight is not None:
        data["max_in_flight"] = max_in_flight
    if request_timeout is not None:
        data["request_timeout"] = request_timeout
    try:
        scenario = Scenario.from_dict(data)
        windowed = windowed_endpoints(scenario) if top_endpoints is not None else []
        if windowed:
            data["windowed_endpoints"] = windowed
            scenario = Scenario.from_dict(data)
        return scenario
    except ScenarioError as exc:
        raise ReplayPlanError("; ".join(_in_replay_terms(e, assertions, scenario_file, chosen)
                                        for e in exc.errors)) from None


def _in_replay_terms(error: FieldError, assertions: list[str], scenario_file: str | None,
                     window: MetricWindow) -> str:
    index = re.fullmatch(r"assertions\[(\d+)\]", error.path)
    if index and int(index[1]) < len(assertions):
        if "metric window" in error.message and window.widened:
            return (f"--assert {assertions[int(index[1])]!r}: {error.message}, which this replay widened to "
                    f"{_width(window.window_s)} to keep at most {REPLAY_MAX_WINDOWS:,} windows over the log's "
                    "span; give a longer scope, or replay a slice with --slice START/END")
        return f"--assert {assertions[int(index[1])]!r}: {error.message}"
    if error.path == "window":
        return f"{window.asked_by or 'window'}: {error.message}"
    if error.path.startswith("derived_metrics"):
        return f"{scenario_file or 'the --scenario file'}: {error.path}: {error.message}"
    return f"cannot plan this replay: {error.message}"  # not expected: the bounds are checked above


class ReplayRun:
    """Plays a log's requests at their logged times over `warp`: the log schedule feeds a
    `Scheduler` (for max_in_flight's slots and the results), a `Pacer` sends them in real time."""

    def __init__(self, records: Iterable[LogRecord], plan: ReplayPlan, target: Target, *,
                 scenario: Scenario, run_id: str | None = None, home: Path | None = None,
                 sender: Sender | None = None, http_client: str = "pooled", timeout: float = 10.0,
                 max_in_flight: int = 10_000, scenario_file: str | None = None,
                 endpoints: EndpointFolder | None = None, clocks: Clocks | None = None) -> None:
        if plan.first is None:
            raise ValueError("nothing to replay")
        self.records = records
        self.plan = plan
        self.target = target
        self.scenario = scenario
        self.run_id = run_id or new_run_id()
        self.home = home if home is not None else Settings.current().home
        self._sender = sender
        self.http_client = http_client
        self.timeout = timeout
        self.max_in_flight = max_in_flight
        self.scenario_file = scenario_file
        self.endpoints = endpoints or EndpointFolder()  # --endpoint templates, then the heuristics
        self.fold = RunFold(scenario.late_threshold_ms)
        self.bus = EmbeddedBus()
        self.comparison = ReplayComparison()
        self.sent = 0
        self.late = 0
        self._in_flight: set[asyncio.Task] = set()
        self.verdict: Verdict | None = None
        t0 = plan.first
        # the log's own times are the simulated ones: replayed at `warp`, with no drain
        clock = SimClock(plan.warp, plan.span_s, plan.warp)
        self.scheduler = Scheduler([], clock, run_id=self.run_id, seed=0, max_in_flight=max_in_flight,
                                   late_threshold_ms=scenario.late_threshold_ms, emit=self._emit)
        self.pacer = Pacer(self.scheduler, clocks or Clocks(), sim_header=lambda sim: _sim_time(t0 + sim),
                           time_warp=plan.warp, request_timeout=timeout)

    def _emit(self, event: Any) -> None:
        self.bus.publish(event)

    async def execute(self) -> Verdict:
        t0 = self.plan.first
        assert t0 is not None
        pacer, scheduler = self.pacer, self.scheduler
        now = pacer.now
        sender = self._sender or make_sender(self.http_client, self.target.url, timeout=self.timeout,
                                             max_connections=connection_budget(self.max_in_flight),
                                             keep_headers=False)
        log = RunLog(self.home, self.run_id)
        self.bus.subscribe(self.fold.apply)
        self.bus.subscribe(log.append)
        self.log_path = log.path
        gc.collect()
        gc.freeze()  # as a scenario run: set-up objects stay out of the collections (whole ones took 0.1 s)
        start = now() + START_LEAD_S
        epoch0 = pacer.wall() + START_LEAD_S
        pacer.begin(start, epoch0, sender)
        warp = self.plan.warp
        self._emit(RunStarted(
            run_id=self.run_id, seq=scheduler.next_seq(), sim_time=0.0, real_time=epoch0,
            scenario=self.scenario.to_dict(), target=self.target.shown_url, seed=0,
            sim_start=datetime.fromtimestamp(t0, UTC).isoformat(), time_warp=warp, drain_warp=warp,
            load_end_sim=self.plan.span_s, window_s=self.scenario.window, arrivals_planned=self.plan.requests,
            scenario_file=self.scenario_file, endpoints=tuple(t.text for t in self.endpoints.templates)))
        if self.fold.endpoint_cap is not None:  # set from the scenario's top_endpoints by run_started
            self.comparison.follow(self.fold.endpoint_cap)
        loop = asyncio.get_running_loop()
        try:
            for record in self.records:
                at = start + (record.time - t0) / warp
                t = now()
                while t < at:
                    await asyncio.sleep(at - t)
                    t = now()
                # the log is read no faster than requests get slots: memory stays flat on a slow target
                while len(self._in_flight) >= self.max_in_flight:
                    await asyncio.wait(self._in_flight, return_when=asyncio.FIRST_COMPLETED)
                if (now() - at) * 1000 > self.scenario.late_threshold_ms:
                    self.late += 1
                task = loop.create_task(self._send(record, at, record.time - t0))
                self._in_flight.add(task)
                task.add_done_callback(self._in_flight.discard)
            if self._in_flight:
                await asyncio.wait(self._in_flight)
            self._emit(RunFinished(
                run_id=self.run_id, seq=scheduler.next_seq(), sim_time=(now() - start) * warp,
                real_time=pacer.wall(), arrivals_planned=self.plan.requests, journeys_started=0,
                requests_sent=self.sent, late_starts=self.late, journeys_cut=0))
        except (asyncio.CancelledError, KeyboardInterrupt) as exc:
            for task in list(self._in_flight):
                task.cancel()
            await asyncio.gather(*self._in_flight, return_exceptions=True)
            self._emit(RunAborted(run_id=self.run_id, seq=scheduler.next_seq(), sim_time=(now() - start) * warp,
                                  real_time=pacer.wall(), reason=str(exc) or "interrupted (Ctrl-C)",
                                  arrivals_planned=self.plan.requests, requests_sent=self.sent))
            self._finish(log)
            raise
        finally:
            gc.unfreeze()
            await sender.close()
        return self._finish(log)

    async def _send(self, record: LogRecord, intended: float, sim: float) -> None:
        folded = self.endpoints.fold(record.method, record.target)
        label = folded.label
        extra = _sendable(record.headers) if record.headers else {}
        request = PreparedRequest(record.method, record.target, label, "replay", headers=extra, body=record.body)
        self.sent += 1
        try:
            reply = await self.pacer.send(request, intended, self.sent, "replay", sim=sim)
        except asyncio.CancelledError:
            self.sent -= 1
            raise
        self.comparison.add(label, record, reply.status, reply.latency_ms, folded.rule)

    def windows_report(self) -> dict[str, Any]:
        """What the fold kept, for the report: its window, the windows and rows holding data."""
        fold = self.fold
        return {"window_s": fold.window_s, "windows_with_data": fold.windows, "max_windows": REPLAY_MAX_WINDOWS,
                "windowed_endpoints": sorted(fold.windowed), "endpoint_rows": len(fold.rows),
                "buckets": len(fold.buckets)}

    def _finish(self, log: RunLog) -> Verdict:
        if self.verdict is None:
            self.verdict = judge(self.fold, self.scenario.parsed_assertions())
            last = self.fold.finished or self.fold.aborted
            self._emit(VerdictIssued(run_id=self.run_id, seq=self.scheduler.next_seq(),
                                     sim_time=last.sim_time if last else 0.0, real_time=self.pacer.wall(),
                                     verdict=self.verdict.to_dict()))
            log.close()
        return self.verdict
