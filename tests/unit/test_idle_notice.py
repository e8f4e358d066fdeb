"""A bot worker that owns no partition of the tick topic says so once per idle spell."""

from __future__ import annotations

from esr.producers.assignment import IdleNotice, idle_line


def test_the_idle_line_names_the_topic_counts_group_and_the_fix() -> None:
    assert idle_line("esr.ticks", partitions=4, workers=5, group="esr.bots") == (
        "esr worker bots: owns no partition of esr.ticks (4 partitions, 5 workers in group esr.bots): idle until "
        "a rebalance gives it one; raise ESR_KAFKA_PARTITIONS to use it")
    assert "(1 partition, ? workers in group g)" in idle_line("t", partitions=1, workers=None, group="g")


def test_said_once_per_idle_spell_not_at_every_assignment() -> None:
    notice = IdleNotice()
    assert notice.assigned([]) is True  # idle from the start
    assert notice.assigned([]) is False  # another rebalance, still idle: already said
    assert notice.assigned([0]) is False
    assert notice.assigned([0, 1]) is False
    assert notice.assigned([]) is True  # idle again: a new spell
    assert notice.assigned([]) is False
