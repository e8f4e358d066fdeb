"""The sample claims office: business hours, FIFO caseworkers, and the capacity arithmetic."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import pytest

from esr.arrivals import ArrivalPlan
from esr.clock import SimClock
from esr.load_profile import LoadPoint, LoadProfile
from esr.sandbox.claims import ClaimsOffice, OfficeConfig

MONDAY = datetime(2026, 3, 2, tzinfo=timezone.utc)


def office(**config: object) -> ClaimsOffice:
    return ClaimsOffice(OfficeConfig(**config), {"ok": 5000, "poor": 10})  # type: ignore[arg-type]


def test_no_qualifying_wages_is_denied_at_once() -> None:
    claim = office().file("poor", MONDAY)
    assert claim.status_at(MONDAY) == "denied"
    assert office().file("unknown", MONDAY).status == "denied"


def test_reviews_happen_in_business_hours_and_payment_follows() -> None:
    o = office(caseworkers=1, review_minutes=30, payment_minutes=60)
    night = o.file("ok", MONDAY.replace(hour=22))
    assert night.decided == MONDAY.replace(hour=8, minute=30) + timedelta(days=1)
    assert night.paid == MONDAY.replace(hour=9, minute=30) + timedelta(days=1)
    assert night.status_at(night.paid - timedelta(seconds=1)) == "approved"
    assert night.status_at(night.paid) == "paid"
    late = o.file("ok", MONDAY.replace(hour=16, minute=50))  # queued behind the first one, spills over
    assert late.decided == MONDAY.replace(hour=9) + timedelta(days=1)


def test_a_review_that_does_not_fit_continues_next_morning() -> None:
    o = office(caseworkers=1, review_minutes=60)
    claim = o.file("ok", MONDAY.replace(hour=16, minute=30))
    assert claim.decided == MONDAY.replace(hour=8, minute=30) + timedelta(days=1)


def test_weekends_when_asked() -> None:
    friday = MONDAY + timedelta(days=4)
    claim = office(caseworkers=1, review_minutes=60, weekdays_only=True).file("ok", friday.replace(hour=16, minute=30))
    assert claim.decided == (friday + timedelta(days=3)).replace(hour=8, minute=30)


def test_caseworkers_work_in_parallel_first_come_first_served() -> None:
    o = office(caseworkers=3, review_minutes=60)
    ends = [o.file("ok", MONDAY.replace(hour=8)).decided for _ in range(6)]
    assert ends == [MONDAY.replace(hour=9)] * 3 + [MONDAY.replace(hour=10)] * 3


def sla_share(scale: float, warp: float, config: OfficeConfig = OfficeConfig()) -> float:
    """The seed's profile (peak 40 starts/s) times `scale`; hourly polls; met within 48 h."""
    points = tuple(LoadPoint(h, r * scale) for h, r in [(0, 5), (8, 20), (18, 40), (22, 10)])
    plan = ArrivalPlan(LoadProfile(points, 24), SimClock(warp, 24 * 3600, warp), 42)
    o = ClaimsOffice(config, {"ok": 5000})
    met = total = 0
    for arrival in plan:
        filed = MONDAY + timedelta(seconds=arrival.sim)
        claim = o.file("ok", filed)
        assert claim.paid is not None
        total += 1
        met += math.ceil((claim.paid - filed).total_seconds() / 3600) <= 48
    return met / total


def test_capacity_arithmetic_peak_40_passes_and_80_fails() -> None:
    """Defaults: 110 caseworkers x 9 business hours / 144 min = 412 reviews a day. At warp 1440
    the walk-through profile files 1,050 claims a simulated day: cleared within 48 h. Doubled,
    the backlog outgrows the deadline."""
    assert sla_share(1.0, 1440) > 0.95
    assert sla_share(2.0, 1440) < 0.95


@pytest.mark.parametrize("warp", [60, 720, 2880])
def test_at_a_higher_warp_scale_the_review_time_to_keep_the_ratio(warp: float) -> None:
    config = OfficeConfig(review_minutes=warp / 10)
    assert sla_share(1.0, warp, config) > 0.95
    assert sla_share(2.0, warp, config) < 0.95
