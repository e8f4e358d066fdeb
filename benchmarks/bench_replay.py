#!/usr/bin/env python3
"""(e) Replay speed (issue 17, point 7): `esr replay --dry-run` lines/s beside GoAccess on the same
combined log, with memory flat; a real replay of >= 5,000 requests/s on one core, < 1 % sent late;
and the send schedule's fidelity at warp 120.

    python benchmarks/bench_replay.py [--quick]

Needs nginx and goaccess from Debian (`apt-get install -y nginx goaccess`). In one run, against a
throw-away nginx on 127.0.0.1 (pinned to CPU 1):

1. Dry run beside GoAccess: a generated combined log of 1,000,000 lines (--quick 200,000) read end
   to end by the real command, `esr replay LOG --warp 60 --target NGINX --dry-run` (a subprocess,
   start to exit: interpreter start, imports, format detection, the CLF reader, the reorder
   window, selection, redaction, the plan), and by `goaccess LOG --log-format=COMBINED -o
   report.json`, which parses and aggregates the same file in C. Both pinned to CPU 0. Lines/s
   (best of 2), the ratio, each one's peak RSS (the child's own `ru_maxrss`, from `os.wait4`), and
   ESR's resident set sampled every 0.1 s, shown at each tenth of the run: flat means the stream
   does not hold the log. Goal: ESR >= 2x GoAccess.
2. Real replay on one core: `esr replay` pinned to CPU 0 (nginx on CPU 1) of 60,000 lines logged
   50 to a second (--quick 30,000), at warp 120: 6,000 requests/s planned for 10 s (--quick 5 s).
   Requests/s = results in the run log / (run finished - run started); late = sent more than the
   run's late threshold (10 ms) after its intended time, from the run log's
   `latency_ms - raw_latency_ms` and from the replay's own count (`late_starts`, taken when each
   request is handed to its task). Goal: >= 5,000 requests/s with < 1 % late.
3. Fidelity: 20 minutes of log at 8.33 requests/s replayed at warp 120 (1,000 requests/s
   for 10 s); send lag p50 / p99 / max. Goal p99 <= 5 ms, as for scenarios.
All traffic goes to 127.0.0.1; every load is bounded in count and time.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_note, nginx_server, percentile, pinned, require, table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
BASE = 1709542800  # 2024-03-04T09:00:00Z
AGENTS = ['"Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"',
          '"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0"',
          '"curl/8.5.0"', '"-"']
PATHS = ["/", "/claims", "/claims/{n}", "/claims/{n}/status", "/static/app.js", "/login"]
DRY_WARP = 60
REAL_WARP, REAL_PER_SECOND = 120, 50  # 6,000 requests/s planned
GOAL_RATIO, GOAL_RATE, GOAL_LATE = 2.0, 5_000, 0.01


def generate(path: Path, lines: int, per_second: float) -> None:
    """A combined log: GET requests at `per_second`, varied clients, paths and agents."""
    rng = random.Random(1)
    stamps: dict[int, str] = {}
    with open(path, "w") as out:
        chunk = []
        for i in range(lines):
            t = BASE + int(i / per_second)
            stamp = stamps.get(t)
            if stamp is None:
                stamps.clear()
                stamp = stamps[t] = datetime.fromtimestamp(t, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")
            target = rng.choice(PATHS).replace("{n}", str(rng.randrange(100000)))
            chunk.append(f'10.{i % 250}.{(i >> 8) % 250}.{i % 7 + 1} - - [{stamp}] "GET {target} HTTP/1.1" 200 '
                         f'{rng.randrange(100, 9000)} "https://claims.example/" {rng.choice(AGENTS)}\n')
            if len(chunk) >= 50_000:
                out.writelines(chunk)
                chunk = []
        out.writelines(chunk)


@dataclass
class Child:
    """One finished subprocess: wall seconds from start to exit (a blocking `os.wait4`), its own peak
    resident set (MiB, the child's `ru_maxrss`), its resident set sampled every 0.1 s (MiB) by a
    thread, its exit code and stdout."""

    seconds: float
    peak_mib: float
    samples: list[float]
    code: int
    stdout: str


def run_child(cmd: list[str], env: dict[str, str], timeout: float = 900) -> Child:
    samples: list[float] = []
    done = threading.Event()

    def sample(pid: int) -> None:
        while not done.wait(0.1):
            try:
                status_text = Path(f"/proc/{pid}/status").read_text()
                kb = next(int(line.split()[1]) for line in status_text.splitlines() if line.startswith("VmRSS:"))
                samples.append(kb / 1024)
            except (OSError, StopIteration):
                pass

    with tempfile.TemporaryFile() as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.DEVNULL, env=env)
        sampler = threading.Thread(target=sample, args=(proc.pid,), daemon=True)
        sampler.start()
        killer = threading.Timer(timeout, proc.kill)  # bounded in time whatever happens
        killer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            seconds = time.perf_counter() - t0
            killer.cancel()
            done.set()
            sampler.join()
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        out.seek(0)
        return Child(seconds, usage.ru_maxrss / 1024, samples, code, out.read().decode())


def best_of_2(cmd: list[str], env: dict[str, str], lines: int) -> tuple[float, float, list[float]]:
    """Lines/s of the faster of 2 runs, the larger peak RSS (MiB) and the faster run's samples."""
    runs = [run_child(cmd, env) for _ in range(2)]
    for run in runs:
        if run.code != 0:
            raise RuntimeError(f"{' '.join(cmd)} exited {run.code}")
    fastest = min(runs, key=lambda r: r.seconds)
    return lines / fastest.seconds, max(r.peak_mib for r in runs), fastest.samples


def tenths(samples: list[float]) -> str:
    if not samples:
        return "-"
    picks = [samples[min(len(samples) - 1, int(len(samples) * k / 10))] for k in range(1, 11)]
    return " ".join(f"{v:.0f}" for v in picks)


def run_events(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def dry_run_vs_goaccess(work: Path, env: dict[str, str], lines: int, url: str) -> tuple[list[list], str]:
    log = work / "combined.log"
    generate(log, lines, per_second=50)
    ours, our_peak, samples = best_of_2([*pinned(), PYTHON, "-m", "esr.cli", "replay", str(log), "--warp",
                                         str(DRY_WARP), "--target", url, "--dry-run"], env, lines)
    report = work / "report.json"
    theirs, their_peak, _ = best_of_2([*pinned(), require("goaccess"), str(log), "--log-format=COMBINED",
                                       "-o", str(report), "--no-global-config"], env, lines)
    log.unlink()
    ratio = ours / theirs
    rows = [[f"--dry-run, {lines:,} combined lines, lines/s", f"{ours:,.0f}", f"GoAccess {theirs:,.0f}",
             f"ratio {ratio:.2f}"],
            ["  peak RSS", f"{our_peak:.0f} MiB", f"GoAccess {their_peak:.0f} MiB",
             "ESR RSS at each tenth (MiB): " + tenths(samples)]]
    return rows, f"ESR --dry-run >= 2x GoAccess: {met(ratio >= GOAL_RATIO)} ({ratio:.2f})"


def real_replay(work: Path, env: dict[str, str], lines: int, nginx: Any) -> tuple[list[list], str]:
    log = work / "dense.log"
    generate(log, lines, per_second=REAL_PER_SECOND)
    planned = REAL_PER_SECOND * REAL_WARP
    before = nginx.served()
    run = run_child([*pinned(), PYTHON, "-m", "esr.cli", "replay", str(log), "--warp", str(REAL_WARP),
                     "--target", nginx.url, "--json"], env, timeout=120)
    served = nginx.served() - before - 1
    if not run.stdout.strip():
        raise RuntimeError(f"the real replay printed nothing (exit {run.code})")
    out = json.loads(run.stdout)
    events = run_events(Path(out["run_log"]))
    started = next(e for e in events if e["type"] == "run_started")
    finished = next(e for e in events if e["type"] == "run_finished")
    threshold = float(started["scenario"].get("late_threshold_ms", 10.0))
    lags = sorted(e["latency_ms"] - e["raw_latency_ms"] for e in events if e["type"] == "result")
    errors = sum(1 for e in events if e["type"] == "result" and e.get("error"))
    seconds = finished["real_time"] - started["real_time"]
    rate = len(lags) / seconds
    late_log = sum(1 for lag in lags if lag > threshold) / len(lags)
    late_own = finished["late_starts"] / max(1, finished["requests_sent"])
    ok = rate >= GOAL_RATE and max(late_log, late_own) < GOAL_LATE and len(lags) == lines
    rows = [[f"real replay on one core, {lines:,} lines at warp {REAL_WARP} ({planned:,}/s planned)",
             f"{rate:,.0f} req/s", f"{len(lags):,} results in {seconds:.2f} s; nginx saw {served:,}",
             f"{errors:,} errors"],
            [f"  sent > {threshold:g} ms late", f"{late_log:.2%}", f"replay's own count {late_own:.2%}",
             f"lag p50 {percentile(lags, 50):.2f} ms, p99 {percentile(lags, 99):.2f} ms, max {lags[-1]:.2f} ms"]]
    return rows, f">= 5,000 req/s with < 1 % late: {met(ok)} ({rate:,.0f} req/s, {max(late_log, late_own):.2%} late)"


def fidelity(work: Path, env: dict[str, str], url: str) -> tuple[list[list], str]:
    log = work / "fidelity.log"
    generate(log, 10_000, per_second=1000 / 120)
    run = run_child([*pinned(), PYTHON, "-m", "esr.cli", "replay", "--warp", "120", str(log), "--target", url,
                     "--json"], env, timeout=120)
    events = run_events(Path(json.loads(run.stdout)["run_log"]))
    lags = sorted(e["latency_ms"] - e["raw_latency_ms"] for e in events if e["type"] == "result")
    p99 = percentile(lags, 99)
    return ([["send lag at warp 120 (1,000 req/s)", f"p99 {p99:.2f} ms",
              f"p50 {percentile(lags, 50):.2f} ms, max {lags[-1]:.2f} ms", f"{len(lags):,} requests"]],
            f"send lag p99 <= 5 ms: {met(p99 <= 5)} ({p99:.2f} ms)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    dry_lines, real_lines = (200_000, 30_000) if args.quick else (1_000_000, 60_000)
    require("goaccess")
    work = Path(tempfile.mkdtemp(prefix="esr-bench-replay-"))
    env = {**os.environ, "ESR_HOME": str(work / "home")}
    rows: list[list] = []
    goals: list[str] = []
    try:
        with nginx_server() as nginx:
            for section in (lambda: dry_run_vs_goaccess(work, env, dry_lines, nginx.url),
                            lambda: real_replay(work, env, real_lines, nginx),
                            lambda: fidelity(work, env, nginx.url)):
                more, goal = section()
                rows += more
                goals.append(goal)
    finally:
        subprocess.run(["rm", "-rf", str(work)], check=False)
    print(machine_note())
    print(table(["measure", "ESR", "peer / detail", "note"], rows))
    print("\n".join(goals))
    return 0


if __name__ == "__main__":
    sys.exit(main())
