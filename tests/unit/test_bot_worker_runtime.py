"""How a bot worker process runs: on uvloop, with a garbage collector tuned for requests that
live a tenth of a second (issue 16: a bot worker's CPU per request)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest

from esr.producers import serve_until_stopped
from esr.producers.bots import GC_YOUNG_THRESHOLD, collect_rarely


def test_workers_serve_on_uvloop() -> None:
    loops: list[str] = []

    async def serve(stop: asyncio.Event) -> None:
        loops.append(type(asyncio.get_running_loop()).__module__)

    serve_until_stopped(serve)
    assert loops == ["uvloop"]


@pytest.fixture
def collector() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)
    gc.unfreeze()


def test_a_bot_worker_collects_young_objects_rarely(collector: None) -> None:
    older = gc.get_threshold()[1:]
    collect_rarely()
    assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, *older)
    assert GC_YOUNG_THRESHOLD == 50_000
    assert gc.get_freeze_count() > 0  # the imported modules are out of every collection
