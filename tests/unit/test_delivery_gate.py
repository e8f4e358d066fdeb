"""The gate between the consumer and a partition's folds: offsets in order, from where the
consumer group's committed position says reading resumes (esr/stream_apps/delivery_gate.py)."""

from __future__ import annotations

from esr.stream_apps.delivery_gate import DeliveryGate

P, Q = ("t.journeys", 2), ("t.results", 2)


def test_batches_read_before_the_worker_knows_where_its_generation_resumes_are_held_back() -> None:
    gate = DeliveryGate()
    assert not gate.admit(P, 119, 7, now=0.0)  # a fresh worker, before its first rebalance completed
    gate.reset(7, {P: 19})
    assert not gate.admit(P, 119, 6, now=0.0)  # fetched in the generation before
    assert not gate.admit(P, 119, None, now=0.0)
    assert gate.admit(P, 19, 7, now=0.0)


def test_a_stale_read_ahead_is_held_until_the_seek_brings_the_partition_again_in_order() -> None:
    """The case seen: a fold took offset 119 before the seek, then dropped 40-118 as read before."""
    gate = DeliveryGate()
    gate.reset(7, {P: 19, Q: 18})
    assert [gate.admit(P, offset, 7, now=1.0) for offset in (119, 120, 121)] == [False] * 3
    assert all(gate.admit(P, offset, 7, now=1.1) for offset in range(19, 125))  # after the seek, in order
    assert gate.expected[P] == 125 and gate.overdue(now=1000.0) == {}  # nothing held any more
    assert gate.admit(Q, 18, 7, now=1.2) and gate.admit(Q, 19, 7, now=1.2)  # each partition on its own
    assert not gate.admit(Q, 21, 7, now=1.2)


def test_offsets_read_again_after_a_seek_pass_and_restart_the_order_from_there() -> None:
    gate = DeliveryGate()
    gate.reset(3, {P: 40})
    assert all(gate.admit(P, offset, 3, now=0.0) for offset in range(40, 60))
    assert gate.admit(P, 40, 3, now=0.0)  # Faust's own seek to the committed offset: the fold drops them
    assert gate.expected[P] == 41
    assert not gate.admit(P, 59, 3, now=0.0)  # then only in order again


def test_a_partition_the_reset_did_not_name_takes_any_offset_and_is_ordered_from_it() -> None:
    gate = DeliveryGate()
    gate.reset(1, {})
    assert gate.admit(P, 500, 1, now=0.0)
    assert not gate.admit(P, 502, 1, now=0.0)


def test_a_hole_that_never_fills_is_read_on_from_the_first_offset_held_back() -> None:
    """Offsets deleted from the log (retention): after `hole_s`, whether or not more messages
    came, the partition is read again from the first message held, so none of those is lost."""
    gate = DeliveryGate(hole_s=30.0)
    gate.reset(2, {P: 10, Q: 5})
    assert not gate.admit(P, 50, 2, now=100.0)
    assert not gate.admit(P, 51, 2, now=120.0)
    assert not gate.admit(Q, 9, 2, now=125.0)
    assert gate.overdue(now=129.9) == {}
    assert gate.overdue(now=130.0) == {P: 50}
    assert gate.overdue(now=131.0) == {}  # once
    assert gate.expected[P] == 50 and gate.admit(P, 50, 2, now=130.1) and gate.admit(P, 51, 2, now=130.1)
    assert gate.overdue(now=155.0) == {Q: 9}


def test_a_new_rebalance_forgets_what_was_held_and_where_reading_stood() -> None:
    gate = DeliveryGate(hole_s=30.0)
    gate.reset(2, {P: 10})
    assert not gate.admit(P, 50, 2, now=0.0)
    gate.reset(3, {P: 12})
    assert gate.expected == {P: 12} and gate.overdue(now=100.0) == {}
    assert not gate.admit(P, 11, 2, now=31.0) and gate.admit(P, 11, 3, now=31.0)
