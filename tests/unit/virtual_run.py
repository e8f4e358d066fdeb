"""Whole runs in virtual time: the embedded `Run` on an event loop whose clock jumps to the next
timer (looptime), sending through `ClaimsDouble`, an in-memory stand-in for the demo target's
claims API. A simulated day plays in well under a second of CPU, deterministic by seed, so the
run's rules (arrivals, waits, deadlines, drain, abort, the verdict) are tested here; the
real-time tests test the adapter (sockets, processes, signals)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import looptime
import orjson

from esr.bus.runlog import read_events, run_log_path
from esr.core.events import Event, RequestResult
from esr.core.journey import PreparedRequest
from esr.core.scenario import Scenario
from esr.core.sim_headers import SIM_TIME
from esr.core.targets import Target
from esr.core.verdict import Verdict
from esr.engine.response import Response, classify_status
from esr.engine.runner import Clocks, Run

EPOCH = 1_764_547_200.0  # 2025-12-01T00:00:00Z: the wall clock of every virtual run starts here
SIM_START = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
TARGET = Target("virtual", "http://127.0.0.1:9")  # never dialled: the double answers


@dataclass
class ClaimsDouble:
    """The demo target's claims API in memory: `POST /claims` files a claim (201), `GET
    /claims/ID` says pending until its processing time has passed in simulated time, then paid;
    `GET /status/CODE` answers CODE (after `?delay_ms=N` more, as the demo target does);
    anything else answers 200. Latency and processing times are seeded by what a request is,
    not by arrival order, so interleavings never change an answer. `down` lists simulated
    (from, to) seconds in which every request gets a 503. It counts what a target can see:
    requests, the most in flight at once, and the body each claim was filed with."""

    seed: int = 1
    latency_ms: tuple[float, float] = (5.0, 40.0)
    process_hours: tuple[float, float] = (12.0, 60.0)
    down: list[tuple[float, float]] = field(default_factory=list)
    claims: dict[int, tuple[datetime, float]] = field(default_factory=dict)
    filed_with: dict[int, Any] = field(default_factory=dict)  # claim id -> the JSON body it was filed with
    requests: int = 0
    in_flight: int = 0
    peak_in_flight: int = 0

    async def send(self, request: PreparedRequest, headers: dict[str, str]) -> Response:
        self.requests += 1
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            return await self._handle(request, headers)
        finally:
            self.in_flight -= 1

    async def _handle(self, request: PreparedRequest, headers: dict[str, str]) -> Response:
        now = datetime.fromisoformat(headers[SIM_TIME])
        what = f"{self.seed}/{request.method} {request.path}/{now.isoformat()}"
        rng = random.Random(what)
        # the answer's latency on the virtual clock: looptime jumps it, no wall-clock time passes,
        # so a busy machine cannot stretch it (runs are byte-identical across machines and seeds)
        await asyncio.sleep(rng.uniform(*self.latency_ms) / 1000)
        sim = (now - SIM_START).total_seconds()
        if any(start <= sim < end for start, end in self.down):
            return self._answer(503, {"error": "down"})
        if request.method == "POST" and request.path == "/claims":
            claim_id = len(self.claims) + 1
            self.claims[claim_id] = (now, rng.uniform(*self.process_hours))
            self.filed_with[claim_id] = request.json
            return self._answer(201, {"id": claim_id, "status": "filed"})
        if request.method == "GET" and request.path.startswith("/claims/"):
            try:
                filed, hours = self.claims[int(request.path.rsplit("/", 1)[1])]
            except (KeyError, ValueError):
                return self._answer(404, {"error": "no such claim"})
            paid = (now - filed).total_seconds() / 3600 >= hours
            return self._answer(200, {"status": "paid" if paid else "pending"})
        if request.method == "GET" and request.path.startswith("/status/"):
            code = request.path.rsplit("/", 1)[1]
            status = int(code) if code.isdigit() and 200 <= int(code) < 600 else 400
            delay = request.query.get("delay_ms", "")
            if delay.isdigit():
                await asyncio.sleep(min(int(delay), 60_000) / 1000)  # virtual time, as above
            return self._answer(status, {"status": status})
        return self._answer(200, {"ok": True})

    async def close(self) -> None:
        return None

    @staticmethod
    def _answer(status: int, body: Mapping[str, Any]) -> Response:
        return Response(status, {"X-Cost": "0.002"}, orjson.dumps(body), classify_status(status))


@dataclass(frozen=True)
class Played:
    verdict: Verdict
    events: list[Event]
    run: Run
    virtual_s: float  # how long the run took on the virtual clock


def play(scenario: Scenario, home: Path, *, double: ClaimsDouble | None = None, run_id: str = "virtual-run",
         abort_after_results: int | None = None, target: Target = TARGET,
         progress: Callable[[Run], None] | None = None) -> Played:
    """Play `scenario` in virtual time; with `abort_after_results`, cancel it as soon as it has
    recorded that many results (a condition, not a moment: the same events on any machine).
    `progress` is called with the run every quarter of a virtual second, as the CLI's display is."""
    # whatever loop policy is set; the clock jumps to the next timer as soon as nothing is ready (no
    # I/O to wait for here): looptime's default of 42 idle loop cycles per jump tripled the CPU time
    loop = looptime.patch_event_loop(asyncio.SelectorEventLoop(), start=0.0, noop_cycles=0)
    clocks = Clocks(monotonic=loop.time, wall=lambda: EPOCH + loop.time())  # exact timers: no resolution floor
    run = Run(scenario, target, run_id=run_id, home=home, sender=double or ClaimsDouble(seed=scenario.seed),
              sim_start=SIM_START, clocks=clocks)

    async def main() -> Verdict:
        task = asyncio.ensure_future(run.execute(progress))
        if abort_after_results is not None:
            enough = asyncio.Event()
            results = 0

            def count(event: Event) -> None:
                nonlocal results
                if isinstance(event, RequestResult):
                    results += 1
                    if results >= abort_after_results:
                        enough.set()

            run.bus.subscribe(count)
            waiter = asyncio.ensure_future(enough.wait())
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            task.cancel()
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            return await task if not task.cancelled() else run.verdict  # type: ignore[return-value]

    try:
        verdict = loop.run_until_complete(main())
        virtual_s = loop.time()
    finally:
        loop.close()
    return Played(verdict, list(read_events(run_log_path(home, run_id))), run, virtual_s)


def event_lines(events: list[Event]) -> list[str]:
    """Events as the JSON lines a golden log holds (the codec's own encoding)."""
    from esr.bus.codec import encode

    return [encode(e).decode().rstrip("\n") for e in events]
