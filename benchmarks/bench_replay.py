#!/usr/bin/env python3
"""(e) Replay: log parsing speed beside GoAccess, flat memory over 10 million lines, and the
send schedule's fidelity at warp 120.

    python benchmarks/bench_replay.py [--quick]

Needs nginx and goaccess from Debian (`apt-get install -y nginx goaccess`). In one run:

1. Parsing: a generated combined-format log (2,000,000 lines; --quick 300,000), read by
   ESR's log stream (format detection, the CLF reader, the reorder window: what a replay
   reads) and by GoAccess (`goaccess FILE --log-format=COMBINED -o report.json`), which
   parses and aggregates the same file in C. Lines/s, best of 2.
2. Memory: `esr replay --dry-run` over 10,000,000 lines (--quick 2,000,000), its resident set
   sampled every 0.2 s; and a real replay of 1,000,000 lines (--quick 200,000) against nginx as
   fast as the target allows. Peak RSS and the RSS at each tenth of the run: flat means the
   stream does not hold the logs.
3. Fidelity: 20 minutes of log at 8.33 requests/s replayed at warp 120 (1,000 requests/s
   for 10 s) against nginx; send lag (actual send - intended send) from the run log's
   `latency_ms - raw_latency_ms`, p50 / p99 / max. Goal p99 <= 5 ms, as for scenarios.
All traffic goes to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import nginx_server, require, table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PYTHON = sys.executable
BASE = 1709542800  # 2024-03-04T09:00:00Z
AGENTS = ['"Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"',
          '"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0"',
          '"curl/8.5.0"', '"-"']
PATHS = ["/", "/claims", "/claims/{n}", "/claims/{n}/status", "/static/app.js", "/login"]


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


def esr_parse(path: Path) -> float:
    from esr.replay.sources import LogStream

    best = 0.0
    for _ in range(2):
        t0 = time.perf_counter()
        count = sum(1 for _ in LogStream([path]))
        best = max(best, count / (time.perf_counter() - t0))
    return best


def goaccess_parse(path: Path, lines: int) -> float:
    binary = require("goaccess")
    best = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(2):
            t0 = time.perf_counter()
            subprocess.run([binary, str(path), "--log-format=COMBINED", "-o", f"{tmp}/report.json",
                            "--no-global-config"], check=True, capture_output=True, timeout=600)
            best = max(best, lines / (time.perf_counter() - t0))
    return best


def rss_profile(cmd: list[str], env: dict[str, str]) -> tuple[list[float], int, str]:
    """Run `cmd`, sampling its resident set (MiB) every 0.2 s; returns samples, exit code, stdout."""
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.DEVNULL, env=env)
        samples = []
        while proc.poll() is None:
            try:
                status = Path(f"/proc/{proc.pid}/status").read_text()
                kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
                samples.append(kb / 1024)
            except (OSError, StopIteration):
                pass
            time.sleep(0.2)
        out.seek(0)
        return samples, proc.returncode, out.read().decode()


def tenths(samples: list[float]) -> str:
    if not samples:
        return "-"
    picks = [samples[min(len(samples) - 1, int(len(samples) * k / 10))] for k in range(1, 11)]
    return " ".join(f"{v:.0f}" for v in picks)


def send_lags(log: Path) -> list[float]:
    lags = []
    for line in log.read_text().splitlines():
        event = json.loads(line)
        if event["type"] == "result":
            lags.append(event["latency_ms"] - event["raw_latency_ms"])
    return sorted(lags)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    parse_lines, memory_lines, send_lines = (300_000, 2_000_000, 200_000) if args.quick else (
        2_000_000, 10_000_000, 1_000_000)
    work = Path(tempfile.mkdtemp(prefix="esr-bench-replay-"))
    env = {**os.environ, "ESR_HOME": str(work / "home")}
    rows = []
    try:
        log = work / "parse.log"
        generate(log, parse_lines, per_second=50)
        ours, theirs = esr_parse(log), goaccess_parse(log, parse_lines)
        rows.append([f"parse {parse_lines:,} combined lines", f"{ours:,.0f} lines/s",
                     f"GoAccess {theirs:,.0f} lines/s", f"ratio {ours / theirs:.2f}"])

        big = work / "big.log"
        generate(big, memory_lines, per_second=200)
        samples, code, _ = rss_profile([PYTHON, "-m", "esr.cli", "replay", "--warp", "1", str(big), "--dry-run",
                                        "--json"], env)
        assert code == 0, "the dry run failed"
        rows.append([f"dry run over {memory_lines:,} lines", f"peak RSS {max(samples):.0f} MiB",
                     "RSS at each tenth (MiB): " + tenths(samples), ""])
        big.unlink()

        with nginx_server() as nginx:
            sent = work / "send.log"
            generate(sent, send_lines, per_second=1000)
            samples, code, out = rss_profile([PYTHON, "-m", "esr.cli", "replay", "--warp", "1000000", str(sent),
                                              "--target", nginx.url, "--json", "--max-in-flight", "256"], env)
            result = json.loads(out)
            requests = result["verdict"]["summary"]["requests"]
            rows.append([f"replay of {send_lines:,} lines to nginx", f"peak RSS {max(samples):.0f} MiB",
                         "RSS at each tenth (MiB): " + tenths(samples), f"{requests:,.0f} requests recorded"])

            fidelity = work / "fidelity.log"
            generate(fidelity, 10_000, per_second=1000 / 120)
            _, code, out = rss_profile([PYTHON, "-m", "esr.cli", "replay", "--warp", "120", str(fidelity),
                                        "--target", nginx.url, "--json"], env)
            lags = send_lags(Path(json.loads(out)["run_log"]))
            p = lambda q: lags[min(len(lags) - 1, int(q * len(lags)))]  # noqa: E731
            rows.append(["send lag at warp 120 (1,000 req/s)", f"p99 {p(0.99):.2f} ms",
                         f"p50 {p(0.5):.2f} ms, max {lags[-1]:.2f} ms", f"{len(lags):,} requests; goal p99 <= 5 ms"])
    finally:
        subprocess.run(["rm", "-rf", str(work)], check=False)
    print(table(["measure", "ESR", "peer / detail", "note"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
