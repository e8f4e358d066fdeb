"""esr.core.metrics.MetricsView: every built-in metric family over a hand-made bucket."""

from __future__ import annotations

import pytest
from factories import RunEvents, fold

from esr.core.buckets import Bucket
from esr.core.errors import JudgementError
from esr.core.metrics import BUILTIN_METRICS, MetricsView, is_known_metric, known_metric_names

REAL_SECONDS = 50.0


@pytest.fixture(scope="module")
def bucket() -> Bucket:
    """100 requests at latency 1..100 ms (raw latency: half of it), 1000 bytes each.

    Errors: 7 x 5xx, 3 x timeout. Journeys: 20 started (4 more than 10 ms late); 12 completed,
    3 failed, 2 gave_up, 1 cut. SLA 48h: 9 met, 3 missed; SLA 2h: 1 missed. Counters:
    cloud_cost 0.5 x 8 = 4.0, claims_paid 8.
    """
    ev = RunEvents()
    events = [ev.started()]
    for i in range(100):
        error = "5xx" if i < 7 else "timeout" if i < 10 else None
        events.append(ev.result(sim=10.0 + i, latency_ms=float(i + 1), raw_latency_ms=(i + 1) / 2,
                                nbytes=1_000, error=error, status=503 if error == "5xx" else 200))
    for i in range(20):
        events.append(ev.journey_started(sim=5.0 + i, user=i, late_ms=50.0 if i < 4 else 1.0))
    for outcome, n in (("completed", 12), ("failed", 3), ("gave_up", 2), ("cut", 1)):
        events += [ev.journey_ended(sim=500.0, outcome=outcome) for _ in range(n)]
    events += [ev.sla(opened=10.0, decided=20.0, met=True) for _ in range(9)]
    events += [ev.sla(opened=10.0, decided=20.0, met=False) for _ in range(3)]
    events.append(ev.sla(opened=10.0, decided=7_300.0, met=False, sla="2h"))
    for _ in range(8):
        events.append(ev.counter(sim=30.0, name="cloud_cost", value=0.5))
        events.append(ev.counter(sim=30.0, name="claims_paid", value=1.0))
    return fold(events).merged()


@pytest.fixture
def view(bucket: Bucket) -> MetricsView:
    return MetricsView(bucket, REAL_SECONDS)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("requests", 100.0),
        ("errors", 10.0),
        ("error_rate", 0.1),
        ("errors_5xx", 7.0),
        ("errors_timeout", 3.0),
        ("errors_connect", 0.0),
        ("errors_4xx", 0.0),
        ("errors_protocol", 0.0),
        ("error_rate_5xx", 0.07),
        ("error_rate_timeout", 0.03),
        ("error_rate_connect", 0.0),
        ("throughput_rps", 2.0),
        ("bytes", 100_000.0),
        ("latency_mean_ms", 50.5),
        ("latency_min_ms", 1.0),
        ("latency_max_ms", 100.0),
        ("journeys_started", 20.0),
        ("journeys_completed", 12.0),
        ("journeys_failed", 3.0),
        ("journeys_gave_up", 2.0),
        ("journeys_cut", 1.0),
        ("late_starts", 4.0),
        ("late_start_rate", 0.2),
        ("sla_48h_met", 9.0),
        ("sla_48h_missed", 3.0),
        ("sla_48h_success_rate", 0.75),
        ("sla_2h_met", 0.0),
        ("sla_2h_missed", 1.0),
        ("sla_2h_success_rate", 0.0),
        ("sla_72h_met", 0.0),
        ("cloud_cost", 4.0),
        ("claims_paid", 8.0),
    ],
)
def test_exact_values(view: MetricsView, name: str, value: float) -> None:
    assert view[name] == pytest.approx(value, rel=1e-12)
    assert type(view[name]) is float


@pytest.mark.parametrize(
    ("name", "exact"),
    [
        ("latency_p50_ms", 50.0),  # sorted[int(0.50 * 99)] of 1..100
        ("latency_p90_ms", 90.0),
        ("latency_p95_ms", 95.0),
        ("latency_p99_ms", 99.0),
        ("latency_p99.9_ms", 99.0),
        ("latency_p99_9_ms", 99.0),
        ("latency_p0_ms", 1.0),
        ("latency_p100_ms", 100.0),
        ("raw_latency_p50_ms", 25.0),
        ("raw_latency_p99_ms", 49.5),
    ],
)
def test_percentiles_within_one_percent(view: MetricsView, name: str, exact: float) -> None:
    assert view[name] == pytest.approx(exact, rel=0.01)


def test_declared_counter_without_data_is_zero(bucket: Bucket) -> None:
    view = MetricsView(bucket, REAL_SECONDS, counters=frozenset({"refunds"}))
    assert view["refunds"] == 0.0


def test_custom_metric_receives_the_view(view: MetricsView, bucket: Bucket) -> None:
    calls = []

    def cost_per_claim(m: MetricsView) -> float:
        calls.append(m)
        return m["cloud_cost"] / m["claims_paid"]

    custom = MetricsView(bucket, REAL_SECONDS, {"cost_per_claim": cost_per_claim})
    assert custom["cost_per_claim"] == 0.5
    assert calls and calls[0] is custom


@pytest.mark.parametrize(
    ("fn", "words"),
    [
        (lambda m: m["requests"] / 0, "division by zero"),
        (lambda m: {}["x"], "custom metric raised KeyError"),
        (lambda m: m["sla_9h_success_rate"], "no 9h deadline decided"),  # JudgementError passes through
    ],
)
def test_custom_metric_errors_become_judgement_errors(bucket: Bucket, fn: object, words: str) -> None:
    view = MetricsView(bucket, REAL_SECONDS, {"mine": fn})  # type: ignore[dict-item]
    with pytest.raises(JudgementError, match=words):
        view["mine"]


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("latency_p95_ms", "no requests recorded"),
        ("raw_latency_p99_ms", "no requests recorded"),
        ("latency_mean_ms", "no requests recorded"),
        ("latency_min_ms", "no requests recorded"),
        ("error_rate", "no data"),
        ("error_rate_5xx", "no data"),
        ("throughput_rps", "no data"),
        ("late_start_rate", "no data"),
        ("sla_48h_success_rate", "no 48h deadline decided"),
    ],
)
def test_ratios_and_latencies_of_an_empty_bucket_have_no_data(name: str, words: str) -> None:
    view = MetricsView(Bucket(), 0.0)
    with pytest.raises(JudgementError, match=words):
        view[name]
    assert view.get_or_none(name) is None


@pytest.mark.parametrize("name", ["requests", "errors", "bytes", "journeys_started", "late_starts", "errors_5xx",
                                  "journeys_cut", "sla_48h_met"])
def test_counts_of_an_empty_bucket_are_zero(name: str) -> None:
    assert MetricsView(Bucket(), 0.0)[name] == 0.0


def test_unknown_name(view: MetricsView) -> None:
    with pytest.raises(JudgementError, match="unknown metric 'nope'"):
        view["nope"]


@pytest.mark.parametrize(
    "name",
    ["latency_p95_ms", "latency_p99.9_ms", "latency_p99_9_ms", "raw_latency_p50_ms", "latency_p0_ms", "latency_p100_ms",
     "requests", "errors", "error_rate", "throughput_rps", "bytes", "latency_mean_ms", "latency_min_ms",
     "latency_max_ms", "journeys_started", "late_starts", "late_start_rate", "errors_timeout", "errors_connect",
     "errors_4xx", "errors_5xx", "errors_protocol", "error_rate_4xx", "journeys_completed", "journeys_failed",
     "journeys_gave_up", "journeys_cut", "sla_48h_success_rate", "sla_1.5h_met", "sla_2h_missed"],
)
def test_is_known_metric_builtins(name: str) -> None:
    assert is_known_metric(name, frozenset(), {})


@pytest.mark.parametrize(
    "name",
    ["latency_p101_ms", "latency_p95", "latency_pxx_ms", "errors_teapot", "error_rate_", "journeys_lost",
     "sla_48_success_rate", "sla_48h_rate", "foo", ""],
)
def test_is_known_metric_rejects(name: str) -> None:
    assert not is_known_metric(name, frozenset(), {})


def test_counters_and_custom_are_known_and_listed() -> None:
    assert is_known_metric("cloud_cost", frozenset({"cloud_cost"}), {})
    assert is_known_metric("cost_per_claim", frozenset(), {"cost_per_claim": len})
    names = known_metric_names(frozenset({"zeta", "alpha"}), {"omega": len, "beta": len})
    assert names == [*BUILTIN_METRICS, "alpha", "zeta", "beta", "omega"]


def test_summary(view: MetricsView) -> None:
    summary = view.summary()
    assert list(summary) == [
        "requests", "errors", "error_rate", "throughput_rps", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms",
        "latency_max_ms", "raw_latency_p99_ms", "journeys_started", "journeys_completed", "journeys_failed",
        "journeys_gave_up", "journeys_cut", "late_starts", "late_start_rate", "errors_5xx", "errors_timeout",
        "sla_2h_success_rate", "sla_2h_met", "sla_2h_missed", "sla_48h_success_rate", "sla_48h_met",
        "sla_48h_missed", "claims_paid", "cloud_cost",
    ]
    assert summary["requests"] == 100.0
    assert summary["sla_48h_success_rate"] == 0.75
    assert summary["cloud_cost"] == 4.0
    assert len(view) == len(summary)
    assert list(view) == list(summary)
    assert dict(view.items())["errors_5xx"] == 7.0


def test_summary_of_an_empty_bucket_has_none_where_there_is_no_data() -> None:
    summary = MetricsView(Bucket(), 0.0).summary()
    assert summary["requests"] == 0.0
    assert summary["error_rate"] is None
    assert summary["latency_p95_ms"] is None
    assert summary["throughput_rps"] is None
    assert not any(k.startswith("sla_") or k.startswith("errors_") for k in summary)
