#!/usr/bin/env python3
"""Journeys that wait: memory and CPU per waiting journey, and how late their timers fire.

    python benchmarks/bench_waiting.py [--quick] [--journeys 200000]

The seed's claims wait an hour between polls, so at warp 60 tens of thousands of journeys wait
at once. This measures what one waiting journey costs. Each side runs in its own process
pinned to one core (CPU 0), with the same Poisson arrival times: N arrivals over 20 real
seconds (10,000/s for the default 200,000), each waiting 30 real seconds after it arrives, so
all N wait at once between second 20 and second 30.

- ESR: a real embedded `Run` at warp 120 of a declarative journey `think: wait 1h`, against
  the demo target on loopback (no request is sent: waiting is what is measured). Memory per
  waiting journey = (resident memory at the most journeys open - before the run) / that count;
  CPU per journey = the process's CPU time over the run / journeys; timer lag = how long after
  its wait's end each journey went on (`Run.timer_lag`).
- Peer: Locust's model, one gevent greenlet per user sleeping in `gevent.sleep` (what a Locust
  user's `wait_time` costs; a Locust `User` object adds to it, so this is its lower bound),
  measured the same way.

Goal: at most 2 KB per waiting journey, timer lag p99 at most 5 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import PYTHON, have_two_cpus, percentile, pinned, run_json, table  # noqa: E402

GOAL_BYTES = 2048
GOAL_LAG_MS = 5.0
ARRIVE_S = 20.0
WAIT_S = 30.0
WARP = 120.0  # one simulated hour = 30 real seconds


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def cpu_seconds() -> float:
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def esr_side(journeys: int) -> dict:

    import uvloop

    from esr.core.scenario import Scenario
    from esr.core.targets import TargetRegistry
    from esr.engine.runner import Run
    from esr.sandbox.demo_target import DemoTargetConfig, start

    async def main() -> dict:
        runner, url = await start(DemoTargetConfig())
        rate = journeys / ARRIVE_S
        scenario = Scenario.from_dict({
            "name": "waiting", "seed": 1, "time_warp": WARP, "duration_hours": ARRIVE_S * WARP / 3600,
            "load_profile": [[0, rate]], "max_in_flight": 1000,
            "journeys": [{"name": "waiter", "steps": [{"name": "think", "wait": "1h"}]}]})
        run = Run(scenario, TargetRegistry().resolve(url))
        peak = {"open": 0, "rss": 0}

        def progress(r: Run) -> None:
            waiting = r.snapshot()["open_journeys"]
            if waiting >= peak["open"]:
                peak["open"], peak["rss"] = waiting, rss_bytes()

        base, cpu0 = rss_bytes(), cpu_seconds()
        verdict = await run.execute(progress=progress)
        cpu = cpu_seconds() - cpu0
        await runner.cleanup()
        started = verdict.completeness["journeys_started"]
        lag = run.timer_lag
        return {"journeys": started, "peak_waiting": peak["open"],
                "bytes_each": (peak["rss"] - base) / max(1, peak["open"]),
                "cpu_us_each": cpu / max(1, started) * 1e6,
                "lag_p50": lag.quantile(0.5), "lag_p99": lag.quantile(0.99), "lag_max": lag.max,
                "woken": lag.count, "complete": verdict.completeness["complete"]}

    return uvloop.run(main())


def gevent_side(journeys: int) -> dict:
    try:
        import gevent
    except ImportError:
        sys.exit("error: gevent (Locust's event loop) is missing: .venv/bin/pip install -e '.[bench]'")
    rng = random.Random(1)
    rate = journeys / ARRIVE_S
    arrivals, t = [], 0.0
    while True:
        t += rng.expovariate(rate)
        if t >= ARRIVE_S:
            break
        arrivals.append(t)
    lags: list[float] = []
    waiting = [0]

    def user(due: float) -> None:
        gevent.sleep(max(0.0, due - time.monotonic()))
        lags.append((time.monotonic() - due) * 1000)
        waiting[0] -= 1

    base, cpu0 = rss_bytes(), cpu_seconds()
    t0 = time.monotonic() + 0.1
    greenlets = []
    for at in arrivals:
        due = t0 + at
        now = time.monotonic()
        if due > now:
            gevent.sleep(due - now)
        waiting[0] += 1
        greenlets.append(gevent.spawn(user, due + WAIT_S))
    peak_open, peak_rss = waiting[0], rss_bytes()
    gevent.joinall(greenlets)
    cpu = cpu_seconds() - cpu0
    lags.sort()
    return {"journeys": len(arrivals), "peak_waiting": peak_open,
            "bytes_each": (peak_rss - base) / max(1, peak_open), "cpu_us_each": cpu / max(1, len(arrivals)) * 1e6,
            "lag_p50": percentile(lags, 50), "lag_p99": percentile(lags, 99), "lag_max": lags[-1] if lags else None,
            "woken": len(lags), "complete": len(lags) == len(arrivals)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--journeys", type=int, default=None, help="arrivals in 20 s (default 200,000)")
    parser.add_argument("--quick", action="store_true", help="50,000 journeys")
    parser.add_argument("--side", choices=["esr", "gevent"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    journeys = args.journeys or (50_000 if args.quick else 200_000)
    if args.side:
        result = esr_side(journeys) if args.side == "esr" else gevent_side(journeys)
        print(json.dumps(result))
        return
    me = [PYTHON, str(Path(__file__).resolve()), "--journeys", str(journeys)]
    env_note = "pinned to CPU 0" if have_two_cpus() else "not pinned (fewer than two CPUs)"
    print(f"{journeys:,} journeys arriving over {ARRIVE_S:g} s, each waiting {WAIT_S:g} s; each side {env_note}")
    esr = run_json([*pinned(), *me, "--side", "esr"], timeout=300)
    peer = run_json([*pinned(), *me, "--side", "gevent"], timeout=300)
    rows = [
        ["journeys waiting at once", esr["peak_waiting"], peer["peak_waiting"], ""],
        ["memory per waiting journey (bytes)", esr["bytes_each"], peer["bytes_each"], f"<= {GOAL_BYTES}"],
        ["CPU per journey (us: arrive, wait, wake, end)", esr["cpu_us_each"], peer["cpu_us_each"], ""],
        ["timer lag p50 (ms)", esr["lag_p50"], peer["lag_p50"], ""],
        ["timer lag p99 (ms)", esr["lag_p99"], peer["lag_p99"], f"<= {GOAL_LAG_MS:g}"],
        ["timer lag max (ms)", esr["lag_max"], peer["lag_max"], ""],
        ["woken / complete", f"{esr['woken']:,} / {esr['complete']}", f"{peer['woken']:,} / {peer['complete']}", ""],
    ]
    print(table(["figure", "ESR (agenda entry)", "gevent greenlet (Locust)", "goal"], rows))
    ok = esr["bytes_each"] <= GOAL_BYTES and (esr["lag_p99"] or 0) <= GOAL_LAG_MS
    print(f"memory ratio ESR / gevent: {esr['bytes_each'] / max(1.0, peer['bytes_each']):.2f}; "
          f"goals {'met' if ok else 'NOT met'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    try:
        main()
    except subprocess.TimeoutExpired as exc:
        sys.exit(f"error: a side did not finish in time: {exc}")
