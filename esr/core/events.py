"""The event schema: every fact of a run is one of these, appended to the run log.

Events are frozen msgspec Structs tagged by `type`, with a schema version `v`, the run id, a
sequence number, simulated time (seconds since the run's `sim_start`) and real time (Unix
seconds), and `sim: true` so auditors can filter simulated traffic. `esr.bus.codec` turns them into
JSON lines and back. (Structs rather than dataclasses: a run creates several events per
request, and a Struct is built and encoded several times faster.)
"""

from __future__ import annotations

from typing import Any, Literal, Union, get_args

import msgspec

JourneyOutcome = Literal["completed", "failed", "gave_up", "cut"]  # how a journey ended
FaultKind = Literal["proxy", "action"]  # a built-in fault of the fault proxy, or the system's own
FaultEndReason = Literal["scheduled", "run_ended", "aborted", "clock_stopped"]  # why a fault was removed

__all__ = [
    "AnyEvent",
    "CounterAdded",
    "DecisionRecorded",
    "Event",
    "EVENT_TYPES",
    "FaultEndReason",
    "FaultKind",
    "JourneyOutcome",
    "EventBatch",
    "TOPIC_OF",
    "FaultEnded",
    "FaultStarted",
    "JourneyEnded",
    "JourneyStarted",
    "RequestResult",
    "RunAborted",
    "RunFinished",
    "RunStarted",
    "ShardReport",
    "SlaDecided",
    "VerdictIssued",
    "event_type",
]

SCHEMA_VERSION = 1


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    run_id: str
    seq: int
    sim_time: float
    real_time: float
    v: int = SCHEMA_VERSION
    sim: bool = True


class RunStarted(Event, frozen=True, kw_only=True, tag="run_started"):
    """Everything needed to re-judge the run: the scenario, the target and the clock mapping."""

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
    shards: int = 1  # bot shards in the Kafka runtime: arrival i belongs to shard i % shards
    tick_s: float = 0.5  # Kafka runtime: real seconds of load per clock tick
    source: str = "scenario"  # or "replay": logged requests, sent to the bots by `esr replay` itself
    endpoints: tuple[str, ...] = ()  # a replay's --endpoint templates: its requests' labels fold by them first


class RequestResult(Event, frozen=True, kw_only=True, tag="result"):
    """One HTTP request. `real_time` is the intended send time; latency counts from it."""

    user: int
    journey: str
    step: str
    endpoint: str
    status: int
    latency_ms: float
    raw_latency_ms: float
    bytes: int
    error: str | None = None
    n: int = 0  # the request's number within its journey: (user, n) identifies a result in a run
    faults: tuple[str, ...] = ()  # names of the faults active when it was sent


class JourneyStarted(Event, frozen=True, kw_only=True, tag="journey_started"):
    user: int
    journey: str
    late_ms: float


class JourneyEnded(Event, frozen=True, kw_only=True, tag="journey_ended"):
    """`outcome` is completed, failed (a step failed), gave_up (a poll ran out) or cut (run ended)."""

    user: int
    journey: str
    outcome: JourneyOutcome
    detail: str = ""


class SlaDecided(Event, frozen=True, kw_only=True, tag="sla_decided"):
    """A deadline decided in simulated time: met when `to` finished in time, else missed."""

    user: int
    journey: str
    sla: str
    met: bool
    opened_sim: float


class CounterAdded(Event, frozen=True, kw_only=True, tag="counter"):
    user: int
    name: str
    value: float
    n: int = 0  # the count's number within its journey


class RunFinished(Event, frozen=True, kw_only=True, tag="run_finished"):
    """The generator's own counts, which the verdict checks against what was recorded."""

    arrivals_planned: int
    journeys_started: int
    requests_sent: int
    late_starts: int
    journeys_cut: int
    requests_abandoned: int = 0  # in flight when the drain ended; not counted as sent
    sla_undecided: int = 0  # deadlines still open when the run ended
    arrivals_not_started: int = 0  # planned journeys still waiting for a slot at the end
    results_lost: int = 0  # Kafka runtime: reported by a bot shard, never received
    journey_events_lost: int = 0  # Kafka runtime: journey starts, ends, SLA decisions, counts never received
    shard_reports_missing: int = 0  # Kafka runtime: shards that never reported their counts
    duplicates_dropped: int = 0  # Kafka runtime: results received twice (a shard re-run), counted once
    requests_resent: int = 0  # Kafka runtime: of those, results a later attempt sent again (the target got them twice)
    fault_events_missing: int = 0  # Kafka runtime: planned faults whose start never reached the metrics side
    refused: str = ""  # Kafka runtime: why bot workers refused to send to the run's target


class RunAborted(Event, frozen=True, kw_only=True, tag="run_aborted"):
    reason: str
    arrivals_planned: int = 0
    journeys_started: int = 0
    requests_sent: int = 0
    late_starts: int = 0


class ShardReport(Event, frozen=True, kw_only=True, tag="shard_report"):
    """Kafka runtime: what one bot worker produced for a shard, from tick `first_tick` to `last_tick`.

    A worker sends it (cumulative for its `attempt`) before committing those ticks, so a shard
    that moves to another worker after a crash is re-run from the last commit under a new
    attempt. `final` reports come after the shard's drain and carry its drain figures.
    """

    shard: int
    attempt: str
    first_tick: int
    last_tick: int
    final: bool = False
    journeys_started: int = 0
    requests_sent: int = 0  # result events sent
    journey_events: int = 0  # events sent to the journeys topic
    late_starts: int = 0
    journeys_cut: int = 0
    requests_abandoned: int = 0
    sla_undecided: int = 0
    arrivals_not_started: int = 0
    refused: str = ""  # why this worker refused to send to the run's target (its registry); "" if it did not


class FaultStarted(Event, frozen=True, kw_only=True, tag="fault_started"):
    """A scheduled fault was applied (`ok`) or could not be (`detail` says why).

    `start_sim` and `end_sim` are the scheduled times (end None: until the run ends); `sim_time`
    is when it was actually applied. Metrics during the fault use the scheduled window."""

    fault: str  # the failure_injection entry, e.g. "db_down@hour12+2h": identifies the fault in a run
    name: str  # e.g. db_down: what `during db_down` and `recovery_time_s(db_down)` refer to
    kind: FaultKind
    start_sim: float
    end_sim: float | None = None
    ok: bool = True
    detail: str = ""


class FaultEnded(Event, frozen=True, kw_only=True, tag="fault_ended"):
    """A fault was removed: as scheduled, because the run ended, or because it was aborted."""

    fault: str
    name: str
    reason: FaultEndReason
    end_sim: float  # the scheduled end, or when the run ended or was aborted
    ok: bool = True  # the recovery action succeeded (always for proxy faults)
    detail: str = ""


class DecisionRecorded(Event, frozen=True, kw_only=True, tag="decision"):
    """A trainee's decision on the run's timeline (training mode): "page on-call", or an action
    of the system under test such as add_caseworkers(5), which `applied` says was carried out."""

    author: str
    decision: str  # as the trainee wrote it
    action: str | None = None  # the target's action it named, if any
    applied: bool | None = None  # None: a note, nothing to apply
    detail: str = ""


class VerdictIssued(Event, frozen=True, kw_only=True, tag="verdict"):
    verdict: dict[str, Any]


AnyEvent = Union[  # noqa: UP007  (one of the events; msgspec decodes a batch's by their tag)
    RunStarted,
    RequestResult,
    JourneyStarted,
    JourneyEnded,
    SlaDecided,
    CounterAdded,
    RunFinished,
    RunAborted,
    ShardReport,
    FaultStarted,
    FaultEnded,
    DecisionRecorded,
    VerdictIssued,
]

EVENT_TYPES: dict[str, type[Event]] = {cls.__struct_config__.tag: cls for cls in get_args(AnyEvent)}


def event_type(event: Event) -> str:
    """The `type` tag of an event, e.g. "result"."""
    return type(event).__struct_config__.tag  # type: ignore[return-value]


class EventBatch(msgspec.Struct, frozen=True, kw_only=True, tag="event_batch", tag_field="type"):
    """Events of one shard's journeys that arrived in one tick, sent by one `attempt`.
    `window_s`, `late_threshold_ms` and (for a run that caps its endpoints: a replay)
    `top_endpoints` and `windowed_endpoints` let the metrics side fold them as the run's own
    fold does before it has read the run's start."""

    run_id: str
    shard: int
    attempt: str
    tick: int
    window_s: float
    late_threshold_ms: float
    events: list[AnyEvent]
    sim: bool = True
    top_endpoints: int | None = None
    windowed_endpoints: list[str] = []


TOPIC_OF: dict[str, str] = {  # event type -> the topic it is published on, on both buses
    "run_started": "runs", "run_finished": "runs", "run_aborted": "runs", "shard_report": "runs",
    "result": "results", "journey_started": "journeys", "journey_ended": "journeys",
    "sla_decided": "journeys", "counter": "journeys", "fault_started": "faults", "fault_ended": "faults",
    "decision": "decisions", "verdict": "verdicts",
}
