"""`Pacer`: drives a `Scheduler` in real time on the running event loop.

The scheduler decides; the pacer reads the clock, keeps one loop timer for the scheduler's
earliest entry, sends each request the scheduler lets go through a `Sender` (one task per request
in flight), runs Python journeys as tasks and hands every answer back. The embedded runtime
(`Run`), each Kafka bot shard (`ShardRun`) and replay (`ReplayRun`) each compose one.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from esr.core.arrivals import Arrival
from esr.core.journey import Journey, Outcome, PreparedRequest, Reply
from esr.core.scheduler import COMPLETED, CUT, Active, Dispatch, Launch, Scheduler
from esr.core.sim_headers import IDEMPOTENCY_KEY, RUN_ID, SIM, SIM_TIME, TIME_WARP, idempotency_key
from esr.engine.response import Response, Sender

__all__ = ["BOT_TIMER_RESOLUTION", "Clocks", "Pacer"]

FREEZE_EVERY = 2_000  # journeys started between two gc.freeze() calls


BOT_TIMER_RESOLUTION = 0.001  # see Clocks


@dataclass(frozen=True, slots=True)
class Clocks:
    """Where a run reads real time: `monotonic` seconds to schedule and measure by, `wall` Unix
    seconds for event timestamps. Measurements use the monotonic clock directly: uvloop's
    loop.time() is the same clock cut to whole milliseconds and cached per loop iteration, too
    coarse for latencies; timers still go through loop.call_at, which shares its origin. Tests of
    run semantics pass a virtual pair and play a day in seconds (tests/unit/virtual_run.py).

    `timer_resolution` is the shortest wait the loop's timers keep (seconds). 0 (the default:
    embedded runs and replays) waits each gap as it is, so an arrival starts within a fraction of
    a millisecond of its time; libuv's (uvloop) and epoll's timeouts are whole milliseconds and
    uvloop runs a shorter sleep at once, so a sub-millisecond gap is spun through, up to half a
    core at 5,000 arrivals/s. Bot workers, which share their core with nothing that needs that
    precision and are bound by CPU, pass `BOT_TIMER_RESOLUTION` (1 ms): shorter gaps are waited as
    one whole tick (an arrival then starts up to a millisecond after its time, never before; its
    latency still counts from its intended time). A virtual loop's timers are exact: 0."""

    monotonic: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    timer_resolution: float = 0.0


def _names_key(headers: dict[str, str]) -> bool:
    return bool(headers) and any(name.lower() == "idempotency-key" for name in headers)


class Pacer:
    """Real time for one scheduler: `begin` at an origin, then `arrive`/`play`, `drain`, `abort`."""

    def __init__(self, scheduler: Scheduler, clocks: Clocks, *, sim_header: Callable[[float], str],
                 time_warp: float, request_timeout: float) -> None:
        self.scheduler = scheduler
        self.now = clocks.monotonic  # scheduling and measuring
        self.wall = clocks.wall  # event timestamps
        self.timer_resolution = clocks.timer_resolution
        self.sim_header = sim_header  # X-ESR-Sim-Time of a simulated time
        self.request_timeout = request_timeout
        self.sender: Sender | None = None  # set at begin; a shard swaps in its fault proxy's
        self.active_faults: tuple[str, ...] = ()  # marked on each result: those on when it was sent
        self._headers = {RUN_ID: scheduler.run_id, SIM: "true", TIME_WARP: f"{time_warp:g}"}
        self._wake: asyncio.TimerHandle | None = None  # one loop timer, for the scheduler's earliest entry
        self._wake_at = 0.0
        self._frozen_at = 0  # journeys started at the last gc.freeze()

    def begin(self, origin: float, epoch0: float, sender: Sender | None) -> None:
        """Fix the run's origin (on the monotonic clock and in Unix time) and its sender."""
        self._loop = asyncio.get_running_loop()
        self.scheduler.origin = origin
        self.scheduler.epoch0 = epoch0
        self.sender = sender

    @property
    def origin(self) -> float:
        return self.scheduler.origin

    def sim_now(self) -> float:
        return self.scheduler.sim_at(self.now())

    def loop_at_sim(self, sim: float) -> float:
        return self.scheduler.at_sim(sim)

    async def sleep_until(self, loop_time: float) -> None:
        delay = loop_time - self.now()
        if delay > 0:
            await asyncio.sleep(delay)

    async def wait_for(self, at: float) -> float:
        """Sleep until monotonic time `at`, never waking before it (a timer may fire early: the
        loop's timers round to the millisecond); returns the time then. A gap shorter than the
        loop's timer resolution is slept as one whole tick, not spun through (see Clocks)."""
        now = self.now()
        floor = self.timer_resolution
        while now < at:
            gap = at - now
            await asyncio.sleep(gap if gap >= floor else floor)
            now = self.now()
        return now

    # -- the scheduler's effects ------------------------------------------------------------
    def pump(self) -> None:
        """Carry out what the scheduler let go, then keep the timer on its earliest entry."""
        outbox = self.scheduler.outbox
        while outbox:
            item = outbox.popleft()
            if isinstance(item, Launch):
                item.active.task = self._loop.create_task(self._python_journey(item.active, item.journey, item.rng))
            elif item.waiter is None:  # a declarative journey's request
                assert item.active is not None
                item.active.task = self._loop.create_task(self._answer(item))
            elif item.withdrawn:  # the run stopped sending before its slot came
                item.waiter.cancel()
            elif item.waiter.done():  # its journey was cut meanwhile: the slot goes on
                self.scheduler.release(self.now())
            else:
                item.waiter.set_result(None)
        at = self.scheduler.next_at
        if at is not None and (self._wake is None or at < self._wake_at):
            if self._wake is not None:
                self._wake.cancel()
            self._wake_at = at
            self._wake = self._loop.call_at(at, self._wake_up)

    def _wake_up(self) -> None:
        self._wake = None
        self.scheduler.advance(self.now())
        self.pump()

    def arrive(self, arrival: Arrival) -> None:
        self.scheduler.arrive(arrival, self.now())
        self.pump()

    async def play(self, arrivals: Iterable[Arrival]) -> None:
        """Start each arrival at its intended time, never before: arrivals that fall due
        together start together, and a timer that fires early (the loop's timers round to the
        millisecond) is followed by another (`wait_for`)."""
        t0 = self.origin
        due: list[Arrival] = []
        for arrival in arrivals:
            at = t0 + arrival.real
            now = self.now()
            if at > now:
                self._arrive_all(due)
                due = []
                await self.wait_for(at)
            due.append(arrival)
        self._arrive_all(due)

    def _arrive_all(self, arrivals: list[Arrival]) -> None:
        for arrival in arrivals:
            self.arrive(arrival)

    def keep_collections_short(self) -> None:
        """Put the journeys that live on (most wait for hours) out of the collector's reach, every
        FREEZE_EVERY journeys: a full collection over 200,000 waiting journeys stops the loop for
        about 0.4 s, making every timer and arrival due meanwhile late. Cyclic garbage among frozen
        objects waits for the end of the run (gc.unfreeze)."""
        started = self.scheduler.counts.journeys_started
        if started - self._frozen_at >= FREEZE_EVERY:
            self._frozen_at = started
            gc.freeze()

    # -- requests ---------------------------------------------------------------------------
    async def _answer(self, dispatch: Dispatch) -> None:
        reply: Reply | None
        try:
            reply = await self._transmit(dispatch)
        except asyncio.CancelledError:
            reply = None
        self.scheduler.answered(dispatch, reply, self.now())
        self.pump()

    async def send(self, request: PreparedRequest, intended: float | None, user: int, journey: str,
                   sim: float | None = None) -> Reply:
        """Send one request once a slot is free (max_in_flight); latency counts from `intended`
        (monotonic time; None: now). `sim` is its simulated time when known exactly (a replayed
        request's logged time, a journey's place on its schedule). For Python journeys and replay."""
        if intended is None:
            intended = self.now()
        waiter: asyncio.Future[None] = self._loop.create_future()
        dispatch, holds_slot = self.scheduler.submit(request, intended, sim, user, journey, waiter)
        if not holds_slot:
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():  # given the slot just as it was cancelled
                    self._release()
                dispatch.withdrawn = True
                raise
        try:
            return await self._transmit(dispatch)
        finally:
            self._release()

    def _release(self) -> None:
        self.scheduler.release(self.now())
        self.pump()

    async def _transmit(self, dispatch: Dispatch) -> Reply:
        """Send on a slot already held; record the result."""
        sent = self.now()
        scheduler = self.scheduler
        faults = self.active_faults  # those on when it was sent
        n = scheduler.sending(dispatch)
        if n is None:  # the drain ended: this journey is being cut
            raise asyncio.CancelledError
        headers = {**self._headers, SIM_TIME: self.sim_header(scheduler.sim_of(dispatch))}
        if not _names_key(dispatch.request.headers):  # a key the journey or the logged request set wins
            # the same on a re-send after a takeover: (run, user, request number) is replayed exactly
            headers[IDEMPOTENCY_KEY] = idempotency_key(scheduler.run_id, dispatch.user, n)
        assert self.sender is not None
        try:
            response = await self.sender.send(dispatch.request, headers)
        except asyncio.CancelledError:
            scheduler.abandoned()
            raise
        except Exception as exc:  # noqa: BLE001 - a sender bug must not lose the result
            response = Response(0, {}, repr(exc).encode(), "protocol")
        return scheduler.result(dispatch, n, status=response.status, error=response.error, body=response.body,
                                headers=response.headers, sent=sent, done=self.now(), faults=faults)

    # -- Python journeys --------------------------------------------------------------------
    async def _python_journey(self, active: Active, journey: type[Journey], rng: Any) -> None:
        from esr.engine.user import User

        outcome = Outcome("failed", "internal error")
        try:
            user = User(self, active, rng, active.due or self.now(), journey.data)
            await journey().run(user)
            outcome = COMPLETED
        except asyncio.CancelledError:
            outcome = CUT
        except Exception as exc:  # noqa: BLE001 - a bug in the user's journey ends that journey only
            outcome = Outcome("failed", f"{type(exc).__name__}: {exc}")
        finally:
            active.task = None
            self.scheduler.end(active, outcome, self.now())
            self.pump()

    async def wait_until_sim(self, sim: float) -> None:
        """A Python journey's `user.wait(...)`: sleep until simulated time `sim`."""
        await self.sleep_until(self.loop_at_sim(sim))

    def open_deadline(self, active: Active, key: str, within: float, now_sim: float) -> None:
        self.scheduler.open_deadline(active, key, within, now_sim)
        self.pump()

    def close_deadline(self, active: Active, key: str, now_sim: float) -> None:
        self.scheduler.close_deadline(active, key, now_sim)
        self.pump()

    # -- the end ----------------------------------------------------------------------------
    async def drain(self) -> None:
        """Keep the clock going until every open journey is decided (`Scheduler.drain_over`);
        requests still waiting for a slot may go late meanwhile. Requests in flight then get their
        answer (or their timeout) before the remaining journeys are cut."""
        scheduler = self.scheduler
        while scheduler.catching_up(self.now()):
            await asyncio.sleep(0.01)
        while not scheduler.drain_over(now := self.now()):
            # before the bound, or with few journeys, look often; each look is O(journeys)
            await asyncio.sleep(0.02 if now < scheduler.drain_bound_at or len(scheduler.active) < 2000 else 0.1)
        scheduler.stop_sending(self.now())
        self.pump()
        deadline = self.now() + self.request_timeout + 1.0
        while scheduler.in_flight and self.now() < deadline:
            await asyncio.sleep(0.005)
        await self.abort()

    async def abort(self) -> None:
        """Cut every journey: queued, in flight, running Python code or waiting."""
        scheduler = self.scheduler
        scheduler.stop_sending(self.now())
        self.pump()
        tasks = [a.task for a in scheduler.active.values() if a.task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._wake is not None:
            self._wake.cancel()
            self._wake = None
        scheduler.cut_all(self.now())
        self.pump()
        if self._wake is not None:  # cut journeys arm nothing; a leftover timer would only wake idle
            self._wake.cancel()
            self._wake = None
