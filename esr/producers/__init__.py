"""Kafka runtime producers: the clock, the bot workers, and run requests."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable

__all__ = ["serve_until_stopped"]


def serve_until_stopped(serve: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run a worker's `serve(stop)` until SIGINT or SIGTERM sets `stop` (then it leaves its
    consumer group at once, so its partitions move without waiting for a session timeout)."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(stop)

    asyncio.run(main())
