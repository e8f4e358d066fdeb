"""`run_timeline`: a run's charts as data, from its fold: the dashboard, the HTML report and
`esr report --json` all draw this.

One entry per metric window from the start to the last window with data (aligned arrays, so a
chart library takes them as they are):

    t              window start, simulated seconds
    rate_planned   the load profile's journey starts per real second at that simulated time
    rate_achieved  requests per real second in the window
    p50 p95 p99    latency percentiles, ms (None: no requests)
    error_rate     share of requests with an error, and `errors_by_kind` the share per kind
    sla_met sla_missed   deadlines decided, by the window in which they opened

plus the fault bands, the trainee decisions, the assertions and the completeness. Pure: the
callers pass the fold (and, for a live run, the figures only it knows).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from esr.core.buckets import ERROR_KINDS, Bucket, RunFold
from esr.core.load_profile import LoadPoint, LoadProfile
from esr.core.verdict import fold_clock

__all__ = ["finished_timeline", "run_timeline"]


def _profile(scenario: dict[str, Any]) -> LoadProfile | None:
    try:
        points = []
        for step in scenario.get("load_profile", []):
            if isinstance(step, dict):
                points.append(LoadPoint(float(step["hour"]), float(step["rate"]), bool(step.get("ramp", False))))
            else:
                points.append(LoadPoint(float(step[0]), float(step[1]), len(step) > 2 and step[2] == "ramp"))
        return LoadProfile(tuple(points), float(scenario["duration_hours"]))
    except (KeyError, TypeError, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class _Row:
    """One window's figures, kept with the versions of the buckets they came from."""

    versions: tuple[tuple[str, int], ...]
    requests: int
    p50: float | None
    p95: float | None
    p99: float | None
    error_rate: float | None
    errors: tuple[tuple[str, int], ...]
    sla_met: int
    sla_missed: int


def _rows(fold: RunFold, cache: dict[int, _Row]) -> dict[int, _Row]:
    """Each window's row; a window whose buckets did not change since `cache` was filled is
    taken from it (a playing run changes only its last windows between two pushes)."""
    keys: dict[int, list[tuple[str, Bucket]]] = {}
    for (index, label), bucket in fold.buckets.items():
        keys.setdefault(index, []).append((label, bucket))
    rows = {}
    for index, parts in keys.items():
        versions = tuple(sorted((label, b.version) for label, b in parts))
        row = cache.get(index)
        if row is None or row.versions != versions:
            b = Bucket()
            for _, part in parts:
                b.merge(part)
            p50, p95, p99 = (_round(b.latency.quantile(q)) for q in (0.5, 0.95, 0.99))
            row = cache[index] = _Row(
                versions, b.requests, p50, p95, p99,
                _round(b.error_count / b.requests, 5) if b.requests else None, tuple(sorted(b.errors.items())),
                sum(b.sla_met.values()), sum(b.sla_missed.values()))
        rows[index] = row
    return rows


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None or math.isnan(value) else round(value, digits)


def _hour(fold: RunFold, start: float, end: float) -> dict[str, Any]:
    b = fold.merged(from_sim=start, to_sim=end)
    return {"requests": b.requests, "error_rate": _round(b.error_count / b.requests, 5) if b.requests else None,
            "latency_p95_ms": _round(b.latency.quantile(0.95)), "sla_met": sum(b.sla_met.values()),
            "sla_missed": sum(b.sla_missed.values())}


def _decision(fold: RunFold, d: Any) -> dict[str, Any]:
    """A decision with what the metrics did in the simulated hour before it and the hour after."""
    start = (d.sim_time // fold.window_s) * fold.window_s
    return {"sim_time": d.sim_time, "author": d.author, "decision": d.decision, "action": d.action,
            "applied": d.applied, "detail": d.detail, "hour_before": _hour(fold, start - 3600, start),
            "hour_after": _hour(fold, start, start + 3600)}


def run_timeline(fold: RunFold, *, verdict: dict[str, Any] | None = None,
                 live: dict[str, Any] | None = None,
                 decisions: list[dict[str, Any]] | None = None,
                 cache: dict[int, Any] | None = None) -> dict[str, Any]:
    """The run's charts as JSON-ready data. `verdict`: the run's verdict dict once it ended;
    `live`: a playing run's snapshot (sim and real clock, open SLAs, assertions so far);
    `cache`: a dict the caller keeps between calls for the same run, so that only the windows
    that changed are computed again."""
    started = fold.started
    clock = fold_clock(fold)
    scenario = started.scenario if started else {}
    width = fold.window_s
    windows = _rows(fold, {} if cache is None else cache)
    last = max(windows, default=-1)
    profile = _profile(scenario)
    t: list[float] = []
    series: dict[str, list[Any]] = {name: [] for name in (
        "requests", "rate_planned", "rate_achieved", "p50", "p95", "p99", "error_rate", "sla_met", "sla_missed")}
    kinds = sorted({kind for row in windows.values() for kind, _ in row.errors} & set(ERROR_KINDS))
    by_kind: dict[str, list[float | None]] = {kind: [] for kind in kinds}
    empty = _Row((), 0, None, None, None, None, (), 0, 0)
    for index in range(last + 1):
        start = index * width
        row = windows.get(index, empty)
        t.append(start)
        series["requests"].append(row.requests)
        hour = start / 3600
        planned = profile.rate_at(hour) if profile is not None and start < clock.load_end_sim else 0.0
        series["rate_planned"].append(_round(planned))
        real = clock.real_span(start, start + width)
        series["rate_achieved"].append(_round(row.requests / real) if real > 0 else None)
        series["p50"].append(row.p50)
        series["p95"].append(row.p95)
        series["p99"].append(row.p99)
        series["error_rate"].append(row.error_rate)
        errors = dict(row.errors)
        for kind in kinds:
            by_kind[kind].append(_round(errors.get(kind, 0) / row.requests, 5) if row.requests else None)
        series["sla_met"].append(row.sla_met)
        series["sla_missed"].append(row.sla_missed)
    if decisions is None:
        decisions = [_decision(fold, d) for d in fold.decisions]
    faults = [{"fault": w.fault, "name": w.name, "kind": w.kind, "start_sim": w.start_sim,
               "end_sim": w.until(fold.last_sim_time),
               "applied": w.ok, "ended": w.end_reason or None} for w in fold.faults.values()]
    met = sum(series["sla_met"])
    missed = sum(series["sla_missed"])
    return {
        "run": {
            "run_id": started.run_id if started else None, "scenario": scenario.get("name"),
            "target": started.target if started else None, "sim_start": started.sim_start if started else None,
            "time_warp": clock.time_warp, "drain_warp": clock.drain_warp, "load_end_sim": clock.load_end_sim,
            "window_s": width, "duration_hours": scenario.get("duration_hours"),
        },
        "t": t, **series, "errors_by_kind": by_kind,
        "sla": {"met": met, "missed": missed, "open": (live or {}).get("sla_open", 0) if verdict is None
                else (verdict.get("completeness") or {}).get("sla_undecided", 0)},
        "faults": faults,
        "decisions": decisions or [],
        "assertions": (verdict or {}).get("assertions") or (live or {}).get("assertions") or [],
        "completeness": (verdict or {}).get("completeness") or {},
        "clock": {"sim_seconds": (live or {}).get("sim_hours", fold.last_sim_time / 3600) * 3600,
                  "real_seconds": (live or {}).get("real_seconds"), "state": (live or {}).get("status")},
        "verdict": None if verdict is None else {"verdict": verdict.get("verdict"), "reason": verdict.get("reason")},
    }


def finished_timeline(fold: RunFold) -> dict[str, Any]:
    """The timeline of a run read back from its log: its recorded verdict, or the verdict
    `judge` gives the log (ABORTED for a log without an end)."""
    if fold.verdict is not None:
        verdict = fold.verdict.verdict
    else:
        from esr.core.scenario import Scenario
        from esr.core.verdict import judge

        try:
            scenario = Scenario.from_dict(dict(fold.started.scenario)) if fold.started else None
            assertions = scenario.parsed_assertions() if scenario else []
        except Exception:  # noqa: BLE001 - e.g. Python metric functions not at hand: judged without them
            scenario, assertions = None, []
        verdict = judge(fold, assertions, custom=scenario.custom_metrics if scenario else None,
                        counters=scenario.counter_names if scenario else frozenset()).to_dict()
    return run_timeline(fold, verdict=verdict)
