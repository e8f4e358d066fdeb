#!/usr/bin/env python3
"""(a) Sustained open-model rate on one core, ESR vs Locust and hey, against one local nginx.

    python benchmarks/bench_rate.py [--quick]

Starts nginx (temp prefix, free 127.0.0.1 port, one worker pinned to CPU 1), then, each load
generator pinned to CPU 0:

- ESR (open model, uvloop, the default `GET /` journey): a rate ladder, from --start journeys/s
  up by --step every --step-seconds, to --max. A step passes when under 1 % of journeys start
  more than 10 ms late, both by ESR's own count (verdict `late_start_rate`) and by a wall-clock
  check (`time.monotonic()` at the send; see _esr_worker.py), with no request errors and a
  complete run log. The ladder stops after two failing steps in a row; the highest passing
  step is then run twice more, and must pass both times (else the next lower step is tried).
  ESR req/s = results recorded / load seconds, mean over the confirming runs.
- Locust FastHttpUser: one process, 50 users, no wait, --locust-seconds; req/s is the slope of
  the cumulative count in the stats-history CSV ("Aggregated" rows), first and last 2 s cut.
- hey -c 50 -z --hey-seconds; req/s is its "Requests/sec:" line.

Locust and hey are closed-loop (as fast as responses come back); ESR's figure is a schedule
kept on time. nginx's own request count (stub_status) is shown as a cross-check.
Every load is bounded in count and time; the machine is noisy, so read the ratio, not the
absolute figures.
"""

from __future__ import annotations

import argparse
import csv
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import HERE, PYTHON, machine_note, nginx_server, pinned, require, run_json, table  # noqa: E402

GOAL_RATIO = 1.5
LATE_LIMIT = 0.01


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def esr_step(server, rate: float, seconds: float, home: Path) -> dict:
    before = server.served()
    res = run_json([*pinned(), PYTHON, str(HERE / "_esr_worker.py"), "--url", server.url, "--home", str(home),
                    "--rate", str(rate), "--seconds", str(seconds)], timeout=seconds * 6 + 60)
    res["nginx_seen"] = server.served() - before - 1
    late, wall_late = res["late_start_rate"], res["wall_late_rate"] or 0.0
    problems = []
    if late >= LATE_LIMIT:
        problems.append(f"late {late:.2%}")
    if wall_late >= LATE_LIMIT:
        problems.append(f"wall-clock late {wall_late:.2%}")
    if res["errors"]:
        problems.append(f"{res['errors']:.0f} errors {res['errors_by_kind']}")
    if not res["complete"] or res["status"] not in ("PASS", "FAIL"):
        problems.append(f"status {res['status']}: {res['reason']}")
    res["passed"] = not problems
    res["problems"] = problems
    log(f"  ESR {rate:>8,.0f}/s x {seconds:g}s: {'pass' if not problems else 'FAIL'}  "
        f"recorded {res['requests']:,.0f} ({res['achieved_rps']:,.0f}/s), nginx saw {res['nginx_seen']:,}, "
        f"late {late:.2%} (wall {wall_late:.2%}), send lag p99 {res['wall_lag_ms']['p99']:.1f} ms"
        + (f"  [{'; '.join(problems)}]" if problems else ""))
    return res


def esr_ladder(server, a, home: Path) -> tuple[float | None, list[dict], list[dict]]:
    steps: list[dict] = []
    rate, fails_in_row = a.start, 0
    while rate <= a.max:
        r = esr_step(server, rate, a.step_seconds, home)
        steps.append(r)
        fails_in_row = 0 if r["passed"] else fails_in_row + 1
        if fails_in_row >= 2:
            break
        rate += a.step
    passing = sorted({r["rate"] for r in steps if r["passed"]}, reverse=True)
    confirms: list[dict] = []
    for candidate in passing[:4]:  # bounded: at most 4 candidates, 2 runs each
        log(f"  confirming {candidate:,.0f}/s twice")
        runs = [esr_step(server, candidate, a.step_seconds, home)]
        if runs[0]["passed"]:
            runs.append(esr_step(server, candidate, a.step_seconds, home))
        confirms.extend(runs)
        if all(r["passed"] for r in runs) and len(runs) == 2:
            return candidate, steps, confirms
    return None, steps, confirms


def locust(server, seconds: float, workdir: Path) -> dict:
    prefix = workdir / "locust"
    before = server.served()
    cmd = [*pinned(), PYTHON, "-m", "locust", "-f", str(HERE / "_locustfile.py"), "--headless",
           "-u", "50", "-r", "50", "--run-time", f"{seconds:g}s", "--host", server.url,
           "--csv", str(prefix), "--csv-full-history", "--only-summary", "--stop-timeout", "2",
           "--loglevel", "WARNING"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    seen = server.served() - before - 1
    history = Path(f"{prefix}_stats_history.csv")
    if not history.exists():
        raise RuntimeError(f"locust wrote no stats history (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    rows = [r for r in csv.DictReader(history.open()) if r["Name"] == "Aggregated"]
    points = [(int(r["Timestamp"]), int(r["Total Request Count"])) for r in rows]
    lo, hi = points[0][0] + 2, points[-1][0] - 2
    window = [p for p in points if lo <= p[0] <= hi]
    (ta, ca), (tb, cb) = window[0], window[-1]
    failures = int(rows[-1]["Total Failure Count"])
    rps = (cb - ca) / (tb - ta) if tb > ta else float("nan")
    log(f"  Locust: steady {rps:,.0f} req/s over {tb - ta}s, total {points[-1][1]:,}, failures {failures}, "
        f"nginx saw {seen:,} (exit {proc.returncode})")
    return {"rps": rps, "window_s": tb - ta, "total": points[-1][1], "failures": failures, "nginx_seen": seen}


def hey(server, seconds: float) -> dict:
    binary = require("hey")
    before = server.served()
    proc = subprocess.run([*pinned(), binary, "-z", f"{seconds:g}s", "-c", "50", server.url + "/"],
                          capture_output=True, text=True, timeout=seconds + 60)
    seen = server.served() - before - 1
    m = re.search(r"Requests/sec:\s+([\d.]+)", proc.stdout)
    if not m:
        raise RuntimeError(f"no Requests/sec in hey output (exit {proc.returncode}):\n"
                           f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    codes = re.findall(r"\[(\d+)\]\s+(\d+) responses", proc.stdout)
    errors = sum(int(n) for c, n in codes if c != "200")
    errors += sum(int(n) for n in re.findall(r"^\s+\[(\d+)\]\s+Get ", proc.stdout, re.M))
    rps = float(m.group(1))
    log(f"  hey: {rps:,.0f} req/s, non-200/errors {errors}, nginx saw {seen:,}")
    return {"rps": rps, "errors": errors, "nginx_seen": seen}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="short steps and peer runs (about 1 min)")
    ap.add_argument("--start", type=float, default=10_000)
    ap.add_argument("--step", type=float, default=2_000)
    ap.add_argument("--max", type=float, default=40_000)
    ap.add_argument("--step-seconds", type=float, default=None, help="default 5 (quick: 3)")
    ap.add_argument("--locust-seconds", type=float, default=None, help="default 15 (quick: 8)")
    ap.add_argument("--hey-seconds", type=float, default=None, help="default 10 (quick: 5)")
    a = ap.parse_args()
    a.step_seconds = a.step_seconds or (3 if a.quick else 5)
    a.locust_seconds = a.locust_seconds or (8 if a.quick else 15)
    a.hey_seconds = a.hey_seconds or (5 if a.quick else 10)
    for name in ("step_seconds", "locust_seconds", "hey_seconds"):
        if not 0 < getattr(a, name) <= 60:
            ap.error(f"--{name.replace('_', '-')} must be in (0, 60]")
    if a.locust_seconds < 8:
        ap.error("--locust-seconds must be at least 8 (the first and last 2 s are cut from the slope)")
    if not (0 < a.start <= a.max <= 200_000 and a.step > 0):
        ap.error("need 0 < --start <= --max <= 200000 and --step > 0")
    require("nginx")
    require("hey")

    sys.stdout.reconfigure(line_buffering=True)
    started = time.monotonic()
    with nginx_server() as server, tempfile.TemporaryDirectory(prefix="esr-bench-rate-") as tmp:
        log(f"nginx on {server.url}; {machine_note()}")
        log(f"ESR ladder: {a.start:,.0f} to {a.max:,.0f}/s, +{a.step:,.0f}, {a.step_seconds:g}s per step")
        best, steps, confirms = esr_ladder(server, a, Path(tmp))
        log("Locust (50 users, FastHttpUser, no wait)")
        loc = locust(server, a.locust_seconds, Path(tmp))
        log("hey (-c 50)")
        he = hey(server, a.hey_seconds)

    final = [r for r in confirms if r["rate"] == best]  # the two passing confirm runs
    nan = float("nan")
    esr_rps = sum(r["achieved_rps"] for r in final) / len(final) if final else nan
    late = max((r["late_start_rate"] for r in final), default=nan)
    wall_late = max((r["wall_late_rate"] for r in final), default=nan)
    ratio = esr_rps / loc["rps"] if loc["rps"] else float("nan")

    print(f"bench_rate ({'quick' if a.quick else 'full'}): {machine_note()}; "
          "target: nginx, 1 worker, GET / -> 200 \"ok\"")
    print(table(
        ["generator", "req/s", "model", "late starts", "errors", "measured as"],
        [
            ["ESR (uvloop, 1 process)", esr_rps, "open, Poisson",
             f"{late:.2%} (wall {wall_late:.2%})" if best is not None else "n/a",
             int(sum(r["errors"] for r in final)),
             f"step {best:,.0f}/s passed 2 x {a.step_seconds:g}s" if best is not None
             else f"no step from {a.start:,.0f}/s passed"],
            ["Locust FastHttpUser", loc["rps"], "closed, 50 users", "-", loc["failures"],
             f"CSV slope, {loc['window_s']}s of {a.locust_seconds:g}s"],
            ["hey -c 50", he["rps"], "closed, 50 conns", "-", he["errors"], f"Requests/sec, {a.hey_seconds:g}s"],
        ]))
    print(f"ESR / Locust = {ratio:.2f}   (goal >= {GOAL_RATIO}: {'met' if ratio >= GOAL_RATIO else 'NOT met'})")
    print(f"ESR / hey    = {esr_rps / he['rps']:.2f}")
    ladder = ", ".join(f"{r['rate'] / 1000:g}k {'ok' if r['passed'] else 'FAIL'}" for r in steps)
    confirm = ", ".join(f"{r['rate'] / 1000:g}k {'ok' if r['passed'] else 'FAIL'}" for r in confirms)
    print(f"ESR ladder ({a.step_seconds:g}s steps): {ladder}; confirm runs: {confirm}")
    print(f"(ESR req/s: results recorded / load seconds, mean of the confirm runs; a step passes with <1% of "
          f"starts >10 ms late by ESR's count and by the wall clock, no errors. {len(steps) + len(confirms)} ESR "
          f"runs, {time.monotonic() - started:.0f}s in all. Noisy machine: compare ratios.)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
