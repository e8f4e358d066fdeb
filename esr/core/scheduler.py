"""`Scheduler`: a run's rules, deciding what is due at a time passed in.

SimPy's shape: heaps of timed entries (journeys waiting, deadlines), `now` given by the caller,
no clock reads, no I/O. It starts arrivals' journeys, drives declarative journeys' state
machines, keeps max_in_flight's first-come-first-served queue, decides deadlines, tells when the
drain is over and cuts what is left. Every request it lets go is a `Dispatch` in `outbox`: an
adapter sends it and hands the answer back. The embedded runtime, each Kafka bot shard and replay
drive one (esr.engine.pacer paces it in real time; tests/unit/test_scheduler.py by hand).

Times: `now` and every `due` are seconds on the adapter's clock (the monotonic clock, or a
virtual one in tests); `origin` is the run's start on it, where its first arrival is planned
from. Simulated times follow from the run's `SimClock`.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

from esr.core.agenda import Agenda
from esr.core.arrivals import Arrival, user_rng
from esr.core.clock import SimClock
from esr.core.events import CounterAdded, Event, JourneyEnded, JourneyStarted, RequestResult, SlaDecided
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
from esr.core.plan import drain_bound_sim
from esr.core.sketch import LatencySketch
from esr.core.userdata import generate_user_data

__all__ = ["Active", "Dispatch", "GeneratorCounts", "Launch", "Live", "Scheduler", "CATCH_UP_MIN_S"]

CATCH_UP_MIN_S = 10.0  # after the load, requests waiting for a slot may still go for max(load time, this)
DEADLINE_SLACK_S = 0.001  # a deadline is looked at this long after its time: a step reached on time counts
EARLY_S = 0.001  # entries this close to due are taken together (a loop's timers round to the millisecond)

COMPLETED = Outcome("completed")
CUT = Outcome("cut", "the run ended before the journey did")
_NO_DEADLINES = SlaBook()  # shared by journeys that can open none; never opened
_NO_DATA: dict[str, Any] = {}  # the template context of journeys without user data (only read)

JourneyTable = list[tuple[str, float, "JourneySpec | type[Journey]"]]


@dataclass(slots=True)
class Active:
    """One journey under way. A declarative journey is its state machine (`steps`) and, while it
    waits, one entry in the scheduler's agenda; only a request in flight gives it a task."""

    arrival: Arrival
    journey: str
    sla_total: int  # deadlines its spec declares; -1 for Python journeys (only done when done)
    book: SlaBook
    due: float | None  # when its next request is due (arrival, end of a wait); None: now
    sla_decided: int = 0
    requests: int = 0  # numbers the journey's results: (user, n) is unique in a run
    counts: int = 0
    # journey_started is announced when its first request gets a slot (or its first wait
    # begins): an arrival that never got one never started, and the verdict says so
    announced: bool = False
    ended: bool = False
    armed: float | None = None  # the deadline (simulated) its agenda entry is for
    task: Any = None  # the adapter's handle on its request in flight, or on a Python journey's coroutine
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
class Dispatch:
    """A request the scheduler let go (it holds a slot): the adapter sends it, then calls
    `Scheduler.answered`. A Python journey's or a replay's request carries the adapter's `waiter`
    and is answered to that instead."""

    active: Active | None  # None: a replayed request, no journey
    request: PreparedRequest
    due: float  # when its latency counts from
    sim: float | None  # its simulated time when known exactly; None: the clock's at `due`
    user: int
    journey: str
    waiter: Any = None
    withdrawn: bool = False  # the waiter gave up before its slot came: skipped


@dataclass(frozen=True, slots=True)
class Launch:
    """Start a Python journey's coroutine (the adapter runs it; it calls back for every action)."""

    active: Active
    journey: type[Journey]
    rng: random.Random


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
    recent: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=64))  # (real time, requests)


class Scheduler:
    """The rules of one run (or one shard of it). Events go to `emit`; requests to send and Python
    journeys to start collect in `outbox`, which the adapter empties after every call."""

    def __init__(self, journeys: JourneyTable, clock: SimClock, *, run_id: str, seed: int, max_in_flight: int,
                 late_threshold_ms: float, emit: Callable[[Event], None],
                 on_ended: Callable[[int], None] | None = None) -> None:
        self.journeys = journeys
        self.clock = clock
        self.run_id = run_id
        self.seed = seed
        self.max_in_flight = max_in_flight
        self.late_threshold_ms = late_threshold_ms
        self.emit = emit
        self.on_ended = on_ended  # once per arrival whose journey is over (or never started)
        self.origin = 0.0  # the run's start on the adapter's clock (set by the adapter at start)
        self.epoch0 = 0.0  # the same moment in Unix time, for events' real_time
        self.seq = 0
        self.counts = GeneratorCounts()
        self.live = Live()
        self.outbox: deque[Dispatch | Launch] = deque()
        self.active: dict[int, Active] = {}
        self.stopping = False  # no request goes from here on
        self.in_flight = 0
        self.queue: deque[Dispatch] = deque()  # waiting for a slot, first come first served
        self._weights = [w for _, w, _ in journeys]
        self._single = {name: single for name, _, j in journeys
                        if isinstance(j, JourneySpec) and (single := single_request(j)) is not None}
        self._waits: Agenda[Active] = Agenda()  # by the simulated time their wait ends
        self._deadlines: Agenda[tuple[Active, float]] = Agenda()  # by when they are looked at
        self._run_context = {"id": run_id}
        self._sla_opened = 0
        self.drain_bound_end = clock.load_end_sim + drain_bound_sim([j for _, _, j in journeys])
        self.timer_lag = LatencySketch()  # ms between a wait's end and its journey going on

    # -- time and events ------------------------------------------------------------------
    def sim_at(self, now: float) -> float:
        return self.clock.sim_at(max(0.0, now - self.origin))

    def at_sim(self, sim: float) -> float:
        """When simulated time `sim` comes, on the adapter's clock."""
        return self.origin + self.clock.real_at(sim)

    def epoch(self, t: float) -> float:
        return self.epoch0 + (t - self.origin)

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    @property
    def next_at(self) -> float | None:
        """When the earliest waiting journey or deadline is due, or None."""
        wait, deadline = self._waits.next_at, self._deadlines.next_at
        if wait is None:
            return deadline
        wait = self.at_sim(wait)
        return wait if deadline is None else min(wait, deadline)

    def advance(self, now: float) -> None:
        """Decide the deadlines whose time came, then let every journey whose wait is over go on."""
        for _, (active, deadline) in self._deadlines.pop_due(now):
            if active.ended or active.armed != deadline:
                continue  # superseded: the journey moved on or ended
            active.armed = None
            # missed unless the journey, behind its schedule, may still observe the step in time
            decisions = active.book.expire(active.observed_by(self.sim_at(now)))
            if decisions:
                self._decided(active, decisions)
        for sim, active in self._waits.pop_due(self.clock.sim_at(now + EARLY_S - self.origin)):
            if active.ended:
                continue
            due = self.at_sim(sim)
            self.timer_lag.add(max(0.0, now - due) * 1000)
            active.due = due
            self._step(active, sim, now)

    # -- arrivals ---------------------------------------------------------------------------
    def arrive(self, arrival: Arrival, now: float) -> None:
        """Begin the arrival's journey: a declarative one runs to its first request or wait now."""
        rng = None
        if len(self.journeys) > 1:
            rng = user_rng(self.seed, arrival.index)
            name, _, journey = self.journeys[pick_journey(self._weights, rng)]
        else:
            name, _, journey = self.journeys[0]
        due = self.origin + arrival.real
        single = self._single.get(name)
        if single is not None:
            active = Active(arrival, name, 0, _NO_DEADLINES, due, position=arrival.sim)
            self.active[arrival.index] = active
            self._request(active, single[0], due, arrival.sim, now)
            return
        if not isinstance(journey, JourneySpec):
            active = Active(arrival, name, -1, SlaBook(), due)
            self.active[arrival.index] = active
            self._announce(active, now)
            self.outbox.append(Launch(active, journey, rng or user_rng(self.seed, arrival.index)))
            return
        active = Active(arrival, name, len(journey.sla), SlaBook(journey.sla), due, position=arrival.sim)
        self.active[arrival.index] = active
        try:
            context = {  # templates only read it; `vars` is the journey's own
                "user": {"index": arrival.index, "id": f"{self.run_id}-{arrival.index}"},
                "data": (generate_user_data(journey.data, rng or user_rng(self.seed, arrival.index))
                         if journey.data else _NO_DATA),
                "run": self._run_context,
            }
            active.steps = declarative_journey(journey, context, arrival.sim)
        except Exception as exc:  # noqa: BLE001 - e.g. a data spec that cannot be generated
            self.end(active, Outcome("failed", f"{type(exc).__name__}: {exc}"), now)
            return
        self._step(active, None, now)

    def _announce(self, active: Active, now: float) -> None:
        active.announced = True
        late_ms = (now - active.arrival.real - self.origin) * 1000
        self.counts.journeys_started += 1
        if late_ms > self.late_threshold_ms:
            self.counts.late_starts += 1
        self.emit(JourneyStarted(
            run_id=self.run_id, seq=self.next_seq(), sim_time=active.arrival.sim,
            real_time=self.epoch(self.origin + active.arrival.real), user=active.index,
            journey=active.journey, late_ms=late_ms))

    # -- declarative journeys ---------------------------------------------------------------
    def _step(self, active: Active, reply: Any, now: float) -> None:
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
                        due = self.at_sim(action.intended_sim)
                    else:
                        due = active.due if active.due is not None else now
                    active.due = None
                    self._request(active, action.request, due, active.position, now)
                    return
                if kind is WaitUntil:
                    active.position = action.sim
                    if not active.announced:
                        self._announce(active, now)
                    self._decided(active, active.book.expire(active.observed_by(self.sim_at(now))))
                    if self._done_waiting(active, action.sim):
                        self.end(active, CUT, now)
                    else:
                        self._waits.add(action.sim, active)
                    return
                if kind is StepDone:
                    book = active.book
                    before = book.open_count
                    decisions = book.step_done(action.step, action.ok, action.sim)
                    self._sla_opened += book.open_count - before + len(decisions)
                    self._decided(active, decisions)
                else:
                    assert kind is Count
                    self.count(active, action.name, action.value, action.sim)
                action = steps.send(None)
        except StopIteration as stop:
            self.end(active, stop.value, now)
        except Exception as exc:  # noqa: BLE001 - e.g. a template without a value: this journey fails
            self.end(active, Outcome("failed", f"{type(exc).__name__}: {exc}"), now)

    def _done_waiting(self, active: Active, until: float) -> bool:
        """After the load, a journey with nothing left to decide waits no more: one whose deadlines
        are all decided, or one without deadlines waiting past the drain bound. Decided in
        simulated time, so the same seed sends the same requests however busy the machine."""
        if until <= self.clock.load_end_sim or active.book.open_count:
            return False
        return active.settled or until > self.drain_bound_end

    # -- deadlines --------------------------------------------------------------------------
    def _decided(self, active: Active, decisions: list[Decision]) -> None:
        for d in decisions:
            active.sla_decided += 1
            if d.met:
                self.live.sla_met += 1
            else:
                self.live.sla_missed += 1
            self.emit(SlaDecided(
                run_id=self.run_id, seq=self.next_seq(), sim_time=d.decided_sim,
                real_time=self.epoch(self.at_sim(d.decided_sim)), user=active.index,
                journey=active.journey, sla=d.sla, met=d.met, opened_sim=d.opened_sim))
        self._arm(active)

    def _arm(self, active: Active) -> None:
        """One agenda entry per journey, for its next deadline; none once the journey has ended."""
        deadline = active.book.next_deadline
        if active.ended or deadline is None:
            active.armed = None
        elif deadline != active.armed:
            active.armed = deadline
            self._deadlines.add(self.at_sim(deadline) + DEADLINE_SLACK_S, (active, deadline))

    def open_deadline(self, active: Active, key: str, within: float, now_sim: float) -> None:
        """A Python journey's `user.sla_open`."""
        active.book.open(key, within, now_sim)
        self._sla_opened += 1
        self._arm(active)

    def close_deadline(self, active: Active, key: str, now_sim: float) -> None:
        """A Python journey's `user.sla_close(key)`: the deadline met if still in time."""
        self._decided(active, active.book.close(key, now_sim))

    @property
    def sla_open(self) -> int:
        """Deadlines open now, across all journeys (kept as a count: journeys may be 100,000s)."""
        return self._sla_opened - self.live.sla_met - self.live.sla_missed - self.counts.sla_undecided

    def count(self, active: Active, name: str, value: float, sim: float) -> None:
        active.counts += 1
        self.emit(CounterAdded(
            run_id=self.run_id, seq=self.next_seq(), sim_time=sim, real_time=self.epoch(self.at_sim(sim)),
            user=active.index, name=name, value=value, n=active.counts - 1))

    # -- slots ------------------------------------------------------------------------------
    def _request(self, active: Active, request: PreparedRequest, due: float, sim: float | None, now: float) -> None:
        """Let the journey's request go now if a slot is free, else queue it (its latency still
        counts from `due`, so waiting for a slot shows as latency, not as lost load)."""
        if self.stopping:
            self.end(active, CUT, now)
            return
        dispatch = Dispatch(active, request, due, sim, active.index, active.journey)
        if self.in_flight < self.max_in_flight and not self.queue:
            self._let_go(dispatch, now)
        else:
            self.queue.append(dispatch)

    def _let_go(self, dispatch: Dispatch, now: float) -> None:
        active = dispatch.active
        if active is not None and not active.announced:
            self._announce(active, now)
        self.in_flight += 1
        self.outbox.append(dispatch)

    def submit(self, request: PreparedRequest, due: float, sim: float | None, user: int, journey: str,
               waiter: Any) -> tuple[Dispatch, bool]:
        """A request of a Python journey (user `user`) or a replay, and whether it holds a slot
        now; else it is queued, and its `waiter` (the adapter's) comes out of `outbox` with its slot."""
        dispatch = Dispatch(self.active.get(user), request, due, sim, user, journey, waiter)
        if self.in_flight < self.max_in_flight and not self.queue:
            self.in_flight += 1
            return dispatch, True
        self.queue.append(dispatch)
        return dispatch, False

    def release(self, now: float) -> None:
        """A request is done: its slot goes to the oldest request waiting for one."""
        self.in_flight -= 1
        queue = self.queue
        while queue and self.in_flight < self.max_in_flight:
            waiting = queue.popleft()
            if waiting.withdrawn or (waiting.waiter is None and waiting.active is not None and waiting.active.ended):
                continue
            if waiting.waiter is None:
                self._let_go(waiting, now)
            else:
                self.in_flight += 1
                self.outbox.append(waiting)

    def sim_of(self, dispatch: Dispatch) -> float:
        """The simulated time a request is sent for: its own, else the clock's when it was due."""
        return dispatch.sim if dispatch.sim is not None else self.clock.sim_at(dispatch.due - self.origin)

    def sending(self, dispatch: Dispatch) -> int | None:
        """The adapter is about to send: the request's number in its journey (None: the run has
        stopped sending, the journey is being cut)."""
        if self.stopping:
            return None
        active = dispatch.active
        n = 0
        if active is not None:
            n = active.requests
            active.requests += 1
        self.counts.requests_sent += 1
        return n

    def abandoned(self) -> None:
        """A request sent was cut before its answer came (the run ended)."""
        self.counts.requests_sent -= 1
        self.counts.requests_abandoned += 1

    def result(self, dispatch: Dispatch, n: int, *, status: int, error: str | None, body: bytes,
               headers: Any, sent: float, done: float, faults: tuple[str, ...] = ()) -> Reply:
        """Record a request's answer (sent and answered at `sent` and `done`); the reply its journey sees."""
        sim = self.sim_of(dispatch)
        live = self.live
        live.requests += 1
        if error is not None:
            live.errors += 1
        request = dispatch.request
        latency = (done - dispatch.due) * 1000
        self.emit(RequestResult(
            run_id=self.run_id, seq=self.next_seq(), sim_time=sim, real_time=self.epoch(dispatch.due),
            user=dispatch.user, journey=dispatch.journey, step=request.step, endpoint=request.endpoint,
            status=status, latency_ms=latency, raw_latency_ms=(done - sent) * 1000,
            bytes=len(body), error=error, n=n, faults=faults))
        return Reply(status, headers, body, error, sim, latency)

    def answered(self, dispatch: Dispatch, reply: Reply | None, now: float) -> None:
        """A dispatched journey request is over: its slot is free and its journey goes on (None:
        it was cut before its answer came)."""
        active = dispatch.active
        assert active is not None
        active.task = None
        if reply is None:
            self.end(active, CUT, now)
            self.release(now)
            return
        self.release(now)
        if active.steps is not None:
            self._step(active, reply, now)
        else:
            step = self._single[active.journey][1]
            self.end(active, COMPLETED if step_ok(step, reply) else Outcome(
                "failed", f"step {step.name}: {reply.error or f'status {reply.status}'}"), now)

    # -- ends -------------------------------------------------------------------------------
    def end(self, active: Active, outcome: Outcome, now: float) -> None:
        """The journey is over (once): decide its open deadlines and record how it ended."""
        if active.ended:
            return
        active.ended = True
        del self.active[active.index]
        if active.steps is not None:
            active.steps.close()
        active.armed = None
        if not active.announced:
            if outcome.kind == "cut":  # its first request never had a slot
                self.counts.arrivals_not_started += 1
                self._ended(active.index)
                return
            self._announce(active, now)
        now_sim = self.sim_at(now)
        if outcome.kind == "cut":
            self.counts.journeys_cut += 1
        if active.book.open_count:
            if outcome.kind == "cut":  # passed deadlines are missed; later ones stay undecided
                self._decided(active, active.book.expire(active.observed_by(now_sim)))
                self.counts.sla_undecided += active.book.open_count
            else:
                self._decided(active, active.book.fail_all(now_sim))
        self.emit(JourneyEnded(
            run_id=self.run_id, seq=self.next_seq(), sim_time=now_sim, real_time=self.epoch(now),
            user=active.index, journey=active.journey, outcome=outcome.kind, detail=outcome.detail))
        self._ended(active.index)

    def _ended(self, user: int) -> None:
        if self.on_ended is not None:
            self.on_ended(user)

    def catching_up(self, now: float) -> bool:
        """After the load, requests still waiting for a slot go late rather than never, for as long
        again as the load took (at least CATCH_UP_MIN_S)."""
        load = self.clock.load_end_real
        return bool(self.queue) and now < self.origin + load + max(load, CATCH_UP_MIN_S)

    def drain_over(self, now: float) -> bool:
        """Whether the drain may end at `now`: every open journey is decided, or the drain bound
        and every opened deadline have passed (journeys a busy machine left behind their schedule
        still get to their end, for as long again as the load took). Looks at every journey once
        past the bound: call it every few dozen milliseconds, not per event."""
        if not self.active or all(a.settled for a in self.active.values()):
            return True
        if now < self.drain_bound_at:
            return False
        static_end = self.drain_bound_end
        latest = max((a.book.latest_deadline for a in self.active.values() if a.book.open_count), default=0.0)
        end_sim = max(static_end, latest)
        end = self.at_sim(end_sim)
        if now < end + 0.05:  # deadline entries are yet to be looked at
            return False
        behind = any(not a.settled and a.position is not None and a.position <= end_sim
                     for a in self.active.values())
        return not behind or now >= end + max(self.clock.load_end_real, CATCH_UP_MIN_S)

    @property
    def drain_bound_at(self) -> float:
        """Before this, the drain does not look at every journey's deadlines (each look is O(journeys))."""
        return self.at_sim(self.drain_bound_end) + 0.05

    def stop_sending(self, now: float) -> None:
        """No journey starts another request from here: those whose next request waits for a
        slot end now (those whose first request never got one never started)."""
        self.stopping = True
        queue, self.queue = self.queue, deque()
        for waiting in queue:
            if waiting.waiter is None and waiting.active is not None:
                self.end(waiting.active, CUT, now)
            else:
                waiting.withdrawn = True
                self.outbox.append(waiting)  # the adapter cancels its waiter

    def cut_all(self, now: float) -> None:
        """End every journey left (waiting, or whose task was cancelled before it ran)."""
        self._waits.clear()
        self._deadlines.clear()
        for active in list(self.active.values()):
            self.end(active, CUT, now)
