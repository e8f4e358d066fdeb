"""A loopback HTTP server that records every request it gets (for replay tests)."""

from __future__ import annotations

import asyncio

from aiohttp import web

HOLD_S = 30.0  # the longest a /slow request is held waiting for the house to fill


class Recorder:
    """Answers 200 (500 under /broken) and keeps method, raw target, sim-tag headers and body,
    and the most requests it had in hand at once. With `hold_until` N, requests under /slow are
    held until N are in hand at once (then every one goes on), or HOLD_S at most."""

    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []
        self.in_hand = 0
        self.most_in_hand = 0
        self.hold_until: int | None = None
        self._full = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        self.in_hand += 1
        self.most_in_hand = max(self.most_in_hand, self.in_hand)
        try:
            if self.hold_until is not None and request.path.startswith("/slow"):
                if self.in_hand >= self.hold_until:
                    self._full.set()
                try:
                    await asyncio.wait_for(self._full.wait(), HOLD_S)
                except TimeoutError:
                    pass
            return await self._record(request)
        finally:
            self.in_hand -= 1

    async def _record(self, request: web.Request) -> web.Response:
        self.seen.append({"method": request.method, "target": request.raw_path,
                          "sim_time": request.headers.get("X-ESR-Sim-Time", ""),
                          "sim": request.headers.get("X-ESR-Sim", ""), "body": await request.read(),
                          "content_type": request.headers.get("Content-Type", ""),
                          "headers": "\n".join(f"{k}: {v}" for k, v in request.headers.items())})
        status = 500 if request.path.startswith("/broken") else 200
        return web.Response(status=status, text="ok")
