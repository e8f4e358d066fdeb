#!/usr/bin/env python3
"""(d) Result events per second through Kafka and the Faust metrics app, beside the embedded
runtime folding the same events, in one invocation.

    deploy/kafka/with-broker.sh python benchmarks/bench_kafka.py [--quick] [--events N]
    python benchmarks/bench_kafka.py --kafka 127.0.0.1:9092

Builds a synthetic run of N result events (default 600,000; --quick 150,000): 4 shards, users
spread over the run's ticks, 5 requests per user with lognormal latencies. Then, in this run:

- embedded: the events as JSON lines, decoded and folded by `RunFold` and judged, which is what
  the embedded runtime and `esr judge` do (one thread);
- Kafka: a real `esr worker metrics` process (Faust) on a fresh topic prefix; this process
  publishes the same events as the bot shards would (`EventBatch`es of up to 2,000 events with
  confluent-kafka, idempotent, acks=all, lz4), then the shards' final reports, and waits for the
  verdict on the verdict topic. Throughput is events / (verdict received - first send); the
  end-to-end lag is the time from the broker acknowledging the last batch to the verdict, which
  needs every event folded (the worker judges as soon as every shard's final report is in);
- Kafka with 2..N metrics workers (`--workers N`, default 2): the same run again through that
  many workers sharing the partitions (each folds its own and sends partials to the run's owner,
  which judges), on a prefix of their own.

All verdicts must agree and count every event. Goal: >= 50,000 result events/s through Kafka.
The producer and the metrics workers share the machine's two cores, so a second worker here
adds no core: the side-by-side figure shows the cost of the partials, not the gain of a machine.

Then the end of a real run on each runtime (skip with --no-real-run): `esr run` of a one-request
journey at 10,000 arrivals/s for 10 real seconds (--quick: 6 s) to nginx on loopback, once
embedded and once through Kafka (clock, metrics and 2 bot workers on a fresh prefix). The
end-of-run delay is the time from the run's last answer (the latest send + latency among its
results) to its verdict: written to the run log (the file's last write) on the embedded runtime,
published on the verdict topic (the message's timestamp) on Kafka. Printed beside it: the
widest gap between two progress messages (goal 1 s pace) and the metrics worker's "producer
buffer full" warnings. Goal: the verdict within 2 s of the run's end.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
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

from bench_scaling import Pipeline, scenario_file  # noqa: E402

from esr.bus.codec import decode  # noqa: E402
from esr.bus.codec import encode as encode_line  # noqa: E402
from esr.bus.kafka import (  # noqa: E402
    KafkaSettings,
    decode_batch,
    encode,
    ensure_topics,
    headers,
    make_consumer,
    make_producer,
    shard_key,
)
from esr.bus.runlog import read_events  # noqa: E402
from esr.core.buckets import RunFold  # noqa: E402
from esr.core.events import (  # noqa: E402
    EventBatch,  # noqa: E402
    RequestResult,
    RunFinished,
    RunStarted,
    ShardReport,
)
from esr.core.scenario import Scenario  # noqa: E402
from esr.core.ticks import tick_count, tick_window  # noqa: E402
from esr.core.verdict import judge  # noqa: E402
from esr.producers.launch import VerdictWatch  # noqa: E402

GOAL_EPS = 50_000
GOAL_END_S = 2.0
SHARDS = 4
PER_USER = 5
BATCH = 2000
ENDPOINTS = [("POST /claims", 120.0, 0.7), ("GET /claims/{claim_id}", 18.0, 0.6)]


def synthetic_run(events: int) -> tuple[RunStarted, dict[tuple[int, int], list[RequestResult]]]:
    """The run's start and its result events grouped by (shard, tick), in tick order."""
    scenario = {"name": "bench_kafka", "duration_hours": 1, "time_warp": 60, "seed": 1,
                "load_profile": [[0, 10]], "assertions": ["error_rate < 0.05", "latency_p95_ms < 2000"],
                "journeys": [{"name": "claim", "steps": [
                    {"name": "file", "request": {"method": "POST", "path": "/claims"}}]}]}
    users = events // PER_USER
    started = RunStarted(run_id=f"bench-{uuid.uuid4().hex[:8]}", seq=0, sim_time=0.0, real_time=time.time(),
                         scenario=Scenario.from_dict(scenario).to_dict(), target="http://127.0.0.1:1",
                         seed=1, sim_start="2026-01-05T00:00:00+00:00", time_warp=60.0, drain_warp=60.0,
                         load_end_sim=3600.0, window_s=60.0, shards=SHARDS, tick_s=0.5,
                         arrivals_planned=0)  # results only: no journey starts to count against a plan
    ticks = tick_count(started)
    rng = random.Random(7)
    grouped: dict[tuple[int, int], list[RequestResult]] = {}
    for user in range(users):
        tick = user * ticks // users
        sim_from, sim_to = tick_window(started, tick)
        for n in range(PER_USER):
            endpoint, median, sigma = ENDPOINTS[n > 0]
            latency = rng.lognormvariate(math.log(median), sigma)
            error = "5xx" if rng.random() < 0.01 else None
            sim = sim_from + (sim_to - sim_from) * n / PER_USER
            grouped.setdefault((user % SHARDS, tick), []).append(RequestResult(
                run_id=started.run_id, seq=0, sim_time=sim, real_time=started.real_time + sim / 60,
                user=user, journey="claim", step="file", endpoint=endpoint, status=503 if error else 200,
                latency_ms=latency, raw_latency_ms=latency * 0.9, bytes=300, error=error, n=n))
    return started, grouped


def embedded(started: RunStarted, grouped: dict[tuple[int, int], list[RequestResult]]) -> tuple[float, dict]:
    lines = [encode_line(started)] + [encode_line(e) for batch in grouped.values() for e in batch]
    total = len(lines) - 1
    t0 = time.perf_counter()
    fold = RunFold()
    for line in lines:
        fold.apply(decode(line))
    fold.apply(RunFinished(run_id=started.run_id, seq=0, sim_time=3600.0, real_time=time.time(),
                           arrivals_planned=started.arrivals_planned, journeys_started=0, requests_sent=total,
                           late_starts=0, journeys_cut=0))
    scenario = Scenario.from_dict(started.scenario)
    verdict = judge(fold, scenario.parsed_assertions())
    return total / (time.perf_counter() - t0), verdict.to_dict()


class MetricsWorker:
    """`workers` real `esr worker metrics` processes on the benchmark's topic prefix, each ready
    and, when there are several, sharing the partitions."""

    def __init__(self, settings: KafkaSettings, workers: int = 1) -> None:
        ensure_topics(settings)
        folder = Path(tempfile.mkdtemp(prefix="esr-bench-kafka-"))
        self.logs = [folder / f"metrics-{i}.log" for i in range(workers)]
        env = {**os.environ, "ESR_KAFKA": settings.bootstrap, "ESR_KAFKA_PREFIX": settings.prefix,
               "ESR_KAFKA_PARTITIONS": str(settings.partitions), "PYTHONUNBUFFERED": "1"}
        self.procs = []
        for log in self.logs:
            with open(log, "wb") as out:
                self.procs.append(subprocess.Popen([sys.executable, "-m", "esr.cli", "worker", "metrics"],
                                                   stdout=out, stderr=out, env=env, cwd=ROOT))
        deadline = time.monotonic() + 180
        while not self._ready(settings.partitions):
            if any(p.poll() is not None for p in self.procs) or time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"the metrics workers did not start:\n{self.text()[-2000:]}")
            time.sleep(0.1)

    def _ready(self, partitions: int) -> bool:
        texts = [log.read_text(errors="replace") for log in self.logs]
        if not all("esr worker metrics: ready" in t for t in texts):
            return False
        if len(texts) == 1:
            return True
        owned = [re.findall(r"owns partitions (\[[^\]]*\])", t) for t in texts]
        latest = [set(json.loads(o[-1])) if o else set() for o in owned]
        return all(latest) and set().union(*latest) == set(range(partitions))

    def text(self) -> str:
        return "\n".join(log.read_text(errors="replace") for log in self.logs)

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            proc.wait(30)


def through_kafka(settings: KafkaSettings, worker: MetricsWorker, started: RunStarted,
                  grouped: dict[tuple[int, int], list[RequestResult]],
                  rate: float | None = None) -> tuple[float, float, float, dict]:
    """Publish the run as bot shards would (paced at `rate` events/s if given), wait for the verdict."""
    watch = VerdictWatch(settings)
    producer = make_producer(settings, **{"linger.ms": 20, "batch.size": 4_000_000})
    runs = settings.topic("runs")
    producer.produce(runs, key=started.run_id.encode(), value=encode(started),
                     headers=headers("run_started", started.run_id))
    sent_per_shard = dict.fromkeys(range(SHARDS), 0)
    last_ack = [0.0]

    def acked(err: object, _msg: object) -> None:
        if err is None:
            last_ack[0] = time.perf_counter()

    t0 = time.perf_counter()
    sent = 0
    for (shard, tick), events in grouped.items():
        key = shard_key(started.run_id, shard)
        for i in range(0, len(events), BATCH):
            part = events[i:i + BATCH]
            if rate is not None:
                delay = t0 + sent / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            sent += len(part)
            batch = EventBatch(run_id=started.run_id, shard=shard, attempt="bench:1", tick=tick,
                               window_s=60.0, late_threshold_ms=10.0, events=part)
            while True:
                try:
                    producer.produce(settings.topic("results"), key=key, value=encode(batch),
                                     headers=headers("event_batch", started.run_id), on_delivery=acked)
                    break
                except BufferError:
                    producer.poll(0.01)
            producer.poll(0)
            sent_per_shard[shard] += len(part)
    last = tick_count(started) - 1
    for shard, count in sent_per_shard.items():
        report = ShardReport(run_id=started.run_id, seq=0, sim_time=3600.0, real_time=time.time(), shard=shard,
                             attempt="bench:1", first_tick=0, last_tick=last, final=True,
                             journeys_started=0, requests_sent=count, journey_events=0)
        producer.produce(runs, key=started.run_id.encode(), value=encode(report),
                         headers=headers("shard_report", started.run_id))
    producer.flush(120)
    verdict = watch.wait(started.run_id, 600)
    t_verdict = time.perf_counter()
    watch.close()
    if verdict is None:
        raise SystemExit(f"no verdict:\n{worker.text()[-2000:]}")
    total = sum(sent_per_shard.values())
    return total / (t_verdict - t0), t_verdict - last_ack[0], last_ack[0] - t0, verdict


def last_answer(results: list[RequestResult]) -> float:
    return max(e.real_time + e.latency_ms / 1000 for e in results)


def embedded_end(target: str, scenario: Path, home: Path) -> tuple[float, str]:
    """(seconds from the last answer to the verdict in the run log, the verdict) of an embedded run."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESR_KAFKA")} | {"ESR_HOME": str(home)}
    out = subprocess.run([sys.executable, "-m", "esr.cli", "run", str(scenario), "--target", target, "--json"],
                         env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    try:
        verdict = json.loads(out.stdout)
    except json.JSONDecodeError:
        raise SystemExit(f"esr run gave no verdict (exit {out.returncode}):\n{out.stderr[-3000:]}") from None
    log = next((home / "runs" / verdict["run_id"]).glob("*.jsonl*"))
    results = [e for e in read_events(log) if type(e) is RequestResult]
    return log.stat().st_mtime - last_answer(results), verdict["verdict"]


def kafka_end(pipe: Pipeline, target: str, scenario: Path) -> tuple[float, float, int, str]:
    """(seconds from the last answer to the verdict message, widest gap between progress messages,
    "producer buffer full" warnings, the verdict) of a run through Kafka."""
    out = subprocess.run([sys.executable, "-m", "esr.cli", "run", str(scenario), "--target", target, "--json"],
                         env=pipe.env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    try:
        verdict = json.loads(out.stdout)
    except json.JSONDecodeError:
        raise SystemExit(f"esr run gave no verdict (exit {out.returncode}):\n{out.stderr[-3000:]}") from None
    run_id, settings = verdict["run_id"], pipe.settings
    consumer = make_consumer(settings, f"bench-kafka-{uuid.uuid4().hex[:8]}")
    consumer.subscribe([settings.topic("results"), settings.topic("metrics"), settings.topic("verdicts")])
    results: list[RequestResult] = []
    progress: list[float] = []
    published = None
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and (published is None
                                               or len(results) < verdict["completeness"]["results_recorded"]):
            msg = consumer.poll(0.5)
            if msg is None or msg.error() is not None:
                continue
            topic = msg.topic()
            if topic == settings.topic("results"):
                batch = decode_batch(msg.value())
                results += [e for e in batch.events if type(e) is RequestResult and batch.run_id == run_id]
            elif msg.key() == run_id.encode() and topic == settings.topic("metrics"):
                progress.append(msg.timestamp()[1] / 1000)
            elif msg.key() == run_id.encode():
                published = msg.timestamp()[1] / 1000
    finally:
        consumer.close()
    if published is None:
        raise SystemExit(f"no verdict message for {run_id}")
    gaps = [b - a for a, b in zip(progress, progress[1:], strict=False)]
    worker_log = next(log for role, _, log in pipe.procs if role == "metrics").read_text()
    return published - last_answer(results), max(gaps, default=0.0), worker_log.count("producer buffer full"), \
        verdict["verdict"]


def end_of_run(bootstrap: str, rate: float, seconds: float) -> None:
    """The end-of-run delay of the same real run on each runtime, side by side."""
    with nginx_server() as nginx:
        pipe = Pipeline(bootstrap, 2)
        try:
            scenario = pipe.dir / "scenario.json"
            scenario_file(scenario, rate, seconds)
            embedded_s, embedded_verdict = embedded_end(nginx.url, scenario, pipe.dir / "embedded")
            kafka_s, gap, full, kafka_verdict = kafka_end(pipe, nginx.url, scenario)
        finally:
            pipe.stop()
    print(f"a real run: {rate:,.0f} arrivals/s for {seconds:g} s to nginx on loopback")
    print(table(["runtime", "verdict after the last answer", "notes"], [
        ["embedded", f"{embedded_s:.2f} s", f"written to the run log; {embedded_verdict}"],
        ["Kafka (clock, metrics, 2 bot workers)", f"{kafka_s:.2f} s",
         f"published; progress messages at most {gap:.2f} s apart; {full} 'producer buffer full'; {kafka_verdict}"],
    ]))
    print(f"end-of-run delay Kafka/embedded: {kafka_s:.2f} s / {embedded_s:.2f} s; goal <= {GOAL_END_S:g} s: "
          f"{'met' if kafka_s <= GOAL_END_S else 'NOT met'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kafka", default=os.environ.get("ESR_TEST_KAFKA") or os.environ.get("ESR_KAFKA"),
                        help="broker HOST:PORT (default $ESR_TEST_KAFKA, then $ESR_KAFKA)")
    parser.add_argument("--events", type=int, default=600_000)
    parser.add_argument("--quick", action="store_true", help="150,000 events; a 6-second real run")
    parser.add_argument("--rate", type=float, default=10_000, help="the real run's arrivals per second")
    parser.add_argument("--workers", type=int, default=2,
                        help="also run the events through 2..N metrics workers sharing the partitions (default 2; "
                             "1: one worker only)")
    parser.add_argument("--no-real-run", action="store_true", help="skip the real runs' end-of-run delay")
    args = parser.parse_args()
    if not args.kafka:
        raise SystemExit("no broker: run under deploy/kafka/with-broker.sh or pass --kafka HOST:PORT")
    events = 150_000 if args.quick else args.events
    started, grouped = synthetic_run(events)
    total = sum(len(b) for b in grouped.values())
    print(f"{total:,} result events, {SHARDS} shards, {tick_count(started)} ticks, batches of up to {BATCH}")

    embedded_eps, embedded_verdict = embedded(started, grouped)
    settings = KafkaSettings(args.kafka, prefix=f"bench{uuid.uuid4().hex[:6]}.", partitions=SHARDS)
    worker = MetricsWorker(settings)
    try:
        kafka_eps, lag, produce_s, kafka_verdict = through_kafka(settings, worker, started, grouped)
        paced_started, paced_grouped = synthetic_run(min(events, GOAL_EPS * 8))
        _, paced_lag, paced_s, paced_verdict = through_kafka(settings, worker, paced_started, paced_grouped,
                                                             rate=GOAL_EPS)
    finally:
        worker.stop()
    paced_total = sum(len(b) for b in paced_grouped.values())
    scaled: list[tuple[int, float, float, dict]] = []
    for count in range(2, args.workers + 1):  # the same run through more metrics workers, each its own pipeline
        more_started, more_grouped = synthetic_run(events)
        more_settings = KafkaSettings(args.kafka, prefix=f"bench{uuid.uuid4().hex[:6]}.", partitions=SHARDS)
        more = MetricsWorker(more_settings, count)
        try:
            eps, more_lag, _, verdict = through_kafka(more_settings, more, more_started, more_grouped)
        finally:
            more.stop()
        scaled.append((count, eps, more_lag, verdict))

    counted = kafka_verdict["completeness"]["results_recorded"]
    same = (kafka_verdict["verdict"], kafka_verdict["summary"]["requests"], kafka_verdict["summary"]["errors"]) == (
        embedded_verdict["verdict"], embedded_verdict["summary"]["requests"], embedded_verdict["summary"]["errors"])
    print(table(["runtime", "result events/s", "notes"], [
        ["Kafka + Faust metrics app (1 worker)", f"{kafka_eps:,.0f}",
         f"producer done after {produce_s:.2f} s; verdict {lag * 1000:,.0f} ms after the last ack"],
        *[[f"Kafka + Faust metrics app ({count} workers)", f"{eps:,.0f}",
           f"verdict {more_lag * 1000:,.0f} ms after the last ack; {verdict['verdict']} counting "
           f"{verdict['completeness']['results_recorded']:,}"] for count, eps, more_lag, verdict in scaled],
        ["embedded (decode + RunFold + judge)", f"{embedded_eps:,.0f}", "one thread, same events"],
        [f"Kafka, paced at {GOAL_EPS:,}/s", f"{paced_total / paced_s:,.0f} sent",
         f"{paced_total:,} events; verdict {paced_lag * 1000:,.0f} ms after the last ack "
         f"({paced_verdict['completeness']['results_recorded']:,} counted)"],
    ]))
    print(f"ratio Kafka/embedded: {kafka_eps / embedded_eps:.2f}; goal >= {GOAL_EPS:,}/s: "
          f"{'met' if kafka_eps >= GOAL_EPS else 'NOT met'}; end-to-end lag of the last event at "
          f"{GOAL_EPS:,}/s: {paced_lag * 1000:,.0f} ms (after a {total:,}-event backlog: {lag * 1000:,.0f} ms)")
    print(f"verdicts: Kafka {kafka_verdict['verdict']} counting {counted:,}; embedded {embedded_verdict['verdict']}"
          f" counting {embedded_verdict['completeness']['results_recorded']:,}; same: {same and counted == total}"
          + ("" if kafka_verdict['verdict'] == 'PASS' else f" (Kafka: {kafka_verdict['reason']})"))
    paced_ok = paced_verdict["completeness"]["results_recorded"] == paced_total
    scaled_ok = all(v["verdict"] == kafka_verdict["verdict"] and v["completeness"]["results_recorded"] == total
                    for _, _, _, v in scaled)
    if not args.no_real_run:
        end_of_run(args.kafka, args.rate, 6.0 if args.quick else 10.0)
    return 0 if same and counted == total and paced_ok and scaled_ok else 1


if __name__ == "__main__":
    sys.exit(main())
