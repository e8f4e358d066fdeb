"""Metric buckets: mergeable aggregates per simulated-time window and endpoint label.

`Bucket` is a pure reducer state (counts, errors by kind, bytes, two latency sketches, journey
outcomes, SLA met/missed, user counters) with `merge`; `RunFold` folds a run's events into
buckets keyed by `(window index, endpoint)` and keeps the run's own facts (start, finish,
verdict). Both runtimes and `esr judge` call exactly this code, so a run re-judged from its log
gets the same numbers.

A replay (a fold with an endpoint cap) is folded flat: per endpoint one whole-run bucket
(`rows`), and per window the run-level figures only (label `REST`), plus per-window buckets for
the few endpoints an assertion judges window by window (`windowed`). Its memory is windows +
endpoints, never windows x endpoints.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from math import isfinite
from typing import Any, get_args

from esr.core.errors import JudgementError, RunLogError
from esr.core.events import (
    CounterAdded,
    DecisionRecorded,
    Event,
    FaultEnded,
    FaultStarted,
    JourneyEnded,
    JourneyOutcome,
    JourneyStarted,
    RequestResult,
    RunAborted,
    RunFinished,
    RunStarted,
    ShardReport,
    SlaDecided,
    VerdictIssued,
)
from esr.core.heavy_hitters import OTHER, EndpointCap
from esr.core.sketch import LatencySketch

__all__ = ["ERROR_KINDS", "JOURNEY_OUTCOMES", "LATE_START_SHARE", "REST", "Bucket", "FaultWindow", "RunFold"]

ERROR_KINDS = ("timeout", "connect", "4xx", "5xx", "protocol")
JOURNEY_OUTCOMES: tuple[JourneyOutcome, ...] = get_args(JourneyOutcome)
JOURNEY_LABEL = ""  # journeys, SLAs and counters are not per endpoint
REST = "*"  # a flat fold's per-window label: the requests of every endpoint without per-window buckets
MAX_REASONS = 100  # distinct failure reasons kept; more are counted in the outcomes only
_BATCH = 4096  # results apply_all groups before adding them to their buckets
LATE_START_SHARE = 0.05  # a scenario's max_late_start_share unless it says otherwise


class Bucket:
    __slots__ = (
        "requests", "errors", "bytes", "latency", "raw_latency",
        "journeys_started", "journeys", "late_starts", "sla_met", "sla_missed", "counters", "version",
    )

    def __init__(self) -> None:
        self.version = 0  # bumped by every change: readers that keep derived figures know when to redo them
        self.requests = 0
        self.errors: dict[str, int] = {}
        self.bytes = 0
        self.latency = LatencySketch()
        self.raw_latency = LatencySketch()
        self.journeys_started = 0
        self.journeys: dict[str, int] = {}
        self.late_starts = 0
        self.sla_met: dict[str, int] = {}
        self.sla_missed: dict[str, int] = {}
        self.counters: dict[str, float] = {}

    def add_result(self, r: RequestResult) -> None:
        self.version += 1
        self.requests += 1
        self.bytes += r.bytes
        self.latency.add(r.latency_ms)
        self.raw_latency.add(r.raw_latency_ms)
        if r.error is not None:
            self.errors[r.error] = self.errors.get(r.error, 0) + 1

    def add_results(self, results: list[RequestResult]) -> None:
        """`add_result` for each, in order, one field at a time: RunFold.apply_all's batches."""
        n = len(results)
        self.version += n
        self.requests += n
        self.bytes = sum([r.bytes for r in results], self.bytes)
        self.latency.add_many([r.latency_ms for r in results])
        self.raw_latency.add_many([r.raw_latency_ms for r in results])
        errors = self.errors
        for error in [r.error for r in results if r.error is not None]:
            errors[error] = errors.get(error, 0) + 1

    def merge(self, other: Bucket) -> None:
        self.version += 1
        self.requests += other.requests
        self.bytes += other.bytes
        self.latency.merge(other.latency)
        self.raw_latency.merge(other.raw_latency)
        self.journeys_started += other.journeys_started
        self.late_starts += other.late_starts
        for mine, theirs in (
            (self.errors, other.errors),
            (self.journeys, other.journeys),
            (self.sla_met, other.sla_met),
            (self.sla_missed, other.sla_missed),
        ):
            for key, value in theirs.items():
                mine[key] = mine.get(key, 0) + value
        for key, amount in other.counters.items():
            self.counters[key] = self.counters.get(key, 0) + amount

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": dict(sorted(self.errors.items())),
            "bytes": self.bytes,
            "latency": self.latency.to_dict(),
            "raw_latency": self.raw_latency.to_dict(),
            "journeys_started": self.journeys_started,
            "journeys": dict(sorted(self.journeys.items())),
            "late_starts": self.late_starts,
            "sla_met": dict(sorted(self.sla_met.items())),
            "sla_missed": dict(sorted(self.sla_missed.items())),
            "counters": dict(sorted(self.counters.items())),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Bucket:
        bucket = cls()
        for name in ("requests", "bytes", "journeys_started", "late_starts"):
            setattr(bucket, name, data[name])
        for name in ("errors", "journeys", "sla_met", "sla_missed", "counters"):
            setattr(bucket, name, dict(data[name]))
        bucket.latency = LatencySketch.from_dict(data["latency"])
        bucket.raw_latency = LatencySketch.from_dict(data["raw_latency"])
        return bucket

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Bucket) and self.to_dict() == other.to_dict()


@dataclass(slots=True)
class FaultWindow:
    fault: str  # the failure_injection entry
    name: str
    kind: str
    start_sim: float
    end_sim: float | None  # scheduled; None: until the run ends
    ok: bool = True
    detail: str = ""
    ended_sim: float | None = None  # when fault_ended says it ended
    end_reason: str = ""
    recovered_ok: bool = True
    recovery_detail: str = ""

    @property
    def ended_as_scheduled(self) -> bool:
        """It has a scheduled end, and nothing (an abort, the run's end) cut it short."""
        return self.end_sim is not None and self.end_reason in ("", "scheduled")

    def until(self, last_sim: float) -> float:
        """The window's end: as scheduled, else when it was ended, else when the run ended."""
        if self.ended_as_scheduled:
            return self.end_sim  # type: ignore[return-value]
        return self.ended_sim if self.ended_sim is not None else last_sim


class RunFold:
    """The state of one run as a fold over its events, in log order.

    With `top_endpoints` (or a run whose scenario sets it: `esr replay --top-endpoints`), at most
    that many endpoint labels keep buckets of their own (`EndpointCap`); a label that leaves the
    tracked set has its bucket merged into the `other` label's, so totals and whole-run sketches
    stay exact. Such a fold is flat: endpoints have whole-run buckets (`rows`), windows have the
    run's figures (`REST`) and, for the `windowed` endpoints only (those the scenario's
    `windowed_endpoints` or the caller name: assertions scoped to an endpoint and to time), per
    endpoint; those are never let go into `other`."""

    def __init__(self, late_threshold_ms: float = 10.0, *, top_endpoints: int | None = None,
                 windowed: Iterable[str] = ()) -> None:
        self.late_threshold_ms = late_threshold_ms
        self.max_late_start_share = LATE_START_SHARE  # the run's scenario's, from run_started
        self.endpoint_cap = EndpointCap(top_endpoints) if top_endpoints is not None else None
        self.windowed: set[str] = set(windowed)  # flat: endpoints with per-window buckets of their own
        self.rows: dict[str, Bucket] = {}  # flat: each endpoint's whole-run bucket (the tracked, windowed, other)
        self.window_s = 60.0
        self.buckets: dict[tuple[int, str], Bucket] = {}
        self.started: RunStarted | None = None
        self.finished: RunFinished | None = None
        self.aborted: RunAborted | None = None
        self.verdict: VerdictIssued | None = None
        self.results_recorded = 0
        self.failure_reasons: dict[str, int] = {}  # why journeys failed or gave up
        self.last_sim_time = 0.0
        self.last_real_time = 0.0
        self.events = 0
        self.faults: dict[str, FaultWindow] = {}  # by failure_injection entry, in start order
        self.decisions: list[DecisionRecorded] = []  # training mode, in time order
        self._whole_cache: dict[str | None, tuple[dict[tuple[int, str], int], Bucket, dict[tuple[int, str], int]]] = {}
        self._handlers: dict[type[Event], Callable[[Any], None]] = {
            RequestResult: self._on_result,
            JourneyStarted: self._on_journey_started,
            JourneyEnded: self._on_journey_ended,
            SlaDecided: self._on_sla,
            CounterAdded: self._on_counter,
            RunStarted: self._on_run_started,
            RunFinished: self._on_finished,
            RunAborted: self._on_aborted,
            ShardReport: self._on_shard_report,
            FaultStarted: self._on_fault_started,
            FaultEnded: self._on_fault_ended,
            DecisionRecorded: self.decisions.append,
            VerdictIssued: self._on_verdict,
        }

    def apply(self, event: Event) -> None:
        self.events += 1
        if type(event) is VerdictIssued:  # judged from the events before it
            self.verdict = event
            return
        if event.sim_time > self.last_sim_time:
            self.last_sim_time = event.sim_time
        if event.real_time > self.last_real_time:
            self.last_real_time = event.real_time
        self._handlers[type(event)](event)

    def apply_all(self, events: Iterable[Event]) -> RunFold:
        """`apply` each event in order, faster: a run log is mostly results.

        Results are grouped by bucket and each group is added at once (`Bucket.add_results`),
        buckets created in the order they first appear. The groups are added before any other
        event is applied, every `_BATCH` results or so, and when the events end or raise, so
        every handler, and every error, sees the state `apply` would have left. The window of a
        result is the last one's while `sim_time // window_s` is the same."""
        groups: list[tuple[tuple[int, str], list[RequestResult]]] = []  # in order of first appearance
        windows: dict[float, dict[str, list[RequestResult]]] = {}  # sim_time // window_s -> its groups by endpoint
        window: dict[str, list[RequestResult]] = {}
        quotient: float | None = None  # window's sim_time // window_s
        window_s, last_sim, last_real = self.window_s, self.last_sim_time, self.last_real_time
        capped = self.endpoint_cap is not None  # results go one by one: the cap decides in stream order
        pending = 0  # results in groups

        def flush() -> None:  # never twice for the same groups, even when adding them raises
            nonlocal pending, quotient
            results, pending, quotient = pending, 0, None
            if results:
                try:
                    self._add_groups(groups, results, last_sim, last_real)
                finally:
                    groups.clear()
                    windows.clear()

        try:
            for event in events:
                if type(event) is RequestResult and not capped:
                    sim_time = event.sim_time
                    q = sim_time // window_s
                    if q != quotient:
                        if pending >= _BATCH:  # results held in lists slow every garbage collection down
                            flush()
                        found = windows.get(q)
                        if found is None:
                            if not isfinite(q):  # NaN or infinite sim_time: `apply` raises
                                flush()
                                self.apply(event)
                                window_s, last_sim, last_real = self.window_s, self.last_sim_time, self.last_real_time
                                continue
                            found = windows[q] = {}
                        window, quotient = found, q
                    if sim_time > last_sim:
                        last_sim = sim_time
                    if event.real_time > last_real:
                        last_real = event.real_time
                    pending += 1
                    endpoint = event.endpoint
                    group = window.get(endpoint)
                    if group is None:
                        group = window[endpoint] = []
                        groups.append(((int(q), endpoint), group))
                    group.append(event)
                else:
                    flush()
                    self.apply(event)
                    window_s, last_sim, last_real = self.window_s, self.last_sim_time, self.last_real_time
                    capped = self.endpoint_cap is not None
        finally:
            flush()
        return self

    def _add_groups(self, groups: list[tuple[tuple[int, str], list[RequestResult]]], results: int,
                    last_sim: float, last_real: float) -> None:
        """What `apply` does for each of `results` results, grouped by bucket (apply_all)."""
        self.events += results
        self.results_recorded += results
        self.last_sim_time, self.last_real_time = last_sim, last_real
        buckets = self.buckets
        for key, group in groups:
            bucket = buckets.get(key)
            if bucket is None:
                bucket = buckets[key] = Bucket()
            bucket.add_results(group)

    def bucket(self, sim_time: float, endpoint: str) -> Bucket:
        key = (int(sim_time // self.window_s), endpoint)
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = self.buckets[key] = Bucket()
        return bucket

    def merged(
        self,
        *,
        from_sim: float | None = None,
        to_sim: float | None = None,
        endpoint: str | None = None,
    ) -> Bucket:
        """One bucket for the windows starting in [from_sim, to_sim), optionally one endpoint.
        The whole run's (no bounds) is kept up to date incrementally: dashboards and scrapes
        ask for it every second while the run plays. A flat fold has an endpoint's figures for
        the whole run only, unless it is `windowed`: asked for a part of the run, it says so."""
        whole = (from_sim is None or from_sim <= 0) and to_sim is None
        if self.endpoint_cap is not None and endpoint not in (None, JOURNEY_LABEL) and endpoint not in self.windowed:
            if not whole:
                self.check_windows(endpoint)
            total = Bucket()
            row = self.rows.get(endpoint)
            if row is not None:
                total.merge(row)
            return total
        if whole:
            return self._whole(endpoint)
        total = Bucket()
        for (window, label), bucket in self.buckets.items():
            start = window * self.window_s
            if from_sim is not None and start < from_sim:
                continue
            if to_sim is not None and start >= to_sim:
                continue
            if endpoint is not None and label != endpoint:
                continue
            total.merge(bucket)
        return total

    def _whole(self, endpoint: str | None) -> Bucket:
        """Windows unchanged since the last call join a kept aggregate (merged once); the
        others are merged afresh. A kept window that changes again (a late answer) resets it."""
        kept, aggregate, last = self._whole_cache.get(endpoint, ({}, Bucket(), {}))
        now = {key: b.version for key, b in self.buckets.items() if endpoint is None or key[1] == endpoint}
        if any(now.get(key) != version for key, version in kept.items()):
            kept, aggregate = {}, Bucket()
        for key, version in now.items():
            if key not in kept and last.get(key) == version:
                aggregate.merge(self.buckets[key])
                kept[key] = version
        total = Bucket()
        total.merge(aggregate)
        for key in now:  # in the buckets' own order, not a set's: the same sums, to the last bit, in any process
            if key not in kept:
                total.merge(self.buckets[key])
        self._whole_cache[endpoint] = (kept, aggregate, now)
        return total

    @property
    def endpoints(self) -> list[str]:
        if self.endpoint_cap is not None:
            return sorted(self.rows)
        return sorted({label for _, label in self.buckets if label != JOURNEY_LABEL})

    def whole_by_label(self) -> dict[str, Bucket]:
        """Each label's whole-run bucket: every endpoint's (a flat fold's rows) and the journeys' ("")."""
        labels = {label for _, label in self.buckets}
        if self.endpoint_cap is not None:
            labels.discard(REST)
            labels.update(self.rows)
        return {label: self.merged(endpoint=label) for label in labels}

    @property
    def windows(self) -> int:
        """How many simulated-time windows hold data."""
        return len({window for window, _ in self.buckets})

    # -- handlers -------------------------------------------------------------------------
    def _on_result(self, e: RequestResult) -> None:
        self.results_recorded += 1
        if self.endpoint_cap is not None:
            self._capped_result(e, self.endpoint_cap)
            return
        key = (int(e.sim_time // self.window_s), e.endpoint)  # self.bucket(), inline: once per result
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = self.buckets[key] = Bucket()
        bucket.add_result(e)

    def _capped_result(self, e: RequestResult, cap: EndpointCap) -> None:
        """Flat: the result joins its endpoint's row and its window's run-level bucket (or, for a
        windowed endpoint, its own bucket in that window)."""
        label = e.endpoint
        windowed = label in self.windowed
        if not windowed and label != OTHER:
            for gone in cap.see(label, e.error is not None):
                self._to_other(gone)
        row = self.rows.get(label)
        if row is None:
            row = self.rows[label] = Bucket()
        row.add_result(e)
        key = (int(e.sim_time // self.window_s), label if windowed else REST)
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = self.buckets[key] = Bucket()
        bucket.add_result(e)

    def _to_other(self, label: str) -> None:
        """A label no longer tracked: its row joins `other`'s."""
        row = self.rows.pop(label, None)
        if row is None:
            return
        into = self.rows.get(OTHER)
        if into is None:
            into = self.rows[OTHER] = Bucket()
        into.merge(row)

    def _merge_flat(self, other: RunFold) -> None:
        """Another fold's buckets into this flat one, through the same cap as results: a plain
        fold's (a partition's on the Kafka runtime) per window and endpoint, a flat one's rows."""
        cap = self.endpoint_cap
        assert cap is not None
        buckets = self.buckets
        for (window, label), bucket in other.buckets.items():
            if label != JOURNEY_LABEL and other.endpoint_cap is None:
                self._merge_row(label, bucket, cap)
            key = (window, label if label == JOURNEY_LABEL or label in self.windowed else REST)
            mine = buckets.get(key)
            if mine is None:
                mine = buckets[key] = Bucket()
            mine.merge(bucket)
        if other.endpoint_cap is not None:  # a capped partition's: its rows, and the labels its "other" holds
            for label, row in other.rows.items():
                self._merge_row(label, row, cap)
            cap.other.merge(other.endpoint_cap.other)

    def _merge_row(self, label: str, bucket: Bucket, cap: EndpointCap) -> None:
        if label not in self.windowed and label != OTHER:
            for gone in cap.see_many(label, bucket.requests, bucket.error_count):
                self._to_other(gone)
        row = self.rows.get(label)
        if row is None:
            row = self.rows[label] = Bucket()
        row.merge(bucket)

    def check_windows(self, endpoint: str) -> None:
        """Raise JudgementError when this (flat) fold has `endpoint`'s figures for the whole run only."""
        if self.endpoint_cap is not None and endpoint not in self.windowed and endpoint != JOURNEY_LABEL:
            raise JudgementError(
                f"endpoint {endpoint!r} has figures for the whole replay only: a replay keeps figures per window "
                "for the run and for the endpoints its assertions judge over a time scope ('for endpoint ... in "
                "every ...' or '... during hour ...'); give that assertion to the replay or to `esr judge`")

    def untracked(self, endpoint: str) -> bool:
        """With a cap: `endpoint` has no row of its own (its requests, if any, are in `other`)."""
        return (self.endpoint_cap is not None and endpoint != OTHER and endpoint not in self.windowed
                and not self.endpoint_cap.tracked(endpoint))

    def _on_journey_started(self, e: JourneyStarted) -> None:
        bucket = self.bucket(e.sim_time, JOURNEY_LABEL)
        bucket.version += 1
        bucket.journeys_started += 1
        if e.late_ms > self.late_threshold_ms:
            bucket.late_starts += 1

    def _on_journey_ended(self, e: JourneyEnded) -> None:
        bucket = self.bucket(e.sim_time, JOURNEY_LABEL)
        bucket.version += 1
        journeys = bucket.journeys
        journeys[e.outcome] = journeys.get(e.outcome, 0) + 1
        if e.outcome in ("failed", "gave_up") and e.detail:
            reason = f"{e.journey}: {e.detail}"
            if reason in self.failure_reasons or len(self.failure_reasons) < MAX_REASONS:
                self.failure_reasons[reason] = self.failure_reasons.get(reason, 0) + 1

    def _on_sla(self, e: SlaDecided) -> None:
        # An SLA is counted in the window where it was opened: "claims filed at 9 a.m."
        bucket = self.bucket(e.opened_sim, JOURNEY_LABEL)
        bucket.version += 1
        tally = bucket.sla_met if e.met else bucket.sla_missed
        tally[e.sla] = tally.get(e.sla, 0) + 1

    def _on_counter(self, e: CounterAdded) -> None:
        bucket = self.bucket(e.sim_time, JOURNEY_LABEL)
        bucket.version += 1
        counters = bucket.counters
        counters[e.name] = counters.get(e.name, 0) + e.value

    def _on_run_started(self, e: RunStarted) -> None:
        if self.started is not None:
            raise RunLogError(f"a second run_started event (run {e.run_id!r}, seq {e.seq}): a log holds one run")
        self.started = e
        self.window_s = e.window_s
        top = e.scenario.get("top_endpoints")
        if top is not None and self.endpoint_cap is None:
            self.endpoint_cap = EndpointCap(int(top))
        self.windowed.update(e.scenario.get("windowed_endpoints") or ())
        self.late_threshold_ms = float(e.scenario.get("late_threshold_ms", self.late_threshold_ms))
        self.max_late_start_share = float(e.scenario.get("max_late_start_share", LATE_START_SHARE))

    def _on_finished(self, e: RunFinished) -> None:
        self.finished = e

    def _on_aborted(self, e: RunAborted) -> None:
        self.aborted = e

    def _on_verdict(self, e: VerdictIssued) -> None:
        self.verdict = e

    def _on_fault_started(self, e: FaultStarted) -> None:
        self.faults[e.fault] = FaultWindow(e.fault, e.name, e.kind, e.start_sim, e.end_sim, e.ok, e.detail)

    def _on_fault_ended(self, e: FaultEnded) -> None:
        window = self.faults.get(e.fault)
        if window is None:
            raise RunLogError(f"fault_ended for {e.fault!r} (run {e.run_id!r}, seq {e.seq}) without its fault_started")
        window.ended_sim, window.end_reason = e.end_sim, e.reason
        window.recovered_ok, window.recovery_detail = e.ok, e.detail

    def _on_shard_report(self, e: ShardReport) -> None:
        """Bookkeeping of the Kafka runtime; its figures reach the verdict through run_finished."""

    # -- partial folds (Kafka runtime: one per partition, merged per run) -------------------
    def merge(self, other: RunFold) -> None:
        """Add another fold's buckets and tallies (not its run facts) to this one; a flat fold
        (with a cap) takes them through its cap."""
        if self.endpoint_cap is not None:
            self._merge_flat(other)
        else:
            for key, bucket in other.buckets.items():
                mine = self.buckets.get(key)
                if mine is None:
                    mine = self.buckets[key] = Bucket()
                mine.merge(bucket)
        self.results_recorded += other.results_recorded
        self.events += other.events
        for reason, count in other.failure_reasons.items():
            if reason in self.failure_reasons or len(self.failure_reasons) < MAX_REASONS:
                self.failure_reasons[reason] = self.failure_reasons.get(reason, 0) + count
        self.last_sim_time = max(self.last_sim_time, other.last_sim_time)
        self.last_real_time = max(self.last_real_time, other.last_real_time)

