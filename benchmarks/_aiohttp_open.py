"""Peer for bench_fidelity.py: a bare open-model loop on aiohttp and the default asyncio loop.

    python benchmarks/_aiohttp_open.py --url http://127.0.0.1:PORT --rate 1000 --seconds 10

The same arrival times as ESR (its seeded Poisson plan: exponential gaps at `rate`), every arrival
handed to the loop up front with `loop.call_at`; each spawns a task that does one `GET /` on
one shared `aiohttp.ClientSession`. Send lag = `time.monotonic()` when the task starts minus
the intended time (the default loop's `loop.time()` is `time.monotonic()`, full resolution).
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time

import aiohttp

START_LEAD_S = 0.5  # schedule set-up happens before the first arrival
DRAIN_S = 10.0  # bounded wait for the last responses


async def main(a: argparse.Namespace) -> dict:
    loop = asyncio.get_running_loop()
    skew = time.monotonic() - loop.time()
    if abs(skew) > 0.001:
        raise SystemExit(f"the loop clock is not time.monotonic() (skew {skew * 1000:.3f} ms)")
    rng = random.Random(f"esr-arrivals/{a.seed}")  # ESR's plan for a one-step profile, gap for gap
    offsets, t = [], 0.0
    while True:
        t += rng.expovariate(a.rate)
        if t >= a.seconds:
            break
        offsets.append(t)
    lags: list[float] = []
    ok = errors = 0
    tasks: set[asyncio.Task] = set()
    connector = aiohttp.TCPConnector(limit=a.limit)
    async with aiohttp.ClientSession(connector=connector) as session:
        url = a.url.rstrip("/") + "/"

        async def request(intended: float) -> None:
            nonlocal ok, errors
            lags.append(time.monotonic() - intended)
            try:
                async with session.get(url) as response:
                    await response.read()
                    if response.status == 200:
                        ok += 1
                    else:
                        errors += 1
            except (TimeoutError, aiohttp.ClientError, OSError):
                errors += 1

        def arrive(intended: float) -> None:
            task = loop.create_task(request(intended))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        t0 = loop.time() + START_LEAD_S
        for off in offsets:
            loop.call_at(t0 + off, arrive, t0 + off)
        if loop.time() > t0 - 0.05:
            raise SystemExit("scheduling overran the start lead")
        await asyncio.sleep(t0 + a.seconds - loop.time())
        deadline = loop.time() + DRAIN_S
        while (tasks or len(lags) < len(offsets)) and loop.time() < deadline:
            await asyncio.sleep(0.01)
        for task in list(tasks):
            task.cancel()
    lags_ms = sorted(x * 1000 for x in lags)
    n = len(lags_ms)

    def pct(p: float) -> float | None:
        return lags_ms[max(0, min(n - 1, int(-(-p * n // 100)) - 1))] if n else None

    return {"planned": len(offsets), "started": n, "ok": ok, "errors": errors,
            "late_rate": sum(1 for x in lags_ms if x > 10) / n if n else None,
            "lag_ms": {"p50": pct(50), "p99": pct(99), "p999": pct(99.9),
                       "max": lags_ms[-1] if n else None, "min": lags_ms[0] if n else None}}


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--rate", type=float, required=True)
    ap.add_argument("--seconds", type=float, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=1000, help="connection pool size (ESR uses up to 1000)")
    args = ap.parse_args()
    print(json.dumps(asyncio.run(main(args))), flush=True)
