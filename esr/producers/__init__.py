"""Kafka runtime producers: the clock, the bot workers, and run requests."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable

__all__ = ["serve_until_stopped"]


def serve_until_stopped(serve: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run a worker's `serve(stop)` until SIGINT or SIGTERM sets `stop` (then it leaves its
    consumer group at once, so its partitions move without waiting for a session timeout).
    On uvloop, as `esr run` and `esr serve` play: a bot worker's sockets and timers cost about
    half of what they cost on asyncio's own loop, and a bot worker is bound by them."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(stop)

    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux and macOS
        asyncio.run(main())
        return
    uvloop.run(main())
