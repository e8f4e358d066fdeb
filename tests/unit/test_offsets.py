"""esr.producers.offsets.OffsetTracker: work finished out of order, committed as the longest finished prefix."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from esr.producers.offsets import OffsetTracker


def tracker(**partitions: list[int]) -> OffsetTracker:
    t = OffsetTracker()
    for name, offsets in partitions.items():
        for offset in offsets:
            t.add(int(name[1:]), offset)
    return t


def test_nothing_added_nothing_to_commit() -> None:
    t = OffsetTracker()
    assert t.committable() == {}
    assert t.pending(0) == 0


def test_in_order_completion_commits_one_past_each_finished_offset() -> None:
    t = tracker(p0=[0, 1, 2, 3, 4])
    t.done(0, 0)
    t.done(0, 1)
    assert t.committable() == {0: 2}
    assert t.pending(0) == 3
    t.done(0, 2)
    assert t.committable() == {0: 3}


def test_nothing_returned_when_nothing_advanced() -> None:
    t = tracker(p0=[0, 1, 2])
    t.done(0, 0)
    assert t.committable() == {0: 1}
    assert t.committable() == {}  # already handed out: not repeated
    t.done(0, 2)  # finished, but 1 still runs
    assert t.committable() == {}
    assert t.pending(0) == 2


def test_out_of_order_completion_waits_for_the_head() -> None:
    t = tracker(p0=[10, 11, 12, 13])
    for offset in (13, 12, 11):
        t.done(0, offset)
        assert t.committable() == {}
    assert t.pending(0) == 4
    t.done(0, 10)
    assert t.committable() == {0: 14}  # the whole finished prefix at once
    assert t.pending(0) == 0


def test_offsets_need_not_be_contiguous() -> None:
    t = tracker(p0=[5, 9, 20])  # e.g. transaction markers or compacted offsets in between
    t.done(0, 9)
    assert t.committable() == {}
    t.done(0, 5)
    assert t.committable() == {0: 10}
    t.done(0, 20)
    assert t.committable() == {0: 21}


def test_partitions_are_independent_and_only_advanced_ones_are_returned() -> None:
    t = tracker(p0=[0, 1], p1=[100, 101], p2=[7])
    t.done(1, 101)
    t.done(0, 0)
    t.done(2, 7)
    assert t.committable() == {0: 1, 2: 8}
    t.done(1, 100)
    assert t.committable() == {1: 102}
    assert [t.pending(p) for p in (0, 1, 2)] == [1, 0, 0]


def test_work_added_later_is_committed_after_the_earlier() -> None:
    t = tracker(p0=[0])
    t.done(0, 0)
    assert t.committable() == {0: 1}
    t.add(0, 1)
    t.add(0, 2)
    t.done(0, 2)
    assert t.committable() == {}
    t.done(0, 1)
    assert t.committable() == {0: 3}


def test_forget_drops_a_partition_that_went_to_another_worker() -> None:
    t = tracker(p0=[0, 1, 2], p1=[0, 1])
    t.done(0, 1)
    t.done(1, 0)
    t.forget(0)
    assert t.pending(0) == 0
    assert t.committable() == {1: 1}  # partition 0 is not committed by this worker any more
    t.forget(0)  # forgetting twice (or an unknown partition) is harmless
    t.forget(5)
    assert t.committable() == {}


def test_a_partition_assigned_again_restarts_from_the_re_read_offsets() -> None:
    t = tracker(p0=[0, 1, 2])
    t.done(0, 0)
    assert t.committable() == {0: 1}
    t.done(0, 2)  # finished before the partition was revoked; 1 was not
    t.forget(0)
    for offset in (1, 2):  # re-read from the last commit
        t.add(0, offset)
    assert t.committable() == {}  # the old "2 is done" did not survive the revocation
    t.done(0, 1)
    assert t.committable() == {0: 2}
    t.done(0, 2)
    assert t.committable() == {0: 3}


# -- a model test ---------------------------------------------------------------------------------
class Model:
    """The definition, not the algorithm: for each partition, the commit is one past the greatest
    offset o read since the partition was (re)assigned such that every offset read up to o is done;
    it is reported when it moved."""

    def __init__(self) -> None:
        self.read: dict[int, list[int]] = {}
        self.done: dict[int, set[int]] = {}
        self.reported: dict[int, int] = {}

    def add(self, p: int, offset: int) -> None:
        self.read.setdefault(p, []).append(offset)

    def mark(self, p: int, offset: int) -> None:
        self.done.setdefault(p, set()).add(offset)

    def forget(self, p: int) -> None:
        self.read.pop(p, None)
        self.done.pop(p, None)
        self.reported.pop(p, None)

    def commit_point(self, p: int) -> int | None:
        read, done = self.read.get(p, []), self.done.get(p, set())
        ok = [o for o in read if all(x in done for x in read if x <= o)]
        return max(ok) + 1 if ok else None

    def committable(self) -> dict[int, int]:
        out = {}
        for p in self.read:
            point = self.commit_point(p)
            if point is not None and point != self.reported.get(p):
                out[p] = self.reported[p] = point
        return out

    def pending(self, p: int) -> int:
        point = self.reported.get(p)
        return sum(1 for o in self.read.get(p, []) if point is None or o >= point)


PARTITIONS = 3
ops = st.lists(st.one_of(
    st.tuples(st.just("add"), st.integers(0, PARTITIONS - 1), st.integers(1, 3)),  # offset gap
    st.tuples(st.just("done"), st.integers(0, PARTITIONS - 1), st.integers(0, 10**6)),  # which open one
    st.tuples(st.just("commit"), st.just(0), st.just(0)),
    st.tuples(st.just("forget"), st.integers(0, PARTITIONS - 1), st.just(0)),
), max_size=80)


@settings(max_examples=200, deadline=None)
@given(ops)
def test_tracker_agrees_with_the_model(steps: list[tuple[str, int, int]]) -> None:
    t, m = OffsetTracker(), Model()
    next_offset = {p: 0 for p in range(PARTITIONS)}  # what the consumer reads next
    open_work: dict[int, list[int]] = {p: [] for p in range(PARTITIONS)}
    committed = {p: 0 for p in range(PARTITIONS)}  # what the broker holds
    for op, p, arg in steps:
        if op == "add":
            offset = next_offset[p] + arg - 1
            next_offset[p] = offset + 1
            t.add(p, offset)
            m.add(p, offset)
            open_work[p].append(offset)
        elif op == "done" and open_work[p]:
            offset = open_work[p].pop(arg % len(open_work[p]))  # any order
            t.done(p, offset)
            m.mark(p, offset)
        elif op == "commit":
            got = t.committable()
            assert got == m.committable()
            for part, offset in got.items():
                assert offset > committed[part]  # a commit only moves forward
                committed[part] = offset
        elif op == "forget":  # revoked, then assigned again: re-read from the broker's commit
            t.forget(p)
            m.forget(p)
            open_work[p] = []
            next_offset[p] = committed[p]
        for part in range(PARTITIONS):
            assert t.pending(part) == m.pending(part)
    final = t.committable()
    assert final == m.committable()
    for p, offset in final.items():  # everything before a commit is done
        assert all(o in m.done[p] for o in m.read[p] if o < offset)
