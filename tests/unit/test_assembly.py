"""esr.stream_apps.assembly: batches from bot shards counted once, a run's completeness, and its RunFinished."""

from __future__ import annotations

import base64
import random
from typing import Any

import msgspec
import pytest
from factories import HOUR, RUN_ID, RunEvents
from hypothesis import given, settings
from hypothesis import strategies as st

from esr.core.buckets import REST, RunFold
from esr.core.events import Event, EventBatch, RequestResult, RunFinished, RunStarted, ShardReport
from esr.core.heavy_hitters import OTHER
from esr.core.ticks import expected_end
from esr.core.verdict import judge
from esr.stream_apps.assembly import RunAssembly, ShardFold, decode_partial, encode_partial, split_last

replace = msgspec.structs.replace

CLAIM = {"name": "claim", "steps": [{"name": "file", "request": {"method": "POST", "path": "/claims"}},
                                     {"name": "paid", "request": {"path": "/claims/1"}}]}
SCENARIO: dict[str, Any] = {"name": "t", "duration_hours": 1, "time_warp": 360, "load_profile": [[0, 10]],
                            "journeys": [CLAIM]}
TICKS = 10  # one simulated hour at warp 360 is 10 real seconds: 10 ticks of 1 s, 360 simulated s each

EV = RunEvents(time_warp=360.0, load_end_sim=HOUR)


def run_started(*, shards: int = 2, tick_s: float = 1.0, scenario: dict[str, Any] | None = None,
                drain_warp: float | None = None, arrivals_planned: int = 0) -> RunStarted:
    ev = RunEvents(time_warp=360.0, drain_warp=drain_warp, load_end_sim=HOUR)
    s = ev.started(scenario=scenario or SCENARIO, arrivals_planned=arrivals_planned)
    return replace(s, shards=shards, tick_s=tick_s)


def result(user: int, n: int, *, sim: float = 10.0, latency_ms: float = 100.0,
           endpoint: str = "POST /claims") -> RequestResult:
    return replace(EV.result(sim=sim, user=user, latency_ms=latency_ms, endpoint=endpoint), n=n)


def counter(user: int, n: int, *, sim: float = 10.0, value: float = 1.0, name: str = "paid") -> Event:
    return replace(EV.counter(sim=sim, name=name, value=value, user=user), n=n)


def batch(events: list[Event], *, attempt: str = "a", tick: int = 0, shard: int = 0) -> EventBatch:
    return EventBatch(run_id=RUN_ID, shard=shard, attempt=attempt, tick=tick, window_s=60.0,
                      late_threshold_ms=10.0, events=events)


def report(shard: int, attempt: str, first: int, last: int, *, final: bool = False, sent: int = 0,
           journey_events: int = 0, sim_time: float = 0.0, real_time: float = 0.0, **drain: int) -> ShardReport:
    return ShardReport(run_id=RUN_ID, seq=0, sim_time=sim_time, real_time=real_time, shard=shard, attempt=attempt,
                       first_tick=first, last_tick=last, final=final, requests_sent=sent,
                       journey_events=journey_events, **drain)


def received(part: ShardFold, attempt: str, first: int = 0, last: int = TICKS, *, shard: int = 0) -> tuple[int, int]:
    got = part.received_in(shard, attempt, first, last)
    return got.results, got.journey_events


def buckets(fold: RunFold) -> dict[tuple[int, str], dict[str, Any]]:
    return {key: b.to_dict() for key, b in fold.buckets.items()}


def state(part: ShardFold) -> dict[str, Any]:
    """Everything a ShardFold holds, as comparable data."""
    f = part.fold
    return {
        "buckets": buckets(f), "results_recorded": f.results_recorded, "events": f.events,
        "failure_reasons": f.failure_reasons, "last_sim_time": f.last_sim_time, "last_real_time": f.last_real_time,
        "window_s": f.window_s, "late_threshold_ms": f.late_threshold_ms, "duplicates": part.duplicates,
        "resent": part.resent, "offsets": part.offsets,
        "ticks": {k: {"next_result": dict(t.next_result), "next_count": dict(t.next_count), "seen": t.seen,
                      "counted_by": dict(t.counted_by), "once": {a: bits.users() for a, bits in t.once.items()},
                      "received": {a: (r.results, r.journey_events) for a, r in t.received.items()}}
                  for k, t in part.ticks.items()},
    }


def journey(user: int, tick: int, results: int, *, late_ms: float = 0.0, met: bool = True) -> list[Event]:
    """A user's journey as a bot sends it: start, numbered results and a counter, an SLA, the end.
    Latencies and counter values are multiples of 1/8, so sums are exact in any order."""
    t0 = tick * 360.0 + (user % 7) * 10.0
    events: list[Event] = [EV.journey_started(sim=t0, user=user, late_ms=late_ms)]
    for n in range(results):
        events.append(result(user, n, sim=t0 + 1 + 20 * n, latency_ms=(8 * user + n + 1) / 8,
                             endpoint="POST /claims" if n == 0 else "GET /claims/{id}"))
        if n == 0:
            events.append(counter(user, 0, sim=t0 + 1, value=0.5))
    events.append(EV.sla(opened=t0, decided=t0 + 5 + 20 * results, met=met, user=user))
    events.append(EV.journey_ended(sim=t0 + 6 + 20 * results, user=user))
    return events


# == ShardFold: each event counted once ==========================================================
def test_a_re_run_journeys_repeats_are_dropped_and_its_later_numbers_counted() -> None:
    part = ShardFold()
    assert part.apply(batch([result(1, n) for n in range(3)], attempt="a")) is True
    assert (part.fold.results_recorded, part.duplicates) == (3, 0)
    assert part.apply(batch([result(1, n) for n in range(5)], attempt="b")) is True
    assert (part.fold.results_recorded, part.duplicates) == (5, 3)  # b's n=0..2 repeat a's
    assert part.ticks[0].results_counted() == {1: 5}
    assert received(part, "a") == (3, 0)
    assert received(part, "b") == (5, 0)  # everything b sent, its repeats included
    assert part.fold.merged().requests == 5


def test_a_number_below_the_count_is_a_duplicate_even_from_the_same_attempt() -> None:
    part = ShardFold()
    part.apply(batch([result(1, 0), result(1, 1), result(1, 0)]))
    part.apply(batch([result(1, 1)]))
    assert (part.fold.results_recorded, part.duplicates) == (2, 2)
    assert received(part, "a") == (4, 0)


def test_users_are_counted_independently() -> None:
    part = ShardFold()
    part.apply(batch([result(1, 0), result(1, 1), result(1, 2)], attempt="a"))
    part.apply(batch([result(2, 0), result(1, 2), result(2, 1)], attempt="b"))
    assert part.ticks[0].results_counted() == {1: 3, 2: 2}
    assert (part.fold.results_recorded, part.duplicates) == (5, 1)


def test_the_first_copy_of_a_result_is_the_one_in_the_buckets() -> None:
    part = ShardFold()
    part.apply(batch([result(1, 0, sim=30.0, latency_ms=100.0)], attempt="a"))
    part.apply(batch([result(1, 0, sim=90.0, latency_ms=700.0)], attempt="b"))  # a re-run's copy
    assert list(part.fold.buckets) == [(0, "POST /claims")]
    bucket = part.fold.buckets[(0, "POST /claims")]
    assert (bucket.requests, bucket.latency.count, bucket.latency.sum) == (1, 1, 100.0)


def test_journey_starts_and_ends_count_once_per_user() -> None:
    part = ShardFold()
    for attempt in ("a", "b"):
        part.apply(batch([EV.journey_started(sim=5.0, user=1, late_ms=500.0),
                          EV.journey_ended(sim=70.0, user=1, outcome="failed")], attempt=attempt))
    part.apply(batch([EV.journey_started(sim=6.0, user=2), EV.journey_ended(sim=71.0, user=2)], attempt="b"))
    whole = part.fold.merged()
    assert (whole.journeys_started, whole.late_starts) == (2, 1)
    assert whole.journeys == {"completed": 1, "failed": 1}
    assert part.ticks[0].seen == {(1, "started"), (1, "ended"), (2, "started"), (2, "ended")}
    assert received(part, "a") == (0, 2)
    assert received(part, "b") == (0, 4)
    assert part.duplicates == 0  # duplicates counts results only


def test_an_sla_is_decided_once_per_user_and_sla_in_the_window_it_opened() -> None:
    part = ShardFold()
    part.apply(batch([EV.sla(opened=30.0, decided=4000.0, met=True, user=1),
                      EV.sla(opened=30.0, decided=4000.0, met=True, user=1),
                      EV.sla(opened=30.0, decided=500.0, met=False, user=1, sla="2h")], attempt="a"))
    part.apply(batch([EV.sla(opened=30.0, decided=4100.0, met=False, user=1),  # a re-run decided otherwise
                      EV.sla(opened=70.0, decided=4000.0, met=True, user=2)], attempt="b"))
    opened = part.fold.buckets[(0, "")]
    assert (opened.sla_met, opened.sla_missed) == ({"48h": 1}, {"2h": 1})
    assert part.fold.buckets[(1, "")].sla_met == {"48h": 1}
    whole = part.fold.merged()
    assert (whole.sla_met, whole.sla_missed) == ({"48h": 2}, {"2h": 1})


def test_counters_count_once_per_user_and_number() -> None:
    part = ShardFold()
    part.apply(batch([counter(1, 0, value=2.5)], attempt="a"))
    part.apply(batch([counter(1, 0, value=2.5), counter(1, 1, value=1.0), counter(2, 0, value=4.0)], attempt="b"))
    part.apply(batch([counter(1, 1, value=1.0)], attempt="a"))
    assert part.fold.merged().counters == {"paid": 7.5}
    assert part.ticks[0].next_count == {1: 2, 2: 1}
    assert part.duplicates == 0
    assert received(part, "a") == (0, 2)
    assert received(part, "b") == (0, 3)


def test_counter_and_result_numbers_are_separate_sequences() -> None:
    part = ShardFold()
    part.apply(batch([result(1, 0), counter(1, 0), result(1, 1), counter(1, 1)]))
    assert part.fold.results_recorded == 2
    assert part.fold.merged().counters == {"paid": 2.0}


def test_dedupe_is_per_arrival_tick() -> None:
    part = ShardFold()
    part.apply(batch([result(1, 0)], tick=0))
    part.apply(batch([result(2, 0), result(2, 1)], tick=3))
    assert sorted(part.ticks) == [0, 3]
    assert part.ticks[0].results_counted() == {1: 1}
    assert part.ticks[3].results_counted() == {2: 2}


def test_a_batch_read_again_after_a_restart_is_skipped() -> None:
    part = ShardFold()
    first = batch([result(1, 0), result(1, 1)], attempt="a")
    assert part.apply(first, "results/0", 5) is True
    part.take_dirty()
    before = state(part)
    assert part.apply(first, "results/0", 5) is False  # the same message again
    assert part.apply(batch([result(7, 0)], attempt="b"), "results/0", 3) is False  # an older one
    assert state(part) == before  # nothing counted, not even in `received`
    assert set(part.take_dirty()) == {"last", "meta"}
    assert part.apply(batch([result(7, 0)], attempt="b"), "results/1", 0) is True  # sources are independent
    assert part.apply(batch([result(1, 2)], attempt="a"), "results/0", 6) is True
    assert part.offsets == {"results/0": 6, "results/1": 0}
    assert (part.fold.results_recorded, part.duplicates) == (4, 0)


def test_without_an_offset_a_batch_is_folded_every_time() -> None:
    part = ShardFold()
    b = batch([result(1, 0), EV.journey_started(sim=1.0, user=1)])
    assert part.apply(b) is True
    assert part.apply(b) is True
    assert part.offsets == {}
    assert (part.fold.results_recorded, part.duplicates) == (1, 1)
    assert part.fold.merged().journeys_started == 1
    assert received(part, "a") == (2, 2)


def test_run_level_events_in_a_batch_are_not_folded() -> None:
    part = ShardFold()
    part.apply(batch([report(0, "a", 0, 3), EV.finished(requests_sent=3)]))
    assert (part.fold.events, part.fold.results_recorded, part.fold.buckets) == (0, 0, {})
    assert part.fold.finished is None


def test_received_in_sums_one_attempts_ticks_in_a_range() -> None:
    part = ShardFold()
    for tick in range(4):
        events = [result(10 + tick, n) for n in range(tick + 1)] + [EV.journey_started(sim=1.0, user=10 + tick)]
        part.apply(batch(events, attempt="a", tick=tick))
    part.apply(batch([result(10, 0), result(10, 1)], attempt="b", tick=0))
    assert received(part, "a", 0, 3) == (1 + 2 + 3 + 4, 4)
    assert received(part, "a", 1, 2) == (2 + 3, 2)
    assert received(part, "a", 3, 3) == (4, 1)
    assert received(part, "a", 4, 9) == (0, 0)
    assert received(part, "b", 0, 3) == (2, 0)
    assert received(part, "nobody", 0, 9) == (0, 0)


def test_received_is_kept_per_shard_and_attempt() -> None:
    part = ShardFold()  # one partition can carry several shards, whose attempts may share a name
    part.apply(batch([result(0, 0), result(0, 1)], attempt="w1:1", shard=0))
    part.apply(batch([result(1, 0), EV.journey_started(sim=1.0, user=1)], attempt="w1:1", shard=1))
    assert received(part, "w1:1", shard=0) == (2, 0)
    assert received(part, "w1:1", shard=1) == (1, 1)
    assert received(part, "w1:1", shard=2) == (0, 0)


def test_windows_follow_the_fold_window_length() -> None:
    part = ShardFold(window_s=300.0, late_threshold_ms=50.0)
    part.apply(batch([result(1, 0, sim=299.0), result(2, 0, sim=301.0), EV.journey_started(sim=10.0, user=3,
                                                                                          late_ms=40.0)]))
    assert sorted(part.fold.buckets) == [(0, ""), (0, "POST /claims"), (1, "POST /claims")]
    assert part.fold.merged().late_starts == 0  # 40 ms is not late with a 50 ms threshold


# == ShardFold state in a table ==================================================================
def test_take_dirty_gives_the_changed_windows_and_ticks_and_meta() -> None:
    part = ShardFold(window_s=60.0)
    part.apply(batch([result(1, 0, sim=10.0), result(2, 0, sim=130.0)], tick=0))
    dirty = part.take_dirty()
    assert set(dirty) == {"last", "meta", "w0", "w2", "t0"}
    assert msgspec.json.decode(dirty["w2"]) == [["POST /claims", part.fold.buckets[(2, "POST /claims")].to_dict()]]
    assert set(part.take_dirty()) == {"last", "meta"}  # nothing changed since
    part.apply(batch([result(3, 0, sim=250.0)], tick=1))
    assert set(part.take_dirty()) == {"last", "meta", "w4", "t1"}
    part.apply(batch([result(3, 0, sim=250.0)], tick=1, attempt="b"))  # a duplicate: only `received` changes
    assert set(part.take_dirty()) == {"last", "meta", "t1"}
    meta = msgspec.json.decode(part.take_dirty()["meta"])
    assert (meta["results_recorded"], meta["duplicates"], meta["window_s"]) == (3, 1, 60.0)


def test_take_dirty_names_the_window_an_sla_is_counted_in() -> None:
    part = ShardFold(window_s=60.0)
    part.take_dirty()
    part.apply(batch([EV.sla(opened=70.0, decided=400.0, met=True, user=1)], tick=2))
    dirty = part.take_dirty()
    assert {"meta", "w1", "t2"} <= set(dirty) <= {"last", "meta", "w1", "w6", "t2"}
    assert msgspec.json.decode(dirty["w1"])[0][1]["sla_met"] == {"48h": 1}


def mixed_part() -> ShardFold:
    part = ShardFold(window_s=60.0, late_threshold_ms=25.0)
    for i, (attempt, tick, user) in enumerate([("a", 0, 1), ("a", 1, 2), ("b", 0, 1), ("b", 2, 3)]):
        events = journey(user, tick, results=3, late_ms=30.0 * user, met=user != 2)
        events.append(replace(EV.journey_ended(sim=tick * 360.0 + 200, user=user + 100, outcome="failed"),
                              detail="paid: 500"))
        part.apply(batch(events, attempt=attempt, tick=tick), "results/0", 10 + i)
    return part


def test_entries_rebuild_an_equal_fold() -> None:
    part = mixed_part()
    rebuilt = ShardFold.from_entries(part.entries())
    assert state(rebuilt) == state(part)
    assert rebuilt.fold.failure_reasons == {"claim: paid: 500": 3}
    assert (rebuilt.duplicates, rebuilt.offsets) == (3, {"results/0": 13})
    for attempt in ("a", "b", "c"):
        for first, last in ((0, 0), (0, 2), (1, 2)):
            assert received(rebuilt, attempt, first, last) == received(part, attempt, first, last)


def test_a_rebuilt_fold_still_drops_duplicates_and_re_read_batches() -> None:
    part = mixed_part()
    rebuilt = ShardFold.from_entries(part.entries())
    repeat = batch(journey(1, 0, results=4), attempt="c", tick=0)  # n=0..2 repeat, n=3 is new
    for p in (part, rebuilt):
        assert p.apply(repeat, "results/0", 13) is False  # already folded before the restart
        assert p.apply(repeat, "results/0", 14) is True
    assert state(rebuilt) == state(part)
    assert (rebuilt.fold.results_recorded, rebuilt.duplicates) == (3 * 3 + 1, 3 + 3)
    assert rebuilt.fold.merged().journeys_started == 3


def test_entries_of_an_empty_fold_rebuild_an_empty_fold() -> None:
    part = ShardFold(window_s=30.0, late_threshold_ms=5.0)
    assert set(part.entries()) == {"last", "meta"}
    assert state(ShardFold.from_entries(part.entries())) == state(part)


def test_a_table_kept_from_take_dirty_rebuilds_the_fold() -> None:
    part, table = ShardFold(), {}
    for tick in range(3):
        part.apply(batch(journey(tick, tick, results=2), tick=tick))
        table.update(part.take_dirty())
    part.apply(batch(journey(0, 0, results=3), attempt="b", tick=0))
    table.update(part.take_dirty())
    assert state(ShardFold.from_entries(table)) == state(part)


def test_a_worker_killed_halfway_through_writing_a_change_loses_nothing() -> None:
    """The table got "last" and only some of the separate entries of the latest change (a
    kill -9 between changelog messages): the rebuilt fold is the whole fold, not half of it."""
    part, table = ShardFold(), {}
    for tick in range(3):
        part.apply(batch(journey(tick, tick, results=2), tick=tick), "results/0", tick)
        table.update(part.take_dirty())
    part.apply(batch(journey(7, 2, results=3), tick=2), "journeys/0", 10)
    dirty = part.take_dirty()
    for cut in range(1, len(dirty) + 1):  # "last" first, then each separate entry in order
        written = dict(table)
        written.update(dict(list(dirty.items())[:cut]))
        assert state(ShardFold.from_entries(written)) == state(part), f"cut after {cut} entries"


# == partials merged by the run's owner ============================================================
def test_update_with_each_change_in_turn_gives_the_fold_that_made_them() -> None:
    """The run's owner lays each published change over its copy: it ends equal to the fold."""
    part, copy = ShardFold(), ShardFold()
    for i, (attempt, tick, user) in enumerate([("a", 0, 1), ("a", 1, 2), ("b", 0, 1), ("b", 2, 3), ("a", 1, 9)]):
        part.apply(batch(journey(user, tick, results=2 + user % 2), attempt=attempt, tick=tick), "results/0", i)
        assert copy.update(split_last(part.take_dirty()["last"])) is copy
        assert state(copy) == state(part), f"after change {i}"
    assert copy.duplicates == 3 and buckets(copy.fold) == buckets(part.fold)  # attempt b repeated user 1


def test_update_is_idempotent_and_an_older_change_after_a_newer_one_leaves_the_newer_values() -> None:
    """A partial read twice (a merge worker killed before its ack), or a fold re-published whole
    by the worker that took its partition over: each entry is a whole value, so nothing counts twice."""
    part = ShardFold()
    part.apply(batch(journey(1, 0, results=2), tick=0), "results/0", 0)
    first = part.take_dirty()
    part.apply(batch(journey(2, 0, results=3), tick=0), "results/0", 1)
    second = part.take_dirty()
    copy = ShardFold().update(first).update(second).update(second)
    assert state(copy) == state(part)
    assert state(ShardFold().update(first).update(part.entries())) == state(part)


def test_update_with_only_some_entries_keeps_the_others() -> None:
    part = mixed_part()
    copy = ShardFold.from_entries(part.entries())
    part.apply(batch([result(50, 0, sim=900.0)], tick=2), "results/0", 20)
    dirty = part.take_dirty()
    assert set(dirty) == {"last", "meta", "w15", "t2"}
    copy.update({k: v for k, v in dirty.items() if k != "last"})
    assert state(copy) == state(part)


def test_a_partial_carries_a_change_whole() -> None:
    part = mixed_part()
    dirty = part.take_dirty()
    message = encode_partial(RUN_ID, f"{RUN_ID}|3", dirty)
    assert msgspec.json.decode(message)["last"] == msgspec.json.decode(dirty["last"])  # JSON, not base64
    partial = decode_partial(message)
    assert (partial.run_id, partial.part) == (RUN_ID, f"{RUN_ID}|3")
    assert partial.entries() == dirty  # "last" and the entries it holds, to store as the fold side does
    assert state(ShardFold.from_entries(partial.entries())) == state(part)
    with pytest.raises(msgspec.DecodeError):
        decode_partial(b'{"run_id": "r"}')


def test_the_owner_assembles_a_run_from_partials_of_partitions_folded_elsewhere() -> None:
    """Two workers fold two partitions each; the owner merges their partials and judges the run
    as one worker holding all four partitions would."""
    s = run_started(shards=4)
    whole = assembly_with(s)
    feed = Feed(whole, partitions=4)
    for tick in range(TICKS):
        for shard in range(4):
            feed.send(shard, "w:1", tick, journey(4 * tick + shard, tick, results=1 + shard))
    sent = {shard: [e for b in (m[1] for m in feed.log if m[1].shard == shard) for e in b.events]
            for shard in range(4)}
    for shard, events in sent.items():
        results = sum(isinstance(e, RequestResult) for e in events)
        whole.on_run_event(report(shard, "w:1", 0, TICKS - 1, final=True, sent=results,
                                  journey_events=len(events) - results))
    owner = RunAssembly(RUN_ID)
    for event in [s, *(r for reports in whole.reports.values() for r in reports.values())]:
        owner.on_run_event(event)
    partials = [decode_partial(encode_partial(RUN_ID, str(key), part.entries())) for key, part in whole.parts.items()]
    for partial in partials:
        owner.merge(partial.part, partial.entries())
    assert owner.complete() and whole.complete()
    assert buckets(owner.run_fold()) == buckets(whole.run_fold())
    assert owner.finished(owner.live_fold()) == whole.finished(whole.live_fold())
    assert judge(owner.run_fold(), []).to_dict() == judge(whole.run_fold(), []).to_dict()
    # and restored from its tables (run events, each part's merged entries), it is the same run
    restored = RunAssembly.restore(RUN_ID, [s, *(r for reports in whole.reports.values() for r in reports.values())],
                                   {p.part: p.entries() for p in partials})
    assert buckets(restored.run_fold()) == buckets(whole.run_fold()) and restored.complete()
    without_one = RunAssembly.restore(RUN_ID, [s, *(r for rs in whole.reports.values() for r in rs.values())],
                                      {p.part: p.entries() for p in partials[1:]})
    assert without_one.gaps()["results_lost"] > 0  # a partition's partials missing: the run is not complete


def interleave(rng: random.Random, queues: list[list[Any]]) -> list[Any]:
    """Merge the queues at random, keeping the order within each queue."""
    queues = [list(q) for q in queues if q]
    out = []
    while queues:
        q = rng.choice(queues)
        out.append(q.pop(0))
        if not q:
            queues.remove(q)
    return out


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), attempts=st.integers(1, 3), users=st.integers(1, 6),
       restart_at=st.floats(0.0, 1.0))
def test_any_interleaving_of_re_runs_counts_each_event_once(seed: int, attempts: int, users: int,
                                                            restart_at: float) -> None:
    """Attempts each send a prefix of every user's journey, in order, in batches that interleave at
    random: the fold equals the fold of the longest prefixes, each event once, also when it is
    rebuilt halfway from the table its take_dirty() kept."""
    rng = random.Random(seed)
    canonical = {u: journey(u, u % 3, results=rng.randint(0, 4), late_ms=rng.choice([0.0, 50.0]),
                            met=rng.random() < 0.5) for u in range(users)}
    sent: dict[str, list[tuple[int, list[Event]]]] = {}
    batches = []
    for a in range(attempts):
        name = f"w{a}"
        per_user = []
        for u, events in canonical.items():
            prefix = events[:rng.randint(0, len(events))]
            chunks, i = [], 0
            while i < len(prefix):
                size = rng.randint(1, 3)
                chunks.append(batch(prefix[i:i + size], attempt=name, tick=u % 3))
                i += size
            per_user.append(chunks)
            sent.setdefault(name, []).append((u % 3, prefix))
        batches.append(interleave(rng, per_user))
    stream = interleave(rng, batches)

    part = ShardFold()
    table = part.take_dirty()
    cut = int(restart_at * len(stream))
    for i, b in enumerate(stream[:cut]):
        assert part.apply(b, "src", i)
        table.update(part.take_dirty())
    twin = ShardFold.from_entries(table)
    assert state(twin) == state(part)
    for i, b in enumerate(stream[cut:], start=cut):
        assert part.apply(b, "src", i)
        assert twin.apply(b, "src", i)
        assert not twin.apply(b, "src", i)
    assert state(twin) == state(part)

    longest: dict[int, list[Event]] = {}
    for prefixes in sent.values():
        for (_, prefix), u in zip(prefixes, canonical, strict=True):
            if len(prefix) > len(longest.get(u, [])):
                longest[u] = prefix
    expected = RunFold()
    for prefix in longest.values():
        expected.apply_all(prefix)
    assert buckets(part.fold) == buckets(expected)
    assert part.fold.results_recorded == expected.results_recorded
    all_results = sum(isinstance(e, RequestResult) for prefixes in sent.values() for _, p in prefixes for e in p)
    assert part.duplicates == all_results - expected.results_recorded
    for name, prefixes in sent.items():
        for tick in range(3):
            events = [e for t, p in prefixes if t == tick for e in p]
            results = sum(isinstance(e, RequestResult) for e in events)
            assert received(part, name, tick, tick) == (results, len(events) - results)


# == RunAssembly =================================================================================
class Feed:
    """Sends a run's batches to a RunAssembly the way the metrics side reads them: results and journey
    events on their own topics, one partition per shard, each message with its offset."""

    def __init__(self, assembly: RunAssembly, partitions: int = 2) -> None:
        self.assembly = assembly
        self.partitions = partitions
        self.offsets: dict[str, int] = {}
        self.log: list[tuple[Any, EventBatch, str, int]] = []

    def send(self, shard: int, attempt: str, tick: int, events: list[Event]) -> None:
        results = [e for e in events if isinstance(e, RequestResult)]
        others = [e for e in events if not isinstance(e, RequestResult)]
        for topic, chunk in (("results", results), ("journeys", others)):
            if not chunk:
                continue
            key = (topic, shard % self.partitions)
            source = f"{topic}/{key[1]}"
            offset = self.offsets[source] = self.offsets.get(source, -1) + 1
            b = batch(chunk, attempt=attempt, tick=tick, shard=shard)
            assert self.assembly.part(key, b).apply(b, source, offset)
            self.log.append((key, b, source, offset))

    def replay(self, index: int) -> bool:
        key, b, source, offset = self.log[index]
        return self.assembly.part(key, b).apply(b, source, offset)


def assembly_with(started: RunStarted | None = None, *reports: ShardReport) -> RunAssembly:
    a = RunAssembly(RUN_ID)
    if started is not None:
        a.on_run_event(started)
    for r in reports:
        a.on_run_event(r)
    return a


def test_on_run_event_keeps_the_latest_report_per_shard_and_attempt() -> None:
    s = run_started()
    a = assembly_with(s, report(0, "a", 0, 3, sent=10), report(0, "a", 0, 1, sent=4),  # late, older
                      report(0, "b", 4, 6, sent=7), report(1, "c", 0, 2))
    assert a.started is s
    assert a.reports[0]["a"].last_tick == 3 and a.reports[0]["a"].requests_sent == 10
    assert sorted(a.reports[0]) == ["a", "b"] and sorted(a.reports[1]) == ["c"]
    a.on_run_event(report(0, "b", 4, 9, final=True, sent=12))
    a.on_run_event(report(0, "b", 4, 9, final=False, sent=11))  # a non-final one after the final
    assert a.reports[0]["b"].final and a.reports[0]["b"].requests_sent == 12
    a.on_run_event(report(1, "c", 0, 2, sent=3))  # same ticks, same finality: the newer one wins
    assert a.reports[1]["c"].requests_sent == 3
    assert a.aborted is None
    aborted = EV.aborted(sim=100.0)
    a.on_run_event(aborted)
    assert a.aborted is aborted


def test_every_shard_without_reports_is_missing() -> None:
    a = assembly_with(run_started(shards=3))
    assert a.gaps() == {"shard_reports_missing": 3, "results_lost": 0, "journey_events_lost": 0,
                        "fault_events_missing": 0}
    assert not a.complete()


@pytest.mark.parametrize(("reports", "missing"), [
    ([report(0, "a", 0, TICKS - 1, final=True)], 0),
    ([report(0, "a", 0, TICKS - 1)], 1),  # every tick, but no final report (the drain never ended)
    ([report(0, "a", 2, TICKS - 1, final=True)], 1),  # ticks 0 and 1 never reported
    ([report(0, "a", 0, TICKS - 2, final=True)], 1),  # the last tick missing
    ([report(0, "a", 0, 3), report(0, "b", 4, TICKS - 1, final=True)], 0),  # a take-over
    ([report(0, "a", 0, 5), report(0, "b", 4, TICKS - 1, final=True)], 0),  # overlapping attempts
    ([report(0, "a", 0, 3), report(0, "b", 5, TICKS - 1, final=True)], 1),  # tick 4 in neither
    ([report(0, "a", 0, TICKS - 1, final=True), report(1, "b", 0, 3)], 0),  # shard 1 is not of this run
])
def test_shard_reports_missing_counts_shards_without_all_ticks_or_a_final_report(
        reports: list[ShardReport], missing: int) -> None:
    a = assembly_with(run_started(shards=1), *reports)
    assert a.gaps() == {"shard_reports_missing": missing, "results_lost": 0, "journey_events_lost": 0,
                        "fault_events_missing": 0}
    assert a.complete() is (missing == 0)


@pytest.mark.parametrize(("reports", "final"), [
    ([], False),
    ([report(0, "a", 0, TICKS - 1, final=True)], False),  # shard 1 has not ended
    ([report(0, "a", 0, TICKS - 1, final=True), report(1, "b", 0, TICKS - 1)], False),  # not final
    ([report(0, "a", 0, TICKS - 1, final=True), report(1, "b", 0, 3), report(1, "c", 4, TICKS - 1, final=True)],
     True),  # a take-over's final report counts
    ([report(0, "a", 2, TICKS - 1, final=True), report(1, "b", 0, TICKS - 1, final=True)], True),  # ticks aside
])
def test_all_final_says_whether_every_shard_sent_a_final_report(reports: list[ShardReport], final: bool) -> None:
    a = assembly_with(run_started(shards=2), *reports)
    assert a.all_final() is final
    assert RunAssembly(RUN_ID).all_final() is False  # not started


def test_results_lost_are_what_reports_say_was_sent_minus_what_arrived() -> None:
    a = assembly_with(run_started(shards=2))
    feed = Feed(a)
    feed.send(0, "a", 0, [result(0, 0), result(0, 1), EV.journey_started(sim=1.0, user=0)])
    feed.send(0, "a", 1, [result(2, 0)])
    feed.send(0, "old", 5, [result(10, 0), result(10, 1)])  # another attempt's: not counted for a
    feed.send(1, "b", 0, [result(1, 0), EV.journey_started(sim=1.0, user=1), EV.journey_ended(sim=9.0, user=1)])
    a.on_run_event(report(0, "a", 0, TICKS - 1, final=True, sent=5, journey_events=1))  # 2 results lost
    a.on_run_event(report(1, "b", 0, TICKS - 1, final=True, sent=1, journey_events=4))  # 2 journey events lost
    assert a.gaps() == {"shard_reports_missing": 0, "results_lost": 2, "journey_events_lost": 2,
                        "fault_events_missing": 0}
    assert not a.complete()


def test_results_lost_is_never_negative_and_counts_only_the_reports_ticks() -> None:
    a = assembly_with(run_started(shards=1))
    feed = Feed(a)
    feed.send(0, "a", 0, [result(0, n) for n in range(4)])
    feed.send(0, "a", 1, [result(2, n) for n in range(3)])  # after a's report: not in it
    feed.send(0, "b", 0, [result(0, n) for n in range(4)])  # b re-ran tick 0: its own report covers it
    a.on_run_event(report(0, "a", 0, 0, sent=2))  # fewer than received for tick 0: no loss, not -2
    a.on_run_event(report(0, "b", 0, TICKS - 1, final=True, sent=4))
    assert a.gaps() == {"shard_reports_missing": 0, "results_lost": 0, "journey_events_lost": 0,
                        "fault_events_missing": 0}
    a.on_run_event(report(0, "a", 0, 0, sent=5))  # tick 1's 3 results do not make up for tick 0's
    assert a.gaps() == {"shard_reports_missing": 0, "results_lost": 1, "journey_events_lost": 0,
                        "fault_events_missing": 0}
    a.on_run_event(report(0, "b", 0, TICKS - 1, final=True, sent=6))
    assert a.gaps() == {"shard_reports_missing": 0, "results_lost": 1 + 2, "journey_events_lost": 0,
                        "fault_events_missing": 0}


def test_extra_results_do_not_make_up_for_lost_journey_events() -> None:
    a = assembly_with(run_started(shards=1))
    Feed(a).send(0, "a", 0, [result(0, 0), result(0, 1), result(0, 2), EV.journey_started(sim=1.0, user=0)])
    a.on_run_event(report(0, "a", 0, TICKS - 1, final=True, sent=1, journey_events=3))
    assert a.gaps() == {"shard_reports_missing": 0, "results_lost": 0, "journey_events_lost": 2,
                        "fault_events_missing": 0}


def test_a_run_without_its_start_is_neither_complete_nor_due() -> None:
    a = assembly_with(None, report(0, "a", 0, TICKS - 1, final=True))
    assert a.complete() is False
    assert a.due(1e12) is False


def test_expected_end_is_load_twice_drain_catch_up_and_grace() -> None:
    s = run_started()  # load 10 real s, no waits or SLAs: drain at least 10 s; + 10 s + 30 s grace
    assert expected_end(s) == s.real_time + 2 * 10.0 + 10.0 + 10.0 + 30.0
    claim = {**CLAIM, "sla": [{"from": "file", "to": "paid", "within": "48h"}]}
    slow = run_started(scenario={**SCENARIO, "journeys": [claim]}, drain_warp=720.0)
    assert expected_end(slow) == slow.real_time + 2 * 10.0 + 48 * HOUR / 720.0 + 10.0 + 30.0


def test_an_incomplete_run_is_due_at_its_expected_end() -> None:
    s = run_started(shards=2)
    a = assembly_with(s, report(0, "a", 0, TICKS - 1, final=True))
    end = expected_end(s)
    assert not a.due(s.real_time)
    assert not a.due(end - 0.001)
    assert a.due(end) and a.due(end + 1000)


def test_a_complete_run_is_due_at_once() -> None:
    s = run_started(shards=2)
    a = assembly_with(s, report(0, "a", 0, TICKS - 1, final=True), report(1, "b", 0, TICKS - 1, final=True))
    assert a.complete()
    assert a.due(s.real_time)


def test_an_aborted_run_is_due_at_once() -> None:
    s = run_started(shards=2)
    a = assembly_with(s)
    assert not a.due(s.real_time + 1)
    a.on_run_event(EV.aborted(sim=100.0))
    assert a.due(s.real_time + 1)


def test_finished_counts_sent_as_recorded_plus_lost() -> None:
    a = assembly_with(run_started(shards=2, arrivals_planned=9))
    feed = Feed(a)
    feed.send(0, "a", 0, [result(0, 0), result(0, 1), result(0, 2), EV.journey_started(sim=1.0, user=0)])
    feed.send(1, "b", 0, [result(1, 0), result(1, 1), EV.journey_started(sim=2.0, user=1, late_ms=900.0)])
    a.on_run_event(report(0, "a", 0, TICKS - 1, final=True, sent=5, journey_events=1))
    a.on_run_event(report(1, "b", 0, TICKS - 1, final=True, sent=2, journey_events=2))
    finished = a.run_fold().finished
    assert (finished.results_lost, finished.journey_events_lost) == (2, 1)
    assert finished.requests_sent == 5 + 2  # recorded plus the results lost (not the journey events)
    assert finished.shard_reports_missing == 0
    assert (finished.arrivals_planned, finished.journeys_started, finished.late_starts) == (9, 2, 1)
    assert finished.arrivals_not_started == 0  # the 7 starts not seen are among the events lost, said as such
    assert finished.run_id == RUN_ID


def test_planned_arrivals_never_seen_started_count_as_not_started_when_nothing_was_lost() -> None:
    a = assembly_with(run_started(shards=1, arrivals_planned=5))
    Feed(a).send(0, "a", 0, [result(0, 0), EV.journey_started(sim=1.0, user=0)])
    a.on_run_event(report(0, "a", 0, TICKS - 1, final=True, sent=1, journey_events=1, arrivals_not_started=1))
    finished = a.run_fold().finished
    assert (finished.results_lost, finished.journey_events_lost, finished.shard_reports_missing) == (0, 0, 0)
    assert (finished.journeys_started, finished.arrivals_not_started) == (1, 4)  # 5 planned, 1 started


def test_drain_figures_come_from_the_last_attempts_final_report_of_each_shard() -> None:
    a = assembly_with(run_started(shards=2))
    a.on_run_event(report(0, "a", 0, TICKS - 1, final=True, journeys_cut=5, requests_abandoned=4, sla_undecided=3,
                          arrivals_not_started=2, sim_time=5000.0, real_time=1_700_000_300.0))
    a.on_run_event(report(0, "b", 4, TICKS - 1, final=True, journeys_cut=1, requests_abandoned=0, sla_undecided=1,
                          arrivals_not_started=0, sim_time=3900.0, real_time=1_700_000_100.0))
    a.on_run_event(report(1, "c", 0, TICKS - 1, final=True, journeys_cut=2, requests_abandoned=3, sla_undecided=0,
                          arrivals_not_started=1, sim_time=3800.0, real_time=1_700_000_200.0))
    a.on_run_event(report(1, "d", 0, 3, journeys_cut=50))  # not final: not counted
    Feed(a).send(0, "b", 4, [result(0, 0, sim=3700.0)])
    finished = a.run_fold().finished
    assert (finished.journeys_cut, finished.requests_abandoned, finished.sla_undecided,
            finished.arrivals_not_started) == (1 + 2, 0 + 3, 1 + 0, 0 + 1)
    assert finished.sim_time == 3900.0  # b's, not the superseded a's 5000
    assert finished.real_time == 1_700_000_200.0


def test_sim_time_is_the_latest_of_the_fold_and_the_final_reports() -> None:
    a = assembly_with(run_started(shards=1))
    a.on_run_event(report(0, "a", 0, TICKS - 1, final=True, sim_time=3600.0, real_time=1_700_000_010.0))
    Feed(a).send(0, "a", 9, [result(0, 0, sim=4321.0)])
    finished = a.run_fold().finished
    assert finished.sim_time == 4321.0
    assert finished.real_time == EV.real_origin + 4321.0 / 360.0


def test_duplicates_dropped_is_summed_over_partitions() -> None:
    a = assembly_with(run_started(shards=2))
    feed = Feed(a)
    for attempt in ("a", "b"):
        feed.send(0, attempt, 0, [result(0, 0), result(0, 1)])
        feed.send(1, attempt, 0, [result(1, 0)])
    assert [p.duplicates for p in a.parts.values()] == [2, 1]
    assert a.run_fold().finished.duplicates_dropped == 3
    assert [p.resent for p in a.parts.values()] == [2, 1]  # each a repeat of attempt a's by attempt b
    assert a.run_fold().finished.requests_resent == 3


def test_only_a_repeat_of_another_attempt_counts_as_re_sent() -> None:
    """A result again from the attempt that was counted for it is dropped, but it is no second
    request to the target; one from another attempt is (a re-run shard sent it again)."""
    part = ShardFold()
    part.apply(batch([result(0, 0), result(0, 1), result(1, 0)], attempt="w1:1"), "p0", 0)
    part.apply(batch([result(0, 1)], attempt="w1:1"), "p0", 1)  # the same attempt's again (another message)
    assert (part.duplicates, part.resent) == (1, 0)
    part.apply(batch([result(0, 0), result(0, 1), result(0, 2), result(1, 0)], attempt="w2:1"), "p0", 2)
    assert (part.duplicates, part.resent) == (4, 3)  # user 0's 0 and 1, user 1's 0; user 0's 2 is new
    part.apply(batch([result(0, 2)], attempt="w1:1"), "p0", 3)  # the first attempt's, late: w2 was counted
    assert (part.duplicates, part.resent) == (5, 4)
    again = ShardFold.from_entries(part.entries())
    again.apply(batch([result(1, 0)], attempt="w3:1"), "p0", 4)
    assert (again.duplicates, again.resent) == (6, 5)


def test_no_run_on_the_embedded_runtime_re_sends_anything() -> None:
    fold = RunFold().apply_all([EV.started(), EV.result(sim=1.0), EV.finished(sim=2.0, requests_sent=1)])
    assert judge(fold, []).generator["requests_resent"] == 0


def test_run_fold_merges_the_parts_and_ends_with_run_finished() -> None:
    s = run_started(shards=1)
    a = assembly_with(s, report(0, "a", 0, TICKS - 1, final=True, sent=2, journey_events=1))
    Feed(a).send(0, "a", 0, [result(0, 0, sim=10.0), result(0, 1, sim=70.0), EV.journey_started(sim=5.0, user=0)])
    fold = a.run_fold()
    assert fold.started is s
    assert isinstance(fold.finished, RunFinished)
    assert fold.aborted is None
    assert fold.results_recorded == 2
    assert fold.finished.requests_sent == 2
    assert sorted(fold.buckets) == [(0, ""), (0, "POST /claims"), (1, "POST /claims")]


def test_run_fold_of_an_aborted_run_has_no_finish() -> None:
    a = assembly_with(run_started(shards=1))
    Feed(a).send(0, "a", 0, [result(0, 0)])
    aborted = EV.aborted(sim=100.0, reason="operator abort")
    a.on_run_event(aborted)
    fold = a.run_fold()
    assert fold.aborted is aborted and fold.finished is None
    assert fold.results_recorded == 1
    assert judge(fold, []).status == "ABORTED"


# == a shard taken over mid-run ==================================================================
def test_a_shard_re_run_after_a_crash_is_complete_with_its_repeats_dropped() -> None:
    """Shard 0: attempt A did ticks 0..3 (reported), sent tick 4 whole and tick 5 in part, then died;
    attempt B took over at tick 4 and finished. Shard 1 ran in one attempt."""
    s = run_started(shards=2)
    a = assembly_with(s)
    feed = Feed(a)
    users = {(k, shard): [u for u in range(4 * k, 4 * k + 4) if u % 2 == shard]  # 4 arrivals a tick
             for k in range(TICKS) for shard in (0, 1)}
    journeys = {u: journey(u, u // 4, results=1 + u % 3) for u in range(4 * TICKS)}

    def results(events: list[Event]) -> int:
        return sum(isinstance(e, RequestResult) for e in events)

    def tick_events(k: int, shard: int) -> list[Event]:
        return [e for u in users[(k, shard)] for e in journeys[u]]

    for k in range(TICKS):  # shard 1, one attempt
        feed.send(1, "w2:1", k, tick_events(k, 1))
        if k == 4:
            a.on_run_event(report(1, "w2:1", 0, 4, sent=sum(results(tick_events(t, 1)) for t in range(5))))
    sent_1 = [e for k in range(TICKS) for e in tick_events(k, 1)]
    a.on_run_event(report(1, "w2:1", 0, TICKS - 1, final=True, sent=results(sent_1),
                          journey_events=len(sent_1) - results(sent_1)))

    sent_a = []
    for k in range(4):
        feed.send(0, "w1:1", k, tick_events(k, 0))
        sent_a += tick_events(k, 0)
        a.on_run_event(report(0, "w1:1", 0, k, sent=results(sent_a), journey_events=len(sent_a) - results(sent_a)))
    assert not a.complete()
    feed.send(0, "w1:1", 4, tick_events(4, 0))  # A finished tick 4's journeys but never reported them...
    repeats = results(tick_events(4, 0))
    for u in users[(5, 0)]:  # ...and started tick 5's, one result each, then died
        feed.send(0, "w1:1", 5, journeys[u][:2])
        repeats += 1

    sent_b = []
    for k in range(4, TICKS):
        feed.send(0, "w2:2", k, tick_events(k, 0))
        sent_b += tick_events(k, 0)
    assert feed.replay(0) is False and feed.replay(len(feed.log) - 1) is False  # read again after a restart
    a.on_run_event(report(0, "w2:2", 4, TICKS - 1, final=True, sent=results(sent_b),
                          journey_events=len(sent_b) - results(sent_b)))

    assert a.gaps() == {"shard_reports_missing": 0, "results_lost": 0, "journey_events_lost": 0,
                        "fault_events_missing": 0}
    assert a.complete() and a.due(s.real_time)
    distinct = sum(1 + u % 3 for u in range(4 * TICKS))
    fold = a.run_fold()
    assert fold.results_recorded == distinct
    finished = fold.finished
    assert finished is not None
    assert (finished.requests_sent, finished.results_lost, finished.shard_reports_missing) == (distinct, 0, 0)
    assert finished.duplicates_dropped == repeats == 2 + 1 + 1 + 1  # users 16, 18 (tick 4); 20, 22 (tick 5)
    assert finished.requests_resent == repeats  # every one a repeat by B of what A had sent
    whole = fold.merged()
    assert whole.journeys_started == 4 * TICKS
    assert whole.journeys == {"completed": 4 * TICKS}
    assert whole.sla_met == {"48h": 4 * TICKS}
    assert whole.counters == {"paid": 0.5 * 4 * TICKS}
    expected = RunFold().apply_all([s, *(e for u in range(4 * TICKS) for e in journeys[u])])
    assert buckets(fold) == buckets(expected)  # as if every journey had run once

    verdict = judge(fold, [])
    assert (verdict.status, verdict.reason) == ("PASS", "no assertions to check")
    assert verdict.completeness["complete"] is True
    assert verdict.completeness["duplicates_dropped"] == repeats
    assert verdict.generator["requests_resent"] == repeats


# == the verdict =================================================================================
def test_a_shard_that_never_reported_makes_the_verdict_an_error_naming_the_gap() -> None:
    s = run_started(shards=2)
    a = assembly_with(s, report(0, "a", 0, TICKS - 1, final=True, sent=1))
    Feed(a).send(0, "a", 0, [result(0, 0)])
    verdict = judge(a.run_fold(), [])
    assert verdict.status == "ERROR"
    assert verdict.reason == ("data incomplete: 1 bot shards never reported their counts "
                              "(a bot worker or the broker was gone)")
    assert verdict.completeness["shard_reports_missing"] == 1
    assert verdict.completeness["complete"] is False


def test_lost_results_make_the_verdict_an_error_naming_them() -> None:
    a = assembly_with(run_started(shards=1), report(0, "a", 0, TICKS - 1, final=True, sent=3))
    Feed(a).send(0, "a", 0, [result(0, 0)])
    verdict = judge(a.run_fold(), [])
    assert verdict.status == "ERROR"
    assert "2 of 3 results missing" in verdict.reason
    assert "2 results a bot shard reported were never received" in verdict.reason
    assert (verdict.completeness["results_lost"], verdict.completeness["results_recorded"]) == (2, 1)


def test_a_complete_run_passes() -> None:
    s = run_started(shards=2)
    a = assembly_with(s, report(0, "a", 0, TICKS - 1, final=True, sent=1, journey_events=2),
                      report(1, "b", 0, TICKS - 1, final=True, sent=1, journey_events=2))
    feed = Feed(a)
    for shard, attempt in ((0, "a"), (1, "b")):
        feed.send(shard, attempt, 0, [EV.journey_started(sim=1.0, user=shard), result(shard, 0),
                                      EV.journey_ended(sim=3.0, user=shard)])
    assert a.complete()
    verdict = judge(a.run_fold(), [])
    assert verdict.status == "PASS"
    assert verdict.completeness["requests_sent"] == verdict.completeness["results_recorded"] == 2


@pytest.mark.parametrize(("share", "status"), [(None, "ERROR"), (0.25, "PASS")])
def test_the_kafka_runtime_judges_late_starts_as_the_embedded_one_does(share: float | None, status: str) -> None:
    """Journeys a shard taken over started late (2 of 20 here) count against the scenario's
    max_late_start_share in the verdict the metrics worker publishes."""
    from esr.stream_apps.metrics import judge_assembly

    scenario = SCENARIO if share is None else SCENARIO | {"max_late_start_share": share}
    a = assembly_with(run_started(shards=1, scenario=scenario, arrivals_planned=20))
    sent = [e for u in range(20) for e in journey(u, 0, results=1, late_ms=2_000.0 if u >= 18 else 0.0)]
    Feed(a).send(0, "w2:1", 0, sent)
    results = sum(isinstance(e, RequestResult) for e in sent)
    a.on_run_event(report(0, "w2:1", 0, TICKS - 1, final=True, sent=results, journey_events=len(sent) - results))
    verdict = judge_assembly(a).verdict
    assert (verdict["verdict"], verdict["generator"]["late_start_rate"]) == (status, 0.1), verdict["reason"]
    if status == "ERROR":
        assert verdict["reason"] == ("the generator started 10.0% of journeys more than 10 ms late (more than the 5% "
                                     "max_late_start_share allows): the load this run claims was not delivered")


# == a run that caps its endpoints (a replay's --top-endpoints): partitions folded flat ============
WINDOWED = "GET /w"


def capped_batch(events: list[Event], *, tick: int = 0) -> EventBatch:
    return replace(batch(events, tick=tick), top_endpoints=3, windowed_endpoints=[WINDOWED])


def page_results(rng: random.Random, first_user: int, count: int) -> list[Event]:
    """One result per user: most to pages seen once or twice, some to a windowed endpoint."""
    return [result(u, 0, sim=u * 7.0, latency_ms=(u % 13 + 1) / 8, endpoint=WINDOWED if u % 5 == 0
                   else f"GET /p/{rng.randrange(40)}") for u in range(first_user, first_user + count)]


def rows(fold: RunFold) -> dict[str, dict[str, Any]]:
    return {label: b.to_dict() for label, b in fold.rows.items()}


def test_a_capped_partition_fold_is_flat_bounded_and_rebuilt_whole() -> None:
    rng = random.Random(1)
    part = ShardFold.for_batch(capped_batch([]))
    for tick in range(6):
        part.apply(capped_batch(page_results(rng, tick * 50, 50), tick=tick), "results/0", tick)
    f = part.fold
    assert f.results_recorded == 300 and sum(b.requests for b in f.rows.values()) == 300
    assert {label for _, label in f.buckets} == {REST, WINDOWED}  # no bucket per window and endpoint
    assert len(set(f.rows) - {WINDOWED, OTHER}) <= 3 and f.rows[OTHER].requests > 0
    rebuilt = ShardFold.from_entries(part.entries())
    assert state(rebuilt) == state(part) and rows(rebuilt.fold) == rows(f)
    assert rebuilt.fold.endpoint_cap is not None and rebuilt.fold.windowed == {WINDOWED}
    assert rebuilt.fold.endpoint_cap.to_state() == f.endpoint_cap.to_state()  # type: ignore[union-attr]


def test_the_owners_copy_of_a_capped_fold_follows_each_change_evictions_included() -> None:
    rng = random.Random(2)
    part, copy, table = ShardFold.for_batch(capped_batch([])), ShardFold(), {}
    for tick in range(8):
        part.apply(capped_batch(page_results(rng, tick * 20, 20), tick=tick), "results/0", tick)
        dirty = part.take_dirty()
        assert len(dirty["last"]) < 40_000  # only the rows that changed travel, not every row each time
        copy.update(split_last(dirty["last"]))
        table.update(dirty)
        assert rows(copy.fold) == rows(part.fold) and state(copy) == state(part), f"after change {tick}"
    assert rows(ShardFold.from_entries(table).fold) == rows(part.fold)


def test_capped_partitions_merge_into_the_runs_fold_with_exact_totals_and_others_labels() -> None:
    rng = random.Random(3)
    parts = [ShardFold.for_batch(capped_batch([])) for _ in range(3)]
    sent: dict[str, int] = {}
    for tick in range(5):
        for i, part in enumerate(parts):
            events = page_results(rng, (tick * 3 + i) * 30, 30)
            for e in events:
                sent[e.endpoint] = sent.get(e.endpoint, 0) + 1  # type: ignore[union-attr]
            part.apply(capped_batch(events, tick=tick))
    run = RunFold(top_endpoints=3, windowed=[WINDOWED])
    for part in parts:
        run.merge(ShardFold.from_entries(part.entries()).fold)
    assert run.results_recorded == 450 == run.merged().requests == sum(b.requests for b in run.rows.values())
    assert run.rows[WINDOWED].requests == sent[WINDOWED]
    partly_in_other = {label for label, n in sent.items()
                       if label != WINDOWED and (run.rows[label].requests if label in run.rows else 0) < n}
    assert run.endpoint_cap is not None and run.endpoint_cap.other.count == len(partly_in_other) > 0


# == a tick of a fast replay: millions of users of one result each ==================================
def test_a_tick_of_a_fast_replay_keeps_one_bit_per_request_and_still_drops_repeats() -> None:
    """At warp 1e9 a year's log is one tick: its de-duplication entry stays small (a bit per
    request, not a dict entry), and a re-run's repeats are still dropped and counted as re-sent."""
    part = ShardFold()
    users = list(range(3, 800_003, 4))  # shard 3 of 4: every fourth request of the log
    for i in range(0, len(users), 2000):
        part.apply(batch([result(u, 0, endpoint="GET /p") for u in users[i:i + 2000]], attempt="a"))
    entry = part.take_dirty()["t0"]
    # 800,000 bits (100 KB; the same users as dict entries: 5.1 MB), of which every fourth is set:
    # stored compressed, since the entry is written again at every change of the tick
    assert len(entry) < 2_000
    again = ShardFold.from_entries(part.entries())
    for p in (part, again):
        p.apply(batch([result(u, 0, endpoint="GET /p") for u in users[-1000:]], attempt="b"))  # re-run
        p.apply(batch([result(u, 0, endpoint="GET /p") for u in users[:10]], attempt="a"))  # read twice
        p.apply(batch([result(users[5], 1, endpoint="GET /p")], attempt="b"))  # a second result: counted
    for p in (part, again):
        assert (p.fold.results_recorded, p.duplicates, p.resent) == (200_001, 1010, 1000)
        assert p.ticks[0].counted(users[5]) == (2, "0/b") and p.ticks[0].counted(users[6]) == (1, "0/a")
        assert p.ticks[0].counted(4) == (0, None)
    assert state(again) == state(part)


@given(st.lists(st.integers(-1000, 100_000), max_size=300))
def test_a_bitmap_holds_the_users_added_in_any_order(users: list[int]) -> None:
    from esr.stream_apps.assembly import _Bits

    bits = _Bits()
    for u in users:
        bits.add(u)
    assert sorted(bits.users()) == sorted(set(users)) and all(u in bits for u in users)
    assert not any(u + 1 in bits for u in users if u + 1 not in users)
    again = _Bits.from_list(msgspec.json.decode(msgspec.json.encode(bits.to_list())))
    assert again.users() == bits.users()
    end = len(bits.bits.rstrip(b"\0"))  # the uncompressed form stored before, still read
    assert _Bits.from_list([bits.base, base64.b64encode(bits.bits[:end]).decode()]).users() == bits.users()
    for u in users[::2]:
        bits.discard(u)
    assert sorted(bits.users()) == sorted(set(users) - set(users[::2]))
