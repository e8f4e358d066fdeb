"""`ClaimsOffice`: the sample system's business logic, in simulated time, with no I/O.

An unemployment-insurance claim is filed, checked automatically against wage records
(no qualifying wages: denied at once), then waits in one first-come-first-served review queue
worked by `caseworkers` people during business hours; each review takes `review_minutes` of a
caseworker's business time. An approved claim is paid through the (fake) Treasury
`payment_minutes` later, at any hour.

Capacity arithmetic: a business day gives `caseworkers * business_minutes / review_minutes`
reviews. Load is journey starts per *real* second, so claims per simulated day are
`sum(rate * hours) * 3600 / time_warp`; the backlog, and so the 48-hour SLA, depends on their
ratio (see docs/sandbox.md). So that the ratio, and the verdict, do not depend on the warp a
run is played at, an office that knows its run's warp (`warp`, from the `X-ESR-Time-Warp`
header) scales its review time by `warp / reference_warp`.

Faults of its own, started and ended at a simulated time (`start_fault`, `end_fault`):

    db_down(mode=fail)        filings fail (ClaimsDatabaseDown); reads keep working (a replica)
    db_down(mode=queue)       filings are held, and enter the pipeline in order at recovery
    caseworkers_out(n)        n caseworkers take no new reviews until recovery

A review's end is computed when the claim is given to a caseworker, so a change of capacity
deals the claims nobody has started yet out again (`_reschedule`); reviews under way finish
as scheduled. Errors of a fault call:

    FaultError              ValueError: the office refuses the call
    ├── UnknownFault        no such fault (the message lists the known ones)
    ├── BadFaultParameter   a parameter is missing, unknown or out of range
    └── FaultActive         the fault is already on
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

__all__ = [
    "OFFICE_FAULTS",
    "BadFaultParameter",
    "Claim",
    "ClaimsDatabaseDown",
    "ClaimsOffice",
    "FaultActive",
    "FaultError",
    "OfficeConfig",
    "UnknownFault",
    "fault_params",
    "known_fault",
]


@dataclass(frozen=True, slots=True)
class OfficeConfig:
    """Defaults are calibrated for the walk-through scenario (docs/sandbox.md): with its evening
    peak of 40 journey starts/s the 48-hour SLA is met, with 80 it is not, at any warp.
    `review_minutes` is the review time at `reference_warp`; an office playing at warp W takes
    `review_minutes * W / reference_warp`."""

    caseworkers: int = 110
    review_minutes: float = 115.0
    reference_warp: float = 1440.0
    business_start_hour: int = 8
    business_end_hour: int = 17
    weekdays_only: bool = False
    payment_minutes: float = 60.0
    min_quarterly_wages: int = 1000
    idempotency_keys: int = 100_000  # filings' answers kept per run by Idempotency-Key (the oldest forgotten)


@dataclass(slots=True)
class Claim:
    id: int
    ssn: str
    filed: datetime
    status: str  # queued (held while the database is down), denied, in_review
    decided: datetime | None = None  # review finished (approved) or denial; None: no caseworker yet
    paid: datetime | None = None
    amount: float = 0.0
    started: datetime | None = None  # given to a caseworker (may be outside business hours)

    def status_at(self, now: datetime) -> str:
        """What a caller asking at simulated time `now` sees."""
        if self.status != "in_review":  # denied, or queued
            return self.status
        if self.paid is not None and now >= self.paid:
            return "paid"
        if self.decided is not None and now >= self.decided:
            return "approved"
        return "in_review"


# -- faults ---------------------------------------------------------------------------------
class FaultError(ValueError):
    """A fault call the office refuses; the message says why and what to send instead."""


class UnknownFault(FaultError):
    pass


class BadFaultParameter(FaultError):
    pass


class FaultActive(FaultError):
    pass


class ClaimsDatabaseDown(RuntimeError):
    """A filing while `db_down` in mode fail: nothing was filed."""


@dataclass(frozen=True, slots=True)
class _FaultKind:
    """A fault's one parameter, which may also be given positionally: `db_down(queue)`."""

    param: str
    default: Any  # None: required
    valid: Callable[[Any], bool]
    expected: str


_KINDS: dict[str, _FaultKind] = {
    "db_down": _FaultKind("mode", "fail", lambda v: v in ("fail", "queue"),
                          '"fail" (filings answered 503) or "queue" (held until the database is back)'),
    "caseworkers_out": _FaultKind("n", None, lambda v: type(v) is int and v > 0,
                                  "a positive whole number of caseworkers"),
}


OFFICE_FAULTS = tuple(_KINDS)

# what a trainee may decide during a run (training mode): these stay, they are not undone
_ACTIONS: dict[str, _FaultKind | None] = {
    "add_caseworkers": _FaultKind("n", None, lambda v: type(v) is int and v > 0,
                                  "a positive whole number of caseworkers"),
    "pause_intake": None,
    "resume_intake": None,
}
OFFICE_ACTIONS = tuple(_ACTIONS)


class IntakePaused(RuntimeError):
    """A filing while intake is paused (a trainee's decision): nothing was filed."""


def known_fault(name: str) -> None:
    """Raises UnknownFault, listing the known ones, unless the office has a fault `name`."""
    if name not in _KINDS:
        raise UnknownFault(f"the claims office has no fault {name!r}; known: {', '.join(OFFICE_FAULTS)}")


def action_params(name: str, args: Sequence[Any] = (), params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The checked parameters of action `name`; UnknownFault or BadFaultParameter otherwise."""
    if name not in _ACTIONS:
        raise UnknownFault(f"the claims office has no action {name!r}; known: {', '.join(OFFICE_ACTIONS)}")
    kind = _ACTIONS[name]
    if kind is None:
        if args or params:
            raise BadFaultParameter(f"{name} takes no parameters")
        return {}
    return _checked(name, kind, args, params)


def fault_params(name: str, args: Sequence[Any] = (), params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The checked parameters of fault `name` (`failure_injection` entry `name(*args, **params)`),
    defaults filled in; raises UnknownFault or BadFaultParameter naming what to send."""
    known_fault(name)
    return _checked(name, _KINDS[name], args, params)


def _checked(name: str, kind: _FaultKind, args: Sequence[Any], params: Mapping[str, Any] | None) -> dict[str, Any]:
    params = params or {}
    where = f"{name}: parameter {kind.param!r}"
    unknown = sorted(set(params) - {kind.param})
    if unknown:
        raise BadFaultParameter(f"{name} has no parameter {unknown[0]!r}; it takes {kind.param!r}: {kind.expected}")
    if len(args) > 1 or (args and kind.param in params):
        raise BadFaultParameter(f"{where} given more than once; {name} takes one parameter, {kind.param}")
    value = args[0] if args else params.get(kind.param, kind.default)
    if value is None:
        raise BadFaultParameter(f"{where} is required: {kind.expected}, e.g. {name}(3) or {name}({kind.param}=3)")
    if not kind.valid(value):
        raise BadFaultParameter(f"{where} must be {kind.expected}; got {value!r}")
    return {kind.param: value}


# -- the office -----------------------------------------------------------------------------
@dataclass
class ClaimsOffice:
    """One run's office: its own wage records (a data fork), its own queue and its own faults."""

    config: OfficeConfig
    wage_records: dict[str, int]
    claims: dict[int, Claim] = field(default_factory=dict)
    payments: list[tuple[int, float, datetime]] = field(default_factory=list)  # the fake Treasury's ledger
    _free_at: list[datetime] = field(default_factory=list)  # each present caseworker's next free moment (heap)
    _faults: dict[str, dict[str, Any]] = field(default_factory=dict)  # active fault -> its parameters
    _db_mode: str | None = None  # db_down's mode while the claims database is down
    _out: int = 0  # caseworkers out
    _held: list[Claim] = field(default_factory=list)  # filed while the database was down (mode queue)
    _intake_paused: bool = False  # a trainee paused intake
    warp: float | None = None  # the run's time warp; None: review_minutes as configured

    @property
    def review_minutes(self) -> float:
        """One review's business minutes for this run (see OfficeConfig)."""
        scale = 1.0 if self.warp is None else self.warp / self.config.reference_warp
        return self.config.review_minutes * scale

    def file(self, ssn: str, now: datetime) -> Claim:
        """File a claim at `now`; raises ClaimsDatabaseDown while `db_down` (mode fail) is on,
        IntakePaused while intake is paused."""
        claim_id = len(self.claims) + 1
        if self._intake_paused:
            raise IntakePaused("claims intake is paused")
        if self._db_mode is not None:
            if self._db_mode == "fail":
                raise ClaimsDatabaseDown("claims database unavailable")
            claim = self.claims[claim_id] = Claim(claim_id, ssn, now, "queued")
            self._held.append(claim)
            return claim
        claim = self.claims[claim_id] = Claim(claim_id, ssn, now, "in_review")
        self._enter(claim, now)
        return claim

    def _enter(self, claim: Claim, now: datetime) -> None:
        """The wage check, then the review queue; `now` is when the claim reaches them."""
        wages = self.wage_records.get(claim.ssn, 0)
        if wages < self.config.min_quarterly_wages:
            claim.status, claim.decided = "denied", now
        else:
            claim.status, claim.amount = "in_review", round(wages * 0.04, 2)
            self._review(claim, now)

    def _review(self, claim: Claim, now: datetime) -> None:
        """Give the claim to the caseworker free soonest: when their review ends, when it is paid.
        With every caseworker out it waits, unassigned, for their return."""
        if not self._free_at:
            if self._out >= self.config.caseworkers:
                return
            self._free_at = [now] * self.config.caseworkers
        start = max(heapq.heappop(self._free_at), now)
        end = self._add_business_minutes(start, self.review_minutes)
        heapq.heappush(self._free_at, end)
        claim.started, claim.decided = start, end
        claim.paid = end + timedelta(minutes=self.config.payment_minutes)
        self.payments.append((claim.id, claim.amount, claim.paid))

    # -- faults ---------------------------------------------------------------------------
    @property
    def faults(self) -> dict[str, dict[str, Any]]:
        """The active faults and their parameters."""
        return {name: dict(params) for name, params in self._faults.items()}

    def start_fault(self, name: str, now: datetime, args: Sequence[Any] = (),
                    params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Start fault `name` at simulated time `now`; its checked parameters."""
        checked = fault_params(name, args, params)
        if name in self._faults:
            raise FaultActive(f"{name} is already active in this run (with {self._faults[name]}); "
                              "end it first to start it again")
        self._faults[name] = checked
        if name == "db_down":
            self._db_mode = checked["mode"]
        else:
            self._out = checked["n"]
            self._reschedule(now, max(self.config.caseworkers - self._out, 0))
        return checked

    def end_fault(self, name: str, now: datetime) -> bool:
        """End fault `name` at simulated time `now`; False if it was not active (ending twice
        changes nothing, so a recovery may be sent again)."""
        known_fault(name)
        if self._faults.pop(name, None) is None:
            return False
        if name == "db_down":
            self._db_mode = None
            held, self._held = self._held, []
            for claim in held:  # in the order they were sent
                self._enter(claim, now)
        else:
            self._out = 0
            self._reschedule(now, self.config.caseworkers)
        return True

    # -- decisions (training mode) ---------------------------------------------------------
    def act(self, name: str, now: datetime, args: Sequence[Any] = (),
            params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """A trainee's decision at simulated time `now`: add_caseworkers(n) (they take reviews
        from `now`), pause_intake, resume_intake. What the office looks like after it."""
        checked = action_params(name, args, params)
        if name == "add_caseworkers":
            self.config = replace(self.config, caseworkers=self.config.caseworkers + checked["n"])
            self._reschedule(now, max(self.config.caseworkers - self._out, 0))
        else:
            self._intake_paused = name == "pause_intake"
        return {"caseworkers": self.config.caseworkers, "intake_paused": self._intake_paused}

    def _reschedule(self, now: datetime, present: int) -> None:
        """From `now` on, `present` caseworkers work the queue: each review under way finishes
        as scheduled (its caseworker is busy until then), and the claims nobody has started are
        dealt out again, first come first served. The absent are those who would be free soonest."""
        busy: list[datetime] = []
        waiting: list[Claim] = []
        for claim in self.claims.values():
            if claim.status != "in_review":
                continue
            if claim.started is None or self._opening(claim.started) >= now:
                waiting.append(claim)
            elif claim.decided is not None and claim.decided > now:
                busy.append(claim.decided)
        free = busy + [now] * (self.config.caseworkers - len(busy))
        heapq.heapify(free)
        for _ in range(self.config.caseworkers - present):
            heapq.heappop(free)
        self._free_at = free
        redealt = {claim.id for claim in waiting}
        self.payments = [entry for entry in self.payments if entry[0] not in redealt]
        for claim in waiting:
            claim.started = claim.decided = claim.paid = None
            self._review(claim, max(claim.filed, now))

    # -- business hours -------------------------------------------------------------------
    def _in_business(self, t: datetime) -> bool:
        c = self.config
        if c.weekdays_only and t.weekday() >= 5:
            return False
        return c.business_start_hour <= t.hour < c.business_end_hour

    def _opening(self, t: datetime) -> datetime:
        """When work begun at `t` really starts: `t`, or the next opening."""
        return t if self._in_business(t) else self._next_opening(t)

    def _next_opening(self, t: datetime) -> datetime:
        c = self.config
        day = t.replace(hour=c.business_start_hour, minute=0, second=0, microsecond=0)
        if t >= day.replace(hour=c.business_end_hour):
            day += timedelta(days=1)
        elif t > day:
            return t
        while c.weekdays_only and day.weekday() >= 5:
            day += timedelta(days=1)
        return day

    def _add_business_minutes(self, start: datetime, minutes: float) -> datetime:
        t = start if self._in_business(start) else self._next_opening(start)  # _opening, inlined: hot
        left = timedelta(minutes=minutes)
        while True:
            closing = t.replace(hour=self.config.business_end_hour, minute=0, second=0, microsecond=0)
            if t + left <= closing:
                return t + left
            left -= closing - t
            t = self._next_opening(closing)
