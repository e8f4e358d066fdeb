#!/usr/bin/env python3
"""(c) Folding result events into metric buckets, one thread: ESR's RunFold vs Locust's stats.

    python benchmarks/bench_fold.py [--quick] [--events N] [--repeat 3]

Builds N `RequestResult` events (default 1,000,000; --quick 200,000) with realistic values
(six endpoints of three journeys, lognormal latencies per endpoint, 1 % errors of the five
kinds, simulated times spread over 24 h in log order) after one `RunStarted`, encodes them to
JSON lines with `esr.bus.codec.encode`, then times, best of --repeat:

- ESR fold: `esr.core.buckets.RunFold().apply_all(events)` on the already-decoded events;
- ESR decode + fold: from the JSON-lines bytes, `esr.bus.codec.decode` per line, then
  `RunFold.apply` (as `esr judge` does from a log, minus the file read);
- peer: Locust's own aggregation over the same events, as its runner does per request:
  `RequestStats().log_request(method, name, response_time, content_length)`, plus
  `log_error(method, name, error)` for the errors.

Everything runs in this process on one thread (no pinning). ESR is timed before Locust is
imported (importing locust monkey-patches the standard library through gevent).
Goals: ESR fold >= 300,000 events/s, and at least Locust's events/s in the same run.
"""

from __future__ import annotations

import argparse
import gc
import io
import math
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import table  # noqa: E402

GOAL_EPS = 300_000
WARP = 60.0
DAY_S = 24 * 3600.0

# endpoint label -> (journey, step, median latency ms, lognormal sigma, typical bytes, weight)
ENDPOINTS = {
    "GET /claims": ("browse", "list", 35.0, 0.5, 4200, 30),
    "GET /claims/{id}": ("browse", "detail", 18.0, 0.6, 1500, 25),
    "POST /claims": ("file_claim", "submit", 120.0, 0.7, 300, 12),
    "POST /claims/{id}/documents": ("file_claim", "upload", 260.0, 0.8, 120, 8),
    "GET /claims/{id}/status": ("check_status", "poll", 12.0, 0.4, 90, 20),
    "POST /login": ("check_status", "login", 60.0, 0.5, 400, 5),
}
ERRORS = [("5xx", 503, 0.45), ("timeout", 0, 0.2), ("4xx", 404, 0.2), ("connect", 0, 0.1), ("protocol", 0, 0.05)]


def make_events(n: int, seed: int = 7) -> list:
    from esr.core.events import RequestResult, RunStarted
    from esr.core.scenario import Scenario

    rng = random.Random(seed)
    run_id = "20261127-090000-abc123"
    epoch0 = 1_795_000_000.0
    scenario = Scenario(name="fold-bench", duration_hours=24, time_warp=WARP,
                        load_profile=[(0, 2), (7, 12), (9, 25), (17, 10), (22, 3)])
    started = RunStarted(run_id=run_id, seq=1, sim_time=0.0, real_time=epoch0, scenario=scenario.to_dict(),
                         target="http://127.0.0.1:8080", seed=0, sim_start="2026-11-27T00:00:00+00:00",
                         time_warp=WARP, drain_warp=WARP, load_end_sim=DAY_S, window_s=60.0,
                         arrivals_planned=n)
    labels = list(ENDPOINTS)
    weights = [ENDPOINTS[e][5] for e in labels]
    picks = rng.choices(labels, weights, k=n)
    sims = sorted(rng.random() * DAY_S for _ in range(n))
    error_kinds = [k for k, _, _ in ERRORS]
    error_weights = [w for _, _, w in ERRORS]
    events = [started]
    lognorm, rand = rng.lognormvariate, rng.random
    for i in range(n):
        endpoint = picks[i]
        journey, step, median, sigma, size, _ = ENDPOINTS[endpoint]
        raw = lognorm(math.log(median), sigma)
        error = None
        status = 200
        body = int(size * (0.5 + rand()))
        if rand() < 0.01:
            error = rng.choices(error_kinds, error_weights)[0]
            status = {"5xx": 503, "4xx": 404}.get(error, 0)
            if error == "timeout":
                raw = 30_000.0 + rand() * 5
            elif error == "connect":
                raw = rand() * 2
            body = 0 if status == 0 else 60
        lag = lognorm(math.log(0.4), 0.9)  # send lag, ms
        sim = sims[i]
        events.append(RequestResult(
            run_id=run_id, seq=i + 2, sim_time=sim, real_time=epoch0 + sim / WARP, user=i // 3,
            journey=journey, step=step, endpoint=endpoint, status=status, latency_ms=raw + lag,
            raw_latency_ms=raw, bytes=body, error=error))
    return events


def best_of(repeat: int, fn) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times), result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="200,000 events")
    ap.add_argument("--events", type=int, default=None, help="default 1,000,000 (quick: 200,000)")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per measurement; the best counts")
    a = ap.parse_args()
    n = a.events or (200_000 if a.quick else 1_000_000)
    if not (1 <= n <= 5_000_000 and 1 <= a.repeat <= 10):
        ap.error("need 1 <= --events <= 5,000,000 and 1 <= --repeat <= 10")
    sys.stdout.reconfigure(line_buffering=True)
    print(f"building {n:,} events ...", file=sys.stderr, flush=True)

    from esr.bus.codec import decode, encode
    from esr.core.buckets import RunFold

    t0 = time.perf_counter()
    events = make_events(n)
    blob = b"".join(encode(e) for e in events)
    build_s = time.perf_counter() - t0
    gc.collect()
    gc.freeze()  # the 1M input events are long-lived for all three contenders alike
    print(f"  built in {build_s:.1f}s; {len(blob) / len(events):.0f} bytes per JSON line", file=sys.stderr, flush=True)

    def fold_decoded() -> RunFold:
        return RunFold().apply_all(events)

    def decode_and_fold() -> RunFold:
        fold = RunFold()
        apply = fold.apply
        for number, line in enumerate(io.BytesIO(blob), 1):
            apply(decode(line, f"bench:{number}"))
        return fold

    fold_s, fold = best_of(a.repeat, fold_decoded)
    dec_s, fold2 = best_of(a.repeat, decode_and_fold)
    whole, whole2 = fold.merged(), fold2.merged()
    assert whole == whole2, "decode+fold disagrees with fold"

    # the peer, only now: importing locust patches the standard library (gevent)
    import locust
    from locust.stats import RequestStats

    results = events[1:]
    split = {e: tuple(e.split(" ", 1)) for e in ENDPOINTS}

    def locust_stats() -> RequestStats:
        stats = RequestStats()
        log_request, log_error = stats.log_request, stats.log_error
        for e in results:
            method, name = split[e.endpoint]
            log_request(method, name, e.latency_ms, e.bytes)
            if e.error is not None:
                log_error(method, name, e.error)
        return stats

    loc_s, stats = best_of(a.repeat, locust_stats)

    # same inputs, same totals
    assert stats.total.num_requests == whole.requests == n, (stats.total.num_requests, whole.requests, n)
    assert stats.total.num_failures == whole.error_count, (stats.total.num_failures, whole.error_count)

    eps = len(events) / fold_s
    dec_eps = len(events) / dec_s
    loc_eps = len(results) / loc_s
    print(f"bench_fold ({'quick' if a.quick else 'full'}): {n:,} RequestResult events + 1 RunStarted; "
          f"one thread, Python {sys.version.split()[0]}, locust {locust.__version__}; best of {a.repeat}")
    print(table(
        ["contender", "events/s", "seconds", "vs Locust", "state kept"],
        [
            ["ESR RunFold.apply_all (decoded events)", eps, fold_s, f"{eps / loc_eps:.2f}x",
             f"{len(fold.buckets):,} buckets (1-min window x endpoint), 2 DDSketches each"],
            ["ESR decode + fold (JSON lines)", dec_eps, dec_s, f"{dec_eps / loc_eps:.2f}x", "same"],
            ["Locust RequestStats.log_request/log_error", loc_eps, loc_s, "1.00x",
             f"{len(stats.entries)} entries + total, rounded response-time dicts"],
        ]))
    print(f"goal ESR fold >= {GOAL_EPS:,} events/s: {'met' if eps >= GOAL_EPS else 'NOT met'} ({eps:,.0f}/s); "
          f"decode alone ~{len(events) / max(dec_s - fold_s, 1e-9):,.0f} lines/s")
    print(f"goal ESR fold >= Locust RequestStats: {'met' if eps >= loc_eps else 'NOT met'} ({eps / loc_eps:.2f}x)")
    print(f"(totals agree: {whole.requests:,} requests, {whole.error_count:,} errors "
          f"({whole.error_count / whole.requests:.2%}), {len(fold.endpoints)} endpoints; "
          f"p95 {whole.latency.quantile(0.95):.1f} ms; Locust's view differs only in resolution)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
