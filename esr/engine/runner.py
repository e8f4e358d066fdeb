"""`Run`: plays one scenario against one target in this process and returns its verdict.

The pure core decides everything (arrival times, journey steps, SLA deadlines, buckets, the
verdict); this module only paces it in real time on the event loop, sends the requests
through a `Sender`, and publishes the events on the embedded bus, where the run log and the
metric fold subscribe.

States: QUEUED -> RUNNING -> DRAINING -> FINISHED, or ABORTED from any of them.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections import deque
from collections.abc import Callable, Generator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from esr.bus import EmbeddedBus
from esr.bus.runlog import RunLog, new_run_id
from esr.core.agenda import Agenda
from esr.core.arrivals import Arrival, ArrivalPlan, user_rng
from esr.core.buckets import RunFold
from esr.core.clock import SimClock
from esr.core.events import (
    CounterAdded,
    DecisionRecorded,
    Event,
    FaultEnded,
    FaultEndReason,
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
from esr.core.journey import (
    Count,
    Decision,
    Journey,
    Outcome,
    PreparedRequest,
    Reply,
    Send,
    SlaBook,
    StepDone,
    WaitUntil,
    declarative_journey,
    pick_journey,
    single_request,
    step_ok,
)
from esr.core.journey_spec import JourneySpec
from esr.core.plan import drain_bound_sim, scenario_journeys
from esr.core.run_state import RunStatus
from esr.core.scenario import Scenario
from esr.core.sim_headers import RUN_ID, SIM, SIM_TIME, TIME_WARP, SimTimeFormat
from esr.core.sketch import LatencySketch
from esr.core.targets import Target
from esr.core.userdata import generate_user_data
from esr.core.verdict import Verdict, judge
from esr.engine.response import Response, Sender
from esr.engine.sender import connection_budget, make_sender
from esr.faults.injector import wait_set
from esr.faults.plan import PlannedFault, fault_moments, plan_faults
from esr.settings import Settings

__all__ = ["Clocks", "Run"]

_COMPLETED = Outcome("completed")
_CUT = Outcome("cut", "the run ended before the journey did")
_NO_DEADLINES = SlaBook()  # shared by journeys that can open none; never opened
_NO_DATA: dict[str, Any] = {}  # the template context of journeys without user data (only read)
@dataclass(frozen=True, slots=True)
class Clocks:
    """Where a run reads real time: `monotonic` seconds to schedule and measure by, `wall` Unix
    seconds for event timestamps. Measurements use the monotonic clock directly: uvloop's
    loop.time() is the same clock cut to whole milliseconds and cached per loop iteration, too
    coarse for latencies; timers still go through loop.call_at, which shares its origin. Tests of
    run semantics pass a virtual pair and play a day in seconds (tests/unit/virtual_run.py)."""

    monotonic: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time

START_LEAD_S = 0.1  # real seconds between planning and the first arrival
CATCH_UP_MIN_S = 10.0  # after the load, requests waiting for a slot may still go for max(load time, this)
FREEZE_EVERY = 2_000  # journeys started between two gc.freeze() calls


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


@dataclass(slots=True)
class _Active:
    """One journey under way. A declarative journey is its state machine (`steps`) and, while it
    waits, one entry in the run's agenda; only a request in flight gives it a task."""

    arrival: Arrival
    journey: str
    sla_total: int  # deadlines its spec declares; -1 for Python journeys (only done when done)
    book: SlaBook
    due: float | None  # loop time its next request is due (arrival, end of a wait); None: now
    sla_decided: int = 0
    requests: int = 0  # numbers the journey's results: (user, n) is unique in a run
    counts: int = 0
    # journey_started is announced when its first request gets a slot (or its first wait
    # begins): an arrival that never got one never started, and the verdict says so
    announced: bool = False
    ended: bool = False
    timer: asyncio.TimerHandle | None = None  # its next deadline
    task: asyncio.Task | None = None  # its request in flight, or a Python journey's coroutine
    steps: Generator[Any, Any, Outcome] | None = None  # a declarative journey; None: one request or Python
    # A declarative journey's place on its own schedule: the simulated time of the request it
    # is sending or of the wait it is in. Nothing is observed before it, so deadlines earlier
    # than it are missed and later ones are not yet decided, however far a busy machine lets
    # the journey fall behind the clock. None for Python journeys, which read the clock.
    position: float | None = None

    @property
    def index(self) -> int:
        return self.arrival.index

    def observed_by(self, now_sim: float) -> float:
        """The simulated time up to which the journey's deadlines can be decided at `now_sim`."""
        return now_sim if self.position is None else min(now_sim, self.position)

    @property
    def settled(self) -> bool:
        """Nothing left to decide: the drain may cut it."""
        return self.sla_total > 0 and self.sla_decided >= self.sla_total and not self.book.open_count


@dataclass(slots=True)
class GeneratorCounts:
    """The generator's own tally, reported in run_finished and checked against the fold."""

    arrivals_planned: int = 0
    journeys_started: int = 0
    requests_sent: int = 0
    late_starts: int = 0
    journeys_cut: int = 0
    requests_abandoned: int = 0  # in flight when the run ended
    sla_undecided: int = 0  # deadlines still open when the run ended
    arrivals_not_started: int = 0  # first request still waiting for a slot when the run ended


@dataclass(slots=True)
class Live:
    """Running figures for the progress display (not used for the verdict)."""

    requests: int = 0
    errors: int = 0
    sla_met: int = 0
    sla_missed: int = 0
    recent: deque = field(default_factory=lambda: deque(maxlen=64))  # (real time, requests)


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
        self._now = clocks.monotonic  # scheduling and measuring
        self._wall = clocks.wall  # event timestamps
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
        self.live = Live()
        self.verdict: Verdict | None = None
        self._journeys = self._journey_table()
        self._weights = [w for _, w, _ in self._journeys]
        self._single = self._single_requests()
        self._seq = 0
        self._sim_iso = SimTimeFormat(self.sim_start)
        self._active: dict[int, _Active] = {}
        self._stopping = False
        self.counts = GeneratorCounts()
        # max_in_flight limits requests in flight; requests beyond it wait here, first come first
        # served: a journey's next step (active, request, due, sim), or a Python journey's slot
        self._requests_in_flight = 0
        self._queue: deque[tuple[_Active, PreparedRequest, float, float] | asyncio.Future[None]] = deque()
        self._waits: Agenda[_Active] = Agenda()  # declarative journeys waiting, by simulated time
        self._wake: asyncio.TimerHandle | None = None  # one loop timer, for the agenda's earliest entry
        self._wake_sim = 0.0
        self.timer_lag = LatencySketch()  # ms between a wait's end and its journey going on
        self._warp_header = f"{self.clock.time_warp:g}"
        self._run_context = {"id": self.run_id}
        self._frozen_at = 0  # journeys started at the last gc.freeze()
        self._sla_opened = 0  # deadlines opened so far
        self._drain_bound_end = self.clock.load_end_sim + drain_bound_sim([j for _, _, j in self._journeys])
        # faults are resolved now, so an unknown one is an error before anything runs
        self.faults: list[PlannedFault] = plan_faults(
            scenario.failure_injection, {**target.faults, **scenario.fault_actions}, target.name, target.url)
        self.injector: Any = None  # a FaultInjector while faults play
        self._faults_stop = asyncio.Event()
        self.active_faults: tuple[str, ...] = ()

    # -- set-up ---------------------------------------------------------------------------
    def _journey_table(self) -> list[tuple[str, float, JourneySpec | type[Journey]]]:
        return [(j.name if isinstance(j, JourneySpec) else getattr(j, "name", j.__name__), j.weight, j)
                for j in scenario_journeys(self.scenario, self.target.default_journey)]

    def _single_requests(self) -> dict[str, tuple[PreparedRequest, Any]]:
        table = {}
        for name, _, journey in self._journeys:
            single = single_request(journey) if isinstance(journey, JourneySpec) else None
            if single is not None:
                table[name] = single
        return table

    # -- time -----------------------------------------------------------------------------
    def sim_now(self) -> float:
        return self.clock.sim_at(max(0.0, self._now() - self._t0))

    def _loop_at_sim(self, sim: float) -> float:
        return self._t0 + self.clock.real_at(sim)

    def _epoch(self, loop_time: float) -> float:
        return self._epoch0 + (loop_time - self._t0)

    # -- events ---------------------------------------------------------------------------
    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _emit(self, event: Event) -> None:
        self.bus.publish(event)

    async def wait_until_sim(self, sim: float) -> None:
        """A Python journey's `user.wait(...)`: sleep until simulated time `sim`."""
        await self._sleep_until(self._loop_at_sim(sim))

    def close_deadline(self, active: _Active, key: str, now: float) -> None:
        """A Python journey's `user.sla_close(key)`: the deadline met if still in time."""
        self._emit_decisions(active, active.book.close(key, now))

    def _emit_decisions(self, active: _Active, decisions: list[Decision]) -> None:
        for d in decisions:
            active.sla_decided += 1
            if d.met:
                self.live.sla_met += 1
            else:
                self.live.sla_missed += 1
            self._emit(SlaDecided(
                run_id=self.run_id, seq=self._next_seq(), sim_time=d.decided_sim,
                real_time=self._epoch(self._loop_at_sim(d.decided_sim)), user=active.index,
                journey=active.journey, sla=d.sla, met=d.met, opened_sim=d.opened_sim))
        self._arm_deadline(active)

    def _arm_deadline(self, active: _Active) -> None:
        """One timer per journey, for its next deadline; none once the journey has ended."""
        deadline = active.book.next_deadline
        if active.timer is not None:
            active.timer.cancel()
            active.timer = None
        if deadline is not None and not active.ended:
            at = self._loop_at_sim(deadline) + 0.001
            active.timer = self._loop.call_at(at, self._expire, active)

    def _expire(self, active: _Active) -> None:
        """A deadline's time came: missed unless the journey, behind its schedule, may still
        observe the step in time (then it decides when it moves on)."""
        active.timer = None
        decisions = active.book.expire(active.observed_by(self.sim_now()))
        if decisions:
            self._emit_decisions(active, decisions)

    # -- the run --------------------------------------------------------------------------
    async def execute(self, progress: Callable[[Run], None] | None = None) -> Verdict:
        """Play the scenario; on cancellation (Ctrl-C, abort) the log ends ABORTED."""
        self._loop = asyncio.get_running_loop()
        self._t0 = self._now() + START_LEAD_S
        base_url = await self._open_faults()
        try:
            self._sender_live = sender = self._sender or make_sender(
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
        flusher = self._loop.create_task(self._flush_periodically(log, progress))
        faults_task: asyncio.Task | None = None
        try:
            await self._start(sender)
            log.flush()  # the run's start is on disk before anything is sent
            if self.faults:
                faults_task = self._loop.create_task(self._play_faults())
            await self._schedule()
            await self._sleep_until(self._t0 + self.clock.load_end_real)
            self.status = self.status.to(RunStatus.DRAINING)
            await self._drain()
            await self._end_faults(faults_task, "run_ended")
            now = self._now()
            missing = sum(f.key not in self.fold.faults for f in self.faults)
            self._emit(RunFinished(
                run_id=self.run_id, seq=self._next_seq(), sim_time=self.clock.sim_at(now - self._t0),
                real_time=self._epoch(now), fault_events_missing=missing, **asdict(self.counts)))
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
        await self._abort_tasks()
        await self._end_faults(faults_task, "aborted")
        c = self.counts
        self._emit(RunAborted(
            run_id=self.run_id, seq=self._next_seq(), sim_time=self.sim_now(), real_time=self._wall(),
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
            url = await proxy.start() + parts.path.rstrip("/")
        if any(f.action is not None and f.action.recover is not None for f in self.faults):
            guard = FaultGuard.spawn(self.run_id, self.target.url)
        self.injector = FaultInjector(self.faults, run_id=self.run_id, target_url=self.target.url, proxy=proxy,
                                      guard=guard, on_change=self._faults_changed)
        return url

    def _faults_changed(self, active: tuple[str, ...]) -> None:
        self.active_faults = active

    async def _play_faults(self) -> None:
        """Start and end each fault at its simulated time, until the run ends or is aborted
        (`_faults_stop`): an action under way is finished, never cut off half-done."""
        for sim, starting, fault in fault_moments(self.faults):
            if await wait_set(self._faults_stop, self._loop_at_sim(sim) - self._now()):
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
            run_id=self.run_id, seq=self._next_seq(), sim_time=sim, real_time=self._wall(), fault=fault.key,
            name=fault.name, kind=fault.kind, start_sim=fault.spec.start_sim, end_sim=fault.spec.end_sim,
            ok=ok, detail=detail))

    async def _end_fault(self, fault: PlannedFault, reason: FaultEndReason, end_sim: float) -> None:
        try:
            ok, detail = await self.injector.end(fault, self._sim_iso(self.sim_now()))
        except Exception as exc:  # noqa: BLE001 - recorded; the guard still holds its recovery
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        self._emit(FaultEnded(
            run_id=self.run_id, seq=self._next_seq(), sim_time=self.sim_now(), real_time=self._wall(),
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
            run_id=self.run_id, seq=self._next_seq(), sim_time=sim, real_time=self._wall(), author=author,
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
        self._t0 = self._now() + START_LEAD_S
        self._epoch0 = self._wall() + START_LEAD_S
        self._emit(RunStarted(
            run_id=self.run_id, seq=self._next_seq(), sim_time=0.0, real_time=self._epoch0,
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
                run_id=self.run_id, seq=self._next_seq(), sim_time=last.sim_time if last else 0.0,
                real_time=last.real_time if last else self._wall(), verdict=self.verdict.to_dict()))
            log.close()
        return self.verdict

    async def _flush_periodically(self, log: RunLog, progress: Callable[[Run], None] | None) -> None:
        while True:
            await asyncio.sleep(0.25)
            log.flush()
            self.live.recent.append((self._now(), self.live.requests))
            self._keep_collections_short()
            if progress is not None:
                progress(self)

    def _keep_collections_short(self) -> None:
        """Put the journeys that live on (most wait for hours) out of the collector's reach, every
        FREEZE_EVERY journeys: a full collection over 200,000 waiting journeys stops the loop for
        about 0.4 s, making every timer and arrival due meanwhile late. Cyclic garbage among frozen
        objects waits for the end of the run (gc.unfreeze)."""
        if self.counts.journeys_started - self._frozen_at >= FREEZE_EVERY:
            self._frozen_at = self.counts.journeys_started
            gc.freeze()

    async def _sleep_until(self, loop_time: float) -> None:
        delay = loop_time - self._now()
        if delay > 0:
            await asyncio.sleep(delay)

    async def _schedule(self) -> None:
        """Start each arrival at its intended time, never before: arrivals that fall due
        together start together, and a timer that fires early (the loop's timers round to the
        millisecond) is followed by a shorter one."""
        t0 = self._t0
        due: list[Arrival] = []
        for arrival in self.plan:
            at = t0 + arrival.real
            now = self._now()
            if at > now:
                self._start_all(due)
                due = []
                while now < at:
                    await asyncio.sleep(at - now)
                    now = self._now()
            due.append(arrival)
        self._start_all(due)
        await self._sleep_until(t0 + self.clock.load_end_real)

    def _start_all(self, arrivals: list[Arrival]) -> None:
        for arrival in arrivals:
            self._arrive(arrival)

    # -- journeys ---------------------------------------------------------------------------
    def _arrive(self, arrival: Arrival) -> None:
        """Begin the arrival's journey: a declarative one runs to its first request or wait now."""
        rng = None
        if len(self._journeys) > 1:
            rng = user_rng(self.scenario.seed, arrival.index)
            name, _, journey = self._journeys[pick_journey(self._weights, rng)]
        else:
            name, _, journey = self._journeys[0]
        due = self._t0 + arrival.real
        single = self._single.get(name)
        if single is not None:
            active = _Active(arrival, name, 0, _NO_DEADLINES, due, position=arrival.sim)
            self._active[arrival.index] = active
            self._request(active, single[0], due, arrival.sim)
            return
        if not isinstance(journey, JourneySpec):
            active = _Active(arrival, name, -1, SlaBook(), due)
            self._active[arrival.index] = active
            self._announce(active)
            active.task = self._loop.create_task(
                self._python_journey(active, journey, rng or user_rng(self.scenario.seed, arrival.index)))
            return
        active = _Active(arrival, name, len(journey.sla), SlaBook(journey.sla), due, position=arrival.sim)
        self._active[arrival.index] = active
        try:
            context = {  # templates only read it; `vars` is the journey's own
                "user": {"index": arrival.index, "id": f"{self.run_id}-{arrival.index}"},
                "data": (generate_user_data(journey.data, rng or user_rng(self.scenario.seed, arrival.index))
                         if journey.data else _NO_DATA),
                "run": self._run_context,
            }
            active.steps = declarative_journey(journey, context, arrival.sim)
        except Exception as exc:  # noqa: BLE001 - e.g. a data spec that cannot be generated
            self._end(active, Outcome("failed", f"{type(exc).__name__}: {exc}"))
            return
        self._step(active, None)

    def _announce(self, active: _Active) -> None:
        active.announced = True
        late_ms = (self._now() - active.arrival.real - self._t0) * 1000
        self.counts.journeys_started += 1
        if late_ms > self.scenario.late_threshold_ms:
            self.counts.late_starts += 1
        self._emit(JourneyStarted(
            run_id=self.run_id, seq=self._next_seq(), sim_time=active.arrival.sim,
            real_time=self._epoch(self._t0 + active.arrival.real), user=active.index,
            journey=active.journey, late_ms=late_ms))

    def _step(self, active: _Active, reply: Any) -> None:
        """Drive a declarative journey's state machine with `reply` until it sends a request,
        waits or ends. Steps that follow a reply are due at the journey's place in simulated
        time, so the target sees the same X-ESR-Sim-Time on any machine."""
        steps = active.steps
        assert steps is not None
        try:
            action = steps.send(reply)
            while True:
                kind = type(action)
                if kind is Send:
                    if action.intended_sim is not None:  # a poll due at its time
                        active.position = action.intended_sim
                        due = self._loop_at_sim(action.intended_sim)
                    else:
                        due = active.due if active.due is not None else self._now()
                    active.due = None
                    self._request(active, action.request, due, active.position)  # type: ignore[arg-type]
                    return
                if kind is WaitUntil:
                    active.position = action.sim
                    if not active.announced:
                        self._announce(active)
                    self._emit_decisions(active, active.book.expire(active.observed_by(self.sim_now())))
                    if self._done_waiting(active, action.sim):
                        self._end(active, _CUT)
                    else:
                        self._wait(active, action.sim)
                    return
                if kind is StepDone:
                    book = active.book
                    before = book.open_count
                    decisions = book.step_done(action.step, action.ok, action.sim)
                    self._sla_opened += book.open_count - before + len(decisions)
                    self._emit_decisions(active, decisions)
                else:
                    assert kind is Count
                    self.count(active, action.name, action.value, action.sim)
                action = steps.send(None)
        except StopIteration as stop:
            self._end(active, stop.value)
        except Exception as exc:  # noqa: BLE001 - e.g. a template without a value: this journey fails
            self._end(active, Outcome("failed", f"{type(exc).__name__}: {exc}"))

    def _done_waiting(self, active: _Active, until: float) -> bool:
        """After the load, a journey with nothing left to decide waits no more: one whose deadlines
        are all decided, or one without deadlines waiting past the drain bound. Decided in
        simulated time, so the same seed sends the same requests however busy the machine."""
        if until <= self.clock.load_end_sim or active.book.open_count:
            return False
        return active.settled or until > self._drain_bound_end

    def open_deadline(self, active: _Active, key: str, within: float, now: float) -> None:
        """A Python journey's `user.sla_open`."""
        active.book.open(key, within, now)
        self._sla_opened += 1
        self._arm_deadline(active)

    @property
    def sla_open(self) -> int:
        """Deadlines open now, across all journeys (kept as a count: journeys may be 100,000s)."""
        return self._sla_opened - self.live.sla_met - self.live.sla_missed - self.counts.sla_undecided

    def _wait(self, active: _Active, sim: float) -> None:
        """The journey waits until simulated time `sim`: an agenda entry, woken by one loop timer."""
        self._waits.add(sim, active)
        if self._wake is None or sim < self._wake_sim:
            self._arm_wake(sim)

    def _arm_wake(self, sim: float) -> None:
        if self._wake is not None:
            self._wake.cancel()
        self._wake_sim = sim
        self._wake = self._loop.call_at(self._loop_at_sim(sim), self._wake_up)

    def _wake_up(self) -> None:
        """Go on with every journey whose wait is over (the loop's timers may fire up to a
        millisecond early; nothing goes on before its time by more than that)."""
        self._wake = None
        now = self._now()
        for sim, active in self._waits.pop_due(self.clock.sim_at(now + 0.001 - self._t0)):
            if active.ended:
                continue
            due = self._loop_at_sim(sim)
            self.timer_lag.add(max(0.0, self._now() - due) * 1000)
            active.due = due
            self._step(active, sim)
        earliest = self._waits.next_at
        if earliest is not None and (self._wake is None or earliest < self._wake_sim):
            self._arm_wake(earliest)

    def _request(self, active: _Active, request: PreparedRequest, due: float, sim: float) -> None:
        """Send the journey's request now if a slot is free, else queue it (its latency still
        counts from `due`, so waiting for a slot shows as latency, not as lost load)."""
        if self._stopping:
            self._end(active, _CUT)
        elif self._requests_in_flight < self.scenario.max_in_flight and not self._queue:
            self._exchange(active, request, due, sim)
        else:
            self._queue.append((active, request, due, sim))

    def _exchange(self, active: _Active, request: PreparedRequest, due: float, sim: float) -> None:
        """A slot is the journey's: announce it if this is its first request, and send."""
        if not active.announced:
            self._announce(active)
        self._requests_in_flight += 1
        active.task = self._loop.create_task(self._answer(active, request, due, sim))

    async def _answer(self, active: _Active, request: PreparedRequest, due: float, sim: float) -> None:
        try:
            reply = await self._transmit(request, due, active.index, active.journey, sim)
        except asyncio.CancelledError:
            active.task = None
            self._end(active, _CUT)
            return
        finally:
            self._release()
        active.task = None
        if active.steps is not None:
            self._step(active, reply)
            return
        step = self._single[active.journey][1]
        self._end(active, _COMPLETED if step_ok(step, reply) else Outcome(
            "failed", f"step {step.name}: {reply.error or f'status {reply.status}'}"))

    def _release(self) -> None:
        """A request is done: its slot goes to the oldest request waiting for one."""
        self._requests_in_flight -= 1
        queue = self._queue
        while queue and self._requests_in_flight < self.scenario.max_in_flight:
            waiting = queue.popleft()
            if isinstance(waiting, tuple):
                if not waiting[0].ended:
                    self._exchange(*waiting)
            elif not waiting.done():  # else its Python journey was cut meanwhile
                self._requests_in_flight += 1
                waiting.set_result(None)

    def _cut_queued(self) -> None:
        """The run stops sending: journeys whose next request waits for a slot end here (those
        whose first request never got one never started)."""
        queue, self._queue = self._queue, deque()
        for waiting in queue:
            if isinstance(waiting, tuple):
                self._end(waiting[0], _CUT)
            else:
                waiting.cancel()

    async def _python_journey(self, active: _Active, journey: type[Journey], rng: Any) -> None:
        from esr.engine.user import User

        outcome = Outcome("failed", "internal error")
        try:
            user = User(self, active.arrival, active, rng, active.due or self._now(), journey.data)
            await journey().run(user)
            outcome = _COMPLETED
        except asyncio.CancelledError:
            outcome = _CUT
        except Exception as exc:  # noqa: BLE001 - a bug in the user's journey ends that journey only
            outcome = Outcome("failed", f"{type(exc).__name__}: {exc}")
        finally:
            active.task = None
            self._end(active, outcome)

    def _end(self, active: _Active, outcome: Outcome) -> None:
        """The journey is over (once): decide its open deadlines and record how it ended."""
        if active.ended:
            return
        active.ended = True
        del self._active[active.index]
        if active.steps is not None:
            active.steps.close()
        self._arm_deadline(active)  # ended: this only cancels its timer
        if not active.announced:
            if outcome.kind == "cut":  # its first request never had a slot
                self.counts.arrivals_not_started += 1
                self._journey_ended(active.index)
                return
            self._announce(active)
        now_sim = self.sim_now()
        if outcome.kind == "cut":
            self.counts.journeys_cut += 1
        if active.book.open_count:
            if outcome.kind == "cut":  # passed deadlines are missed; later ones stay undecided
                self._emit_decisions(active, active.book.expire(active.observed_by(now_sim)))
                self.counts.sla_undecided += active.book.open_count
            else:
                self._emit_decisions(active, active.book.fail_all(now_sim))
        self._emit(JourneyEnded(
            run_id=self.run_id, seq=self._next_seq(), sim_time=now_sim,
            real_time=self._epoch(self._now()), user=active.index, journey=active.journey,
            outcome=outcome.kind, detail=outcome.detail))
        self._journey_ended(active.index)

    def _journey_ended(self, user: int) -> None:
        """Called once per arrival when its journey is over (or never started); for runtimes
        that account for journeys per stretch of time."""

    def count(self, active: _Active, name: str, value: float, sim: float) -> None:
        active.counts += 1
        self._emit(CounterAdded(
            run_id=self.run_id, seq=self._next_seq(), sim_time=sim,
            real_time=self._epoch(self._loop_at_sim(sim)), user=active.index, name=name, value=value,
            n=active.counts - 1))

    async def send(self, request: PreparedRequest, intended: float | None, user: int, journey: str,
                   sim: float | None = None) -> Reply:
        """Send one request once a slot is free (max_in_flight); latency counts from `intended`
        (monotonic time; None: now). `sim` is its simulated time when known exactly (a replayed
        request's logged time, a journey's place on its schedule). For Python journeys and replay."""
        if intended is None:
            intended = self._now()
        if self._requests_in_flight >= self.scenario.max_in_flight or self._queue:
            slot: asyncio.Future[None] = self._loop.create_future()
            self._queue.append(slot)
            try:
                await slot
            except asyncio.CancelledError:
                if slot.done() and not slot.cancelled():  # given the slot just as it was cancelled
                    self._release()
                raise
        else:
            self._requests_in_flight += 1
        try:
            return await self._transmit(request, intended, user, journey, sim)
        finally:
            self._release()

    async def _transmit(self, request: PreparedRequest, intended: float, user: int, journey: str,
                        sim: float | None) -> Reply:
        """Send on a slot already held; record the result."""
        sent = self._now()
        if sim is None:
            sim = self.clock.sim_at(intended - self._t0)
        headers = {RUN_ID: self.run_id, SIM: "true", SIM_TIME: self._sim_iso(sim), TIME_WARP: self._warp_header}
        faults = self.active_faults  # those on when it was sent
        if self._stopping:  # the drain ended: this journey is being cut
            raise asyncio.CancelledError
        active = self._active.get(user)
        n = 0
        if active is not None:
            n = active.requests
            active.requests += 1
        self.counts.requests_sent += 1
        try:
            response = await self._sender_live.send(request, headers)
        except asyncio.CancelledError:
            self.counts.requests_sent -= 1
            self.counts.requests_abandoned += 1
            raise
        except Exception as exc:  # noqa: BLE001 - a sender bug must not lose the result
            response = Response(0, {}, repr(exc).encode(), "protocol")
        done = self._now()
        latency = (done - intended) * 1000
        live = self.live
        live.requests += 1
        if response.error is not None:
            live.errors += 1
        self._emit(RequestResult(
            run_id=self.run_id, seq=self._next_seq(), sim_time=sim, real_time=self._epoch(intended),
            user=user, journey=journey, step=request.step, endpoint=request.endpoint,
            status=response.status, latency_ms=latency, raw_latency_ms=(done - sent) * 1000,
            bytes=len(response.body), error=response.error, n=n, faults=faults))
        return Reply(response.status, response.headers, response.body, response.error, sim)

    async def _drain(self) -> None:
        """Keep the clock going until every open journey is decided: at most the drain bound,
        or longer while a deadline that opened is still running. Requests still waiting for a
        slot (max_in_flight) may go late for as long again as the load took; arrivals whose first
        request never goes never started, and are counted. Requests in flight then get their
        answer (or their timeout) before the remaining journeys are cut."""
        static_end = self._drain_bound_end
        grace = self.scenario.request_timeout + 1.0
        # Requests still waiting for a slot go late rather than never, for a while
        catch_up_end = self._t0 + self.clock.load_end_real + max(self.clock.load_end_real, CATCH_UP_MIN_S)
        while self._queue and self._now() < catch_up_end:
            await asyncio.sleep(0.01)
        bound = self._loop_at_sim(static_end) + 0.05
        while self._active:
            if all(a.settled for a in self._active.values()):
                break
            if self._now() < bound:  # each look at every journey's deadlines is O(journeys): none before the bound
                await asyncio.sleep(0.02)
                continue
            latest = max((a.book.latest_deadline for a in self._active.values() if a.book.open_count), default=0.0)
            end_sim = max(static_end, latest)
            end = self._loop_at_sim(end_sim)
            if self._now() >= end + 0.05:  # deadline timers have fired
                # journeys a busy machine left behind their schedule still get to their end
                behind = any(not a.settled and a.position is not None and a.position <= end_sim
                             for a in self._active.values())
                if not behind or self._now() >= end + max(self.clock.load_end_real, CATCH_UP_MIN_S):
                    break
            await asyncio.sleep(0.02 if len(self._active) < 2000 else 0.1)  # each look is O(journeys)
        self._stopping = True  # no journey starts another request from here
        self._cut_queued()
        deadline = self._now() + grace
        while self._requests_in_flight and self._now() < deadline:
            await asyncio.sleep(0.005)
        await self._abort_tasks()

    async def _abort_tasks(self) -> None:
        """Cut every journey: queued, in flight, running Python code or waiting."""
        self._stopping = True
        self._cut_queued()
        tasks = [a.task for a in self._active.values() if a.task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._wake is not None:
            self._wake.cancel()
            self._wake = None
        self._waits.clear()
        for active in list(self._active.values()):  # waiting, or a task cancelled before it ran
            self._end(active, _CUT)

    # -- progress -------------------------------------------------------------------------
    def _recent_p95(self, sim: float) -> float | None:
        """p95 over the last simulated hour, from the fold's buckets."""
        return self.fold.merged(from_sim=sim - 3600).latency.quantile(0.95)

    def snapshot(self) -> dict[str, Any]:
        now = self._now()
        real = max(0.0, now - self._t0)
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
            "open_journeys": len(self._active),
            "sla_open": self.sla_open,
            "duration_hours": self.scenario.duration_hours,
            "active_faults": list(self.active_faults),
            "fault_proxy": self.injector.proxy.url if self.injector is not None and self.injector.proxy else None,
            "faults": [{"fault": w.fault, "name": w.name, "start_sim_hour": w.start_sim / 3600,
                        "end_sim_hour": None if w.end_sim is None else w.end_sim / 3600, "applied": w.ok,
                        "ended": w.end_reason or None} for w in self.fold.faults.values()],
        }
