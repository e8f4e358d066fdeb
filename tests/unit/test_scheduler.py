"""The scheduler by hand: no loop, no clock, no I/O. Time is what each call passes in (real seconds
from the run's origin at 0), requests are answered by the test, and the events are read back."""

from __future__ import annotations

from typing import Any

import pytest
from journeys import CLAIM_JOURNEY

from esr.core.arrivals import Arrival
from esr.core.clock import SimClock
from esr.core.events import Event, JourneyEnded, JourneyStarted, RequestResult, SlaDecided
from esr.core.journey_spec import JourneySpec
from esr.core.scheduler import Dispatch, Scheduler

WARP = 3600.0  # a simulated hour per real second; the drain at the same pace
ONE_REQUEST = {"name": "ping", "steps": [{"name": "ping", "request": {"path": "/ping"}}]}


def scheduler(journey: dict[str, Any], *, max_in_flight: int = 100,
              hours: float = 4.0) -> tuple[Scheduler, list[Event]]:
    events: list[Event] = []
    spec = JourneySpec.model_validate(journey)
    s = Scheduler([(spec.name, 1.0, spec)], SimClock(WARP, hours * 3600, WARP), run_id="r", seed=1,
                  max_in_flight=max_in_flight, late_threshold_ms=10.0, emit=events.append)
    return s, events


def arrival(index: int, real: float) -> Arrival:
    return Arrival(index, real, real * WARP)


def dispatched(s: Scheduler) -> list[Dispatch]:
    out = [d for d in s.outbox if isinstance(d, Dispatch)]
    s.outbox.clear()
    return out


def answer(s: Scheduler, d: Dispatch, status: int, body: bytes, now: float) -> None:
    n = s.sending(d)
    assert n is not None
    reply = s.result(d, n, status=status, error=None if status < 400 else "http_5xx", body=body, headers={},
                     sent=now, done=now)
    s.answered(d, reply, now)


def of(events: list[Event], kind: type) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


def test_a_journey_starts_when_its_request_gets_a_slot_and_latency_counts_from_its_arrival() -> None:
    s, events = scheduler(ONE_REQUEST)
    s.arrive(arrival(0, 0.5), now=0.5)
    [d] = dispatched(s)
    assert (d.request.path, d.due, s.sim_of(d)) == ("/ping", 0.5, 1800.0)
    answer(s, d, 200, b"", now=0.75)
    [result] = of(events, RequestResult)
    assert result.latency_ms == pytest.approx(250.0) and result.sim_time == 1800.0
    [ended] = of(events, JourneyEnded)
    assert ended.outcome == "completed" and not s.active and s.in_flight == 0


def test_max_in_flight_queues_first_come_first_served_and_the_wait_shows_as_latency() -> None:
    s, events = scheduler(ONE_REQUEST, max_in_flight=1)
    s.arrive(arrival(0, 1.0), now=1.0)
    s.arrive(arrival(1, 1.1), now=1.1)
    [first] = dispatched(s)
    assert first.user == 0 and len(s.queue) == 1
    assert [e.user for e in of(events, JourneyStarted)] == [0]  # the second has no slot: not started yet
    answer(s, first, 200, b"", now=1.5)
    [second] = dispatched(s)
    assert second.user == 1
    [_, started] = of(events, JourneyStarted)
    assert started.late_ms == pytest.approx(400.0)  # 1.5 s, its slot, against 1.1 s, its arrival
    answer(s, second, 200, b"", now=1.6)
    assert [r.latency_ms for r in of(events, RequestResult)] == pytest.approx([500.0, 500.0])


def test_a_poll_waits_in_the_agenda_and_the_deadline_is_decided_at_exactly_opened_plus_48h() -> None:
    s, events = scheduler(CLAIM_JOURNEY)
    s.arrive(arrival(0, 0.0), now=0.0)
    [file] = dispatched(s)
    answer(s, file, 201, b'{"id": "c1"}', now=0.01)
    [poll] = dispatched(s)  # the first poll goes at once
    assert poll.request.path == "/claims/c1"
    answer(s, poll, 200, b'{"status": "pending"}', now=0.02)
    assert not dispatched(s) and s.next_at == pytest.approx(1.0)  # the next poll is an hour later
    s.advance(0.5)
    assert not dispatched(s)
    polls = 0
    now = 1.0
    while now < 60:  # never paid: poll hourly until the deadline passes
        s.advance(now)
        for d in dispatched(s):
            polls += 1
            answer(s, d, 200, b'{"status": "pending"}', now=now)
        now = s.next_at or 60
    [decision] = of(events, SlaDecided)
    assert not decision.met and decision.opened_sim == 0.0 and decision.sim_time == 48 * 3600
    assert polls >= 47


def test_the_drain_ends_once_every_deadline_is_decided_and_stop_sending_cuts_what_is_queued() -> None:
    s, events = scheduler(CLAIM_JOURNEY, max_in_flight=1, hours=1)
    s.arrive(arrival(0, 0.0), now=0.0)
    s.arrive(arrival(1, 0.1), now=0.1)
    [file] = dispatched(s)
    assert not s.drain_over(1.0)
    answer(s, file, 201, b'{"id": "c1"}', now=0.2)  # user 1's file request takes the slot
    assert not s.drain_over(1.5)
    s.stop_sending(2.0)
    [queued] = dispatched(s)
    assert queued.user == 1 and s.sending(queued) is None  # stopped: the adapter does not send it
    s.answered(queued, None, 2.0)
    s.cut_all(2.0)
    assert not s.active and s.counts.journeys_cut == 2 and s.counts.sla_undecided == 1
    assert {e.user: e.outcome for e in of(events, JourneyEnded)} == {0: "cut", 1: "cut"}
    assert s.drain_over(2.0)
