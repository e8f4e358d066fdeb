"""Pacer.wait_for: arrivals wait for their time without spinning the event loop, and never
start before it (virtual time: looptime jumps the loop's clock to the next timer)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import looptime
import pytest

from esr.engine.pacer import Clocks, Pacer


def on_virtual_loop(main: Callable[[asyncio.AbstractEventLoop], Awaitable[float]]) -> float:
    loop = looptime.patch_event_loop(asyncio.SelectorEventLoop(), start=0.0, noop_cycles=0)
    try:
        return loop.run_until_complete(main(loop))
    finally:
        loop.close()


def pacer(monotonic: Callable[[], float], resolution: float) -> Pacer:
    scheduler: Any = SimpleNamespace(run_id="wait")  # wait_for reads only the clock
    return Pacer(scheduler, Clocks(monotonic=monotonic, wall=monotonic, timer_resolution=resolution),
                 sim_header=str, time_warp=1.0, request_timeout=1.0)


@pytest.mark.parametrize(("resolution", "gap", "slept"), [
    (0.001, 0.0002, 0.001),  # shorter than a timer tick: one whole tick, not a spin
    (0.001, 0.0025, 0.0025),  # longer: exactly the gap
    (0.0, 0.0002, 0.0002),  # exact timers (a virtual loop): exactly the gap
])
def test_a_gap_under_the_timer_resolution_is_slept_as_one_tick(resolution: float, gap: float, slept: float) -> None:
    async def main(loop: asyncio.AbstractEventLoop) -> float:
        start = loop.time()
        woke = await pacer(loop.time, resolution).wait_for(start + gap)
        assert woke == loop.time() >= start + gap
        return woke - start

    assert on_virtual_loop(main) == pytest.approx(slept, abs=1e-9)


def test_a_timer_that_fires_early_is_followed_by_another() -> None:
    """The loop's timers run 10 % fast against the monotonic clock the run measures by: the
    first sleep (2 ms) ends 0.2 ms before the arrival's time, so a second one (one tick) follows;
    it never starts early."""

    async def main(loop: asyncio.AbstractEventLoop) -> float:
        def monotonic() -> float:
            return loop.time() * 0.9

        at = monotonic() + 0.002
        woke = await pacer(monotonic, 0.001).wait_for(at)
        assert woke >= at
        return loop.time()

    assert on_virtual_loop(main) == pytest.approx(0.003, abs=1e-9)
