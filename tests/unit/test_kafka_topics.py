"""The pure parts of esr.bus.kafka's topic upkeep: which topics to create or grow, and the
lines the commands print about it."""

from __future__ import annotations

import zlib

import pytest

from esr.bus.kafka import (
    TOPICS,
    KafkaError,
    KafkaSettings,
    TopicChanges,
    check_replication,
    consistent_partitioner,
    run_partition,
    topic_changes,
)

SETTINGS = KafkaSettings("127.0.0.1:1", prefix="p.", partitions=4)
ALL = [f"p.{t}" for t in TOPICS]


def test_missing_topics_are_created_with_the_configured_count() -> None:
    changes = topic_changes(SETTINGS, {"p.runs": 4})
    assert changes.created == tuple(t for t in ALL if t != "p.runs")
    assert (changes.grown, changes.above) == ((), ())
    assert changes.counts == dict.fromkeys(ALL, 4)
    assert changes.lines(SETTINGS) == []  # creating topics is not news


def test_topics_below_the_configured_count_grow_to_it() -> None:
    existing = dict.fromkeys(ALL, 2) | {"p.verdicts": 4}
    changes = topic_changes(SETTINGS, existing)
    assert changes.created == ()
    assert changes.grown == tuple((t, 2, 4) for t in ALL if t != "p.verdicts")
    assert changes.counts["p.ticks"] == 4
    [line] = changes.lines(SETTINGS)
    assert line == ("esr: grew 9 topics to ESR_KAFKA_PARTITIONS=4 partitions: p.runs 2 -> 4, p.ticks 2 -> 4, "
                    "p.requests 2 -> 4, p.results 2 -> 4, p.journeys 2 -> 4, p.faults 2 -> 4, p.metrics 2 -> 4, "
                    "p.decisions 2 -> 4, p.partials 2 -> 4; new runs get 4 bot shards, runs already playing keep "
                    "theirs")


def test_the_metrics_apps_changelog_topics_grow_with_their_sources_but_are_never_created() -> None:
    changelog = "p.metrics-esr-partials-changelog"
    existing = dict.fromkeys(ALL, 2) | {changelog: 2, "p.metrics-other": 2, "q.runs": 1}
    changes = topic_changes(SETTINGS, existing)
    assert (changelog, 2, 4) in changes.grown
    assert [t for t, _, _ in changes.grown if not t.startswith("p.") or t == "p.metrics-other"] == []
    assert changelog not in topic_changes(SETTINGS, {}).created


def test_topics_above_the_configured_count_are_left_alone_and_said_so() -> None:
    existing = dict.fromkeys(ALL, 4) | {"p.ticks": 8, "p.results": 6}
    changes = topic_changes(SETTINGS, existing)
    assert (changes.created, changes.grown) == ((), ())
    assert changes.above == (("p.ticks", 8), ("p.results", 6))
    assert changes.counts["p.ticks"] == 8
    [line] = changes.lines(SETTINGS)
    assert line == ("esr: p.ticks has 8 partitions, p.results 6, more than ESR_KAFKA_PARTITIONS=4: left as they "
                    "are (Kafka cannot take partitions away); runs get 8 bot shards")


def test_nothing_to_say_when_every_topic_has_the_configured_count() -> None:
    changes = topic_changes(SETTINGS, dict.fromkeys(ALL, 4))
    assert changes == TopicChanges(counts=dict.fromkeys(ALL, 4))
    assert changes.lines(SETTINGS) == []


def test_topics_with_another_replication_factor_are_named_with_the_way_to_change_it() -> None:
    three = KafkaSettings("127.0.0.1:1", prefix="p.", partitions=4, replication=3, min_isr=2)
    changelog = "p.metrics-esr-partials-changelog"
    existing = dict.fromkeys([*ALL, changelog], 4)
    replicas = dict.fromkeys([*ALL, changelog], 3) | {"p.results": 1, changelog: 2, "q.runs": 1}
    changes = topic_changes(three, existing, replicas)
    assert (changes.created, changes.grown, changes.above) == ((), (), ())
    assert changes.replicas == (("p.results", 1), (changelog, 2))
    [line] = changes.lines(three)
    assert line == ("esr: p.results has 1 replica, p.metrics-esr-partials-changelog 2, not ESR_KAFKA_REPLICATION=3: "
                    "ESR cannot change the replication factor of an existing topic; change it with "
                    "kafka-reassign-partitions.sh --bootstrap-server BROKER --reassignment-json-file PLAN.json "
                    "--execute (a plan that lists 3 brokers for every partition; see docs/kafka.md, Replication), "
                    "or start over on new topics with another ESR_KAFKA_PREFIX")
    assert topic_changes(three, existing, dict.fromkeys(existing, 3)).lines(three) == []


def test_a_replication_factor_above_the_broker_count_names_the_variable_and_the_count() -> None:
    three = KafkaSettings("127.0.0.1:1", prefix="p.", replication=3)
    check_replication(three, 3)
    with pytest.raises(KafkaError) as caught:
        check_replication(three, 1)
    assert str(caught.value) == ("ESR_KAFKA_REPLICATION=3 is more than the cluster at 127.0.0.1:1 has brokers (1): "
                                 "set it to at most 1, or add brokers")


def test_an_existing_topics_lower_min_isr_is_raised_where_its_replicas_can_meet_it() -> None:
    three = KafkaSettings("127.0.0.1:1", prefix="p.", partitions=4, replication=3, min_isr=2)
    existing = dict.fromkeys(ALL, 4)
    replicas = dict.fromkeys(ALL, 3) | {"p.verdicts": 1}
    min_isr = dict.fromkeys(ALL, 2) | {"p.runs": 1, "p.ticks": 3, "p.verdicts": 1}
    changes = topic_changes(three, existing, replicas, min_isr)
    # p.ticks: 3 is never lowered; p.verdicts: 1 replica could never acknowledge with 2
    assert changes.min_isr_raised == (("p.runs", 1),)
    assert changes.replicas == (("p.verdicts", 1),)
    assert changes.lines(three)[1] == "esr: raised min.insync.replicas to ESR_KAFKA_MIN_ISR=2 on 1 topic: p.runs 1 -> 2"
    assert topic_changes(three, existing, dict.fromkeys(ALL, 3), dict.fromkeys(ALL, 2)).lines(three) == []
    default = KafkaSettings("127.0.0.1:1", prefix="p.", replication=3)  # a process without ESR_KAFKA_MIN_ISR
    assert topic_changes(default, existing, dict.fromkeys(ALL, 3), dict.fromkeys(ALL, 2)).min_isr_raised == ()


def test_a_run_lands_on_the_partition_librdkafkas_default_partitioner_gives_its_key() -> None:
    """CRC-32 of the key modulo the partition count ("consistent_random"), the same from the
    metrics workers' aiokafka producer: a run's messages share one partition number on every topic."""
    assert run_partition(b"run-1", 4) == zlib.crc32(b"run-1") % 4
    assert [run_partition(f"r{i}".encode(), 4) for i in range(8)] == [zlib.crc32(f"r{i}".encode()) % 4
                                                                      for i in range(8)]
    assert {run_partition(f"r{i}".encode(), 4) for i in range(64)} == {0, 1, 2, 3}
    for key in (b"a", b"run-2", b"20261202-141521-ace28a"):
        assert consistent_partitioner(key, [3, 1, 0, 2], [0]) == run_partition(key, 4)
    assert consistent_partitioner(None, [0, 1, 2, 3], [2]) == 2  # no key: any available partition
