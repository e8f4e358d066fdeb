"""Shards follow the cluster: topics grow when ESR_KAFKA_PARTITIONS rises, and a bot worker
with no partition of the tick topic says so once."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest
from kafka_pipeline import Pipeline, Worker
from loopback import wait_until

from esr.bus.kafka import TOPICS, KafkaSettings, ensure_topics, make_producer, run_partition, topic_partitions

pytestmark = [pytest.mark.integration, pytest.mark.kafka]


def fresh(bootstrap: str, partitions: int) -> KafkaSettings:
    return KafkaSettings(bootstrap, prefix=f"t{uuid.uuid4().hex[:8]}.", partitions=partitions)


async def test_raising_the_partition_count_grows_existing_topics_and_the_worker_says_so(
        kafka_bootstrap: str, tmp_path: Path) -> None:
    two = fresh(kafka_bootstrap, 2)
    ensure_topics(two)
    assert {topic_partitions(two, t) for t in TOPICS} == {2}

    four = KafkaSettings(kafka_bootstrap, prefix=two.prefix, partitions=4)
    pipe = Pipeline(four, tmp_path)
    try:
        clock = await pipe.start("clock")  # its `ensure_topics` grows them, and it says so
        await clock.wait_for("owns partitions")
    finally:
        await pipe.close()
    assert {t: topic_partitions(four, t) for t in TOPICS} == dict.fromkeys(TOPICS, 4)
    grew = [ln for ln in clock.text().splitlines() if ln.startswith("esr: grew")]
    assert grew == ["esr: grew 10 topics to ESR_KAFKA_PARTITIONS=4 partitions: "
                    + ", ".join(f"{four.topic(t)} 2 -> 4" for t in TOPICS)
                    + "; new runs get 4 bot shards, runs already playing keep theirs"]

    again = ensure_topics(four)  # nothing left to do
    assert (again.created, again.grown, again.above) == ((), (), ())
    three = ensure_topics(KafkaSettings(kafka_bootstrap, prefix=two.prefix, partitions=3))
    assert three.grown == () and three.above == tuple((four.topic(t), 4) for t in TOPICS)
    assert three.counts[four.topic("ticks")] == 4
    assert {topic_partitions(four, t) for t in TOPICS} == {4}  # never shrunk


def assignments(worker: Worker) -> list[list[int]]:
    found = re.findall(r"owns partitions (\[[^\]]*\])", worker.text())
    return [json.loads(f) for f in found]


def idle_lines(worker: Worker) -> list[str]:
    return [ln for ln in worker.text().splitlines() if "owns no partition" in ln]


def idle_spells(owned: list[list[int]]) -> int:
    return sum(1 for i, parts in enumerate(owned) if not parts and (i == 0 or owned[i - 1]))


async def test_a_bot_worker_beyond_the_partition_count_says_once_that_it_is_idle(
        kafka_bootstrap: str, tmp_path: Path) -> None:
    one = fresh(kafka_bootstrap, 1)
    ensure_topics(one)
    pipe = Pipeline(one, tmp_path)
    try:
        bots = [await pipe.start("bots"), await pipe.start("bots")]
        await wait_until(lambda: sum(bool(assignments(b)) and bool(assignments(b)[-1]) for b in bots) == 1
                         and any(idle_lines(b) for b in bots), 120, "one of two workers owning the partition")
        owner = next(b for b in bots if assignments(b) and assignments(b)[-1])
        idle = next(b for b in bots if b is not owner)
        owner.kill()  # the idle worker's spell ends when the group gives it the partition
        await wait_until(lambda: bool(assignments(idle)) and assignments(idle)[-1] == [0], 120,
                         "the idle worker taking the partition over")
    finally:
        await pipe.close()
    owned = assignments(idle)
    lines = idle_lines(idle)
    assert len(lines) == idle_spells(owned) == 1, idle.text()[-2000:]  # said once, however long it polled idle
    ticks = one.topic("ticks")
    pattern = (rf"esr worker bots: owns no partition of {re.escape(ticks)} \(1 partition, (\d+|\?) workers in group "
               rf"{re.escape(one.group('bots'))}\): idle until a rebalance gives it one; raise ESR_KAFKA_PARTITIONS "
               "to use it")
    assert all(re.fullmatch(pattern, ln) for ln in lines), lines
    assert any(re.fullmatch(pattern, ln).group(1) in ("2", "?") for ln in lines), lines  # type: ignore[union-attr]


def test_esrs_producers_put_a_run_on_the_partition_run_partition_names(kafka_settings: KafkaSettings) -> None:
    """The metrics workers find a run's partition with `run_partition`: the broker agrees."""
    producer = make_producer(kafka_settings)
    landed: dict[bytes, int] = {}
    keys = [f"run-{i}".encode() for i in range(24)]
    for key in keys:
        producer.produce(kafka_settings.topic("runs"), key=key, value=b"{}",
                         on_delivery=lambda err, msg: landed.__setitem__(msg.key(), msg.partition()))
    assert producer.flush(30) == 0
    assert landed == {key: run_partition(key, kafka_settings.partitions) for key in keys}
    assert set(landed.values()) == set(range(kafka_settings.partitions))
