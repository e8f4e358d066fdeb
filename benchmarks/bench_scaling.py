#!/usr/bin/env python3
"""Bot workers scaling out: requests/s of one Kafka run with 1 and with 2 bot workers, in one
invocation, on the same machine and the same broker.

    deploy/kafka/with-broker.sh python benchmarks/bench_scaling.py [--quick] [--rate R] [--seconds S]
    python benchmarks/bench_scaling.py --kafka 127.0.0.1:9092

Each case is a fresh pipeline on its own topic prefix (4 partitions, so 4 bot shards): a clock
worker, a metrics worker and N bot workers (`esr worker ...` processes), and nginx on loopback as
the target (C, a small share of a core, so the generator is what is measured). `esr run` plays a
one-request journey (GET /) at an offered rate above what one bot worker sends (default 20,000
arrivals/s for 10 real seconds, --quick 6 s), max_in_flight 512 per shard. A worker that cannot
keep up queues requests (their latency counts from their intended time) and starts arrivals
late, so the figure is the rate actually sent: requests the target answered (nginx's own count)
over the real time from the run's first intended request to its last answer, read from the
results topic. Printed beside it: the late-start share and the verdict.

Goal (issue: "2 workers at least 1.7x on two cores"). On two cores the two bot workers share
them with nginx, the broker, the clock and the metrics worker, so the ratio says how much of a
second core a second worker turns into load; `--quick` is for a smoke run only.
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
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import nginx_server, table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from esr.bus.kafka import KafkaSettings, decode_batch, ensure_topics, make_consumer  # noqa: E402
from esr.core.events import RequestResult  # noqa: E402

PARTITIONS = 4
TIMEOUT_S = 300


class Pipeline:
    """clock, metrics and N bot workers on a fresh prefix; stopped (SIGTERM, then SIGKILL) at exit."""

    def __init__(self, bootstrap: str, bots: int) -> None:
        self.settings = KafkaSettings(bootstrap, prefix=f"scale{uuid.uuid4().hex[:8]}.", partitions=PARTITIONS)
        ensure_topics(self.settings)
        self.dir = Path(tempfile.mkdtemp(prefix="esr-bench-scaling-"))
        self.env = {**os.environ, "ESR_KAFKA": bootstrap, "ESR_KAFKA_PREFIX": self.settings.prefix,
                    "ESR_KAFKA_PARTITIONS": str(PARTITIONS), "ESR_HOME": str(self.dir / "home"),
                    "PYTHONUNBUFFERED": "1"}
        self.procs: list[tuple[str, subprocess.Popen, Path]] = []
        for role in ["clock", "metrics", *["bots"] * bots]:
            log = self.dir / f"{role}-{len(self.procs)}.log"
            with open(log, "wb") as out:
                proc = subprocess.Popen([sys.executable, "-m", "esr.cli", "worker", role], stdout=out, stderr=out,
                                        env=self.env, cwd=ROOT)
            self.procs.append((role, proc, log))
        deadline = time.monotonic() + 120
        ready = {"clock": b"owns partitions", "metrics": b"ready", "bots": b"owns partitions"}
        for role, proc, log in self.procs:
            while ready[role] not in log.read_bytes():
                if proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise SystemExit(f"the {role} worker did not start:\n{log.read_text()[-2000:]}")
                time.sleep(0.1)

    def stop(self) -> None:
        for _, proc, _ in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for _, proc, _ in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def scenario_file(path: Path, rate: float, seconds: float) -> None:
    warp = 60.0
    path.write_text(json.dumps({
        "name": "bench_scaling", "duration_hours": seconds * warp / 3600, "time_warp": warp, "seed": 3,
        "load_profile": [[0, rate]], "max_in_flight": 512, "request_timeout": 10,
        "max_late_start_share": 1.0,  # measured and printed here, not judged
        "assertions": ["error_rate < 0.01"],
        "journeys": [{"name": "get", "steps": [{"name": "get", "request": {"path": "/"}}]}]}))


def results_span(settings: KafkaSettings, run_id: str, expected: int) -> tuple[int, float]:
    """(results, real seconds from the first intended request to the last answer), from the results topic."""
    consumer = make_consumer(settings, f"bench-scaling-{uuid.uuid4().hex[:8]}")
    consumer.subscribe([settings.topic("results")])
    first, last, seen = float("inf"), 0.0, 0
    deadline = time.monotonic() + 60
    try:
        while seen < expected and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error() is not None:
                continue
            batch = decode_batch(msg.value())
            if batch.run_id != run_id:
                continue
            for e in batch.events:
                if type(e) is RequestResult:
                    seen += 1
                    first = min(first, e.real_time)
                    last = max(last, e.real_time + e.latency_ms / 1000)
    finally:
        consumer.close()
    return seen, last - first


def case(bootstrap: str, bots: int, rate: float, seconds: float) -> list[object]:
    with nginx_server() as nginx:
        pipe = Pipeline(bootstrap, bots)
        try:
            scenario = pipe.dir / "scenario.json"
            scenario_file(scenario, rate, seconds)
            before = nginx.served()
            out = subprocess.run([sys.executable, "-m", "esr.cli", "run", str(scenario), "--target", nginx.url,
                                  "--json"], env=pipe.env, cwd=ROOT, capture_output=True, text=True,
                                 timeout=TIMEOUT_S)
            answered = nginx.served() - before - 1  # less this status request
            try:
                verdict = json.loads(out.stdout)
            except json.JSONDecodeError:
                raise SystemExit(f"esr run gave no verdict (exit {out.returncode}):\n{out.stderr[-3000:]}") from None
            results, span = results_span(pipe.settings, verdict["run_id"], verdict["completeness"]["results_recorded"])
        finally:
            pipe.stop()
    started = verdict["completeness"]["journeys_started"] or 1
    late = verdict["generator"].get("late_starts", 0) / started
    return [f"{bots} bot worker{'s' * (bots > 1)}", f"{results:,}", f"{answered:,}", f"{results / span:,.0f} req/s",
            f"{late:.1%}", verdict["verdict"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kafka", default=os.environ.get("ESR_TEST_KAFKA") or os.environ.get("ESR_KAFKA"),
                        help="broker HOST:PORT (default $ESR_TEST_KAFKA, then $ESR_KAFKA)")
    parser.add_argument("--rate", type=float, default=20_000, help="offered arrivals per real second")
    parser.add_argument("--seconds", type=float, default=None, help="real seconds of load (default 10; --quick 6)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if not args.kafka:
        raise SystemExit("no broker: run under deploy/kafka/with-broker.sh or pass --kafka HOST:PORT")
    seconds = args.seconds or (6.0 if args.quick else 10.0)
    rows = [case(args.kafka, bots, args.rate, seconds) for bots in (1, 2)]
    one, two = (float(str(r[3]).split()[0].replace(",", "")) for r in rows)
    print(f"offered {args.rate:,.0f} arrivals/s for {seconds:g} s, {PARTITIONS} shards, nginx on loopback; "
          f"{os.cpu_count()} CPUs, nothing pinned (nginx's own pinning aside); load average {os.getloadavg()[0]:.1f}")
    print(table(["case", "results", "nginx answered", "sent rate", "late starts", "verdict"], rows))
    print(f"2 bot workers / 1: {two / one:.2f}x (goal 1.7x)")


if __name__ == "__main__":
    main()
