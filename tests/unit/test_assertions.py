"""esr.core.assertions: the assertion grammar and its judgement over a fold of hand-made events."""

from __future__ import annotations

import string

import pytest
from factories import HOUR, RunEvents, fold
from hypothesis import given, settings
from hypothesis import strategies as st

from esr.core.assertions import Assertion, AssertionResult, evaluate, parse_assertion
from esr.core.buckets import RunFold
from esr.core.clock import SimClock
from esr.core.errors import AssertionSyntaxError, EsrError
from esr.core.events import Event

COUNTERS = frozenset({"cloud_cost", "claims_paid"})
POST, GET = "POST /claims", "GET /claims/{claim_id}"


# -- a hand-made run ----------------------------------------------------------------------------
def claims_run() -> tuple[list[Event], SimClock]:
    """24 simulated hours at warp 60, then a drain at warp 240 until sim hour 72.

    Every hour h: one journey (started, completed), 10 requests (even i: POST, odd i: GET) at
    latency 100 + 10 i ms, one 48h SLA opened at h:00:30 (met for h < 20, missed after),
    cloud_cost += 0.25, and claims_paid += 1 for h < 20. Hour 23 has 5 errors (i < 5), so the
    whole run has 5 errors in 240 requests but the last hour has an error rate of 0.5.
    """
    ev = RunEvents(time_warp=60.0, drain_warp=240.0, load_end_sim=24 * HOUR)
    events: list[Event] = [ev.started()]
    for h in range(24):
        t0 = h * HOUR
        events.append(ev.journey_started(sim=t0 + 10, user=h))
        for i in range(10):
            bad = h == 23 and i < 5
            events.append(ev.result(sim=t0 + 30 + 60 * i, user=h, endpoint=POST if i % 2 == 0 else GET,
                                    latency_ms=100.0 + 10 * i, status=503 if bad else 200,
                                    error="5xx" if bad else None))
        events.append(ev.counter(sim=t0 + 40, name="cloud_cost", value=0.25, user=h))
        if h < 20:
            events.append(ev.counter(sim=t0 + 50, name="claims_paid", value=1.0, user=h))
        met = h < 20
        events.append(ev.sla(opened=t0 + 30, decided=t0 + 30 + (HOUR if met else 48 * HOUR), met=met, user=h))
        events.append(ev.journey_ended(sim=t0 + 3_000, user=h))
    events.append(ev.finished(sim=72 * HOUR, requests_sent=240, journeys_started=24))
    return events, SimClock(60.0, 24 * HOUR, 240.0)


@pytest.fixture(scope="module")
def run() -> tuple[RunFold, SimClock]:
    events, clock = claims_run()
    return fold(events), clock


def judge_one(text: str, run: tuple[RunFold, SimClock], custom: dict | None = None) -> AssertionResult:
    f, clock = run
    a = parse_assertion(text, COUNTERS, custom)
    return evaluate(a, f, clock, custom, COUNTERS)


# -- exact values over the whole run ------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "holds", "observed"),
    [
        ("requests == 240", True, 240.0),
        ("errors == 5", True, 5.0),
        ("errors_5xx == 5", True, 5.0),
        ("errors_timeout == 0", True, 0.0),
        ("error_rate < 0.05", True, 5 / 240),
        ("error_rate_5xx > 0.05", False, 5 / 240),
        ("journeys_started == 24", True, 24.0),
        ("journeys_completed >= 24", True, 24.0),
        ("journeys_failed != 0", False, 0.0),
        ("sla_48h_met == 20", True, 20.0),
        ("sla_48h_missed == 4", True, 4.0),
        ("sla_48h_success_rate > 0.8", True, 20 / 24),
        ("sla_48h_success_rate >= 0.9", False, 20 / 24),
        ("cloud_cost == 6", True, 6.0),
        ("claims_paid == 20", True, 20.0),
        ("cloud_cost / claims_paid < 0.5", True, 0.3),
        ("cloud_cost - claims_paid * 2 > 0", False, -34.0),  # * binds tighter than -
        ("(cloud_cost - claims_paid) * 2 < 0", True, -28.0),
        ("(requests - errors) / requests > 0.97", True, 235 / 240),
        ("-error_rate < 0", True, -5 / 240),
        ("requests - - errors == 245", True, 245.0),
        ("latency_min_ms == 100", True, 100.0),
        ("latency_max_ms == 190", True, 190.0),
        ("latency_mean_ms == 145", True, 145.0),
        ("bytes == 24000", True, 24_000.0),
        # the drain counts: 240 requests over 1440 s of load + 48 h at warp 240 (720 s)
        ("throughput_rps < 1", True, 240 / 2_160),
    ],
)
def test_whole_run_values(run: tuple[RunFold, SimClock], text: str, holds: bool, observed: float) -> None:
    result = judge_one(text, run)
    assert result.holds is holds, result
    assert result.observed == pytest.approx(observed, rel=1e-12)
    assert result.assertion == text
    assert result.detail == ""


def test_threshold_is_the_right_side(run: tuple[RunFold, SimClock]) -> None:
    result = judge_one("error_rate < 0.01 * 5", run)
    assert result.threshold == pytest.approx(0.05)
    assert result.to_dict() == {"assertion": "error_rate < 0.01 * 5", "holds": True,
                                "observed": result.observed, "threshold": result.threshold, "detail": ""}


@pytest.mark.parametrize(("quantile", "exact"), [(50, 140.0), (95, 190.0), (99, 190.0), (10, 100.0)])
def test_latency_percentiles_are_within_one_percent(run: tuple[RunFold, SimClock], quantile: int, exact: float) -> None:
    result = judge_one(f"latency_p{quantile}_ms < 1000", run)
    assert result.holds is True
    assert result.observed == pytest.approx(exact, rel=0.01)


def test_custom_metric_function(run: tuple[RunFold, SimClock]) -> None:
    custom = {"cost_per_claim": lambda m: m["cloud_cost"] / m["claims_paid"]}
    result = judge_one("cost_per_claim < 0.05", run, custom)
    assert (result.holds, result.observed, result.threshold) == (False, 0.3, 0.05)
    # in every hour: the hours without claims_paid divide by zero and are skipped, not failed
    result = judge_one("cost_per_claim < 0.5 in every 1h", run, custom)
    assert result.holds is True
    assert result.detail == "held in all 20 windows with data (72 in scope)"


def test_custom_metric_that_raises_cannot_be_judged(run: tuple[RunFold, SimClock]) -> None:
    def broken(m: object) -> float:
        raise ValueError("boom")

    result = judge_one("broken < 1", run, {"broken": broken})
    assert result.holds is None
    assert "custom metric raised ValueError: boom" in result.detail


# -- scopes ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "holds", "observed"),
    [
        ("requests == 100 during hour 8..18", True, 100.0),
        ("journeys_started == 10 during hour 8..18", True, 10.0),
        ("errors == 5 during hour 23..24", True, 5.0),
        ("error_rate == 0.5 during hour 23..24", True, 0.5),
        ("error_rate == 0 during hour 0..23", True, 0.0),
        ("sla_48h_success_rate == 1 during hour 8..18", True, 1.0),
        ("sla_48h_success_rate < 0.5 during hour 18..24", True, 2 / 6),
        ("cloud_cost == 2.5 during hour 8..18", True, 2.5),
        ("throughput_rps > 0.1 during hour 8..18", True, 100 / 600),  # 10 sim hours = 600 real s
        ("requests == 120 for endpoint \"POST /claims\"", True, 120.0),
        ("errors == 3 for endpoint 'POST /claims'", True, 3.0),
        ("errors == 2 for endpoint 'GET /claims/{claim_id}'", True, 2.0),
        ("requests == 5 during hour 23..24 for endpoint 'POST /claims'", True, 5.0),
        ("requests == 5 for endpoint 'POST /claims' during hour 23..24", True, 5.0),
        ("latency_max_ms == 180 for endpoint 'POST /claims'", True, 180.0),
    ],
)
def test_scoped_values(run: tuple[RunFold, SimClock], text: str, holds: bool, observed: float) -> None:
    result = judge_one(text, run)
    assert result.holds is holds, result
    assert result.observed == pytest.approx(observed, rel=1e-12)


def test_a_bad_final_hour_fails_even_though_the_whole_run_passes(run: tuple[RunFold, SimClock]) -> None:
    whole = judge_one("error_rate < 0.05", run)
    assert whole.holds is True
    hourly = judge_one("error_rate < 0.05 in every 1h", run)
    assert hourly.holds is False
    assert hourly.observed == 0.5
    assert hourly.threshold == 0.05
    assert hourly.detail == "first failing window starts at sim hour 23"


def test_every_reports_the_first_failing_window(run: tuple[RunFold, SimClock]) -> None:
    result = judge_one("sla_48h_success_rate > 0.8 in every 4h", run)
    assert (result.holds, result.observed) == (False, 0.0)
    assert result.detail == "first failing window starts at sim hour 20"
    result = judge_one("sla_48h_success_rate > 0.8 in every 4h during hour 0..20", run)
    assert result.holds is True
    assert result.detail == "held in all 5 windows with data (5 in scope)"


def test_every_skips_windows_without_data(run: tuple[RunFold, SimClock]) -> None:
    # 72 hourly windows (the drain included), requests only in the first 24
    result = judge_one("latency_p50_ms < 10000 in every 1h", run)
    assert result.holds is True
    assert (result.observed, result.threshold) == (None, None)
    assert result.detail == "held in all 24 windows with data (72 in scope)"
    result = judge_one("error_rate < 0.05 in every 1h during hour 0..23", run)
    assert result.holds is True
    assert result.detail == "held in all 23 windows with data (23 in scope)"


def test_every_per_endpoint(run: tuple[RunFold, SimClock]) -> None:
    result = judge_one("errors < 3 in every 1h for endpoint 'POST /claims'", run)
    assert (result.holds, result.observed) == (False, 3.0)
    assert result.detail == "first failing window starts at sim hour 23"
    assert judge_one("errors < 3 in every 1h for endpoint 'GET /claims/{claim_id}'", run).holds is True


def test_final_hour_of_a_run_without_drain_is_judged() -> None:
    """p95 over the day is fine, but the last hour is slow; the run ends exactly at 24 h."""
    ev = RunEvents(time_warp=60.0, load_end_sim=24 * HOUR)
    events: list[Event] = [ev.started()]
    for h in range(24):
        for i in range(100):
            slow = h == 23 and i >= 90
            events.append(ev.result(sim=h * HOUR + 36 * i, latency_ms=5_000.0 if slow else 100.0))
    events.append(ev.finished(sim=24 * HOUR, requests_sent=2_400))
    f, clock = fold(events), SimClock(60.0, 24 * HOUR, 60.0)
    whole = evaluate(parse_assertion("latency_p95_ms < 1000"), f, clock)
    assert whole.holds is True
    assert whole.observed == pytest.approx(100.0, rel=0.01)
    hourly = evaluate(parse_assertion("latency_p95_ms < 1000 in every 1h"), f, clock)
    assert hourly.holds is False
    assert hourly.observed == pytest.approx(5_000.0, rel=0.01)
    assert hourly.detail == "first failing window starts at sim hour 23"


# -- no data ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("sla_72h_success_rate > 0.9", "no 72h deadline decided"),
        ("error_rate < 0.01 during hour 30..40", "no data"),
        ("latency_p95_ms < 100 during hour 30..40", "no requests recorded"),
        ("error_rate < 0.01 in every 1h during hour 30..40", "no window had data"),
        ("requests / late_starts > 1", "division by zero"),
        ("late_start_rate < 0.1 during hour 30..31", "no data"),
    ],
)
def test_no_data_cannot_be_judged(run: tuple[RunFold, SimClock], text: str, words: str) -> None:
    result = judge_one(text, run)
    assert result.holds is None
    assert result.observed is None and result.threshold is None
    assert words in result.detail


def test_an_empty_run_cannot_be_judged() -> None:
    f = RunFold()
    result = evaluate(parse_assertion("latency_p95_ms < 2000"), f, SimClock(60.0, HOUR, 60.0))
    assert result.holds is None
    assert evaluate(parse_assertion("requests == 0"), f, SimClock(60.0, HOUR, 60.0)).holds is True


# -- parsing -----------------------------------------------------------------------------------
def test_parsed_structure() -> None:
    a = parse_assertion("latency_p95_ms < 2000")
    assert a == Assertion("latency_p95_ms < 2000", ("metric", "latency_p95_ms"), "<", ("num", 2000.0),
                          metrics=("latency_p95_ms",))
    a = parse_assertion("cloud_cost / claims_paid < 0.05", COUNTERS)
    assert a.left == ("op", "/", ("metric", "cloud_cost"), ("metric", "claims_paid"))
    assert a.metrics == ("cloud_cost", "claims_paid")
    a = parse_assertion("requests + requests * 2 > 1")
    assert a.left == ("op", "+", ("metric", "requests"), ("op", "*", ("metric", "requests"), ("num", 2.0)))
    assert a.metrics == ("requests",)


def test_scopes_are_parsed() -> None:
    a = parse_assertion("sla_48h_success_rate > 0.95 during hour 8..18")
    assert (a.from_hour, a.to_hour, a.every_s, a.endpoint) == (8.0, 18.0, None, None)
    a = parse_assertion("error_rate < 0.01 in every 1h")
    assert a.every_s == 3_600.0
    a = parse_assertion('latency_p99_ms < 800 for endpoint "GET /claims/{claim_id}"')
    assert a.endpoint == "GET /claims/{claim_id}"
    a = parse_assertion("error_rate < 0.01 in every 30m during hour 8.5..9.5 for endpoint 'x'")
    assert (a.from_hour, a.to_hour, a.every_s, a.endpoint) == (8.5, 9.5, 1_800.0, "x")
    assert parse_assertion("requests > 0 in every 30s", window_s=30.0).every_s == 30.0


@pytest.mark.parametrize("op", ["<", "<=", ">", ">=", "==", "!="])
def test_comparison_operators(run: tuple[RunFold, SimClock], op: str) -> None:
    expected = {"<": False, "<=": True, ">": False, ">=": True, "==": True, "!=": False}[op]
    assert judge_one(f"requests {op} 240", run).holds is expected
    assert parse_assertion(f"requests{op}240").op == op


@pytest.mark.parametrize(
    "name",
    ["latency_p95_ms", "latency_p99.9_ms", "latency_p99_9_ms", "latency_p0_ms", "latency_p100_ms", "raw_latency_p50_ms",
     "sla_48h_success_rate", "sla_2h_met", "errors_timeout", "error_rate_connect", "journeys_gave_up",
     "late_start_rate", "throughput_rps"],
)
def test_known_metric_names_parse(name: str) -> None:
    assert parse_assertion(f"{name} >= 0").metrics == (name,)


def test_decimal_hour_sla_metrics_can_be_named() -> None:
    # An SLA "within": "90m" is counted as key '1.5h' (SlaSpec.key) and the metrics module
    # accepts sla_1.5h_success_rate, but the assertion grammar's NAME cannot hold the '.'.
    a = parse_assertion("sla_1.5h_success_rate > 0.9")
    assert a.metrics == ("sla_1.5h_success_rate",)


@pytest.mark.parametrize(
    ("text", "bad", "counters", "custom"),
    [
        ("error_rat < 0.01", "error_rat", frozenset(), {}),
        ("requests + bogus > 3", "bogus", frozenset(), {}),
        ("latency_p101_ms < 5", "latency_p101_ms", frozenset(), {}),
        ("errors_teapot == 0", "errors_teapot", frozenset(), {}),
        ("cloud_cost < 5", "cloud_cost", frozenset(), {}),  # a counter nobody declared
        ("cloud_cost / claims_paid < x_per_y", "x_per_y", COUNTERS, {"cost_per_claim": len}),
    ],
)
def test_unknown_metric(text: str, bad: str, counters: frozenset[str], custom: dict) -> None:
    with pytest.raises(AssertionSyntaxError) as info:
        parse_assertion(text, counters, custom)
    err = info.value
    assert err.column == text.index(bad) + 1
    assert f"unknown metric {bad!r}" in err.message
    known = err.message.split("known metrics: ", 1)[1]
    for name in ("latency_p<N>_ms", "error_rate", "requests", "sla_<N>h_success_rate", "journeys_completed",
                 *sorted(counters), *sorted(custom)):
        assert name in known
    assert isinstance(err, EsrError)


def test_counters_and_custom_metrics_become_known() -> None:
    assert parse_assertion("cloud_cost < 5", COUNTERS).metrics == ("cloud_cost",)
    assert parse_assertion("cost_per_claim < 5", custom={"cost_per_claim": len}).metrics == ("cost_per_claim",)


@pytest.mark.parametrize(
    ("text", "bad", "words"),
    [
        ("error_rate < 0.01 in every 90s", "90s", "must be a multiple of the metric window (60s)"),
        ("error_rate < 0.01 in every 30s", "30s", "must be a multiple of the metric window (60s)"),
        ("error_rate < 0.01 during hour 18..8", "18..8", "is empty"),
        ("error_rate < 0.01 during hour 8..8", "8..8", "is empty"),
        ("latency_p95_ms 2000", "2000", "a comparison"),
        ("latency_p95_ms < 2000 for endpoint GET", "GET", "a quoted string"),
        ("latency_p95_ms < 2000 hourly", "hourly", "expected"),
        ("latency_p95_ms < 2000 in every 1x", "1x", "expected"),
        ("latency_p95_ms << 2000", "< 2000", "expected"),
        ("latency_p95_ms < 2000 ;", ";", "expected"),
    ],
)
def test_syntax_errors_name_the_column(text: str, bad: str, words: str) -> None:
    with pytest.raises(AssertionSyntaxError) as info:
        parse_assertion(text)
    assert info.value.column == text.rindex(bad) + 1
    assert words in info.value.message


def test_unexpected_end_points_after_the_text() -> None:
    text = "latency_p95_ms <"
    with pytest.raises(AssertionSyntaxError) as info:
        parse_assertion(text)
    assert info.value.column == len(text) + 1  # today: 16, under the '<'


# -- fuzzing -----------------------------------------------------------------------------------
TOKENS = [
    "latency_p95_ms", "latency_p99.9_ms", "error_rate", "requests", "sla_48h_success_rate", "cloud_cost",
    "bogus", "errors_5xx", "<", "<=", ">", ">=", "==", "!=", "=", "(", ")", "+", "-", "*", "/", "0", "0.01",
    "2000", "1e3", "1e999", "in", "every", "1h", "90s", "0h", "60s", "5m", "during", "hour", "8", "..", "18",
    "for", "endpoint", '"GET /x"', "'a'", "'", '"', " ", "\n", "\t", "é", "_", "."
]


def check_parse(text: str) -> None:
    try:
        result = parse_assertion(text, frozenset({"cloud_cost"}))
    except AssertionSyntaxError as err:
        assert 1 <= err.column <= len(text) + 1, (text, err.column)
        assert err.text == text
        assert err.message
    else:
        assert isinstance(result, Assertion)
        assert result.op in ("<", "<=", ">", ">=", "==", "!=")


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_fuzz_arbitrary_text(text: str) -> None:
    check_parse(text)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=14), st.sampled_from([" ", ""]))
def test_fuzz_token_soup(tokens: list[str], sep: str) -> None:
    check_parse(sep.join(tokens))


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["latency_p95_ms", "error_rate", "cloud_cost / requests", "-requests", "(errors + 1) * 2"]),
    st.sampled_from(["<", "<=", ">", ">=", "==", "!="]),
    st.one_of(st.integers(0, 10**6).map(str), st.floats(0, 1e6, allow_nan=False).map(repr)),
    st.lists(st.one_of(
        st.tuples(st.integers(0, 48), st.integers(0, 48)).map(lambda ab: f"during hour {ab[0]}..{ab[1]}"),
        st.sampled_from(["in every 1h", "in every 60s", "in every 90s", "in every 0h", "in every 2d", "in every 5m"]),
        st.text(string.ascii_letters + " /{}", max_size=12).map(lambda s: f"for endpoint '{s}'"),
    ), max_size=3),
)
def test_fuzz_grammar_shaped(left: str, op: str, right: str, scopes: list[str]) -> None:
    text = " ".join([left, op, right, *scopes])
    check_parse(text)


def test_an_endpoint_without_requests_cannot_be_judged(run: tuple[RunFold, SimClock]) -> None:
    fold, clock = run
    result = evaluate(parse_assertion("errors_5xx < 1 for endpoint 'GET /clams'"), fold, clock)
    assert result.holds is None and result.detail == "no requests to endpoint 'GET /clams'"


@pytest.mark.parametrize("text", ["sla_48h_success_rate > 0.9 for endpoint 'GET /'",
                                  "journeys_failed < 1 for endpoint 'GET /'", "cloud_cost < 1 for endpoint 'GET /'"])
def test_endpoint_scope_is_for_request_metrics_only(text: str) -> None:
    with pytest.raises(AssertionSyntaxError, match="'for endpoint' applies to request metrics"):
        parse_assertion(text, frozenset({"cloud_cost"}))
