"""The metrics app's Kafka settings, read from the Faust app without a broker: replicated
changelogs and an idempotent producer, as ESR's own topics and producers have."""

from __future__ import annotations

from pathlib import Path

import pytest

from esr.bus.kafka import MAX_MESSAGE_BYTES, KafkaSettings
from esr.stream_apps.metrics import (
    PERIODIC_SHARE,
    POLL_RECORDS,
    PROGRESS_S,
    QUIET_S,
    STORE_BYTES_PER_S,
    STREAM_BUFFER,
    create_app,
    is_quiet,
    paced_gap,
    store_pace,
)


def test_changelogs_get_the_replication_and_min_isr_and_the_producer_is_idempotent(tmp_path: Path) -> None:
    settings = KafkaSettings("127.0.0.1:1", prefix="u.", replication=3, min_isr=2)
    app = create_app(settings, datadir=str(tmp_path))
    assert app.conf.topic_replication_factor == 3  # changelogs, and the assignor's leader topic
    for name in ("esr-partials", "esr-merged", "esr-runs", "esr-verdicts"):
        assert app.tables[name].changelog_topic.config == {"min.insync.replicas": "2",
                                                           "max.message.bytes": str(MAX_MESSAGE_BYTES)}, name
    extra = app.producer._settings_extra()  # noqa: SLF001 - what Faust gives aiokafka's producer
    assert (extra["acks"], extra["enable_idempotence"]) == ("all", True)
    assert app.conf.producer_max_request_size == MAX_MESSAGE_BYTES  # a replay's stored change can be large
    assert app.conf.stream_buffer_maxsize == STREAM_BUFFER == 64  # read-ahead of large batches, bounded
    assert app.conf.broker_max_poll_records == POLL_RECORDS == 100  # the rest of a fetch stays bytes


def test_one_broker_keeps_one_replica(tmp_path: Path) -> None:
    app = create_app(KafkaSettings("127.0.0.1:1", prefix="v."), datadir=str(tmp_path))
    assert app.conf.topic_replication_factor == 1
    assert app.tables["esr-partials"].changelog_topic.config["min.insync.replicas"] == "1"


def test_stores_and_progress_messages_take_at_most_a_tenth_of_the_workers_time() -> None:
    """A cheap store or progress message keeps its pace; a costly one (a fold of a million paths)
    waits long enough that it takes at most PERIODIC_SHARE of the time."""
    assert PERIODIC_SHARE == 0.1
    assert paced_gap(0.25, 0.002) == 0.25 and paced_gap(PROGRESS_S, 0.05) == PROGRESS_S == 1.0
    assert paced_gap(PROGRESS_S, 0.3) == pytest.approx(3.0)
    for spent in (0.0, 0.01, 0.1, 0.35, 4.0):
        gap = paced_gap(0.25, spent)
        assert gap >= 0.25 and spent <= PERIODIC_SHARE * gap + 1e-12


def test_a_large_change_is_stored_less_often_counting_everything_its_store_writes() -> None:
    """A replay of a million paths rewrites its endpoint rows at every store: the pace counts
    every entry written to the changelog and "last" once more, as the partial message."""
    assert STORE_BYTES_PER_S == 1024 * 1024
    small = {"last": b"x" * 1000, "meta": b"x" * 200, "t0": b"x" * 800}
    assert store_pace(small, 0.25) == 0.25
    rows = {f"r{slot}": b"x" * 16_384 for slot in range(32)}  # 512 KiB of rows
    large = {"last": b"x" * 540_000, "meta": b"x" * 200, **rows}
    assert store_pace(large, 0.25) == pytest.approx((2 * 540_000 + 200 + 32 * 16_384) / STORE_BYTES_PER_S)
    assert store_pace(large, 0.25) > 1.5  # "last" alone would have paced it at 0.51 s


def test_a_run_is_quiet_only_after_quiet_s_of_the_worker_free_to_read_it() -> None:
    """A 10,000,000-line replay was judged incomplete at 937,463 results: the worker's own store
    (its delivery awaited) had the batches out of `unacked` and nothing new came meanwhile."""
    assert QUIET_S == 2.0
    assert is_quiet("r", now=100.0, came_at=97.5, free_since=0.0, waiting=())
    assert not is_quiet("r", now=100.0, came_at=98.5, free_since=0.0, waiting=())  # it came 1.5 s ago
    assert not is_quiet("r", now=100.0, came_at=90.0, free_since=99.0, waiting=())  # busy until 1 s ago
    assert is_quiet("r", now=100.0, came_at=90.0, free_since=97.0, waiting=())
    assert not is_quiet("r", now=100.0, came_at=90.0, free_since=0.0, waiting=("r|3",))  # a store under way
    assert is_quiet("r", now=100.0, came_at=90.0, free_since=0.0, waiting=("r2|3", "other|0"))  # other runs'
