"""What the system did during each fault and how long it took to recover: pure, from a fold.

A `FaultWindow` (kept by the fold in `esr.core.buckets`) is one applied fault on the run's
timeline, from its `fault_started` and `fault_ended` events. Metrics *during* a fault are those
of the metric windows (buckets) that start inside it. *Recovery* is measured against the steady
state, the load before the first fault:

    steady error rate  e0 = errors / requests       over the windows before the first fault
    steady p95         p0 = latency p95             over the same windows
    a window is steady when its error rate <= e0 + error_rate_margin
                        and its p95        <= p0 * latency_factor
    recovered at the start of the first window at or after the fault's end from which every
    window with requests is steady for `hold` simulated seconds (or until the data ends; no
    requests at all after the end: no recovery to measure)
    recovery_time_s = that moment - the fault's end  (inf: not recovered by the end of the run)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from esr.core.buckets import Bucket, FaultWindow, RunFold
from esr.core.errors import JudgementError
from esr.core.metrics import MetricsView

__all__ = ["RecoveryPolicy", "SteadyState", "fault_report", "recovery_time_s", "steady_state"]


@dataclass(frozen=True, slots=True)
class RecoveryPolicy:
    error_rate_margin: float = 0.01
    latency_factor: float = 1.5
    hold_s: float = 300.0

    @classmethod
    def from_scenario(cls, scenario: dict[str, Any]) -> RecoveryPolicy:
        data = scenario.get("recovery") or {}
        return cls(float(data.get("error_rate_margin", 0.01)), float(data.get("latency_factor", 1.5)),
                   float(data.get("hold", 300.0)))


@dataclass(frozen=True, slots=True)
class SteadyState:
    error_rate: float
    latency_p95_ms: float
    until_sim: float  # the first fault's start

    def holds(self, bucket: Bucket, policy: RecoveryPolicy) -> bool:
        p95 = bucket.latency.quantile(0.95) or 0.0
        return (bucket.error_count / bucket.requests <= self.error_rate + policy.error_rate_margin
                and p95 <= self.latency_p95_ms * policy.latency_factor)


def steady_state(fold: RunFold) -> SteadyState:
    """The load before the first fault; a JudgementError when there was none."""
    if not fold.faults:
        raise JudgementError("the run had no faults")
    first = min(w.start_sim for w in fold.faults.values())
    before = fold.merged(from_sim=0.0, to_sim=first)
    p95 = before.latency.quantile(0.95)
    if not before.requests or p95 is None:
        raise JudgementError(f"no requests before the first fault (sim hour {first / 3600:g}) to define the "
                             "steady state; start the fault later")
    return SteadyState(before.error_count / before.requests, p95, first)


def windows_named(fold: RunFold, name: str) -> list[FaultWindow]:
    windows = [w for w in fold.faults.values() if w.name == name]
    if not windows:
        raise JudgementError(f"fault {name!r} never started in this run")
    return windows


def during(fold: RunFold, name: str, endpoint: str | None = None) -> tuple[Bucket, list[tuple[float, float]]]:
    """The merged buckets of every window of the faults called `name`, and those spans (sim s)."""

    last = fold.last_sim_time
    total, spans = Bucket(), []
    for w in windows_named(fold, name):
        end = w.until(last)
        total.merge(fold.merged(from_sim=w.start_sim, to_sim=end, endpoint=endpoint))
        spans.append((w.start_sim, end))
    return total, spans


def _recovery(fold: RunFold, window: FaultWindow, steady: SteadyState, policy: RecoveryPolicy) -> float:
    if window.end_sim is None:
        raise JudgementError(f"{window.fault!r} lasts until the run ends, so there is no recovery to measure; "
                             "give it a duration such as +2h")
    if not window.ended_as_scheduled:
        raise JudgementError(f"{window.fault!r} was ended early ({window.end_reason}), so there is no recovery "
                             "to measure")
    width = fold.window_s
    per_window: dict[int, Any] = {}

    for (index, label), bucket in fold.buckets.items():
        if bucket.requests and label:
            per_window.setdefault(index, Bucket()).merge(bucket)
    end = window.end_sim
    first = math.ceil(end / width - 1e-9)  # the first window that starts at or after the end
    indexes = sorted(i for i in per_window if i >= first)
    if not indexes:
        raise JudgementError(f"no requests after {window.fault!r} ended, so there is no recovery to measure; "
                             "end the fault before the load does")
    hold_windows = max(1, math.ceil(policy.hold_s / width))
    run_start: int | None = None
    steady_count = 0
    for i in indexes:
        if steady.holds(per_window[i], policy):
            if run_start is None:
                run_start, steady_count = i, 0
            steady_count += 1
            if steady_count >= hold_windows:
                break
        else:
            run_start = None
    if run_start is None:
        return math.inf
    return max(0.0, run_start * width - end)


def recovery_time_s(fold: RunFold, name: str, policy: RecoveryPolicy | None = None) -> float:
    """Simulated seconds from the end of fault `name` until the steady state is back (the
    longest, if the fault ran more than once); inf when it never came back."""
    policy = policy or RecoveryPolicy.from_scenario(fold.started.scenario if fold.started else {})
    steady = steady_state(fold)
    return max(_recovery(fold, w, steady, policy) for w in windows_named(fold, name))


def fault_report(fold: RunFold, clock: Any) -> dict[str, Any]:
    """The verdict's `faults` section: steady state, then each fault with metrics during it
    and its recovery time."""

    if not fold.faults:
        return {}
    policy = RecoveryPolicy.from_scenario(fold.started.scenario if fold.started else {})
    steady: SteadyState | None
    try:
        steady = steady_state(fold)
        steady_dict: dict[str, Any] = {"error_rate": steady.error_rate, "latency_p95_ms": steady.latency_p95_ms,
                                       "until_sim_hour": steady.until_sim / 3600}
    except JudgementError as exc:
        steady, steady_dict = None, {"error": str(exc)}
    faults = []
    last = fold.last_sim_time
    for w in sorted(fold.faults.values(), key=lambda w: (w.start_sim, w.fault)):
        end = w.until(last)
        bucket = fold.merged(from_sim=w.start_sim, to_sim=end)
        view = MetricsView(bucket, clock.real_span(w.start_sim, end) if end > w.start_sim else 0.0)
        recovery: float | None = None
        note = ""
        if steady is not None and w.ok:
            try:
                recovery = _recovery(fold, w, steady, policy)
            except JudgementError as exc:
                note = str(exc)
        faults.append({
            "fault": w.fault, "name": w.name, "kind": w.kind, "applied": w.ok, "detail": w.detail,
            "start_sim_hour": w.start_sim / 3600, "end_sim_hour": end / 3600,
            "ended": w.end_reason or ("not reported" if fold.finished or fold.aborted else "still active"),
            "recovery_action_ok": w.recovered_ok,
            "recovery_detail": w.recovery_detail,
            "during": {name: view.get_or_none(name) for name in (
                "requests", "errors", "error_rate", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms")}
            | {f"errors_{kind}": float(count) for kind, count in sorted(bucket.errors.items())},
            "recovery_time_s": None if recovery is None or math.isinf(recovery) else recovery,
            "recovered": None if recovery is None else not math.isinf(recovery),
            **({"note": note} if note else {}),
        })
    return {"steady_state": steady_dict, "policy": {"error_rate_margin": policy.error_rate_margin,
            "latency_factor": policy.latency_factor, "hold_s": policy.hold_s}, "windows": faults}
