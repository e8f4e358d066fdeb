"""The sandbox's claims system in a process of its own.

The generator and the system it measures must not share an event loop: every millisecond the
claims system spends on a request would delay the next send, and a latency assertion would
measure ESR instead of the system (the walk-through's day at warp 4320, about 550 requests a
second: p95 240 ms with both in one process, 4 ms in two). `ClaimsProcess` starts the child,
purges a run's data fork over the child's own HTTP admin route when the run ends, and stops it.
The child ends by itself when its parent goes (its stdin closes), so a killed sandbox leaves
no claims system behind.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from dataclasses import asdict
from typing import IO

import aiohttp
from aiohttp import web

from esr.api.server import PortTaken
from esr.core.errors import EsrError
from esr.sandbox.app import ClaimsService, make_claims_app
from esr.sandbox.claims import OfficeConfig

__all__ = ["ClaimsProcess"]

START_S = 60.0  # a cold start on a busy machine imports aiohttp and the office in a few seconds
STOP_S = 10.0
_READY, _REFUSED = "ready", "refused"


class ClaimsProcess:
    """A running child: its URL, and the purges still under way."""

    def __init__(self, proc: asyncio.subprocess.Process, url: str) -> None:
        self.proc = proc
        self.url = url
        self._purges: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    async def start(cls, config: OfficeConfig, port: int, host: str = "127.0.0.1") -> ClaimsProcess:
        """Listening on `host:port` (0: any free port) once this returns; a taken port is a
        `PortTaken` naming `--sut-port`."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", __name__, host, str(port), json.dumps(asdict(config)),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        assert proc.stdout is not None
        try:
            line = (await asyncio.wait_for(proc.stdout.readline(), START_S)).decode().split(maxsplit=2)
        except TimeoutError:
            await _end(proc)
            raise EsrError(f"the claims system did not listen within {START_S:g} s (a busy machine?): "
                           "try again") from None
        if line[:1] == [_READY]:
            return cls(proc, f"http://{host}:{int(line[1])}")
        await _end(proc)
        if line[:1] == [_REFUSED]:
            raise PortTaken.binding(f"{host}:{port}", "--sut-port", OSError(int(line[1]), line[2]), "the claims system")
        raise EsrError(f"the claims system ended before it listened (exit code {proc.returncode}; its error is above)")

    def purge_soon(self, run_id: str) -> asyncio.Task[None]:
        """Drop a finished run's data fork (the run manager calls this and does not wait)."""
        task = asyncio.get_running_loop().create_task(self._purge(run_id))
        self._purges.add(task)
        task.add_done_callback(self._purges.discard)
        return task

    async def _purge(self, run_id: str) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=STOP_S))
        try:
            async with self._session.delete(f"{self.url}/_esr/runs/{run_id}"):
                pass  # 404: the run never reached the office
        except (aiohttp.ClientError, TimeoutError):
            pass  # the child is gone or stopping: its data goes with it

    async def stop(self) -> None:
        if self._purges:
            await asyncio.wait(self._purges, timeout=STOP_S)
        if self._session is not None:
            await self._session.close()
        await _end(self.proc)


async def _end(proc: asyncio.subprocess.Process) -> None:
    """Close the child's stdin (its signal to stop), and kill it if it has not ended in time."""
    if proc.stdin is not None:
        proc.stdin.close()
    try:
        await asyncio.wait_for(proc.wait(), STOP_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()


async def _serve(host: str, port: int, config: OfficeConfig, out: IO[str]) -> None:
    runner = web.AppRunner(make_claims_app(ClaimsService(config)), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:
        print(_REFUSED, exc.errno or 0, exc.strerror or exc, file=out, flush=True)
        await runner.cleanup()
        return
    print(_READY, site._server.sockets[0].getsockname()[1], file=out, flush=True)  # type: ignore[union-attr]  # noqa: SLF001
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_reader(sys.stdin.fileno(), lambda: None if os.read(sys.stdin.fileno(), 4096) else stop.set())
    for sig in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C reaches the whole process group: end quietly
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def main(argv: list[str]) -> None:
    host, port, config = argv[0], int(argv[1]), OfficeConfig(**json.loads(argv[2]))
    try:
        import uvloop  # the generator plays on uvloop too: cheaper I/O for both sides
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux and macOS
        asyncio.run(_serve(host, port, config, sys.stdout))
    else:
        uvloop.run(_serve(host, port, config, sys.stdout))


if __name__ == "__main__":
    main(sys.argv[1:])
