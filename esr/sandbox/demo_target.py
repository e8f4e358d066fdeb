"""A small local system under test: configurable latency and errors, and a claims API that
lives in the simulated time ESR sends it (`X-ESR-Sim-Time`).

    GET  /                 "ok" after the configured latency (errors at the configured rate)
    GET  /status/{code}    answers with that status code (after ?delay_ms=N more)
    POST /claims           files a claim -> 201 {"id", "status": "filed"}, header X-Cost
    GET  /claims/{id}      "pending" until the claim's processing time has passed in
                           simulated time, then "paid"

Used by `esr demo`, the README's quickstart and the integration tests. Run it alone with
`esr demo-target --port 8080 --latency 5ms --error-rate 0.01`.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web

from esr.core.sim_headers import sim_time

__all__ = ["TARGET_KEY", "DemoTarget", "DemoTargetConfig", "make_app"]


@dataclass(frozen=True, slots=True)
class DemoTargetConfig:
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    error_rate: float = 0.0
    error_status: int = 503
    process_hours: tuple[float, float] = (12.0, 60.0)  # a claim is paid this long after filing
    cost_per_request: float = 0.001
    seed: int = 0


KEYS_KEPT = 100_000


class DemoTarget:
    def __init__(self, config: DemoTargetConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.claims: dict[int, tuple[datetime, float]] = {}
        self.requests = 0
        self.in_flight = 0  # requests being answered now, and the most at once: what a
        self.peak_in_flight = 0  # generator's in-flight limit is checked against
        self.seen_headers: list[dict[str, str]] = []
        # the distinct Idempotency-Keys GET / was sent with (the first KEYS_KEPT): a request sent
        # again after a takeover carries its first send's key, so it adds none
        self.idempotency_keys: set[str] = set()

    @web.middleware
    async def count_in_flight(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            return await handler(request)
        finally:
            self.in_flight -= 1

    async def _delay(self) -> web.Response | None:
        c = self.config
        self.requests += 1
        delay = c.latency_ms + (self.rng.uniform(-c.jitter_ms, c.jitter_ms) if c.jitter_ms else 0)
        if delay > 0:
            await asyncio.sleep(delay / 1000)
        if c.error_rate and self.rng.random() < c.error_rate:
            return web.Response(status=c.error_status, text="injected error")
        return None

    def _cost(self) -> dict[str, str]:
        return {"X-Cost": f"{self.config.cost_per_request:g}"}

    async def root(self, request: web.Request) -> web.Response:
        key = request.headers.get("Idempotency-Key")
        if key is not None and len(self.idempotency_keys) < KEYS_KEPT:
            self.idempotency_keys.add(key)
        if len(self.seen_headers) < 5:
            self.seen_headers.append({k: v for k, v in request.headers.items()
                                      if k.startswith("X-ESR") or k == "Idempotency-Key"})
        return await self._delay() or web.Response(text="ok\n", headers=self._cost())

    async def status(self, request: web.Request) -> web.Response:
        try:
            code = int(request.match_info["code"])
        except ValueError:
            code = 400
        await self._delay()
        extra = request.query.get("delay_ms", "")
        if extra.isdigit():
            await asyncio.sleep(min(int(extra), 60_000) / 1000)
        return web.Response(status=code if 200 <= code < 600 else 400, text=f"{code}\n")

    async def file_claim(self, request: web.Request) -> web.Response:
        failed = await self._delay()
        if failed:
            return failed
        now = sim_time(request.headers)
        claim_id = len(self.claims) + 1
        lo, hi = self.config.process_hours
        # seeded by what the claim is, not by the order claims arrive in: a run with the same seed
        # gets the same processing times however its requests interleave
        what = f"{self.config.seed}/{now.isoformat()}/{(await request.read()).decode(errors='replace')}"
        self.claims[claim_id] = (now, random.Random(what).uniform(lo, hi))
        return web.json_response({"id": claim_id, "status": "filed", "filed_at": now.isoformat()},
                                 status=201, headers=self._cost())

    async def get_claim(self, request: web.Request) -> web.Response:
        failed = await self._delay()
        if failed:
            return failed
        try:
            filed, hours = self.claims[int(request.match_info["claim_id"])]
        except (KeyError, ValueError):
            return web.json_response({"error": "no such claim"}, status=404)
        elapsed = (sim_time(request.headers) - filed).total_seconds() / 3600
        status = "paid" if elapsed >= hours else "pending"
        return web.json_response({"id": int(request.match_info["claim_id"]), "status": status},
                                 headers=self._cost())


TARGET_KEY: web.AppKey[DemoTarget] = web.AppKey("target", DemoTarget)


def make_app(config: DemoTargetConfig | None = None) -> web.Application:
    target = DemoTarget(config or DemoTargetConfig())
    app = web.Application(middlewares=[target.count_in_flight])
    app[TARGET_KEY] = target
    app.router.add_get("/", target.root)
    app.router.add_get("/status/{code}", target.status)
    app.router.add_post("/claims", target.file_claim)
    app.router.add_get("/claims/{claim_id}", target.get_claim)
    return app


async def start(config: DemoTargetConfig, host: str = "127.0.0.1", port: int = 0) -> tuple[web.AppRunner, str]:
    """Start the target on the running loop; returns the runner and its base URL."""
    runner = web.AppRunner(make_app(config), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    sockets = site._server.sockets  # type: ignore[union-attr]  # noqa: SLF001
    bound = sockets[0].getsockname()[1]
    return runner, f"http://{host}:{bound}"
