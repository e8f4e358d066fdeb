"""`esr replay` on the Kafka runtime with ticks too big for one message: a log whose requests
all fall in one tick (`--warp 1e9`) and weigh more than the broker's 1 MB message limit travels
on `esr.requests` in bounded parts, and every request still reaches the target exactly once."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from kafka_pipeline import Pipeline
from test_replay import combined

from esr.bus.kafka import KafkaSettings, decode_tick, make_consumer

pytestmark = [pytest.mark.integration, pytest.mark.kafka]

PART_BOUND = 256 * 1024  # docs/kafka.md: no message on the requests topic is larger


def requests_topic(settings: KafkaSettings, run_id: str) -> list[bytes]:
    """Every message of run `run_id` on the requests topic, in partition order."""
    from confluent_kafka import TopicPartition

    topic = settings.topic("requests")
    consumer = make_consumer(settings, settings.group("reader"))
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        got: dict[int, list[bytes]] = {p: [] for p in partitions}
        read = dict.fromkeys(partitions, 0)
        deadline = time.monotonic() + 60
        while any(read[p] < ends[p] for p in partitions):
            assert time.monotonic() < deadline, f"read {read} of {ends}"
            msg = consumer.poll(0.5)
            if msg is None or msg.error() is not None:
                continue
            read[msg.partition()] = msg.offset() + 1
            if dict(msg.headers() or [])["run_id"] == run_id.encode():
                got[msg.partition()].append(msg.value())
        return [value for p in sorted(got) for value in got[p]]
    finally:
        consumer.close()


async def test_a_tick_heavier_than_a_kafka_message_travels_in_bounded_parts_and_every_request_goes_once(
        pipeline: Pipeline, recorder: Any, tmp_path: Path) -> None:
    url, rec = recorder
    t0 = 1_704_067_200  # 2024-01-01: the log spans four days, one tick at warp 1e9
    pad = "x" * 400
    # most requests from one client (so one shard's share alone is over 1 MB), some from others
    clients = ["203.0.113.5"] * 3000 + [f"203.0.113.{10 + i % 12}" for i in range(600)]
    targets = [f"/items/{i}?q={pad}" for i in range(len(clients))]
    log = tmp_path / "heavy.log"
    log.write_text("\n".join(combined(t0 + 100 * i, "GET", target, client=client)
                             for i, (target, client) in enumerate(zip(targets, clients, strict=True))) + "\n")
    assert log.stat().st_size > 1_500_000
    # the bots hold at most 300 requests unanswered (and one part) per shard: past that they pause
    # reading the shard's partition, so the heavy shard's tick arrives a few parts at a time
    pipeline.extra_env["ESR_BOT_BACKLOG"] = "300"
    bots = await pipeline.start_all(bots=2)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "esr.cli", "replay", "--warp", "1e9", str(log), "--target", url, "--json",
        "--assert", f"requests == {len(targets)}", stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=pipeline.env)
    out, err = await asyncio.wait_for(proc.communicate(), 240)
    assert proc.returncode == 0, (out + err).decode()[-3000:]
    verdict = json.loads(out)["verdict"]
    assert verdict["verdict"] == "PASS", verdict["reason"]
    c = verdict["completeness"]
    assert c["complete"] is True and c["results_recorded"] == len(targets) == c["arrivals_planned"]
    assert (c["results_lost"], c["shard_reports_missing"]) == (0, 0)

    sent = Counter(s["target"] for s in rec.seen)
    assert len(rec.seen) == len(targets) and set(sent) == set(targets) and set(sent.values()) == {1}

    values = await asyncio.to_thread(requests_topic, pipeline.settings, verdict["run_id"])
    assert max(len(v) for v in values) <= PART_BOUND
    ticks = [decode_tick(v) for v in values]
    assert {t.tick for t in ticks} == {0}  # one tick ...
    by_shard: dict[int, list[Any]] = {}
    for t in ticks:
        by_shard.setdefault(t.shard, []).append(t)
    assert sorted(by_shard) == list(range(pipeline.settings.partitions))  # ... for every shard, even empty
    assert max(len(parts) for parts in by_shard.values()) >= 5  # the heavy shard's 1.3 MB in several parts
    for parts in by_shard.values():
        assert [t.part for t in parts] == list(range(len(parts)))
        assert [t.more for t in parts] == [True] * (len(parts) - 1) + [False]
    assert sum(len(t.requests or ()) for t in ticks) == len(targets)
    assert any("requests unanswered: reading" in bot.text() for bot in bots)  # one of them paused


async def test_a_worker_killed_in_the_middle_of_a_multi_part_tick_leaves_it_whole_to_the_next_owner(
        pipeline: Pipeline, recorder: Any, tmp_path: Path) -> None:
    """The tick's offsets are committed only when all its parts are done, so the worker that
    takes the shard over reads the tick again from its first part; the metrics side drops
    what both sent twice, and every request is counted once."""
    url, rec = recorder
    t0 = 1_704_067_200
    targets = [f"/items/{i}?q={'y' * 400}" for i in range(3000)]
    log = tmp_path / "one-client.log"
    log.write_text("\n".join(combined(t0 + 60 * i, "GET", target) for i, target in enumerate(targets)) + "\n")
    pipeline.extra_env["ESR_BOT_BACKLOG"] = "100"  # the heavy shard's tick goes a part at a time
    bots = await pipeline.start_all(bots=2)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "esr.cli", "replay", "--warp", "1e9", str(log), "--target", url, "--json",
        "--assert", f"requests == {len(targets)}", stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=pipeline.env)
    communicate = asyncio.ensure_future(proc.communicate())
    paused = asyncio.ensure_future(asyncio.wait(
        [asyncio.ensure_future(b.wait_for("requests unanswered: reading", 120)) for b in bots],
        return_when=asyncio.FIRST_COMPLETED))
    await paused
    owner = next(b for b in bots if "requests unanswered: reading" in b.text())
    owner.kill()  # in the middle of the tick: some parts played, some not yet read
    killed_at = len(rec.seen)
    out, err = await asyncio.wait_for(communicate, 240)
    assert proc.returncode == 0, (out + err).decode()[-3000:]
    verdict = json.loads(out)["verdict"]
    assert verdict["verdict"] == "PASS", verdict["reason"]
    c = verdict["completeness"]
    assert c["complete"] is True and c["results_recorded"] == len(targets)
    assert (c["results_lost"], c["shard_reports_missing"]) == (0, 0)
    assert killed_at < len(targets)
    assert set(Counter(s["target"] for s in rec.seen)) == set(targets)  # every one reached it, some twice
    survivor = next(b for b in bots if b is not owner)
    assert "opens at tick 0" in survivor.text().split("owns partitions")[-1]  # it took the shard over


async def test_a_bot_worker_that_refuses_a_replays_target_sends_none_of_its_parts(
        pipeline: Pipeline, recorder: Any, tmp_path: Path) -> None:
    """Each bot worker checks the replay's target against its own registry, as for scenarios:
    refused, it sends nothing, its shards report so at once, and the verdict says why."""
    url, rec = recorder
    strict = tmp_path / "strict-targets.json"
    strict.write_text(json.dumps({"loopback": False, "targets": {}}))
    t0 = 1_704_067_200
    log = tmp_path / "refused.log"
    log.write_text("\n".join(combined(t0 + i, "GET", f"/items/{i}?q={'z' * 400}") for i in range(1500)) + "\n")
    metrics = await pipeline.start("metrics")
    bots = await pipeline.start("bots", env={"ESR_TARGETS": str(strict)})
    await metrics.wait_for("esr worker metrics: ready", 180)
    await pipeline.wait_balanced([bots])
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "esr.cli", "replay", "--warp", "1e9", str(log), "--target", url, "--json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=pipeline.env)
    out, err = await asyncio.wait_for(proc.communicate(), 240)
    assert proc.returncode == 2, (out + err).decode()[-3000:]
    verdict = json.loads(out)["verdict"]
    assert verdict["verdict"] == "ERROR"
    assert "refused" in verdict["reason"] and url in verdict["reason"], verdict["reason"]
    assert rec.seen == []
