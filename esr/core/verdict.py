"""The verdict: PASS, FAIL, ERROR or ABORTED, judged from a `RunFold` alone.

    ABORTED  the run was aborted, or its log ends without a finish (a crash or kill -9)
    ERROR    the run cannot be judged: results are missing, a fault could not be applied, or an
             assertion had no data; or it would PASS, but its generator started more journeys
             late than the scenario's max_late_start_share (5 % by default), so the load it
             claims was not delivered (a replay, which has no journeys, is not judged on this)
    FAIL     every figure was there and at least one assertion failed
    PASS     every figure was there and every assertion held

Because this is a pure function of the events, `esr judge RUN` recomputes the same verdict
from the run log, or another verdict with other assertions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from esr.core.assertions import Assertion, AssertionResult, evaluate
from esr.core.buckets import RunFold
from esr.core.clock import SimClock
from esr.core.fault_windows import fault_report
from esr.core.metrics import MetricFunction, MetricsView

__all__ = ["EXIT_CODES", "Verdict", "VerdictStatus", "judge"]

VerdictStatus = Literal["PASS", "FAIL", "ERROR", "ABORTED"]
EXIT_CODES: dict[VerdictStatus, int] = {"PASS": 0, "FAIL": 1, "ERROR": 2, "ABORTED": 3}
SATURATION_SHARE = 0.01


@dataclass(frozen=True, slots=True)
class Verdict:
    run_id: str
    status: VerdictStatus
    reason: str
    assertions: tuple[AssertionResult, ...]
    summary: dict[str, float | None]
    completeness: dict[str, Any]
    generator: dict[str, Any]
    time: dict[str, Any]
    journey_failures: dict[str, int]
    faults: dict[str, Any] = field(default_factory=dict)  # steady state, and each fault's window
    metric_definitions: dict[str, Any] = field(default_factory=dict)  # each custom metric, and who defined it

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "verdict": self.status,
            "reason": self.reason,
            "assertions": [a.to_dict() for a in self.assertions],
            "summary": self.summary,
            "completeness": self.completeness,
            "generator": self.generator,
            "time": self.time,
            "journey_failures": self.journey_failures,
            "faults": self.faults,
            "metric_definitions": self.metric_definitions,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Verdict:
        """A verdict read back from JSON (the verdict topic, an API answer)."""
        return cls(data["run_id"], data["verdict"], data["reason"],
                   tuple(AssertionResult(**a) for a in data["assertions"]), data["summary"],
                   data["completeness"], data["generator"], data["time"], data["journey_failures"],
                   data.get("faults", {}), data.get("metric_definitions", {}))


def fold_clock(fold: RunFold) -> SimClock:
    started = fold.started
    if started is None:
        return SimClock(1.0, 0.0, 1.0)
    return SimClock(started.time_warp, started.load_end_sim, started.drain_warp)


def _completeness(fold: RunFold) -> dict[str, Any]:
    ended = fold.finished or fold.aborted
    sent = ended.requests_sent if ended else None
    finished = fold.finished
    gaps = {
        "requests_abandoned": finished.requests_abandoned if finished else 0,
        "sla_undecided": finished.sla_undecided if finished else 0,
        "arrivals_not_started": finished.arrivals_not_started if finished else 0,
        "results_lost": finished.results_lost if finished else 0,
        "journey_events_lost": finished.journey_events_lost if finished else 0,
        "shard_reports_missing": finished.shard_reports_missing if finished else 0,
        "fault_events_missing": finished.fault_events_missing if finished else 0,
    }
    return {
        "arrivals_planned": fold.started.arrivals_planned if fold.started else None,
        "journeys_started": ended.journeys_started if ended else None,
        "requests_sent": sent,
        "results_recorded": fold.results_recorded,
        **gaps,
        "duplicates_dropped": finished.duplicates_dropped if finished else 0,
        "complete": sent is not None and sent == fold.results_recorded and not any(gaps.values()),
    }


def _gap(c: dict[str, Any]) -> str:
    """What is missing from an incomplete run, in words."""
    parts = []
    if c["requests_sent"] is not None and c["requests_sent"] != c["results_recorded"]:
        parts.append(f"{c['requests_sent'] - c['results_recorded']} of {c['requests_sent']} results missing")
    if c["requests_abandoned"]:
        parts.append(f"{c['requests_abandoned']} requests still in flight when the run ended")
    if c["sla_undecided"]:
        parts.append(f"{c['sla_undecided']} SLA deadlines still open when the run ended "
                     "(a Python journey's longest_wait may be too short)")
    if c["arrivals_not_started"]:
        parts.append(f"{c['arrivals_not_started']} planned journeys never started (max_in_flight reached)")
    if c["results_lost"]:
        parts.append(f"{c['results_lost']} results a bot shard reported were never received")
    if c["journey_events_lost"]:
        parts.append(f"{c['journey_events_lost']} journey events (starts, ends, SLA decisions, counts) a bot shard "
                     "reported were never received")
    if c["shard_reports_missing"]:
        parts.append(f"{c['shard_reports_missing']} bot shards never reported their counts "
                     "(a bot worker or the broker was gone)")
    if c["fault_events_missing"]:
        parts.append(f"{c['fault_events_missing']} planned faults were never reported started "
                     "(is `esr worker clock` running?)")
    return "; ".join(parts)


def _time(fold: RunFold, clock: SimClock) -> dict[str, Any]:
    s = fold.started
    if s is None:
        return {}
    warp = s.time_warp
    return {
        "sim_start": s.sim_start,
        "time_warp": warp,
        "drain_warp": s.drain_warp,
        "load_sim_hours": s.load_end_sim / 3600,
        "load_real_seconds": clock.load_end_real,
        "sim_hours_played": fold.last_sim_time / 3600,
        "note": (
            f"warp {warp:g}: one simulated hour took {3600 / warp:.3g} real seconds; the target saw the "
            "profile's real request rates; SLA deadlines ran on simulated time; the target's own "
            "timers ran on real time unless it reads X-ESR-Sim-Time"
            + (f"; after the load the clock ran at drain warp {s.drain_warp:g}"
               if s.drain_warp != warp and fold.last_sim_time > s.load_end_sim else "")
        ),
    }


def judge(
    fold: RunFold,
    assertions: list[Assertion],
    *,
    custom: Mapping[str, MetricFunction] | None = None,
    counters: frozenset[str] = frozenset(),
    definitions: Mapping[str, Any] | None = None,
) -> Verdict:
    run_id = fold.started.run_id if fold.started else "?"
    clock = fold_clock(fold)
    last = max(fold.last_sim_time, clock.load_end_sim)
    whole = fold.merged()
    view = MetricsView(whole, clock.real_span(0.0, last), custom, counters)
    results = tuple(evaluate(a, fold, clock, custom, counters) for a in assertions)
    completeness = _completeness(fold)
    late_rate = whole.late_starts / whole.journeys_started if whole.journeys_started else 0.0
    share = fold.max_late_start_share
    generator = {
        "late_starts": whole.late_starts,
        "late_start_rate": late_rate,
        "late_threshold_ms": fold.late_threshold_ms,
        "saturated": late_rate > SATURATION_SHARE,
        "max_late_start_share": share,
        "shards": fold.started.shards if fold.started else None,  # bot shards on Kafka; 1 on the embedded runtime
        # Kafka runtime: requests a bot shard taken over sent again (their results arrived twice); 0 embedded
        "requests_resent": fold.finished.requests_resent if fold.finished else 0,
    }
    status: VerdictStatus
    reason: str
    if fold.aborted is not None:
        status, reason = "ABORTED", f"the run was aborted: {fold.aborted.reason}"
    elif fold.finished is None:
        status, reason = "ABORTED", "the run log ends before the run finished (the process stopped)"
    elif fold.finished.refused:
        status, reason = "ERROR", f"nothing was sent: {fold.finished.refused}"
    elif not completeness["complete"]:
        status, reason = "ERROR", f"data incomplete: {_gap(completeness)}"
    elif any(not w.ok for w in fold.faults.values()):
        bad = next(w for w in fold.faults.values() if not w.ok)
        status, reason = "ERROR", (f"fault {bad.fault!r} could not be applied, so the rehearsal did not happen: "
                                   f"{bad.detail}")
    elif any(r.holds is None for r in results):
        unjudged = next(r for r in results if r.holds is None)
        status, reason = "ERROR", f"cannot judge {unjudged.assertion!r}: {unjudged.detail}"
    elif any(r.holds is False for r in results):
        failed = [r.assertion for r in results if r.holds is False]
        status, reason = "FAIL", "failed: " + "; ".join(failed)
    else:
        status, reason = "PASS", f"all {len(results)} assertions held" if results else "no assertions to check"
    undelivered = (late_rate > share and not (fold.started is not None and fold.started.source == "replay")
                   and status in ("PASS", "FAIL"))
    if undelivered:
        late = (f"the generator started {late_rate:.1%} of journeys more than {fold.late_threshold_ms:g} ms late"
                f"{' (' if status == 'PASS' else ', '}more than the {share * 100:.4g}% max_late_start_share allows"
                f"{')' if status == 'PASS' else ''}: the load this run claims was not delivered")
        if status == "PASS":  # what held, held under less load than the run claims
            status, reason = "ERROR", late
        else:  # what failed, failed under less load than claimed: still a failure
            reason += f" (warning: {late})"
    elif generator["saturated"] and status in ("PASS", "FAIL"):
        reason += (f" (warning: the generator was saturated: {late_rate:.1%} of journeys started more"
                   f" than {fold.late_threshold_ms:g} ms late)")
    failures = dict(sorted(fold.failure_reasons.items(), key=lambda kv: (-kv[1], kv[0]))[:10])
    return Verdict(run_id, status, reason, results, view.summary(), completeness, generator, _time(fold, clock),
                   failures, fault_report(fold, clock), dict(definitions or {}))
