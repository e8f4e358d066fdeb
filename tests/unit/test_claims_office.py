"""The sample claims office: business hours, FIFO caseworkers, the capacity arithmetic, and
its own faults (db_down, caseworkers_out)."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

import pytest

from esr.core.arrivals import ArrivalPlan
from esr.core.clock import SimClock
from esr.core.load_profile import LoadPoint, LoadProfile
from esr.sandbox.claims import (
    BadFaultParameter,
    ClaimsDatabaseDown,
    ClaimsOffice,
    FaultActive,
    OfficeConfig,
    UnknownFault,
    fault_params,
)

MONDAY = datetime(2026, 3, 2, tzinfo=UTC)


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


# The chapter's walk-through profile (shared/seed, section 3.1): hour -> journey starts per second
CHAPTER_PROFILE = [(0, 5), (8, 30), (18, 40)]
PEAK_80 = [(0, 5), (8, 30), (18, 80)]  # its mini-lab, step 5: the evening spike at 80
DEFAULT_OFFICE = OfficeConfig()


def sla_share(profile: list[tuple[float, float]], warp: float, config: OfficeConfig = DEFAULT_OFFICE) -> float:
    """A day of `profile` at `warp` through an office that knows the warp; 92 % of claimants
    qualify (as the sandbox's wage records give); hourly polls from filing, met within 48 h."""
    points = tuple(LoadPoint(h, r) for h, r in profile)
    plan = ArrivalPlan(LoadProfile(points, 24), SimClock(warp, 24 * 3600, warp), 42)
    o = ClaimsOffice(config, {"ok": 5000, "poor": 10}, warp=warp)
    qualifies = random.Random(42)
    met = total = 0
    for arrival in plan:
        filed = MONDAY + timedelta(seconds=arrival.sim)
        claim = o.file("ok" if qualifies.random() < 0.92 else "poor", filed)
        total += 1
        if claim.status == "denied":  # decided at once
            met += 1
            continue
        assert claim.paid is not None
        met += math.ceil((claim.paid - filed).total_seconds() / 3600) <= 48
    return met / total


@pytest.mark.parametrize("warp", [60, 720, 1440, 2880, 4320])
def test_the_chapter_scenario_meets_the_sla_at_any_warp_and_peak_80_does_not(warp: float) -> None:
    """Defaults: 110 caseworkers x 540 business minutes / 115 min = 517 reviews a business day at
    warp 1440, scaled by 1440 / W at warp W, as the claims per simulated day are."""
    assert sla_share(CHAPTER_PROFILE, warp) == 1.0
    assert sla_share(PEAK_80, warp) < 0.9


@pytest.mark.parametrize("warp", [60, 1440, 4320])
def test_the_calibration_has_a_margin_of_a_tenth_of_the_caseworkers(warp: float) -> None:
    """Peak 40 still passes with 10 % fewer caseworkers; peak 80 still fails with 10 % more."""
    assert sla_share(CHAPTER_PROFILE, warp, OfficeConfig(caseworkers=99)) > 0.95
    assert sla_share(PEAK_80, warp, OfficeConfig(caseworkers=121)) < 0.95


def test_the_review_time_follows_the_run_s_warp() -> None:
    config = OfficeConfig(review_minutes=115, reference_warp=1440)
    assert ClaimsOffice(config, {}).review_minutes == 115  # no warp known: as configured
    assert ClaimsOffice(config, {}, warp=60).review_minutes == pytest.approx(115 / 24)
    assert ClaimsOffice(config, {}, warp=4320).review_minutes == pytest.approx(345)
    o = ClaimsOffice(OfficeConfig(caseworkers=1, review_minutes=60), {"ok": 5000}, warp=2880)
    assert o.file("ok", MONDAY.replace(hour=8)).decided == MONDAY.replace(hour=10)  # 120 minutes at warp 2880


# -- faults -------------------------------------------------------------------------------------
def at(hour: int, minute: int = 0, day: int = 0) -> datetime:
    return MONDAY.replace(hour=hour, minute=minute) + timedelta(days=day)


def play(o: ClaimsOffice, arrivals: list[tuple[int, str]], faults: list[tuple[int, str, list]]) -> list:
    """File `(minute, ssn)` claims and start (`args` a list) or end (`args` None) faults at their
    minutes, faults first on a tie; each claim's id, status, decision and payment."""
    events = sorted([(m, 0, i) for i, (m, _, _) in enumerate(faults)]
                    + [(m, 1, i) for i, (m, _) in enumerate(arrivals)])
    for minute, is_claim, i in events:
        now = MONDAY + timedelta(minutes=minute)
        if is_claim:
            o.file(arrivals[i][1], now)
        elif faults[i][2] is None:
            o.end_fault(faults[i][1], now)
        else:
            o.start_fault(faults[i][1], now, faults[i][2])
    return [(c.id, c.status, c.decided, c.paid) for c in o.claims.values()]


def test_db_down_fail_files_nothing_until_recovery() -> None:
    o = office(caseworkers=1, review_minutes=30)
    before = o.file("ok", at(9))
    o.start_fault("db_down", at(10))
    with pytest.raises(ClaimsDatabaseDown, match="claims database unavailable"):
        o.file("ok", at(10, 5))
    assert list(o.claims) == [before.id] and len(o.payments) == 1
    assert o.claims[before.id].status_at(at(10, 5)) == "approved"  # reads keep working
    assert o.end_fault("db_down", at(11)) is True
    after = o.file("ok", at(11, 5))
    assert (after.id, after.decided) == (2, at(11, 35))


def test_db_down_queue_holds_claims_and_files_them_in_order_at_recovery() -> None:
    o = office(caseworkers=1, review_minutes=30, payment_minutes=60)
    o.start_fault("db_down", at(10), params={"mode": "queue"})
    held = [o.file(ssn, at(10, m)) for ssn, m in (("ok", 5), ("poor", 10), ("ok", 20))]
    assert [(c.id, c.status_at(at(11)), c.filed) for c in held] == [(1, "queued", at(10, 5)), (2, "queued", at(10, 10)),
                                                                  (3, "queued", at(10, 20))]
    assert o.payments == [] and all(c.decided is None for c in held)
    o.end_fault("db_down", at(12))
    assert [(c.status_at(at(12)), c.decided) for c in held] == [("in_review", at(12, 30)), ("denied", at(12)),
                                                                ("in_review", at(13))]
    assert held[0].paid == at(13, 30) and [p[0] for p in o.payments] == [1, 3]
    later = o.file("ok", at(12, 1))  # behind the held ones
    assert later.decided == at(13, 30)


def test_caseworkers_out_lowers_capacity_and_their_return_restores_it() -> None:
    """2 caseworkers, 60-minute reviews, 6 claims at 8:00: without the absence 9, 9, 10, 10, 11,
    11. With one out from 8:00 to 10:00, one works alone until 10:00, then both take the rest."""
    plain = office(caseworkers=2, review_minutes=60)
    assert [plain.file("ok", at(8)).decided for _ in range(6)] == [at(9), at(9), at(10), at(10), at(11), at(11)]
    o = office(caseworkers=2, review_minutes=60)
    assert o.start_fault("caseworkers_out", at(8), [1]) == {"n": 1}
    claims = [o.file("ok", at(8)) for _ in range(6)]
    assert [c.decided for c in claims] == [at(9), at(10), at(11), at(12), at(13), at(14)]
    o.end_fault("caseworkers_out", at(10))
    assert [c.decided for c in claims] == [at(9), at(10), at(11), at(11), at(12), at(12)]
    assert [c.paid for c in claims] == [c.decided + timedelta(minutes=60) for c in claims]
    assert sorted((p[0], p[2]) for p in o.payments) == [(c.id, c.paid) for c in claims]


def test_reviews_under_way_finish_and_with_everyone_out_claims_wait() -> None:
    o = office(caseworkers=2, review_minutes=60, payment_minutes=60)
    busy = [o.file("ok", at(8)) for _ in range(2)]
    o.start_fault("caseworkers_out", at(8, 30), params={"n": 5})  # more than there are: all out
    waiting = o.file("ok", at(8, 45))
    assert [c.decided for c in busy] == [at(9), at(9)]
    assert (waiting.decided, waiting.paid, waiting.status_at(at(10, 59))) == (None, None, "in_review")
    o.end_fault("caseworkers_out", at(11))
    assert (waiting.decided, waiting.paid) == (at(12), at(13))
    assert o.payments[-1] == (waiting.id, waiting.amount, at(13))


def test_an_absence_outside_business_hours_changes_nothing() -> None:
    """From 19:00 to 7:59 nobody reviews anyway: the backlog is dealt out again, to the same end."""
    rng = random.Random(7)
    arrivals = [(m, "ok") for m in sorted(rng.randrange(2 * 1440) for _ in range(200))]
    night = [(19 * 60, "caseworkers_out", [2]), ((24 + 7) * 60 + 59, "caseworkers_out", None)]
    assert play(office(caseworkers=3, review_minutes=45), arrivals, night) == \
        play(office(caseworkers=3, review_minutes=45), arrivals, [])


def test_ending_a_fault_twice_or_never_started_is_harmless() -> None:
    o = office(caseworkers=1, review_minutes=30)
    assert o.end_fault("db_down", at(9)) is False and o.end_fault("caseworkers_out", at(9)) is False
    o.start_fault("caseworkers_out", at(9), [1])
    assert o.end_fault("caseworkers_out", at(10)) is True
    first = o.file("ok", at(10, 15)).decided
    assert o.end_fault("caseworkers_out", at(10, 20)) is False
    assert o.file("ok", at(10, 20)).decided == first + timedelta(minutes=30) == at(11, 15)
    assert o.faults == {}


def test_starting_an_active_fault_or_an_unknown_one_is_refused() -> None:
    o = office()
    o.start_fault("db_down", at(9), ["queue"])
    assert o.faults == {"db_down": {"mode": "queue"}}
    with pytest.raises(FaultActive, match="db_down is already active"):
        o.start_fault("db_down", at(10))
    with pytest.raises(UnknownFault, match="no fault 'disk_full'; known: db_down, caseworkers_out"):
        o.start_fault("disk_full", at(10))
    with pytest.raises(UnknownFault):
        o.end_fault("disk_full", at(10))


@pytest.mark.parametrize(("name", "args", "params", "message"), [
    ("caseworkers_out", [], {}, "parameter 'n' is required: a positive whole number"),
    ("caseworkers_out", [0], {}, "parameter 'n' must be a positive whole number of caseworkers; got 0"),
    ("caseworkers_out", [], {"n": 2.5}, "got 2.5"),
    ("caseworkers_out", ["3"], {}, "got '3'"),
    ("caseworkers_out", [True], {}, "got True"),
    ("caseworkers_out", [3], {"n": 3}, "parameter 'n' given more than once"),
    ("caseworkers_out", [3, 4], {}, "given more than once; caseworkers_out takes one parameter, n"),
    ("db_down", [], {"mode": "slow"}, "parameter 'mode' must be \"fail\" .* or \"queue\" .*; got 'slow'"),
    ("db_down", [], {"rate": 1}, "db_down has no parameter 'rate'; it takes 'mode'"),
])
def test_bad_parameters_name_the_parameter_and_what_is_expected(name: str, args: list, params: dict,
                                                                message: str) -> None:
    with pytest.raises(BadFaultParameter, match=message):
        fault_params(name, args, params)


def test_parameters_positional_or_named_with_defaults() -> None:
    assert fault_params("db_down") == {"mode": "fail"}
    assert fault_params("db_down", ["queue"]) == fault_params("db_down", params={"mode": "queue"}) == {"mode": "queue"}
    assert fault_params("caseworkers_out", [40]) == fault_params("caseworkers_out", params={"n": 40}) == {"n": 40}


def test_a_refused_start_changes_nothing() -> None:
    o = office(caseworkers=1, review_minutes=30)
    with pytest.raises(BadFaultParameter):
        o.start_fault("caseworkers_out", at(9), [0])
    assert o.faults == {} and o.file("ok", at(9)).decided == at(9, 30)


def reference_decisions(config: OfficeConfig, arrivals: list[int], changes: dict[int, int]) -> list[datetime]:
    """A minute-by-minute FIFO office: `changes` maps a minute to how many caseworkers are out from
    then on; the absent are the idle first, then those finishing soonest (as in the model)."""
    hours = ClaimsOffice(config, {})
    workers: list[list[int] | None] = [None] * config.caseworkers  # [claim, business minutes left]
    absent: set[int] = set()
    queue: list[int] = []
    decided: dict[int, datetime] = {}
    minute = 0
    while len(decided) < len(arrivals):
        now = MONDAY + timedelta(minutes=minute)
        if minute in changes:
            left = [-1 if work is None else work[1] for work in workers]
            absent = set(sorted(range(config.caseworkers), key=left.__getitem__)[:changes[minute]])
        queue += [i for i, m in enumerate(arrivals) if m == minute]
        if hours._in_business(now):  # noqa: SLF001
            for w, work in enumerate(workers):
                if work is None and w not in absent and queue:
                    work = workers[w] = [queue.pop(0), int(config.review_minutes)]
                if work is not None:
                    work[1] -= 1
                    if work[1] == 0:
                        decided[work[0]] = now + timedelta(minutes=1)
                        workers[w] = None
        minute += 1
    return [decided[i] for i in range(len(arrivals))]


@pytest.mark.parametrize("seed", range(12))
def test_decisions_match_a_minute_by_minute_office_under_absences(seed: int) -> None:
    """Claims are filed at odd minutes, absences start and end at even ones (no ties)."""
    rng = random.Random(seed)
    config = OfficeConfig(caseworkers=rng.randint(1, 4), review_minutes=rng.choice([10, 45, 60, 200]))
    arrivals = sorted(rng.randrange(1440) * 2 + 1 for _ in range(rng.randint(1, 40)))
    changes: dict[int, int] = {}
    start = rng.randrange(720) * 2
    while start < 2 * 1440 and len(changes) < 6:
        end = start + rng.randrange(1, 300) * 2
        changes[start], changes[end] = rng.randint(1, config.caseworkers + 1), 0
        start = end + rng.randrange(1, 500) * 2
    faults = [(m, "caseworkers_out", [n] if n else None) for m, n in changes.items()]
    played = play(ClaimsOffice(config, {"ok": 5000}), [(m, "ok") for m in arrivals], faults)
    assert [decided for _, _, decided, _ in played] == reference_decisions(config, arrivals, changes)


def test_faults_are_deterministic() -> None:
    rng = random.Random(3)
    arrivals = [(m, "poor" if m % 7 == 0 else "ok") for m in sorted(rng.randrange(3 * 1440) for _ in range(300))]
    faults = [(600, "caseworkers_out", [3]), (900, "caseworkers_out", None), (1300, "db_down", ["queue"]),
              (1700, "db_down", None), (2000, "caseworkers_out", [9]), (2100, "caseworkers_out", None)]
    runs = [play(office(caseworkers=5, review_minutes=90), arrivals, faults) for _ in range(2)]
    assert runs[0] == runs[1]
    assert runs[0] != play(office(caseworkers=5, review_minutes=90), arrivals, [])


def test_trainee_actions_change_capacity_and_intake() -> None:
    from esr.sandbox.claims import IntakePaused, UnknownFault

    office = ClaimsOffice(OfficeConfig(caseworkers=2, review_minutes=60), {f"s{i}": 5000 for i in range(10)})
    nine = datetime(2026, 1, 5, 9, tzinfo=UTC)
    claims = [office.file(f"s{i}", nine) for i in range(6)]
    assert [c.decided.hour for c in claims] == [10, 10, 11, 11, 12, 12]
    assert office.act("add_caseworkers", nine, [2]) == {"caseworkers": 4, "intake_paused": False}
    assert [c.decided.hour for c in claims] == [10, 10, 10, 10, 11, 11]  # the waiting claims re-dealt
    assert office.act("pause_intake", nine)["intake_paused"] is True
    with pytest.raises(IntakePaused, match="claims intake is paused"):
        office.file("s7", nine)
    assert office.act("resume_intake", nine)["intake_paused"] is False
    assert office.file("s7", nine).status == "in_review"
    with pytest.raises(BadFaultParameter, match="add_caseworkers: parameter 'n' is required"):
        office.act("add_caseworkers", nine)
    with pytest.raises(BadFaultParameter, match="pause_intake takes no parameters"):
        office.act("pause_intake", nine, [1])
    with pytest.raises(UnknownFault, match="no action 'hire'; known: add_caseworkers, pause_intake, resume_intake"):
        office.act("hire", nine)


# -- Idempotency-Key: one filing per key ------------------------------------------------------
def test_a_key_remembers_the_first_answer_and_refuses_another_body() -> None:
    from esr.sandbox.idempotency import IdempotencyStore, KeyReused

    store = IdempotencyStore(limit=10)
    assert store.lookup("k1", b"body-a") is None
    store.remember("k1", b"body-a", 201, b'{"id": 1}')
    assert store.lookup("k1", b"body-a") == (201, b'{"id": 1}')
    with pytest.raises(KeyReused, match="'k1'"):
        store.lookup("k1", b"body-b")
    assert store.lookup("k2", b"body-a") is None  # another key is another request


def test_the_store_keeps_at_most_its_limit_forgetting_the_oldest() -> None:
    from esr.sandbox.idempotency import IdempotencyStore

    store = IdempotencyStore(limit=3)
    for i in range(5):
        store.remember(f"k{i}", b"", 201, str(i).encode())
    assert len(store) == 3
    assert [store.lookup(f"k{i}", b"") for i in range(5)] == [None, None, (201, b"2"), (201, b"3"), (201, b"4")]


@pytest.mark.parametrize(("header", "key"), [("abc", "abc"), ('"abc"', "abc"), ("  r-u1-r0 ", "r-u1-r0")])
def test_a_key_is_read_bare_or_as_a_structured_string(header: str, key: str) -> None:
    from esr.sandbox.idempotency import read_key

    assert read_key(header) == key


@pytest.mark.parametrize(("header", "why"), [("", "empty"), ('""', "empty"), ("x" * 256, "255"),
                                             ("a\x01b", "printable")])
def test_a_bad_key_is_refused_naming_the_header(header: str, why: str) -> None:
    from esr.sandbox.idempotency import BadKey, read_key

    with pytest.raises(BadKey, match=f"^Idempotency-Key.*{why}"):
        read_key(header)
