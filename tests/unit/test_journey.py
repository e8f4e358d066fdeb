"""esr.core.journey: the declarative journey driven by hand with canned replies, and SlaBook."""

from __future__ import annotations

import json
from collections.abc import Generator
from typing import Any

import pytest

from esr.core.journey import (
    Count,
    Decision,
    Outcome,
    PreparedRequest,
    Reply,
    Send,
    SlaBook,
    StepDone,
    WaitUntil,
    declarative_journey,
)
from esr.core.journey_spec import JourneySpec

HOUR = 3_600.0
START = 1_000.0

CLAIM = {
    "name": "claim",
    "data": {"ssn": "ssn", "wages": {"int": [1000, 9000]}},
    "steps": [
        {"name": "file",
         "request": {"method": "POST", "path": "/claims", "headers": {"X-Run": "{{ run.id }}"},
                     "json": {"ssn": "{{ data.ssn }}", "wages": "{{ data.wages }}"}},
         "expect": {"status": [201]},
         "extract": {"claim_id": "$.id", "location": "header:Location"},
         "counters": {"cloud_cost": "header:X-Cost"}},
        {"name": "paid",
         "request": {"method": "GET", "path": "/claims/{{ vars.claim_id }}"},
         "poll": {"every": "1h", "until": "$.status == 'paid'", "give_up_after": "4h"},
         "counters": {"claims_paid": {"value": 1, "when": "$.status == 'paid'"}, "polls": 1}},
    ],
    "sla": [{"from": "file", "to": "paid", "within": "48h"}],
}


def spec_of(data: dict[str, Any]) -> JourneySpec:
    return JourneySpec.model_validate(data)


def context() -> dict[str, Any]:
    return {"user": {"index": 3}, "data": {"ssn": "123-45-6789", "wages": 4200}, "run": {"id": "run-1"}}


def reply(status: int, body: Any = None, *, sim: float, headers: dict[str, str] | None = None,
          error: str | None = None) -> Reply:
    raw = b"" if body is None else json.dumps(body).encode()
    return Reply(status, headers or {}, raw, error, sim)


class Driver:
    """Drives a journey generator: `send` a reply, collect every action up to the next Send."""

    def __init__(self, gen: Generator[Any, Any, Outcome]) -> None:
        self.gen = gen
        self.outcome: Outcome | None = None
        self.log: list[Any] = []

    def start(self) -> Any:
        action = next(self.gen)
        self.log.append(action)
        return action

    def send(self, value: Any) -> Any:
        """Send `value` in; return the next action (None when the journey returned)."""
        try:
            action = self.gen.send(value)
        except StopIteration as stop:
            self.outcome = stop.value
            return None
        self.log.append(action)
        return action

    def notes_until_send_or_wait(self, first: Any) -> list[Any]:
        """Consume StepDone/Count notes (answered with None) until a Send, WaitUntil or the end."""
        notes, action = [], first
        while isinstance(action, (StepDone, Count)):
            notes.append(action)
            action = self.send(None)
        notes.append(action)
        return notes


# -- the happy path -------------------------------------------------------------------------------
def test_two_step_journey_with_polling() -> None:
    ctx = context()
    d = Driver(declarative_journey(spec_of(CLAIM), ctx, START))

    first = d.start()
    assert first == Send(PreparedRequest(
        method="POST", path="/claims", endpoint="POST /claims", step="file", headers={"X-Run": "run-1"},
        json={"ssn": "123-45-6789", "wages": 4200}), None)
    assert type(first.request.json["wages"]) is int  # a single placeholder keeps its type

    filed_at = START + 0.4
    notes = d.notes_until_send_or_wait(
        d.send(reply(201, {"id": "c-17"}, sim=filed_at, headers={"X-Cost": "0.25", "location": "/claims/c-17"})))
    assert notes[:2] == [Count("cloud_cost", 0.25, filed_at), StepDone("file", True, filed_at)]
    assert ctx["vars"] == {"claim_id": "c-17", "location": "/claims/c-17"}  # header names match any case

    poll = notes[2]
    assert poll == Send(PreparedRequest(method="GET", path="/claims/c-17", endpoint="GET /claims/{claim_id}",
                                        step="paid"), None)

    # pending twice, then paid: every poll is scheduled at start + k * every, whatever the latency
    action = d.send(reply(200, {"status": "pending"}, sim=filed_at + 0.5))
    assert action == Count("polls", 1.0, filed_at + 0.5)
    assert d.send(None) == WaitUntil(filed_at + 1 * HOUR)
    assert d.send(filed_at + 1 * HOUR + 0.01) == Send(poll.request, filed_at + 1 * HOUR)
    assert d.send(reply(200, {"status": "pending"}, sim=filed_at + 1 * HOUR + 300)) == Count("polls", 1.0,
                                                                                               filed_at + HOUR + 300)
    assert d.send(None) == WaitUntil(filed_at + 2 * HOUR)
    assert d.send(filed_at + 2 * HOUR) == Send(poll.request, filed_at + 2 * HOUR)
    paid_at = filed_at + 2 * HOUR + 1
    notes = d.notes_until_send_or_wait(d.send(reply(200, {"status": "paid"}, sim=paid_at)))
    assert notes == [Count("claims_paid", 1.0, paid_at), Count("polls", 1.0, paid_at),
                     StepDone("paid", True, paid_at), None]
    assert d.outcome == Outcome("completed")
    sends = [a for a in d.log if isinstance(a, Send)]
    assert [s.intended_sim for s in sends] == [None, None, filed_at + HOUR, filed_at + 2 * HOUR]


def test_wait_step() -> None:
    spec = spec_of({"name": "w", "steps": [{"name": "nap", "wait": "2h"}, {"name": "get", "request": {"path": "/"}}]})
    d = Driver(declarative_journey(spec, {}, START))
    assert d.start() == WaitUntil(START + 2 * HOUR)
    woke = START + 2 * HOUR + 0.5
    assert d.send(woke) == StepDone("nap", True, woke)
    action = d.send(None)
    assert isinstance(action, Send) and action.request.path == "/" and action.request.endpoint == "GET /"
    assert d.send(reply(200, sim=woke + 1)) == StepDone("get", True, woke + 1)
    assert d.send(None) is None
    assert d.outcome == Outcome("completed")


# -- giving up and failing --------------------------------------------------------------------
def test_poll_gives_up_after_give_up_after() -> None:
    ctx = context()
    d = Driver(declarative_journey(spec_of(CLAIM), ctx, START))
    d.start()
    d.notes_until_send_or_wait(d.send(reply(201, {"id": "c-1"}, sim=START, headers={"Location": "/c/1"})))
    waits = []
    now = START
    for _ in range(5):  # the first request, then polls at +1h .. +4h (4h is still allowed)
        action = d.send(reply(200, {"status": "pending"}, sim=now + 1))
        notes = d.notes_until_send_or_wait(action)
        final = notes[-1]
        if isinstance(final, WaitUntil):
            waits.append(final.sim)
            now = final.sim
            assert isinstance(d.send(now), Send)
    assert waits == [START + k * HOUR for k in range(1, 5)]
    assert notes[-2] == StepDone("paid", False, now + 1)
    assert d.outcome is not None
    assert d.outcome.kind == "gave_up"
    assert d.outcome.detail == "step paid: \"$.status == 'paid'\" not met after 5 polls"
    assert sum(isinstance(a, Send) for a in d.log) == 1 + 5  # file + max_polls
    assert spec_of(CLAIM).steps[1].poll.max_polls == 5


def test_poll_keeps_polling_through_errors() -> None:
    d = Driver(declarative_journey(spec_of(CLAIM), context(), START))
    d.start()
    poll = d.notes_until_send_or_wait(d.send(reply(201, {"id": "c-1"}, sim=START, headers={"Location": "/c/1"})))[-1]
    assert isinstance(poll, Send)
    notes = d.notes_until_send_or_wait(d.send(reply(503, {"status": "paid"}, sim=START + 1)))
    assert notes[-1] == WaitUntil(START + HOUR)  # a 503 saying "paid" is not success
    assert d.send(START + HOUR) == Send(poll.request, START + HOUR)
    notes = d.notes_until_send_or_wait(d.send(reply(0, None, sim=START + HOUR + 30, error="timeout")))
    assert notes[-1] == WaitUntil(START + 2 * HOUR)  # a timeout is one more failed poll
    assert d.outcome is None


@pytest.mark.parametrize(
    ("answer", "detail"),
    [
        (reply(500, {"error": "boom"}, sim=START + 2), "step file: status 500"),
        (reply(200, {"id": "c-1"}, sim=START + 2), "step file: status 200"),  # expect: 201 only
        (reply(0, None, sim=START + 2, error="timeout"), "step file: timeout"),
        (reply(0, None, sim=START + 2, error="connect"), "step file: connect"),
    ],
)
def test_unexpected_status_fails_the_journey(answer: Reply, detail: str) -> None:
    ctx = context()
    d = Driver(declarative_journey(spec_of(CLAIM), ctx, START))
    d.start()
    notes = d.notes_until_send_or_wait(d.send(answer))
    assert StepDone("file", False, START + 2) in notes
    assert notes[-1] is None
    assert d.outcome == Outcome("failed", detail)
    assert ctx["vars"] == {}
    assert sum(isinstance(a, Send) for a in d.log) == 1


def test_missing_extraction_fails_the_journey() -> None:
    d = Driver(declarative_journey(spec_of(CLAIM), context(), START))
    d.start()
    notes = d.notes_until_send_or_wait(d.send(reply(201, {"no_id": 1}, sim=START + 1, headers={"Location": "/x"})))
    assert notes[-2:] == [StepDone("file", False, START + 1), None]
    assert d.outcome == Outcome("failed", "step file: extract claim_id: $.id not in the response")


@pytest.mark.parametrize(("status", "ok"), [(200, True), (204, True), (302, True), (399, True), (404, False),
                                            (500, False), (199, False)])
def test_default_expectation_is_2xx_or_3xx(status: int, ok: bool) -> None:
    spec = spec_of({"name": "j", "steps": [{"name": "get", "request": {"path": "/"}}]})
    d = Driver(declarative_journey(spec, {}, 0.0))
    d.start()
    assert d.send(reply(status, sim=5.0)) == StepDone("get", ok, 5.0)
    d.send(None)
    assert d.outcome == (Outcome("completed") if ok else Outcome("failed", f"step get: status {status}"))


def test_counters_skip_values_that_are_not_numbers() -> None:
    spec = spec_of({"name": "j", "steps": [{"name": "get", "request": {"path": "/"},
                                             "counters": {"cost": "header:X-Cost", "n": "$.n", "one": 1}}]})
    d = Driver(declarative_journey(spec, {}, 0.0))
    d.start()
    notes = d.notes_until_send_or_wait(d.send(reply(200, {"n": "many"}, sim=1.0, headers={"X-Cost": "n/a"})))
    assert notes == [Count("one", 1.0, 1.0), StepDone("get", True, 1.0), None]


# -- SlaBook --------------------------------------------------------------------------------------
DEADLINE = 48 * HOUR


@pytest.fixture
def book() -> SlaBook:
    b = SlaBook(spec_of(CLAIM).sla)
    assert b.step_done("file", True, 100.0) == []
    assert b.open_count == 1
    assert b.next_deadline == 100.0 + DEADLINE
    return b


def test_sla_met(book: SlaBook) -> None:
    assert book.step_done("paid", True, 100.0 + 3 * HOUR) == [Decision("48h", True, 100.0, 100.0 + 3 * HOUR)]
    assert book.open_count == 0
    assert book.next_deadline is None
    assert book.step_done("paid", True, 100.0 + 4 * HOUR) == []  # decided once


def test_sla_met_exactly_at_the_deadline(book: SlaBook) -> None:
    assert book.expire(100.0 + DEADLINE) == []  # the deadline itself has not passed
    assert book.step_done("paid", True, 100.0 + DEADLINE) == [Decision("48h", True, 100.0, 100.0 + DEADLINE)]


def test_sla_missed_by_expire_is_decided_at_the_deadline(book: SlaBook) -> None:
    late = 100.0 + DEADLINE + 0.001
    assert book.expire(late) == [Decision("48h", False, 100.0, 100.0 + DEADLINE)]
    assert book.open_count == 0
    assert book.step_done("paid", True, late + 1) == []  # already decided


def test_sla_reached_late_is_missed_at_the_deadline(book: SlaBook) -> None:
    decisions = book.step_done("paid", True, 100.0 + 60 * HOUR)
    assert decisions == [Decision("48h", False, 100.0, 100.0 + DEADLINE)]


def test_failed_to_step_keeps_the_deadline_open(book: SlaBook) -> None:
    assert book.step_done("paid", False, 200.0) == []
    assert book.open_count == 1


def test_fail_all(book: SlaBook) -> None:
    assert book.fail_all(5_000.0) == [Decision("48h", False, 100.0, 5_000.0)]
    assert book.open_count == 0
    assert book.fail_all(6_000.0) == []


def test_fail_all_after_the_deadline_decides_at_the_deadline(book: SlaBook) -> None:
    assert book.fail_all(100.0 + 50 * HOUR) == [Decision("48h", False, 100.0, 100.0 + DEADLINE)]


def test_close_for_python_journeys() -> None:
    book = SlaBook()
    book.open("48h", DEADLINE, 10.0)
    book.open("2h", 2 * HOUR, 20.0)
    assert book.next_deadline == 20.0 + 2 * HOUR
    assert book.close("48h", 30.0) == [Decision("48h", True, 10.0, 30.0)]
    assert book.close("nope", 30.0) == []
    assert book.close("2h", 20.0 + 3 * HOUR) == [Decision("2h", False, 20.0, 20.0 + 2 * HOUR)]
    assert book.open_count == 0


def test_steps_without_slas_do_nothing() -> None:
    book = SlaBook()
    assert book.step_done("file", True, 1.0) == []
    assert book.expire(1e9) == []
    assert book.open_count == 0
