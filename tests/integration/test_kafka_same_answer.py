"""Same answer on both runtimes: one recorded stream of events, folded by the embedded runtime
and by the Faust metrics app on the real broker, gives equal buckets and an equal verdict."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import msgspec
import pytest
from busy import PUNCTUALITY_NOT_JUDGED
from confluent_kafka import TopicPartition
from kafka_pipeline import Pipeline
from loopback import wait_until

from esr.bus.kafka import encode, headers, make_consumer, make_producer, shard_key
from esr.bus.runlog import read_events
from esr.core.buckets import RunFold
from esr.core.events import (
    EventBatch,
    JourneyStarted,
    RequestResult,
    RunFinished,
    RunStarted,
    ShardReport,
    VerdictIssued,
)
from esr.core.scenario import Scenario
from esr.core.targets import TargetRegistry
from esr.core.ticks import tick_count
from esr.engine.runner import Run
from esr.producers.launch import VerdictWatch
from esr.stream_apps.assembly import ShardFold

pytestmark = [pytest.mark.integration, pytest.mark.kafka]

CLAIMS = {
    "name": "same_answer", "duration_hours": 24, "time_warp": 8640, "drain_warp": 34560, "seed": 5,
    **PUNCTUALITY_NOT_JUDGED,
    "load_profile": [[0, 6], [8, 20], [18, 8]],
    "journeys": [{
        "name": "claim",
        "steps": [
            {"name": "file", "request": {"method": "POST", "path": "/claims", "json": {"ssn": "1"}},
             "expect": {"status": [201]}, "extract": {"claim_id": "$.id"},
             "counters": {"cloud_cost": "header:X-Cost"}},
            {"name": "paid", "request": {"method": "GET", "path": "/claims/{{ vars.claim_id }}"},
             "poll": {"every": "4h", "until": "$.status == 'paid'", "give_up_after": "72h"},
             "counters": {"claims_paid": {"value": 1, "when": "$.status == 'paid'"}}},
        ],
        "sla": [{"from": "file", "to": "paid", "within": "48h"}],
    }],
    "assertions": ["error_rate < 0.01", "latency_p95_ms < 500", "sla_48h_success_rate > 0.5",
                   "sla_48h_success_rate > 0.3 in every 6h", "cloud_cost / claims_paid < 1"],
}


def publish_as_shards(pipe: Pipeline, events: list[Any], shards: int = 1) -> RunStarted:
    """The recorded run as `shards` bot shards would have sent it (each user's events on the
    shard `user % shards`, a shard's batches on its own partition): start, batches, final reports."""
    started = next(e for e in events if isinstance(e, RunStarted))
    finished = next(e for e in events if isinstance(e, RunFinished))
    started = msgspec.structs.replace(started, shards=shards)
    body = [e for e in events if not isinstance(e, (RunStarted, RunFinished, VerdictIssued))]
    settings = pipe.settings
    producer = make_producer(settings)
    producer.produce(settings.topic("runs"), key=started.run_id.encode(), value=encode(started),
                     headers=headers("run_started", started.run_id))
    for shard in range(shards):
        key = shard_key(started.run_id, shard)
        mine = [e for e in body if getattr(e, "user", 0) % shards == shard]
        where = {"partition": shard} if shards > 1 else {}
        for topic, wanted in (("results", True), ("journeys", False)):
            part = [e for e in mine if isinstance(e, RequestResult) is wanted]
            for i in range(0, len(part), 500):
                batch = EventBatch(run_id=started.run_id, shard=shard, attempt="recorded:1", tick=0,
                                   window_s=started.window_s, late_threshold_ms=10.0, events=part[i:i + 500])
                producer.produce(settings.topic(topic), key=key, value=encode(batch),
                                 headers=headers("event_batch", started.run_id), **where)
        results = sum(isinstance(e, RequestResult) for e in mine)
        drain = finished if shard == 0 else None  # the run's drain figures, once
        report = ShardReport(
            run_id=started.run_id, seq=0, sim_time=finished.sim_time, real_time=finished.real_time, shard=shard,
            attempt="recorded:1", first_tick=0, last_tick=tick_count(started) - 1, final=True,
            journeys_started=sum(isinstance(e, JourneyStarted) for e in mine), requests_sent=results,
            journey_events=len(mine) - results, late_starts=drain.late_starts if drain else 0,
            journeys_cut=drain.journeys_cut if drain else 0,
            requests_abandoned=drain.requests_abandoned if drain else 0,
            sla_undecided=drain.sla_undecided if drain else 0,
            arrivals_not_started=drain.arrivals_not_started if drain else 0)
        producer.produce(settings.topic("runs"), key=started.run_id.encode(), value=encode(report),
                         headers=headers("shard_report", started.run_id))
    assert producer.flush(30) == 0
    return started


async def faust_buckets(pipe: Pipeline, results: int, table: str = "esr-partials") -> RunFold:
    """The metrics app's buckets, read back from a table's changelog (latest value per key):
    "esr-partials" (each partition's fold, where it was folded) or "esr-merged" (the same folds
    where the run's owner merged them), once they hold `results` results: a partition's last
    pieces are stored by a timer, and may reach the changelog after the verdict."""
    def complete() -> RunFold | None:
        fold = changelog_fold(pipe, table)
        return fold if fold.results_recorded >= results else None

    found: RunFold = await wait_until(complete, 30, f"{table}'s changelog holding all {results} results")
    return found


def changelog_fold(pipe: Pipeline, table: str) -> RunFold:
    fold = RunFold()
    for part in changelog_parts(pipe, table).values():
        fold.merge(part.fold)
    return fold


def changelog_parts(pipe: Pipeline, table: str) -> dict[str, ShardFold]:
    """The folds a table's changelog holds (latest value per key), by part ("run|partition")."""
    topic = pipe.settings.group("metrics") + f"-{table}-changelog"
    consumer = make_consumer(pipe.settings, None)
    latest: dict[str, bytes] = {}
    for p in range(pipe.settings.partitions):
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        if high <= low:
            continue
        consumer.assign([TopicPartition(topic, p, low)])
        while True:
            msg = consumer.poll(5)
            assert msg is not None
            latest[msg.key().decode()] = msg.value()
            if msg.offset() + 1 >= high:
                break
    consumer.close()
    pieces: dict[str, dict[str, bytes]] = {}
    for key, value in latest.items():
        part_key, _, entry = msgspec.json.decode(key).rpartition("|")
        pieces.setdefault(part_key, {})[entry] = value
    return {part_key: ShardFold.from_entries(entries) for part_key, entries in pieces.items()}


def judged(verdict: dict[str, Any]) -> None:
    """Every assertion judged on complete data (PASS on an idle machine; a busy one can miss
    `latency_p95_ms < 500`, on both runtimes alike, which the equality above checks)."""
    assert verdict["verdict"] in ("PASS", "FAIL"), verdict["reason"]
    assert len(verdict["assertions"]) == 5 and all(a["holds"] is not None for a in verdict["assertions"])


async def test_embedded_and_faust_folds_give_equal_buckets_and_verdicts(
        pipeline: Pipeline, demo_target: Any, tmp_path: Path) -> None:
    url, _ = await demo_target(seed=3)
    run = Run(Scenario.from_dict(CLAIMS), TargetRegistry().resolve(url))
    embedded = await run.execute()
    events = list(read_events(run.log_path))
    assert sum(isinstance(e, RequestResult) for e in events) > 500

    metrics = await pipeline.start("metrics")
    await metrics.wait_for("esr worker metrics: ready", 180)
    watch = VerdictWatch(pipeline.settings)
    publish_as_shards(pipeline, events)
    verdict = watch.wait(run.run_id, 60)
    watch.close()

    assert verdict is not None, metrics.text()[-2000:]
    expected = embedded.to_dict()
    assert verdict == expected
    judged(expected)

    mine = RunFold().apply_all(events)
    theirs = await faust_buckets(pipeline, mine.results_recorded)
    assert len(mine.buckets) > 100
    assert {k: b.to_dict() for k, b in theirs.buckets.items()} == {k: b.to_dict() for k, b in mine.buckets.items()}
    assert (theirs.results_recorded, theirs.failure_reasons) == (mine.results_recorded, mine.failure_reasons)


async def test_two_metrics_workers_give_the_embedded_buckets_and_verdict_of_a_four_shard_run(
        pipeline: Pipeline, demo_target: Any) -> None:
    """Each worker folds its partitions; the run's owner merges the partials and judges."""
    url, _ = await demo_target(seed=3)
    run = Run(Scenario.from_dict(CLAIMS), TargetRegistry().resolve(url))
    embedded = await run.execute()
    events = list(read_events(run.log_path))
    assert pipeline.settings.partitions == 4

    workers = [await pipeline.start("metrics") for _ in range(2)]
    for worker in workers:
        await worker.wait_for("esr worker metrics: ready", 180)
    await pipeline.wait_balanced(workers)
    watch = VerdictWatch(pipeline.settings)
    publish_as_shards(pipeline, events, shards=4)
    verdict = watch.wait(run.run_id, 90)
    watch.close()

    mine = RunFold().apply_all(events)
    assert len(mine.buckets) > 100
    for table in ("esr-partials", "esr-merged"):  # folded on both workers, merged on the run's owner
        theirs = await faust_buckets(pipeline, mine.results_recorded, table)
        assert {k: b.to_dict() for k, b in theirs.buckets.items()} == {k: b.to_dict() for k, b in mine.buckets.items()}
        assert (theirs.results_recorded, theirs.failure_reasons) == (mine.results_recorded, mine.failure_reasons)
    assert verdict is not None, "\n".join(w.text()[-2000:] for w in workers)
    expected = embedded.to_dict()
    expected["generator"]["shards"] = 4  # the verdict says how the run was sharded; all else is equal
    assert verdict == expected
    judged(expected)
    assert verdict["completeness"]["complete"] is True

    owned = [set(json.loads(re.findall(r"owns partitions (\[[^\]]*\])", w.text())[-1])) for w in workers]
    assert owned[0] and owned[1] and not owned[0] & owned[1]  # each folded some of the four partitions
