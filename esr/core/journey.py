"""Journeys as I/O-free state machines, and the base class of Python journeys.

A declarative journey runs as a generator (`declarative_journey`) that yields actions and is
sent replies, in the style of httpx's request policies: `Send` (an HTTP request; the reply is
a `Reply`), `WaitUntil` (a simulated time; the reply is the simulated time on waking),
`StepDone` and `Count` (notes for the driver; the reply is None). It returns the journey's
`Outcome`. The engine drives it against a real target; unit tests drive it with canned replies.

`SlaBook` tracks a journey's deadlines in simulated time; the driver feeds it step completions
and calls `expire` when a deadline passes. Python journeys subclass `Journey`.
"""

from __future__ import annotations

import random
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import msgspec
import orjson

from esr.core.events import JourneyOutcome
from esr.core.journey_spec import JourneySpec, RequestSpec, SlaSpec, StepSpec
from esr.core.templating import Condition, JsonPath, render_value
from esr.core.units import parse_duration

__all__ = [
    "single_request", "step_ok",
    "Count", "Decision", "Journey", "JourneyUser", "Outcome", "Reply", "Send", "SlaBook", "StepDone", "WaitUntil",
    "declarative_journey", "render_request",
]


@dataclass(frozen=True, slots=True)
class PreparedRequest:
    method: str
    path: str
    endpoint: str
    step: str
    headers: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)
    json: Any = None
    body: str | bytes | None = None  # bytes are sent as they are (a replayed request's body)
    timeout: float | None = None


@dataclass(frozen=True, slots=True)
class Send:
    request: PreparedRequest
    intended_sim: float | None = None  # None: now (a dependent step), else a scheduled poll


@dataclass(frozen=True, slots=True)
class WaitUntil:
    sim: float


@dataclass(frozen=True, slots=True)
class StepDone:
    step: str
    ok: bool
    sim: float


@dataclass(frozen=True, slots=True)
class Count:
    name: str
    value: float
    sim: float


class Reply(msgspec.Struct, frozen=True):
    """What the driver learned from one request."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    error: str | None
    # The simulated time the request was sent for (its X-ESR-Sim-Time): the moment the target
    # answered about. Steps end and deadlines are judged at this time, so an answer the target
    # gave for hour 48 meets a 48 h deadline however long it took in real time at a high warp.
    sim: float
    latency_ms: float = 0.0  # from when it was due to its answer, as its result records it

    def json(self) -> Any:
        """The body as JSON, or None when it is not JSON."""
        try:
            return orjson.loads(self.body) if self.body else None
        except orjson.JSONDecodeError:
            return None


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: JourneyOutcome  # completed, failed, gave_up (cut: the run ended it)
    detail: str = ""


Action = Send | WaitUntil | StepDone | Count


_NONE: dict[str, str] = {}  # shared by every request without headers or query (never mutated)


def _strings(values: dict[str, Any], context: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in render_value(values, context).items()} if values else _NONE


def render_request(spec: RequestSpec, step: str, context: dict[str, Any]) -> PreparedRequest:
    return PreparedRequest(
        method=spec.method,
        path=str(render_value(spec.path, context)),
        endpoint=spec.endpoint,
        step=step,
        headers=_strings(spec.headers, context),
        query=_strings(spec.query, context),
        json=render_value(spec.json_body, context),
        body=None if spec.body is None else str(render_value(spec.body, context)),
        timeout=spec.timeout,
    )


def single_request(spec: JourneySpec) -> tuple[PreparedRequest, StepSpec] | None:
    """The fixed request of a one-request journey with nothing to compute (such as the default
    `GET /`), so the engine can skip the state machine on its hottest path."""
    if len(spec.steps) != 1 or spec.data or spec.sla:
        return None
    step = spec.steps[0]
    if step.request is None or step.poll or step.extract or step.counters or step.request.placeholders():
        return None
    return render_request(step.request, step.name, {}), step


def step_ok(step: StepSpec, reply: Reply | Any) -> bool:
    """Did a response satisfy the step: its expected statuses, else any 2xx or 3xx."""
    return _step_ok(step, reply)


def _step_ok(step: StepSpec, reply: Reply) -> bool:
    if reply.error in ("timeout", "connect", "protocol"):
        return False
    if step.expect_status is not None:
        return reply.status in step.expect_status
    return 200 <= reply.status < 400


def _extract(source: str, reply: Reply, document: Any) -> Any:
    if source.startswith("header:"):
        wanted = source[7:].lower()
        return next((v for k, v in reply.headers.items() if k.lower() == wanted), None)
    return JsonPath.compile(source).find(document)


def _counters(step: StepSpec, reply: Reply, document: Any) -> Generator[Count, None, None]:
    for name, counter in step.counters.items():
        if counter.when and not Condition.compile(counter.when).holds(document):
            continue
        if counter.value is not None:
            value: Any = counter.value
        elif counter.header is not None:
            value = _extract(f"header:{counter.header}", reply, document)
        else:
            value = JsonPath.compile(counter.json_path or "$").find(document)
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue  # no such header or not a number: nothing to add
        yield Count(name, number, reply.sim)


def declarative_journey(
    spec: JourneySpec, context: dict[str, Any], start_sim: float
) -> Generator[Action, Any, Outcome]:
    """Run `spec` for one user; `context` holds `user`, `data`, `run` and receives `vars`."""
    variables: dict[str, Any] = context.setdefault("vars", {})
    now = start_sim
    for step in spec.steps:
        if step.wait is not None:
            now = yield WaitUntil(now + step.wait)
            yield StepDone(step.name, True, now)
            continue
        assert step.request is not None
        request = render_request(step.request, step.name, context)
        poll_start, polls, intended = now, 0, None
        until = Condition.compile(step.poll.until) if step.poll else None
        reads_body = bool(step.poll or step.counters or any(not s.startswith("header:") for s in step.extract.values()))
        while True:
            reply: Reply = yield Send(request, intended)
            now = reply.sim
            document = reply.json() if reads_body else None
            yield from _counters(step, reply, document)
            ok = _step_ok(step, reply)
            if until is None:
                if not ok:
                    yield StepDone(step.name, False, now)
                    why = reply.error or f"status {reply.status}"
                    return Outcome("failed", f"step {step.name}: {why}")
                break
            if ok and until.holds(document):
                break
            polls += 1
            assert step.poll is not None
            intended = poll_start + polls * step.poll.every
            if intended - poll_start > step.poll.give_up_after:
                yield StepDone(step.name, False, now)
                return Outcome("gave_up", f"step {step.name}: {step.poll.until!r} not met after {polls} polls")
            del reply, document  # a waiting journey keeps no answer it is done with
            now = yield WaitUntil(intended)
        for name, source in step.extract.items():
            value = _extract(source, reply, document)
            if value is None:
                yield StepDone(step.name, False, now)
                return Outcome("failed", f"step {step.name}: extract {name}: {source} not in the response")
            variables[name] = value
        yield StepDone(step.name, True, now)
    return Outcome("completed")


@dataclass(frozen=True, slots=True)
class Decision:
    sla: str
    met: bool
    opened_sim: float
    decided_sim: float


@dataclass(slots=True)
class _Open:
    key: str
    opened: float
    deadline: float
    to_step: str | None


class SlaBook:
    """Open deadlines of one journey; every deadline is decided exactly once."""

    __slots__ = ("_specs", "_open")

    def __init__(self, slas: list[SlaSpec] | tuple[SlaSpec, ...] = ()) -> None:
        self._specs = slas  # the journey's, shared and only read
        self._open: list[_Open] = []

    def open(self, key: str, within: float, now: float, to_step: str | None = None) -> None:
        self._open.append(_Open(key, now, now + within, to_step))

    def close(self, key: str, now: float) -> list[Decision]:
        """The journey reached the end of deadline `key` (Python journeys name it)."""
        return self._settle(lambda o: o.key == key, now, reached=True)

    def step_done(self, step: str, ok: bool, now: float) -> list[Decision]:
        decisions = self.expire(now)
        if ok:
            decisions += self._settle(lambda o: o.to_step == step, now, reached=True)
            for spec in self._specs:
                if spec.from_step == step:
                    self.open(spec.key, spec.within, now, spec.to_step)
        return decisions

    def expire(self, now: float) -> list[Decision]:
        """Deadlines that passed by `now` are missed, decided at the deadline itself."""
        return self._settle(lambda o: o.deadline < now, now, reached=False)

    def fail_all(self, now: float) -> list[Decision]:
        """The journey ended without reaching them: every open deadline is missed now."""
        return self._settle(lambda o: True, now, reached=False)

    @property
    def next_deadline(self) -> float | None:
        return min((o.deadline for o in self._open), default=None)

    @property
    def latest_deadline(self) -> float:
        return max((o.deadline for o in self._open), default=0.0)

    @property
    def open_count(self) -> int:
        return len(self._open)

    def _settle(self, which: Any, now: float, reached: bool) -> list[Decision]:
        decided, keep = [], []
        for o in self._open:
            if which(o):
                met = reached and now <= o.deadline
                decided.append(Decision(o.key, met, o.opened, now if met or now <= o.deadline else o.deadline))
            else:
                keep.append(o)
        self._open = keep
        return decided


class JourneyUser(Protocol):
    """What a Python journey's `run(user)` may do (the embedded runtime's `esr.User` does it)."""

    index: int
    rng: random.Random
    run_id: str
    data: dict[str, Any]

    @property
    def now_sim(self) -> float: ...
    def generate(self, specs: dict[str, Any]) -> dict[str, Any]: ...
    async def request(self, method: str, path: str, *, json: Any = None, body: str | None = None,
                      headers: dict[str, str] | None = None, query: dict[str, str] | None = None,
                      label: str | None = None, step: str = "") -> Reply: ...
    async def wait(self, duration: str | float = 0, *, hours: float = 0, minutes: float = 0) -> None: ...
    def count(self, name: str, value: float = 1.0) -> None: ...
    def sla_open(self, key: str, *, within: str | float) -> None: ...
    def sla_close(self, key: str) -> None: ...


class Journey:
    """Base class of Python journeys, for behaviour the declarative form cannot express.

        class ClaimJourney(esr.Journey):
            name = "claim"
            longest_wait = "48h"
            async def run(self, user):
                data = user.generate({"ssn": "ssn"})
                r = await user.request("POST", "/claims", json={"ssn": data["ssn"]})
                user.sla_open("48h", within="48h")
                await user.wait(hours=1)
                ...
                user.sla_close("48h")

    `run` gets an `esr.User`; each request returns a `Reply` (`status`, `headers`, `body`,
    `json()`, `error`). Return to complete the journey; an exception fails it.
    """

    name: ClassVar[str] = "python"
    weight: ClassVar[float] = 1.0
    data: ClassVar[dict[str, Any]] = {}
    longest_wait: ClassVar[str | float] = 0.0

    async def run(self, user: JourneyUser) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def wait_bound(cls) -> float:
        return parse_duration(cls.longest_wait)


def pick_journey(weights: list[float], rng: random.Random) -> int:
    """Index of the journey for a user, drawn by weight from the user's own random source."""
    if len(weights) == 1:
        return 0
    return rng.choices(range(len(weights)), weights=weights)[0]
