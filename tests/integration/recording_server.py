"""A loopback HTTP server that records every request it gets (for replay tests)."""

from __future__ import annotations

from aiohttp import web


class Recorder:
    """Answers 200 (500 under /broken) and keeps method, raw target, sim-tag headers and body."""

    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append({"method": request.method, "target": request.raw_path,
                          "sim_time": request.headers.get("X-ESR-Sim-Time", ""),
                          "sim": request.headers.get("X-ESR-Sim", ""), "body": await request.read(),
                          "content_type": request.headers.get("Content-Type", ""),
                          "headers": "\n".join(f"{k}: {v}" for k, v in request.headers.items())})
        status = 500 if request.path.startswith("/broken") else 200
        return web.Response(status=status, text="ok")
