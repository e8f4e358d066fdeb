"""`ClaimsOffice`: the sample system's business logic, in simulated time, with no I/O.

An unemployment-insurance claim is filed, checked automatically against wage records
(no qualifying wages: denied at once), then waits in one first-come-first-served review queue
worked by `caseworkers` people during business hours; each review takes `review_minutes` of a
caseworker's business time. An approved claim is paid through the (fake) Treasury
`payment_minutes` later, at any hour.

Capacity arithmetic: a business day gives `caseworkers * business_minutes / review_minutes`
reviews. Load is journey starts per *real* second, so claims per simulated day are
`sum(rate * hours) * 3600 / time_warp`; the backlog, and so the 48-hour SLA, depends on their
ratio (see docs/sandbox.md).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from datetime import datetime, timedelta

__all__ = ["Claim", "ClaimsOffice", "OfficeConfig"]


@dataclass(frozen=True, slots=True)
class OfficeConfig:
    """Defaults are calibrated for the walk-through scenario (warp 1440): peak 40 journey starts/s
    meets the 48-hour SLA, 80 does not. For warp W, keep the ratio with review_minutes = W / 10."""

    caseworkers: int = 110
    review_minutes: float = 144.0
    business_start_hour: int = 8
    business_end_hour: int = 17
    weekdays_only: bool = False
    payment_minutes: float = 60.0
    min_quarterly_wages: int = 1000


@dataclass(slots=True)
class Claim:
    id: int
    ssn: str
    filed: datetime
    status: str  # denied, in_review, paid
    decided: datetime | None = None  # review finished (approved) or denial
    paid: datetime | None = None
    amount: float = 0.0

    def status_at(self, now: datetime) -> str:
        """What a caller asking at simulated time `now` sees."""
        if self.status == "denied":
            return "denied"
        if self.paid is not None and now >= self.paid:
            return "paid"
        if self.decided is not None and now >= self.decided:
            return "approved"
        return "in_review"


@dataclass
class ClaimsOffice:
    """One run's office: its own wage records (a data fork) and its own queue."""

    config: OfficeConfig
    wage_records: dict[str, int]
    claims: dict[int, Claim] = field(default_factory=dict)
    payments: list[tuple[int, float, datetime]] = field(default_factory=list)  # the fake Treasury's ledger
    _free_at: list[datetime] = field(default_factory=list)  # each caseworker's next free moment (heap)

    def file(self, ssn: str, now: datetime) -> Claim:
        claim_id = len(self.claims) + 1
        wages = self.wage_records.get(ssn, 0)
        if wages < self.config.min_quarterly_wages:
            claim = Claim(claim_id, ssn, now, "denied", decided=now)
        else:
            done = self._review(now)
            paid = done + timedelta(minutes=self.config.payment_minutes)
            claim = Claim(claim_id, ssn, now, "in_review", decided=done, paid=paid, amount=round(wages * 0.04, 2))
            self.payments.append((claim_id, claim.amount, paid))
        self.claims[claim_id] = claim
        return claim

    def _review(self, now: datetime) -> datetime:
        """Give the claim to the caseworker free soonest; when their review ends."""
        if not self._free_at:
            self._free_at = [now] * self.config.caseworkers
            heapq.heapify(self._free_at)
        start = max(heapq.heappop(self._free_at), now)
        end = self._add_business_minutes(start, self.config.review_minutes)
        heapq.heappush(self._free_at, end)
        return end

    def _in_business(self, t: datetime) -> bool:
        c = self.config
        if c.weekdays_only and t.weekday() >= 5:
            return False
        return c.business_start_hour <= t.hour < c.business_end_hour

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
        t = start if self._in_business(start) else self._next_opening(start)
        left = timedelta(minutes=minutes)
        while True:
            closing = t.replace(hour=self.config.business_end_hour, minute=0, second=0, microsecond=0)
            if t + left <= closing:
                return t + left
            left -= closing - t
            t = self._next_opening(closing)
