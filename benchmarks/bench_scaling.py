#!/usr/bin/env python3
"""Bot workers scaling out: requests/s of one Kafka run with 1 and with 2 bot workers, in one
invocation, on the same machine and the same broker, and where the CPU went.

    deploy/kafka/with-broker.sh python benchmarks/bench_scaling.py [--quick] [--rate R] [--seconds S] [--pin]
    python benchmarks/bench_scaling.py --kafka 127.0.0.1:9092

Each case is a fresh pipeline on its own topic prefix (4 partitions, so 4 bot shards): a clock
worker, a metrics worker and N bot workers (`esr worker ...` processes), and nginx on loopback as
the target (C, pinned to CPU 1, a small share of a core, so the generator is what is measured).
`esr run` plays a one-request journey (GET /) at an offered rate above what two bot workers send
(default 30,000 arrivals/s for 10 real seconds, --quick 6 s), max_in_flight 512 per shard. A
worker that cannot keep up queues requests (their latency counts from their intended time) and
starts arrivals late, so the figure is the rate actually sent: requests the target answered
(nginx's own count) over the real time from the run's first intended request to its last
answer, read from the results topic. Printed beside it: the late-start share, the arrivals
never started (after the load, queued arrivals may still start for as long again as the load
took; those left then are cut, which makes the verdict ERROR: expected here, the offered load is
meant to exceed what the workers send) and the verdict.

Where the time goes: CPU seconds (user + system, /proc/PID/stat) of every process of the
pipeline over the run, per 1,000 requests sent: each bot worker against the requests of the
shards it owns (its requests, from the results topic), and the clock worker, the metrics worker,
nginx, the broker and `esr run` against all of the run's requests; with the machine's busy share
(/proc/stat) over the same time. If the bot workers' CPU per request stays the same from 1 to 2
workers, the bot tier scales with the cores it is given; the req/s ratio then says how many
cores it was given.

Goal (issue: "2 workers at least 1.7x on two cores"). On two cores the two bot workers share
them with nginx, the broker, the clock and the metrics worker. `--pin` pins bot worker i to CPU
i (one worker: CPU 0, a core of its own; two: CPU 0 and CPU 1, the second beside nginx and the
rest); without it only nginx is pinned. `--quick` is for a smoke run only.

Then the metrics tier in the same invocation: result events/s through 1 and through 2 metrics
workers sharing the partitions, on bench_kafka.py's synthetic 4-shard run (600,000 events;
`--quick` 150,000) published as bot shards would, to the verdict, which must count every event.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import have_two_cpus, nginx_server, table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from esr.bus.kafka import KafkaSettings, decode_batch, ensure_topics, make_consumer  # noqa: E402
from esr.core.events import RequestResult  # noqa: E402

PARTITIONS = 4
TIMEOUT_S = 300
TICK = os.sysconf("SC_CLK_TCK")
OWNS = re.compile(rb"owns partitions \[([0-9, ]*)\]")


def cpu_seconds(pid: int | None) -> float | None:
    """user + system CPU seconds of process `pid` so far (all its threads), from /proc."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except (OSError, IndexError, ValueError):
        return None


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs so far, from /proc/stat (iowait counts as idle)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])  # guest time is already inside user
    return total - idle, total


def broker_pid(bootstrap: str) -> int | None:
    """The local Kafka broker listening on `bootstrap`'s port (deploy/kafka/kafka.sh), if any."""
    port = bootstrap.rsplit(":", 1)[-1]
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"kafka.Kafka" not in args:
            continue
        props = Path(args[args.index(b"kafka.Kafka") + 1].decode())
        try:
            if re.search(rf"^listeners=.*:{port}\b", props.read_text(), re.MULTILINE):
                return int(proc.name)
        except OSError:
            continue
    return None


class Pipeline:
    """clock, metrics and N bot workers on a fresh prefix; stopped (SIGTERM, then SIGKILL) at exit."""

    def __init__(self, bootstrap: str, bots: int, pin: bool) -> None:
        self.settings = KafkaSettings(bootstrap, prefix=f"scale{uuid.uuid4().hex[:8]}.", partitions=PARTITIONS)
        ensure_topics(self.settings)
        self.dir = Path(tempfile.mkdtemp(prefix="esr-bench-scaling-"))
        self.env = {**os.environ, "ESR_KAFKA": bootstrap, "ESR_KAFKA_PREFIX": self.settings.prefix,
                    "ESR_KAFKA_PARTITIONS": str(PARTITIONS), "ESR_HOME": str(self.dir / "home"),
                    "PYTHONUNBUFFERED": "1"}
        self.procs: list[tuple[str, subprocess.Popen, Path]] = []
        cpus = os.cpu_count() or 1
        for role in ["clock", "metrics", *["bots"] * bots]:
            log = self.dir / f"{role}-{len(self.procs)}.log"
            prefix = ["taskset", "-c", str((len(self.procs) - 2) % cpus)] if pin and role == "bots" else []
            with open(log, "wb") as out:
                proc = subprocess.Popen([*prefix, sys.executable, "-m", "esr.cli", "worker", role], stdout=out,
                                        stderr=out, env=self.env, cwd=ROOT)
            self.procs.append((role, proc, log))
        deadline = time.monotonic() + 120
        ready = {"clock": b"owns partitions", "metrics": b"ready", "bots": b"owns partitions"}
        for role, proc, log in self.procs:
            while ready[role] not in log.read_bytes():
                if proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise SystemExit(f"the {role} worker did not start:\n{log.read_text()[-2000:]}")
                time.sleep(0.1)
        if bots > 1:  # the group settles: every bot worker owns a share of the tick topic
            while not all(self.owned(log) for role, _, log in self.procs if role == "bots"):
                if time.monotonic() > deadline:
                    self.stop()
                    raise SystemExit("the bot workers did not share the tick partitions")
                time.sleep(0.1)

    @staticmethod
    def owned(log: Path) -> list[int]:
        """The tick partitions (shards) a bot worker owns after its last assignment."""
        found = OWNS.findall(log.read_bytes())
        return [int(p) for p in found[-1].split(b",") if p.strip()] if found else []

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


def results_span(settings: KafkaSettings, run_id: str, expected: int) -> tuple[Counter[int], float]:
    """(results per shard, real seconds from the first intended request to the last answer), from
    the results topic."""
    consumer = make_consumer(settings, f"bench-scaling-{uuid.uuid4().hex[:8]}")
    consumer.subscribe([settings.topic("results")])
    first, last, seen = float("inf"), 0.0, Counter[int]()
    deadline = time.monotonic() + 60
    try:
        while seen.total() < expected and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error() is not None:
                continue
            batch = decode_batch(msg.value())
            if batch.run_id != run_id:
                continue
            for e in batch.events:
                if type(e) is RequestResult:
                    seen[batch.shard] += 1
                    first = min(first, e.real_time)
                    last = max(last, e.real_time + e.latency_ms / 1000)
    finally:
        consumer.close()
    return seen, last - first


def case(bootstrap: str, bots: int, rate: float, seconds: float, pin: bool) -> dict:
    """One run with `bots` bot workers: its figures, and CPU seconds of each process over it."""
    with nginx_server() as nginx:
        pipe = Pipeline(bootstrap, bots, pin)
        try:
            scenario = pipe.dir / "scenario.json"
            scenario_file(scenario, rate, seconds)
            before = nginx.served()
            pids = {f"{role}-{i}": proc.pid for i, (role, proc, _) in enumerate(pipe.procs)}
            pids["broker"] = broker_pid(bootstrap)
            cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
            nginx0 = nginx.worker_cpu_seconds()
            busy0, total0 = machine_jiffies()
            load0 = os.getloadavg()[0]
            children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            run = subprocess.Popen([sys.executable, "-m", "esr.cli", "run", str(scenario), "--target", nginx.url,
                                    "--json"], env=pipe.env, cwd=ROOT, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
            try:
                stdout, stderr = run.communicate(timeout=TIMEOUT_S)
            finally:
                if run.poll() is None:
                    run.kill()
            children1 = resource.getrusage(resource.RUSAGE_CHILDREN)  # `esr run`, the one child reaped meanwhile
            busy1, total1 = machine_jiffies()
            cpu1 = {name: cpu_seconds(pid) for name, pid in pids.items()}
            nginx1 = nginx.worker_cpu_seconds()
            answered = nginx.served() - before - 1  # less this status request
            try:
                verdict = json.loads(stdout)
            except json.JSONDecodeError:
                raise SystemExit(f"esr run gave no verdict (exit {run.returncode}):\n{stderr[-3000:]}") from None
            per_shard, span = results_span(pipe.settings, verdict["run_id"],
                                           verdict["completeness"]["results_recorded"])
            owned = {f"bots-{i}": pipe.owned(log) for i, (role, _, log) in enumerate(pipe.procs) if role == "bots"}
        finally:
            pipe.stop()
    cpu = {name: (cpu1[name] - cpu0[name]) if cpu0[name] is not None and cpu1[name] is not None else None
           for name in pids}
    cpu["nginx"] = nginx1 - nginx0 if nginx0 is not None and nginx1 is not None else None
    cpu["esr run"] = (children1.ru_utime + children1.ru_stime) - (children0.ru_utime + children0.ru_stime)
    started = verdict["completeness"]["journeys_started"] or 1
    return {"bots": bots, "results": per_shard.total(), "answered": answered, "rate": per_shard.total() / span,
            "late": verdict["generator"].get("late_starts", 0) / started,
            "not_started": verdict["completeness"].get("arrivals_not_started", 0), "verdict": verdict["verdict"],
            "cpu": cpu, "per_shard": per_shard, "owned": owned, "busy": (busy1 - busy0) / max(1, total1 - total0),
            "wall": (total1 - total0) / TICK / (os.cpu_count() or 1), "load": (load0, os.getloadavg()[0])}


def rate_rows(cases: list[dict]) -> list[list[object]]:
    return [[f"{c['bots']} bot worker{'s' * (c['bots'] > 1)}", f"{c['results']:,}", f"{c['answered']:,}",
             f"{c['rate']:,.0f} req/s", f"{c['late']:.1%}", f"{c['not_started']:,}", f"{c['busy']:.0%}",
             f"{c['load'][0]:.1f} / {c['load'][1]:.1f}", c["verdict"]] for c in cases]


def cpu_rows(cases: list[dict]) -> list[list[object]]:
    """CPU seconds per 1,000 requests of each process in each case (bot workers: their own requests)."""
    rows = []
    for c in cases:
        thousands = c["results"] / 1000
        for name, seconds in c["cpu"].items():
            if name.startswith("bots-"):
                shards = c["owned"][name]
                mine = sum(c["per_shard"][s] for s in shards)
                label = f"bot worker {int(name.split('-')[1]) - 1} (shards {','.join(map(str, shards))})"
                per = seconds / (mine / 1000) if seconds is not None and mine else float("nan")
                rows.append([f"{c['bots']} bot worker{'s' * (c['bots'] > 1)}", label, f"{mine:,}",
                             _secs(seconds), _ms(per)])
            else:
                per = seconds / thousands if seconds is not None and thousands else float("nan")
                rows.append(["", name.split("-")[0], f"{c['results']:,}", _secs(seconds), _ms(per)])
        bot_cpu = sum(v for k, v in c["cpu"].items() if k.startswith("bots-") and v is not None)
        rows.append(["", "all bot workers", f"{c['results']:,}", _secs(bot_cpu), _ms(bot_cpu / thousands)])
        rows.append(["", "whole machine (busy)", "", _secs(c["busy"] * c["wall"] * (os.cpu_count() or 1)),
                     _ms(c["busy"] * c["wall"] * (os.cpu_count() or 1) / thousands)])
    return rows


def _secs(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} s"


def _ms(value: float) -> str:
    return "n/a" if value != value else f"{value:.3f} s"


def metrics_rows(bootstrap: str, events: int) -> list[list[object]]:
    """Result events/s through 1 and 2 metrics workers sharing the partitions, side by side:
    bench_kafka's synthetic 4-shard run (`events` result events, published as bot shards
    would), each case on a fresh prefix, to the verdict, which must count every event."""
    from bench_kafka import MetricsWorker, synthetic_run, through_kafka  # it imports this module

    rows: list[list[object]] = []
    for count in (1, 2):
        started, grouped = synthetic_run(events)
        settings = KafkaSettings(bootstrap, prefix=f"scalem{uuid.uuid4().hex[:6]}.", partitions=PARTITIONS)
        workers = MetricsWorker(settings, count)
        try:
            eps, lag, _, verdict = through_kafka(settings, workers, started, grouped)
        finally:
            workers.stop()
        counted = verdict["completeness"]["results_recorded"]
        rows.append([f"{count} metrics worker{'s' * (count > 1)}", f"{counted:,} of {events:,}", f"{eps:,.0f}",
                     f"{lag * 1000:,.0f} ms", verdict["verdict"]])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kafka", default=os.environ.get("ESR_TEST_KAFKA") or os.environ.get("ESR_KAFKA"),
                        help="broker HOST:PORT (default $ESR_TEST_KAFKA, then $ESR_KAFKA)")
    parser.add_argument("--rate", type=float, default=30_000, help="offered arrivals per real second")
    parser.add_argument("--seconds", type=float, default=None, help="real seconds of load (default 10; --quick 6)")
    parser.add_argument("--pin", action="store_true", help="pin bot worker i to CPU i (taskset)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if not args.kafka:
        raise SystemExit("no broker: run under deploy/kafka/with-broker.sh or pass --kafka HOST:PORT")
    if args.pin and not have_two_cpus():
        raise SystemExit("--pin needs two CPUs and taskset")
    seconds = args.seconds or (6.0 if args.quick else 10.0)
    load = os.getloadavg()
    cases = [case(args.kafka, bots, args.rate, seconds, args.pin) for bots in (1, 2)]
    pinning = ("bot worker i on CPU i, nginx on CPU 1, the rest unpinned" if args.pin
               else "nginx on CPU 1, the rest unpinned" if have_two_cpus() else "nothing pinned")
    print(f"offered {args.rate:,.0f} arrivals/s for {seconds:g} s, {PARTITIONS} shards, nginx on loopback; "
          f"{os.cpu_count()} CPUs; pinning: {pinning}; load average before {load[0]:.1f}, "
          f"after {os.getloadavg()[0]:.1f}")
    print(table(["case", "results", "nginx answered", "sent rate", "late starts", "not started", "machine busy",
                 "load avg (start / end)", "verdict"], rate_rows(cases)))
    one, two = cases[0], cases[1]
    print(f"2 bot workers / 1: {two['rate'] / one['rate']:.2f}x (goal 1.7x)")
    print()
    print("CPU seconds (user + system) over the run, per 1,000 requests")
    print(table(["case", "process", "requests", "CPU", "CPU per 1,000 req"], cpu_rows(cases)))
    per = [sum(v for k, v in c["cpu"].items() if k.startswith("bots-") and v is not None) / c["results"] * 1000
           for c in cases]
    print(f"bot tier: {per[0]:.3f} s per 1,000 requests with 1 worker, {per[1]:.3f} s with 2 "
          f"({per[0] / per[1]:.2f}x as much work per CPU second; 1.00 = scales with the cores it gets)")
    print()
    events = 150_000 if args.quick else 600_000
    rows = metrics_rows(args.kafka, events)
    print(f"metrics workers: result events/s through 1 and 2 workers sharing the {PARTITIONS} partitions "
          f"({events:,} events published as 4 bot shards would, to the verdict; bench_kafka.py's run)")
    print(table(["case", "events counted", "events/s", "verdict after the last ack", "verdict"], rows))
    one_m, two_m = (float(str(r[2]).replace(",", "")) for r in rows)
    print(f"2 metrics workers / 1: {two_m / one_m:.2f}x (on two shared cores a second worker adds no core, "
          "only the partials hop)")

if __name__ == "__main__":
    main()
