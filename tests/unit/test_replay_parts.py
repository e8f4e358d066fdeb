"""A replay tick's requests cut into bounded parts for the requests topic (esr.replay.parts),
and the parts' wire shape (`Tick.part`, `Tick.more`)."""

from __future__ import annotations

import msgspec
from factories import RunEvents
from hypothesis import given
from hypothesis import strategies as st

from esr.bus.kafka import decode_tick, encode
from esr.core.ticks import PlannedRequest, Tick
from esr.replay.kafka import tick_part
from esr.replay.parts import PART_MAX_BYTES, PartCutter


def cut(sizes: list[int], budget: int, max_requests: int) -> list[list[bytes]]:
    cutter = PartCutter(budget, max_requests)
    parts = []
    for i, size in enumerate(sizes):
        full = cutter.add(str(i % 10).encode() * size)
        if full is not None:
            parts.append(full)
    return [*parts, cutter.rest()]


@given(st.lists(st.integers(1, 300), max_size=200), st.integers(50, 2000), st.integers(1, 20))
def test_parts_keep_every_request_in_order_within_both_bounds(sizes: list[int], budget: int,
                                                              max_requests: int) -> None:
    parts = cut(sizes, budget, max_requests)
    assert [len(r) for part in parts for r in part] == sizes  # all of them, in order, each once
    assert all(part for part in parts[:-1])  # only the last part may be empty (an empty tick)
    for part in parts:
        assert len(part) <= max_requests
        assert sum(len(r) + 1 for r in part) <= budget or len(part) == 1  # over it only alone


def test_a_part_closes_when_the_next_request_would_go_over_the_budget() -> None:
    assert [[len(r) for r in p] for p in cut([40, 40, 40, 10, 200, 5], budget=100, max_requests=10)] == [
        [40, 40], [40, 10], [200], [5]]  # 200 is over the budget on its own: alone in its part


def test_a_part_closes_at_its_request_count() -> None:
    assert [len(p) for p in cut([1] * 7, budget=10_000, max_requests=3)] == [3, 3, 1]


def test_an_empty_tick_is_one_empty_last_part_and_the_cutter_starts_the_next_tick_empty() -> None:
    cutter = PartCutter(100)
    assert cutter.rest() == []
    cutter.add(b"x" * 60)
    assert cutter.add(b"y" * 60) == [b"x" * 60]
    assert cutter.rest() == [b"y" * 60]
    assert cutter.rest() == []


def test_a_part_carries_its_requests_encoded_once_and_decodes_as_a_tick() -> None:
    started = RunEvents().started()
    requests = [PlannedRequest(index=i, sim=float(i), method="GET", target=f"/items/{i}",
                               headers=[("Accept", "text/plain")]) for i in range(3)]
    encoded = [msgspec.json.encode(r) for r in requests]
    value = encode(tick_part(started, 2, 0, 1, part=4, more=True, requests=encoded))
    tick = decode_tick(value)
    assert (tick.shard, tick.tick, tick.part, tick.more, tick.last) == (2, 0, 4, True, True)
    assert tick.requests == requests
    assert len(value) < PART_MAX_BYTES


def test_a_tick_written_before_parts_existed_is_a_whole_tick() -> None:
    started = RunEvents().started()
    old = msgspec.json.decode(encode(Tick(run_id="r", shard=0, tick=3, sim_from=0.0, sim_to=1.0, last=False,
                                          run=started, requests=[])))
    del old["part"], old["more"]
    tick = decode_tick(msgspec.json.encode(old))
    assert (tick.part, tick.more, tick.requests) == (0, False, [])
