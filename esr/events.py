"""The event schema: every fact of a run is one of these, appended to the run log.

Events are frozen, slotted dataclasses with a `type`, a schema version `v`, the run id, a
sequence number, simulated time (seconds since the run's `sim_start`) and real time (Unix
seconds), and `sim: true` so auditors can filter simulated traffic. `esr.codec` turns them into
JSON lines and back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CounterAdded",
    "Event",
    "EVENT_TYPES",
    "JourneyEnded",
    "JourneyStarted",
    "RequestResult",
    "RunAborted",
    "RunFinished",
    "RunStarted",
    "SlaDecided",
    "VerdictIssued",
]

SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    run_id: str
    seq: int
    sim_time: float
    real_time: float
    v: int = SCHEMA_VERSION
    sim: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class RunStarted(Event):
    """Everything needed to re-judge the run: the scenario, the target and the clock mapping."""

    type: str = field(default="run_started", init=False)
    scenario: dict[str, Any]
    target: str
    seed: int
    sim_start: str
    time_warp: float
    drain_warp: float
    load_end_sim: float
    window_s: float
    arrivals_planned: int
    scenario_file: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestResult(Event):
    """One HTTP request. `real_time` is the intended send time; latency counts from it."""

    type: str = field(default="result", init=False)
    user: int
    journey: str
    step: str
    endpoint: str
    status: int
    latency_ms: float
    raw_latency_ms: float
    bytes: int
    error: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class JourneyStarted(Event):
    type: str = field(default="journey_started", init=False)
    user: int
    journey: str
    late_ms: float


@dataclass(frozen=True, slots=True, kw_only=True)
class JourneyEnded(Event):
    """`outcome` is completed, failed (a step failed), gave_up (a poll ran out) or cut (run ended)."""

    type: str = field(default="journey_ended", init=False)
    user: int
    journey: str
    outcome: str
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class SlaDecided(Event):
    """A deadline decided in simulated time: met when `to` finished in time, else missed."""

    type: str = field(default="sla_decided", init=False)
    user: int
    journey: str
    sla: str
    met: bool
    opened_sim: float


@dataclass(frozen=True, slots=True, kw_only=True)
class CounterAdded(Event):
    type: str = field(default="counter", init=False)
    user: int
    name: str
    value: float


@dataclass(frozen=True, slots=True, kw_only=True)
class RunFinished(Event):
    """The generator's own counts, which the verdict checks against what was recorded."""

    type: str = field(default="run_finished", init=False)
    arrivals_planned: int
    journeys_started: int
    requests_sent: int
    late_starts: int
    journeys_cut: int
    requests_abandoned: int = 0  # in flight when the drain ended; not counted as sent


@dataclass(frozen=True, slots=True, kw_only=True)
class RunAborted(Event):
    type: str = field(default="run_aborted", init=False)
    reason: str
    arrivals_planned: int = 0
    journeys_started: int = 0
    requests_sent: int = 0
    late_starts: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class VerdictIssued(Event):
    type: str = field(default="verdict", init=False)
    verdict: dict[str, Any]


EVENT_TYPES: dict[str, type[Event]] = {
    cls.__dataclass_fields__["type"].default: cls  # type: ignore[misc]
    for cls in (
        RunStarted,
        RequestResult,
        JourneyStarted,
        JourneyEnded,
        SlaDecided,
        CounterAdded,
        RunFinished,
        RunAborted,
        VerdictIssued,
    )
}
