"""`Agenda`: what is due at a time, in time order, ties in the order added."""

from __future__ import annotations

import random

from esr.core.agenda import Agenda


def test_nothing_is_due_before_its_time_and_everything_due_comes_out_in_order() -> None:
    agenda: Agenda[str] = Agenda()
    assert agenda.next_at is None and agenda.pop_due(1e9) == []
    for at, item in [(30.0, "c"), (10.0, "a"), (20.0, "b"), (10.0, "a2")]:
        agenda.add(at, item)
    assert agenda.next_at == 10.0 and len(agenda) == 4
    assert agenda.pop_due(9.999) == []
    assert agenda.pop_due(10.0) == [(10.0, "a"), (10.0, "a2")]  # equal times: first added first
    assert agenda.next_at == 20.0
    assert agenda.pop_due(25.0) == [(20.0, "b")]
    assert agenda.pop_due(1e9) == [(30.0, "c")] and len(agenda) == 0 and agenda.next_at is None


def test_items_need_not_be_comparable() -> None:
    agenda: Agenda[object] = Agenda()
    first, second = object(), object()
    agenda.add(1.0, first)
    agenda.add(1.0, second)
    assert [item for _, item in agenda.pop_due(1.0)] == [first, second]


def test_many_entries_come_out_sorted_and_clear_returns_the_rest() -> None:
    rng = random.Random(4)
    times = [rng.uniform(0, 3600) for _ in range(10_000)]
    agenda: Agenda[int] = Agenda()
    for i, at in enumerate(times):
        agenda.add(at, i)
    due = agenda.pop_due(1800.0)
    assert [at for at, _ in due] == sorted(t for t in times if t <= 1800.0)
    rest = agenda.clear()
    assert sorted(times[i] for i in rest) == [times[i] for i in rest]
    assert len(rest) + len(due) == len(times) and len(agenda) == 0
