"""`Run`: plays one scenario against one target in this process and returns its verdict.

The pure core decides everything (arrival times, journey steps, SLA deadlines, buckets, the
verdict): a `Scheduler` holds the run's rules, a `Pacer` drives it in real time and sends the
requests through a `Sender`. This module adds what the embedded runtime is: the run's life
cycle, its faults, and the embedded bus, where the run log and the metric fold subscribe.

States: QUEUED -> RUNNING -> DRAINING -> FINISHED, or ABORTED from any of them.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from esr.bus import EmbeddedBus
from esr.bus.runlog import RunLog, new_run_id
from esr.core.arrivals import ArrivalPlan
from esr.core.buckets import RunFold
from esr.core.clock import SimClock
from esr.core.events import (
    DecisionRecorded,
    Event,
    FaultEnded,
    FaultEndReason,
    FaultStarted,
    RunAborted,
    RunFinished,
    RunStarted,
    VerdictIssued,
)
from esr.core.journey_spec import JourneySpec
from esr.core.plan import scenario_journeys
from esr.core.run_state import RunStatus
from esr.core.scenario import Scenario
from esr.core.scheduler import GeneratorCounts, JourneyTable, Live, Scheduler
from esr.core.sim_headers import SimTimeFormat
from esr.core.sketch import LatencySketch
from esr.core.targets import Target
from esr.core.verdict import Verdict, judge
from esr.engine.pacer import Clocks, Pacer
from esr.engine.response import Sender
from esr.engine.sender import connection_budget, make_sender
from esr.faults.injector import wait_set
from esr.faults.plan import PlannedFault, fault_moments, plan_faults
from esr.settings import Settings

__all__ = ["Clocks", "Run", "journey_table"]

START_LEAD_S = 0.1  # real seconds between planning and the first arrival


def journey_table(scenario: Scenario, target: Target) -> JourneyTable:
    """(name, weight, journey) for each of the scenario's journeys, or the target's default one."""
    return [(j.name if isinstance(j, JourneySpec) else getattr(j, "name", j.__name__), j.weight, j)
            for j in scenario_journeys(scenario, target.default_journey)]


async def _uninterrupted(coro: Any) -> Any:
    """Run `coro` to its end even if the caller is cancelled again meanwhile (a second Ctrl-C or
    abort while the first one is being handled): cleanup is not to be cut short."""
    task = asyncio.ensure_future(coro)
    while True:
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done():
                return task.result()


class Run:
    """One run of `scenario` against `target`. Create, then `await run.execute()`."""

    def __init__(
        self,
        scenario: Scenario,
        target: Target,
        *,
        run_id: str | None = None,
        home: Path | None = None,
        sender: Sender | None = None,
        sim_start: datetime | None = None,
        scenario_file: str | None = None,
        bus: EmbeddedBus | None = None,
        http_client: str = "pooled",
        clocks: Clocks | None = None,
    ) -> None:
        clocks = clocks or Clocks()
        self._now = clocks.monotonic
        self._wall = clocks.wall
        self.http_client = http_client
        self.scenario = scenario
        self.target = target
        self.run_id = run_id or new_run_id()
        self.home = home if home is not None else Settings.current().home  # esr.Run(...) called without one
        self._sender = sender
        self.scenario_file = scenario_file
        start = sim_start or scenario.sim_start or datetime.now(UTC).replace(
            hour=0, minute=0, second=0, microsecond=0)
        self.sim_start = start if start.tzinfo else start.replace(tzinfo=UTC)
        self.clock = SimClock(scenario.time_warp, scenario.duration_hours * 3600, scenario.effective_drain_warp)
        self.plan = ArrivalPlan(scenario.profile, self.clock, scenario.seed)
        self.bus = bus or EmbeddedBus()
        self.fold = RunFold(scenario.late_threshold_ms)
        self.status = RunStatus.QUEUED
        self.verdict: Verdict | None = None
        self._journeys = journey_table(scenario, target)
        self._sim_iso = SimTimeFormat(self.sim_start)
        self.scheduler = Scheduler(
            self._journeys, self.clock, run_id=self.run_id, seed=scenario.seed, max_in_flight=scenario.max_in_flight,
            late_threshold_ms=scenario.late_threshold_ms, emit=self._emit)
        self.pacer = Pacer(self.scheduler, clocks, sim_header=self._sim_iso, time_warp=self.clock.time_warp,
                           request_timeout=scenario.request_timeout)
        # faults are resolved now, so an unknown one is an error before anything runs
        self.faults: list[PlannedFault] = plan_faults(
            scenario.failure_injection, {**target.faults, **scenario.fault_actions}, target.name, target.url)
        self.injector: Any = None  # a FaultInjector while faults play
        self._faults_stop = asyncio.Event()

    # -- figures --------------------------------------------------------------------------
    @property
    def counts(self) -> GeneratorCounts:
        return self.scheduler.counts

    @property
    def live(self) -> Live:
        return self.scheduler.live

    @property
    def timer_lag(self) -> LatencySketch:
        """ms between a wait's end and its journey going on."""
        return self.scheduler.timer_lag

    @property
    def sla_open(self) -> int:
        return self.scheduler.sla_open

    @property
    def active_faults(self) -> tuple[str, ...]:
        return self.pacer.active_faults

    def sim_now(self) -> float:
        return self.pacer.sim_now()

    def _emit(self, event: Event) -> None:
        self.bus.publish(event)

    # -- the run --------------------------------------------------------------------------
    async def execute(self, progress: Callable[[Run], None] | None = None) -> Verdict:
        """Play the scenario; on cancellation (Ctrl-C, abort) the log ends ABORTED."""
        self._loop = asyncio.get_running_loop()
        base_url = await self._open_faults()
        try:
            sender = self._sender or make_sender(
                self.http_client, base_url, timeout=self.scenario.request_timeout,
                max_connections=connection_budget(self.scenario.max_in_flight),
                keep_headers=any(not isinstance(j, JourneySpec) or j.reads_headers for _, _, j in self._journeys))
            log = RunLog(self.home, self.run_id)
        except BaseException:
            await self._close_faults()
            raise
        self.bus.subscribe(self.fold.apply)
        self.bus.subscribe(log.append)
        self.log_path = log.path
        gc.collect()
        gc.freeze()  # long-lived set-up objects leave the collector's young generations alone
        self.pacer.begin(self._now() + START_LEAD_S, self._wall() + START_LEAD_S, sender)
        flusher = self._loop.create_task(self._flush_periodically(log, progress))
        faults_task: asyncio.Task | None = None
        try:
            await self._start(sender)
            log.flush()  # the run's start is on disk before anything is sent
            if self.faults:
                faults_task = self._loop.create_task(self._play_faults())
            await self.pacer.play(self.plan)
            await self.pacer.sleep_until(self.pacer.origin + self.clock.load_end_real)
            self.status = self.status.to(RunStatus.DRAINING)
            await self.pacer.drain()
            await self._end_faults(faults_task, "run_ended")
            now = self._now()
            missing = sum(f.key not in self.fold.faults for f in self.faults)
            self._emit(RunFinished(
                run_id=self.run_id, seq=self.scheduler.next_seq(), sim_time=self.clock.sim_at(now - self.pacer.origin),
                real_time=self.scheduler.epoch(now), fault_events_missing=missing, **asdict(self.counts)))
        except (asyncio.CancelledError, KeyboardInterrupt) as exc:
            await _uninterrupted(self._aborted(faults_task, exc, log))  # a second Ctrl-C waits for this
            raise
        finally:
            flusher.cancel()
            gc.unfreeze()
            await _uninterrupted(self._close(sender))
        verdict = self._finish_verdict(log)
        self.status = self.status.to(RunStatus.FINISHED)  # only now: a FINISHED run always has its verdict
        return verdict

    async def _aborted(self, faults_task: asyncio.Task | None, exc: BaseException, log: RunLog) -> None:
        """Cut the journeys, undo the faults, then record the abort and its verdict."""
        await self.pacer.abort()
        await self._end_faults(faults_task, "aborted")
        c = self.counts
        self._emit(RunAborted(
            run_id=self.run_id, seq=self.scheduler.next_seq(), sim_time=self.sim_now(), real_time=self._wall(),
            reason=str(exc) or "interrupted (Ctrl-C or abort)", arrivals_planned=c.arrivals_planned,
            journeys_started=c.journeys_started, requests_sent=c.requests_sent, late_starts=c.late_starts))
        self.status = self.status.to(RunStatus.ABORTED)
        self._finish_verdict(log)

    async def _close(self, sender: Sender) -> None:
        await sender.close()
        await self._close_faults()

    # -- faults ---------------------------------------------------------------------------
    async def _open_faults(self) -> str:
        """Put the fault proxy in front of the target when a built-in fault is planned, and
        the guard beside the run when a fault has a recovery action; the URL to send to."""
        if not self.faults:
            return self.target.url
        from esr.faults.guard import FaultGuard
        from esr.faults.injector import FaultInjector

        proxy = guard = None
        url = self.target.url
        if any(f.toxic is not None for f in self.faults):
            from urllib.parse import urlsplit

            from esr.faults.proxy import FaultProxy

            parts = urlsplit(self.target.url)
            proxy = FaultProxy(parts.hostname or "127.0.0.1", parts.port or 80, seed=self.scenario.seed)
            await proxy.start()
            url = proxy.address_of(self.target.url)
        if any(f.action is not None and f.action.recover is not None for f in self.faults):
            guard = FaultGuard.spawn(self.run_id, self.target.url)
        self.injector = FaultInjector(self.faults, run_id=self.run_id, target_url=self.target.url, proxy=proxy,
                                      guard=guard, on_change=self._faults_changed)
        return url

    def _faults_changed(self, active: tuple[str, ...]) -> None:
        self.pacer.active_faults = active

    async def _play_faults(self) -> None:
        """Start and end each fault at its simulated time, until the run ends or is aborted
        (`_faults_stop`): an action under way is finished, never cut off half-done."""
        for sim, starting, fault in fault_moments(self.faults):
            if await wait_set(self._faults_stop, self.pacer.loop_at_sim(sim) - self._now()):
                return
            if starting:
                await self._start_fault(fault)
            elif self.injector.is_active(fault):
                await self._end_fault(fault, "scheduled", sim)

    async def _start_fault(self, fault: PlannedFault) -> None:
        sim = self.sim_now()
        try:
            ok, detail = await self.injector.start(fault, self._sim_iso(sim))
        except Exception as exc:  # noqa: BLE001 - recorded: the verdict says the fault was not applied
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        self._emit(FaultStarted(
            run_id=self.run_id, seq=self.scheduler.next_seq(), sim_time=sim, real_time=self._wall(),
            fault=fault.key, name=fault.name, kind=fault.kind, start_sim=fault.spec.start_sim,
            end_sim=fault.spec.end_sim, ok=ok, detail=detail))

    async def _end_fault(self, fault: PlannedFault, reason: FaultEndReason, end_sim: float) -> None:
        try:
            ok, detail = await self.injector.end(fault, self._sim_iso(self.sim_now()))
        except Exception as exc:  # noqa: BLE001 - recorded; the guard still holds its recovery
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        self._emit(FaultEnded(
            run_id=self.run_id, seq=self.scheduler.next_seq(), sim_time=self.sim_now(), real_time=self._wall(),
            fault=fault.key, name=fault.name, reason=reason, end_sim=end_sim, ok=ok, detail=detail))

    async def _end_faults(self, task: asyncio.Task | None, reason: FaultEndReason) -> None:
        """Stop the fault timeline (after the action under way) and undo every fault still on."""
        if task is not None:
            self._faults_stop.set()
            await asyncio.gather(task, return_exceptions=True)
        if self.injector is None:
            return
        now = self.sim_now()
        for fault in self.faults:
            if self.injector.is_active(fault):
                await self._end_fault(fault, reason,
                                      now if fault.spec.end_sim is None else min(fault.spec.end_sim, now))

    async def record_decision(self, decision: str, author: str) -> DecisionRecorded:
        """A trainee's decision at the simulated time now (training mode). One that names an
        action the target offers (`add_caseworkers(5)`) is carried out; anything else is a note
        on the timeline ("paged on-call")."""
        from esr.core.fault_actions import fault_context, render_action
        from esr.core.fault_spec import parse_call
        from esr.faults.actions import perform

        sim = self.sim_now()
        spec = parse_call(decision)
        action = spec.name if spec is not None and spec.name in self.target.decisions else None
        applied: bool | None = None
        detail = ""
        if spec is not None and action is not None:
            try:
                context = fault_context(spec, self.run_id, self.target.url, self._sim_iso(sim))
                call = render_action(self.target.decisions[action], spec, context)
                applied, detail = await asyncio.to_thread(perform, call, self.target.url)
            except Exception as exc:  # noqa: BLE001 - a decision that cannot be applied is recorded as such
                applied, detail = False, f"{type(exc).__name__}: {exc}"
        event = DecisionRecorded(
            run_id=self.run_id, seq=self.scheduler.next_seq(), sim_time=sim, real_time=self._wall(), author=author,
            decision=decision, action=action, applied=applied, detail=detail)
        self._emit(event)
        return event

    async def _close_faults(self) -> None:
        if self.injector is None:
            return
        if self.injector.proxy is not None:
            await self.injector.proxy.close()
        if self.injector.guard is not None:
            await asyncio.to_thread(self.injector.guard.close)

    async def _start(self, sender: Sender) -> None:
        """Count the plan, open connections, fix the clock origin and announce the run."""
        self.counts.arrivals_planned = self.plan.count()
        warm = getattr(sender, "warm", None)
        if warm is not None:  # enough connections for ~5 ms of the peak rate, up front
            await warm(max(4, int(self.scenario.profile.peak_rate * 0.005)))
        self.pacer.begin(self._now() + START_LEAD_S, self._wall() + START_LEAD_S, sender)
        self._emit(RunStarted(
            run_id=self.run_id, seq=self.scheduler.next_seq(), sim_time=0.0, real_time=self.scheduler.epoch0,
            scenario=self.scenario.to_dict(), target=self.target.shown_url, seed=self.scenario.seed,
            sim_start=self.sim_start.isoformat(), time_warp=self.clock.time_warp,
            drain_warp=self.clock.drain_warp, load_end_sim=self.clock.load_end_sim,
            window_s=self.scenario.window, arrivals_planned=self.counts.arrivals_planned,
            scenario_file=self.scenario_file))
        self.status = self.status.to(RunStatus.RUNNING)

    def _finish_verdict(self, log: RunLog) -> Verdict:
        if self.verdict is None:
            self.verdict = judge(self.fold, self.scenario.parsed_assertions(), custom=self.scenario.custom_metrics,
                                 counters=self.scenario.counter_names, definitions=self.scenario.metric_definitions)
            last = self.fold.finished or self.fold.aborted
            self._emit(VerdictIssued(
                run_id=self.run_id, seq=self.scheduler.next_seq(), sim_time=last.sim_time if last else 0.0,
                real_time=last.real_time if last else self._wall(), verdict=self.verdict.to_dict()))
            log.close()
        return self.verdict

    async def _flush_periodically(self, log: RunLog, progress: Callable[[Run], None] | None) -> None:
        while True:
            await asyncio.sleep(0.25)
            log.flush()
            self.live.recent.append((self._now(), self.live.requests))
            self.pacer.keep_collections_short()
            if progress is not None:
                progress(self)

    # -- progress -------------------------------------------------------------------------
    def _recent_p95(self, sim: float) -> float | None:
        """p95 over the last simulated hour, from the fold's buckets."""
        return self.fold.merged(from_sim=sim - 3600).latency.quantile(0.95)

    def snapshot(self) -> dict[str, Any]:
        now = self._now()
        real = max(0.0, now - self.pacer.origin)
        sim = self.clock.sim_at(real)
        recent = self.live.recent
        rate = 0.0
        if len(recent) >= 2:
            (t_a, n_a), (t_b, n_b) = recent[max(0, len(recent) - 5)], recent[-1]
            rate = (n_b - n_a) / (t_b - t_a) if t_b > t_a else 0.0
        return {
            "status": self.status.value,
            "sim_hours": sim / 3600,
            "sim_time": self._sim_iso(sim),
            "real_seconds": real,
            "planned_rate": self.scenario.profile.rate_at(sim / 3600) if self.status is RunStatus.RUNNING else 0.0,
            "rate": rate,
            "requests": self.live.requests,
            "errors": self.live.errors,
            "p95_ms": self._recent_p95(sim),
            "sla_met": self.live.sla_met,
            "sla_missed": self.live.sla_missed,
            "open_journeys": len(self.scheduler.active),
            "sla_open": self.sla_open,
            "duration_hours": self.scenario.duration_hours,
            "active_faults": list(self.active_faults),
            "fault_proxy": self.injector.proxy.url if self.injector is not None and self.injector.proxy else None,
            "faults": [{"fault": w.fault, "name": w.name, "start_sim_hour": w.start_sim / 3600,
                        "end_sim_hour": None if w.end_sim is None else w.end_sim / 3600, "applied": w.ok,
                        "ended": w.end_reason or None} for w in self.fold.faults.values()],
        }
