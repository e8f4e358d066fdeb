"""Metric names and their values over a bucket: what assertions and verdicts speak of.

Built-in names (N any number, `kind` one of the error kinds):

    latency_pN_ms  raw_latency_pN_ms  latency_mean_ms  latency_min_ms  latency_max_ms
    requests  errors  error_rate  errors_<kind>  error_rate_<kind>  throughput_rps  bytes
    journeys_started  journeys_<outcome>  late_starts  late_start_rate
    sla_<N>h_success_rate  sla_<N>h_met  sla_<N>h_missed

plus the user counters a scenario declares (`cloud_cost`) and custom metric functions
registered from Python (`def cost_per_claim(metrics)`), which receive a `MetricsView`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from esr.core.buckets import ERROR_KINDS, JOURNEY_OUTCOMES, Bucket
from esr.core.errors import JudgementError

__all__ = ["BUILTIN_METRICS", "MetricFunction", "MetricsView", "is_known_metric", "is_request_metric",
           "known_metric_names"]

MetricFunction = Callable[[Mapping[str, float]], float]

_PERCENTILE = re.compile(r"^(raw_)?latency_p(\d+(?:[._]\d+)?)_ms$")
_SLA = re.compile(r"^sla_(\d+(?:\.\d+)?h)_(success_rate|met|missed)$")
_SIMPLE = (
    "requests", "errors", "error_rate", "throughput_rps", "bytes", "latency_mean_ms",
    "latency_min_ms", "latency_max_ms", "journeys_started", "late_starts", "late_start_rate",
)
_KINDS = "|".join(re.escape(k) for k in ERROR_KINDS)
_ERROR_KIND = re.compile(rf"^(errors|error_rate)_({_KINDS})$")
_OUTCOME = re.compile(rf"^journeys_({'|'.join(JOURNEY_OUTCOMES)})$")

BUILTIN_METRICS = (
    "latency_p<N>_ms (e.g. latency_p95_ms, latency_p99.9_ms)", "raw_latency_p<N>_ms",
    *_SIMPLE, "errors_<kind>", "error_rate_<kind>",
    *(f"journeys_{o}" for o in JOURNEY_OUTCOMES),
    "sla_<N>h_success_rate", "sla_<N>h_met", "sla_<N>h_missed",
)


def is_known_metric(name: str, counters: set[str] | frozenset[str], custom: Mapping[str, Any]) -> bool:
    if name in _SIMPLE or name in counters or name in custom:
        return True
    if _PERCENTILE.match(name):
        return 0 <= _percentile(name) <= 100
    return bool(_ERROR_KIND.match(name) or _OUTCOME.match(name) or _SLA.match(name))


_REQUEST_SIMPLE = ("requests", "errors", "error_rate", "throughput_rps", "bytes", "latency_mean_ms",
                   "latency_min_ms", "latency_max_ms")


def is_request_metric(name: str) -> bool:
    """Metrics of requests (kept per endpoint), as opposed to journeys, SLAs and counters."""
    return name in _REQUEST_SIMPLE or bool(_PERCENTILE.match(name) or _ERROR_KIND.match(name))


def known_metric_names(counters: set[str] | frozenset[str], custom: Mapping[str, Any]) -> list[str]:
    return [*BUILTIN_METRICS, *sorted(counters), *sorted(custom)]


def _percentile(name: str) -> float:
    match = _PERCENTILE.match(name)
    assert match
    return float(match.group(2).replace("_", "."))


def _ratio(part: float, whole: float, what: str) -> float:
    if not whole:
        raise JudgementError(f"{what}: no data (0 in the denominator)")
    return part / whole


class MetricsView(Mapping[str, float]):
    """Metric values over one (merged) bucket; `real_seconds` is the real time it covers."""

    def __init__(
        self,
        bucket: Bucket,
        real_seconds: float,
        custom: Mapping[str, MetricFunction] | None = None,
        counters: frozenset[str] = frozenset(),
        extra: Mapping[str, float] | None = None,
    ) -> None:
        self.bucket = bucket
        self.real_seconds = real_seconds
        self.custom = dict(custom or {})
        self.counters = counters | frozenset(bucket.counters)
        self.extra = extra or {}  # values computed elsewhere, e.g. recovery_time_s(db_down)

    def __getitem__(self, name: str) -> float:
        b = self.bucket
        if name in self.extra:
            return self.extra[name]
        if name in self.custom:
            try:
                return float(self.custom[name](self))
            except JudgementError:
                raise
            except ZeroDivisionError:
                raise JudgementError(f"{name}: division by zero (no data for its denominator)") from None
            except Exception as exc:  # noqa: BLE001 - the user's function failed: report, do not crash the run
                raise JudgementError(f"{name}: custom metric raised {type(exc).__name__}: {exc}") from None
        if name in self.counters:
            return float(b.counters.get(name, 0.0))
        match = _PERCENTILE.match(name)
        if match:
            sketch = b.raw_latency if match.group(1) else b.latency
            value = sketch.quantile(_percentile(name) / 100)
            if value is None:
                raise JudgementError(f"{name}: no requests recorded")
            return value
        match = _SLA.match(name)
        if match:
            sla, what = match.groups()
            met, missed = b.sla_met.get(sla, 0), b.sla_missed.get(sla, 0)
            if what == "met":
                return float(met)
            if what == "missed":
                return float(missed)
            return _ratio(met, met + missed, f"{name}: no {sla} deadline decided")
        match = _ERROR_KIND.match(name)
        if match:
            count = b.errors.get(match.group(2), 0)
            return float(count) if match.group(1) == "errors" else _ratio(count, b.requests, name)
        match = _OUTCOME.match(name)
        if match:
            return float(b.journeys.get(match.group(1), 0))
        return self._simple(name)

    def _simple(self, name: str) -> float:
        b = self.bucket
        if name == "requests":
            return float(b.requests)
        if name == "errors":
            return float(b.error_count)
        if name == "error_rate":
            return _ratio(b.error_count, b.requests, name)
        if name == "throughput_rps":
            return _ratio(b.requests, self.real_seconds, name)
        if name == "bytes":
            return float(b.bytes)
        if name == "journeys_started":
            return float(b.journeys_started)
        if name == "late_starts":
            return float(b.late_starts)
        if name == "late_start_rate":
            return _ratio(b.late_starts, b.journeys_started, name)
        if name in ("latency_mean_ms", "latency_min_ms", "latency_max_ms"):
            sk = b.latency
            if not sk.count:
                raise JudgementError(f"{name}: no requests recorded")
            return {"latency_mean_ms": sk.sum / sk.count, "latency_min_ms": sk.min,
                    "latency_max_ms": sk.max}[name]  # type: ignore[return-value]
        raise JudgementError(f"unknown metric {name!r}; "
                             f"known: {', '.join(known_metric_names(self.counters, self.custom))}")

    def get_or_none(self, name: str) -> float | None:
        try:
            return self[name]
        except JudgementError:
            return None

    def __iter__(self) -> Iterator[str]:
        return iter(self.summary_names())

    def __len__(self) -> int:
        return len(self.summary_names())

    def summary_names(self) -> list[str]:
        names = ["requests", "errors", "error_rate", "throughput_rps", "latency_p50_ms",
                 "latency_p95_ms", "latency_p99_ms", "latency_max_ms", "raw_latency_p99_ms",
                 "journeys_started", *(f"journeys_{o}" for o in JOURNEY_OUTCOMES),
                 "late_starts", "late_start_rate"]
        for kind in sorted(self.bucket.errors):
            names.append(f"errors_{kind}")
        for sla in sorted(set(self.bucket.sla_met) | set(self.bucket.sla_missed)):
            names += [f"sla_{sla}_success_rate", f"sla_{sla}_met", f"sla_{sla}_missed"]
        names += sorted(self.counters)
        return names

    def summary(self) -> dict[str, float | None]:
        """The headline figures, None where a figure has no data."""
        return {name: self.get_or_none(name) for name in self.summary_names()}
