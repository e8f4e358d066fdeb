#!/usr/bin/env python3
"""Replay memory against the number of distinct paths: a real replay (not --dry-run) to nginx.

    python benchmarks/bench_replay_memory.py [--quick | --paths 1000000] [--top-endpoints N]
    python benchmarks/bench_replay_memory.py --paths 1000000 --lines 10000000 --span-days 366 --warp 1e9 \
        --timeout 4200

For 1,000, 100,000 and 1,000,000 distinct paths (--quick: the first two), a combined log of GET
requests to `/pages/<8 lower-case letters>` (paths the endpoint folder keeps as they are, so
every path is its own endpoint label) is replayed by `esr replay --warp 1e6 --max-in-flight 256`
to nginx on loopback, as fast as the target allows:

| distinct paths | lines | lines per path |
|---|---|---|
| 1,000 | 200,000 | 200 |
| 100,000 | 200,000 | 2 |
| 1,000,000 | 1,000,000 | 1 |
| 1,000,000 | 10,000,000 (`--lines 10000000`, the issue's figure) | 10 |

The log holds 1,000 requests per second of log time; `--span-days D` spreads them evenly over D
days instead (a year: the metric window widens to 6 h, 1,465 windows at most).

With `--kafka HOST:PORT` (a broker; `deploy/kafka/with-broker.sh` starts one), each case is
also replayed on the Kafka runtime (a metrics worker and two bot workers on a fresh topic prefix,
the same `--max-in-flight 256` for the whole run):
printed are the peak resident sets (`VmHWM`) of `esr replay` (the producer), the metrics worker
(its folds are capped as the embedded fold is) and the larger bot worker.

Printed per case: ESR's peak resident set (the child's `ru_maxrss` from `wait4`), lines/s over
the whole command (both passes: the plan and the replay), the report's rows and size, the
'other' row's label count, and the metric window with the windows and buckets the fold kept;
beside it GoAccess 1.7 (`goaccess FILE --log-format=COMBINED -o
report.json`, the issue's peer: it parses and aggregates per path in C, sending nothing) on the
same file, its peak RSS and lines/s. All traffic goes to 127.0.0.1; every case is bounded by
its line count and a timeout (`--timeout`, 15 minutes by default).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import nginx_server, table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
BASE = 1709542800  # 2024-03-04T09:00:00Z
CASES = [(1_000, 200_000), (100_000, 200_000), (1_000_000, 1_000_000)]  # (distinct paths, lines)
TIMEOUT_S = 900


def page(i: int) -> str:
    """The i-th path: 8 lower-case letters, kept as they are by the endpoint folder."""
    letters = []
    for _ in range(8):
        i, r = divmod(i, 26)
        letters.append(chr(97 + r))
    return "/pages/" + "".join(letters)


def generate(path: Path, paths: int, lines: int, span_days: float | None = None) -> None:
    """`lines` GET requests at 1,000 per second of log time (or spread evenly over `span_days`),
    cycling through `paths` paths."""
    step = span_days * 86_400 / max(1, lines - 1) if span_days else 0.001
    with open(path, "w") as out:
        chunk = []
        stamp_t, stamp = -1, ""
        for j in range(lines):
            t = BASE + int(j * step)
            if t != stamp_t:
                stamp_t, stamp = t, datetime.fromtimestamp(t, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")
            chunk.append(f'10.0.{j % 250}.{j % 7 + 1} - - [{stamp}] "GET {page(j % paths)} HTTP/1.1" 200 512 '
                         '"-" "curl/8.5.0"\n')
            if len(chunk) >= 50_000:
                out.writelines(chunk)
                chunk = []
        out.writelines(chunk)


def measured(cmd: list[str], env: dict[str, str], timeout_s: float = TIMEOUT_S) -> tuple[float, float, int, str]:
    """Run `cmd`; its wall time (s), peak RSS (MiB, from wait4), exit code and stdout (with the
    end of its stderr after a line "--- stderr" when it failed)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        deadline = t0 + timeout_s
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode()
        if proc.returncode and not text.strip():
            err.seek(0)
            text += "\n--- stderr\n" + err.read().decode()[-2000:]
        return wall, usage.ru_maxrss / 1024, proc.returncode, text


def peak_mib(pid: int) -> float:
    """A running process's peak resident set (VmHWM), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def kafka_case(bootstrap: str, log: Path, lines: int, target: str, args: argparse.Namespace) -> list[str]:
    """The same replay through Kafka: peak RSS of the producer, the metrics worker and a bot worker."""
    from bench_scaling import Pipeline

    pipe = Pipeline(bootstrap, 2, pin=False)
    try:
        wall, rss, code, out = measured(
            [PYTHON, "-m", "esr.cli", "replay", "--warp", args.warp, str(log), "--target", target, "--json",
             "--max-in-flight", "256", "--top-endpoints", str(args.top_endpoints)],
            {**pipe.env, "PYTHONPATH": str(ROOT)}, args.timeout)
        metrics = [peak_mib(proc.pid) for role, proc, _ in pipe.procs if role == "metrics"]
        bots = [peak_mib(proc.pid) for role, proc, _ in pipe.procs if role == "bots"]
    finally:
        pipe.stop()
    try:
        verdict = json.loads(out)["verdict"]
    except (json.JSONDecodeError, KeyError):
        print(out[-2000:], file=sys.stderr)
        return [f"failed (exit {code})", f"{max(metrics):,.0f} MiB", f"{max(bots):,.0f} MiB", "", ""]
    done = verdict["completeness"]
    return [f"{rss:,.0f} MiB", f"{max(metrics):,.0f} MiB", f"{max(bots):,.0f} MiB", f"{lines / wall:,.0f}",
            f"{verdict['verdict']}, {done['results_recorded']:,} results, {wall:,.0f} s"
            + (f" ({verdict['reason'][:120]})" if verdict["verdict"] != "PASS" else "")]


def goaccess_figure(goaccess: str | None, log: Path, lines: int, work: Path, env: dict[str, str]) -> str:
    """The peer on the same file: GoAccess's lines/s and peak resident set."""
    if not goaccess:
        return "goaccess not installed"
    wall, rss, code, _ = measured([goaccess, str(log), "--log-format=COMBINED", "-o", str(work / "goaccess.json"),
                                   "--no-global-config"], env)
    if code != 0:
        return f"GoAccess failed (exit {code})"
    return f"GoAccess {lines / wall:,.0f} lines/s, peak RSS {rss:,.0f} MiB"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1,000 and 100,000 distinct paths only")
    parser.add_argument("--paths", type=int, choices=[p for p, _ in CASES], help="run this case only")
    parser.add_argument("--top-endpoints", type=int, default=1000)
    parser.add_argument("--lines", type=int, help="with --paths: this many lines instead of the case's")
    parser.add_argument("--span-days", type=float, help="spread the lines evenly over this many days of log time")
    parser.add_argument("--warp", default="1e6", help="the replay's --warp (default 1e6; 1e9 for a log spread over "
                                                      "a year, so that pacing does not bound it)")
    parser.add_argument("--timeout", type=float, default=TIMEOUT_S, help=f"per command, seconds (default {TIMEOUT_S})")
    parser.add_argument("--kafka", metavar="HOST:PORT", help="also replay each case on the Kafka runtime")
    parser.add_argument("--kafka-only", action="store_true",
                        help="with --kafka: leave out the embedded replay (GoAccess still runs beside it)")
    args = parser.parse_args()
    if args.kafka_only and not args.kafka:
        parser.error("--kafka-only needs --kafka HOST:PORT")
    cases = [c for c in CASES if c[0] == args.paths] if args.paths else CASES[:2] if args.quick else CASES
    if args.lines:
        cases = [(paths, args.lines) for paths, _ in cases]
    goaccess = shutil.which("goaccess")
    work = Path(tempfile.mkdtemp(prefix="esr-bench-replay-memory-"))
    env = {**os.environ, "ESR_HOME": str(work / "home"), "PYTHONPATH": str(ROOT)}
    rows, kafka_rows = [], []
    try:
        with nginx_server() as nginx:
            for paths, lines in cases:
                log = work / f"paths-{paths}.log"
                generate(log, paths, lines, args.span_days)
                if args.kafka_only:
                    rows.append([f"{paths:,} paths, {lines:,} lines", "not run (--kafka-only)", "", "",
                                 goaccess_figure(goaccess, log, lines, work, env)])
                    kafka_rows.append([f"{paths:,} paths, {lines:,} lines",
                                       *kafka_case(args.kafka, log, lines, nginx.url, args)])
                    log.unlink()
                    continue
                wall, rss, code, out = measured(
                    [PYTHON, "-m", "esr.cli", "replay", "--warp", args.warp, str(log), "--target", nginx.url, "--json",
                     "--max-in-flight", "256", "--top-endpoints", str(args.top_endpoints)], env, args.timeout)
                if code not in (0, 1):
                    rows.append([f"{paths:,} paths, {lines:,} lines", f"failed (exit {code})", "", "", ""])
                    continue
                result = json.loads(out)
                report = Path(result["run_log"]).parent / "replay_report.json"
                endpoints = result["replay"]["comparison"]["endpoints"]
                other = endpoints.get("other", {})
                held = ("about " if other.get("labels_estimated") else "") + f"{other.get('labels', 0):,}"
                kept = result["replay"].get("metric_windows", {})
                windows = (f"; window {kept['window_s']:g} s, {kept['windows_with_data']:,} windows, "
                           f"{kept['buckets']:,} buckets" if kept else "")
                peer = goaccess_figure(goaccess, log, lines, work, env)
                rows.append([f"{paths:,} paths, {lines:,} lines", f"peak RSS {rss:,.0f} MiB",
                             f"{lines / wall:,.0f} lines/s",
                             f"{len(endpoints):,} rows, {report.stat().st_size / 1024:,.0f} KiB; other holds {held}"
                             f"{windows}; verdict {result['verdict']['verdict']}, {wall:,.0f} s",
                             peer])
                if args.kafka:
                    kafka_rows.append([f"{paths:,} paths, {lines:,} lines",
                                       *kafka_case(args.kafka, log, lines, nginx.url, args)])
                shutil.rmtree(work / "home", ignore_errors=True)  # run logs of the finished case
                log.unlink()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    span = f", log spread over {args.span_days:g} days" if args.span_days else ""
    print(f"real replay at warp {args.warp}, --max-in-flight 256, --top-endpoints {args.top_endpoints}, to nginx on "
          f"loopback{span}")
    print(table(["case", "ESR peak RSS", "ESR lines/s", "report", "peer (parse + aggregate, no sending)"], rows))
    if kafka_rows:
        print("\nthe same replays on the Kafka runtime (a metrics worker, two bot workers)")
        print(table(["case", "esr replay peak RSS", "metrics worker", "bot worker (larger)", "lines/s", "verdict"],
                    kafka_rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
