"""A system under test with one breakable part, for fault tests on loopback."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from loopback import serve as serve_app

from esr.core.fault_actions import FaultAction


class Switchboard:
    """A system under test with one breakable part: while `broken`, GET /work answers 503.
    POST/DELETE /admin/broken start and end the fault (the body ESR sends is kept)."""

    def __init__(self, *, start_status: int = 200, start_delay_s: float = 0.0, recover_failures: int = 0,
                 authorization: str | None = None) -> None:
        self.broken = False
        self.authorization = authorization  # when set, GET /work answers 401 to any other Authorization
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.start_status = start_status
        self.start_delay_s = start_delay_s  # breaks at once, answers this much later
        self.recover_failures = recover_failures  # the first recoveries answer 500 and change nothing

    async def work(self, request: web.Request) -> web.Response:
        if self.authorization is not None and request.headers.get("Authorization") != self.authorization:
            return web.json_response({"error": "who are you?"}, status=401)
        return web.json_response({"ok": not self.broken}, status=503 if self.broken else 200)

    async def start(self, request: web.Request) -> web.Response:
        self.calls.append(("start", await request.json()))
        if self.start_status != 200:
            return web.json_response({"error": "the switch is stuck"}, status=self.start_status)
        self.broken = True
        await asyncio.sleep(self.start_delay_s)
        return web.json_response({"active": True})

    async def recover(self, request: web.Request) -> web.Response:
        self.calls.append(("recover", await request.json()))
        if self.recover_failures > 0:
            self.recover_failures -= 1
            return web.json_response({"error": "try again"}, status=500)
        self.broken = False
        return web.json_response({"active": False})


async def serve(board: Switchboard) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_get("/work", board.work)
    app.router.add_post("/admin/broken", board.start)
    app.router.add_delete("/admin/broken", board.recover)
    return await serve_app(app)


BROKEN = FaultAction.model_validate({
    "start": {"http": {"method": "POST", "url": "{{ target.url }}/admin/broken"}},
    "recover": {"http": {"method": "DELETE", "url": "{{ target.url }}/admin/broken"}}})
