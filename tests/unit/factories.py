"""Event factories for the unit tests: hand-made runs without a runner, a clock or I/O.

`RunEvents` hands out sequence numbers and fills the envelope, so a test only writes the fields
it cares about:

    ev = RunEvents()
    events = [ev.started(), ev.result(sim=30.0, latency_ms=120.0), ev.finished(requests_sent=1)]
"""

from __future__ import annotations

from typing import Any

from esr.core.buckets import RunFold
from esr.core.events import (
    CounterAdded,
    Event,
    FaultEnded,
    FaultStarted,
    JourneyEnded,
    JourneyStarted,
    RequestResult,
    RunAborted,
    RunFinished,
    RunStarted,
    SlaDecided,
    VerdictIssued,
)

HOUR = 3600.0
RUN_ID = "run-test"


class RunEvents:
    """Builds events of one run with increasing `seq`; real time follows sim time at `warp`."""

    def __init__(self, *, run_id: str = RUN_ID, time_warp: float = 60.0, drain_warp: float | None = None,
                 load_end_sim: float = 24 * HOUR, window_s: float = 60.0, real_origin: float = 1_700_000_000.0):
        self.run_id = run_id
        self.time_warp = time_warp
        self.drain_warp = drain_warp if drain_warp is not None else time_warp
        self.load_end_sim = load_end_sim
        self.window_s = window_s
        self.real_origin = real_origin
        self.seq = 0

    def _envelope(self, sim: float) -> dict[str, Any]:
        self.seq += 1
        return {"run_id": self.run_id, "seq": self.seq, "sim_time": sim,
                "real_time": self.real_origin + sim / self.time_warp}

    def started(self, *, scenario: dict[str, Any] | None = None, arrivals_planned: int = 0) -> RunStarted:
        return RunStarted(**self._envelope(0.0), scenario=scenario or {"name": "t"}, target="http://127.0.0.1:1",
                          seed=7, sim_start="2024-01-01T00:00:00+00:00", time_warp=self.time_warp,
                          drain_warp=self.drain_warp, load_end_sim=self.load_end_sim, window_s=self.window_s,
                          arrivals_planned=arrivals_planned)

    def result(self, *, sim: float, latency_ms: float = 100.0, endpoint: str = "GET /claims/{claim_id}",
               status: int = 200, error: str | None = None, user: int = 0, raw_latency_ms: float | None = None,
               nbytes: int = 100, journey: str = "claim", step: str = "paid") -> RequestResult:
        return RequestResult(**self._envelope(sim), user=user, journey=journey, step=step, endpoint=endpoint,
                             status=status, latency_ms=latency_ms,
                             raw_latency_ms=latency_ms if raw_latency_ms is None else raw_latency_ms,
                             bytes=nbytes, error=error)

    def journey_started(self, *, sim: float, user: int = 0, late_ms: float = 0.0,
                        journey: str = "claim") -> JourneyStarted:
        return JourneyStarted(**self._envelope(sim), user=user, journey=journey, late_ms=late_ms)

    def journey_ended(self, *, sim: float, outcome: str = "completed", user: int = 0,
                      journey: str = "claim") -> JourneyEnded:
        return JourneyEnded(**self._envelope(sim), user=user, journey=journey, outcome=outcome)

    def sla(self, *, opened: float, decided: float, met: bool, sla: str = "48h", user: int = 0) -> SlaDecided:
        return SlaDecided(**self._envelope(decided), user=user, journey="claim", sla=sla, met=met, opened_sim=opened)

    def counter(self, *, sim: float, name: str, value: float, user: int = 0) -> CounterAdded:
        return CounterAdded(**self._envelope(sim), user=user, name=name, value=value)

    def finished(self, *, sim: float | None = None, requests_sent: int, journeys_started: int = 0,
                 arrivals_planned: int = 0, late_starts: int = 0, journeys_cut: int = 0) -> RunFinished:
        return RunFinished(**self._envelope(self.load_end_sim if sim is None else sim),
                           arrivals_planned=arrivals_planned, journeys_started=journeys_started,
                           requests_sent=requests_sent, late_starts=late_starts, journeys_cut=journeys_cut)

    def aborted(self, *, sim: float, reason: str = "operator abort", requests_sent: int = 0) -> RunAborted:
        return RunAborted(**self._envelope(sim), reason=reason, requests_sent=requests_sent)

    def fault_started(self, *, fault: str, start: float, end: float | None, name: str | None = None,
                      kind: str = "action", ok: bool = True, detail: str = "") -> FaultStarted:
        return FaultStarted(**self._envelope(start), fault=fault, name=name or fault.split("@")[0].split("(")[0],
                            kind=kind, start_sim=start, end_sim=end, ok=ok, detail=detail)

    def fault_ended(self, *, fault: str, end: float, reason: str = "scheduled", name: str | None = None,
                    ok: bool = True, detail: str = "") -> FaultEnded:
        return FaultEnded(**self._envelope(end), fault=fault, name=name or fault.split("@")[0].split("(")[0],
                          reason=reason, end_sim=end, ok=ok, detail=detail)

    def verdict(self, *, sim: float, verdict: dict[str, Any]) -> VerdictIssued:
        return VerdictIssued(**self._envelope(sim), verdict=verdict)


def fold(events: list[Event]) -> RunFold:
    return RunFold().apply_all(events)
