"""Serving an aiohttp app on a free loopback port, and waiting on a condition, for the integration tests.

Tests wait for what they need (a state, a count, a port) with a generous deadline, never for a
fixed time: a slow or busy machine then only makes them slower, not wrong."""

from __future__ import annotations

import asyncio
import inspect
import random
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

POLL_S = 0.05  # how often a wait looks again


def _ephemeral_low() -> int:
    """The lowest port the kernel hands to outgoing connections (Linux's default when unreadable)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_ports(count: int = 1) -> int:
    """The first of `count` consecutive free loopback ports, all below the ephemeral range.

    Outside that range no client's connection is ever given one as its own port, so a server
    stopped and started again on its port (a broker restarted while workers keep dialling it)
    finds the port still free. The start is random so that parallel test workers rarely probe
    the same ports."""
    rng = random.SystemRandom()
    for _ in range(500):
        base = rng.randrange(10000, _ephemeral_low() - count)
        try:
            for port in range(base, base + count):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise AssertionError(f"no {count} consecutive free loopback ports below the ephemeral range")


def free_port() -> int:
    return free_ports(1)


def port_open(port: int) -> bool:
    """Does something accept connections on 127.0.0.1:`port`?"""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True


def wait_for_port(port: int, seconds: float = 60, what: str = "") -> None:
    wait_until_sync(lambda: port_open(port), seconds, what or f"something listening on 127.0.0.1:{port}")


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    """Start `app` on 127.0.0.1 (a free port); the runner (to clean up) and the base URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]  # noqa: SLF001


async def wait_until(predicate: Callable[[], Any], timeout: float = 60.0, what: str = "") -> Any:
    """Poll `predicate` (plain or async) until it returns something true, and return that; fail
    after `timeout` seconds, saying `what` was awaited."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what or predicate}")
        await asyncio.sleep(POLL_S)


def wait_until_sync(predicate: Callable[[], Any], timeout: float = 60.0, what: str = "") -> Any:
    """`wait_until` for tests that are not async (they block while they wait)."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what or predicate}")
        time.sleep(POLL_S)
    return value
