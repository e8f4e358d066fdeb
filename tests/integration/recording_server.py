"""A loopback HTTP server that records every request it gets (for replay tests)."""

from __future__ import annotations

import asyncio

from aiohttp import web


class Recorder:
    """Answers 200 (500 under /broken; after 50 ms under /slow) and keeps method, raw target,
    sim-tag headers and body, and the most requests it had in hand at once."""

    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []
        self.in_hand = 0
        self.most_in_hand = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.in_hand += 1
        self.most_in_hand = max(self.most_in_hand, self.in_hand)
        try:
            if request.path.startswith("/slow"):
                await asyncio.sleep(0.05)
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
