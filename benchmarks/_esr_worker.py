"""One ESR run in this process (embedded runtime, uvloop), as a subprocess the benchmarks pin.

    python benchmarks/_esr_worker.py --url http://127.0.0.1:PORT --rate 20000 --seconds 5 [--lags]

Prints one JSON line: ESR's own figures (from the verdict, and with --lags the send lag
`latency_ms - raw_latency_ms` of every result in the run log) and a wall-clock cross-check.

The cross-check: ESR reads `loop.time()`, which under uvloop is libuv's cached clock (whole
milliseconds, refreshed once per loop iteration). Work done later in the same iteration is
invisible to it, so ESR's own lag can read lower than the real one. `CheckedRun.send` notes
`time.monotonic() - intended` (same clock, full resolution, read at the moment of sending) for
every request; for the default one-request journey that is also the journey's start lag. It
adds one clock read and one list append per request, nothing else.
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--rate", type=float, required=True, help="journey starts per real second")
    ap.add_argument("--seconds", type=float, required=True, help="real seconds of load")
    ap.add_argument("--lags", action="store_true", help="read the run log for per-request send lag")
    ap.add_argument("--max-in-flight", type=int, default=2000)
    ap.add_argument("--keep", action="store_true", help="keep the run directory (path is printed)")
    ap.add_argument("--home", default=None, help="make the run directory under this one (the caller cleans up)")
    a = ap.parse_args()

    import uvloop

    from esr.bus.runlog import read_events
    from esr.core.events import RequestResult
    from esr.core.scenario import Scenario
    from esr.core.targets import TargetRegistry
    from esr.engine.runner import Run

    wall_lag: list[float] = []  # seconds, time.monotonic() at send - intended
    skew: list[float] = []

    class CheckedRun(Run):
        """Times each send as the scheduler lets it go (`Scheduler.sending`, called by the Pacer
        right before the request leaves) against its intended time (`Dispatch.due`)."""

        def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            super().__init__(*args, **kwargs)
            sending = self.scheduler.sending

            def timed(dispatch):  # type: ignore[no-untyped-def]
                wall_lag.append(time.monotonic() - dispatch.due)
                return sending(dispatch)

            self.scheduler.sending = timed  # type: ignore[method-assign]

    home = Path(tempfile.mkdtemp(prefix="esr-bench-run-", dir=a.home))
    try:
        scenario = Scenario(name="bench", duration_hours=a.seconds / 60, time_warp=60,
                            load_profile=[(0, a.rate)], max_in_flight=a.max_in_flight)
        run = CheckedRun(scenario, TargetRegistry().resolve(a.url), home=home)

        async def go():
            import asyncio
            loop = asyncio.get_running_loop()
            skew.append(time.monotonic() - loop.time())  # how far the loop clock trails monotonic
            return await run.execute()

        t0 = time.perf_counter()
        verdict = uvloop.run(go())
        wall = time.perf_counter() - t0
        s, g = verdict.summary, verdict.generator
        out = {
            "rate": a.rate, "seconds": a.seconds, "status": verdict.status, "reason": verdict.reason,
            "planned": run.counts.arrivals_planned, "started": run.counts.journeys_started,
            "requests": s["requests"], "errors": s["errors"], "error_rate": s["error_rate"],
            "errors_by_kind": {k[7:]: v for k, v in s.items() if k.startswith("errors_")},
            "achieved_rps": (s["requests"] or 0) / a.seconds,
            "late_start_rate": g["late_start_rate"], "late_starts": g["late_starts"],
            "latency_p99_ms": s["latency_p99_ms"], "raw_latency_p99_ms": s["raw_latency_p99_ms"],
            "complete": verdict.completeness.get("complete"),
            "wall_s": wall, "loop_clock_skew_ms": skew[0] * 1000 if skew else None,
            "gc_enabled_after": gc.isenabled(),
        }
        wall_lag.sort()
        out["wall_sends"] = len(wall_lag)
        out["wall_late_rate"] = (sum(1 for x in wall_lag if x * 1000 > scenario.late_threshold_ms)
                                 / len(wall_lag)) if wall_lag else None
        out["wall_lag_ms"] = _pcts([x * 1000 for x in wall_lag])
        if a.lags:
            lags = sorted(e.latency_ms - e.raw_latency_ms for e in read_events(run.log_path)
                          if type(e) is RequestResult)
            out["log_results"] = len(lags)
            out["log_lag_ms"] = _pcts(lags)
        if a.keep:
            out["run_log"] = str(run.log_path)
        print(json.dumps(out), flush=True)
    finally:
        if not a.keep:
            shutil.rmtree(home, ignore_errors=True)


def _pcts(sorted_ms: list[float]) -> dict[str, float | None]:
    if not sorted_ms:
        return {"p50": None, "p99": None, "max": None, "min": None}
    n = len(sorted_ms)
    def pct(p: float) -> float:
        return sorted_ms[max(0, min(n - 1, int(-(-p * n // 100)) - 1))]
    return {"p50": pct(50), "p99": pct(99), "p999": pct(99.9), "max": sorted_ms[-1], "min": sorted_ms[0]}


if __name__ == "__main__":
    main()
