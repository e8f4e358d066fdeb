"""Assertions: one-line rules over metrics, parsed by a grammar (never `eval`).

    latency_p95_ms < 2000
    error_rate < 0.01 in every 1h              every simulated hour must hold
    sla_48h_success_rate > 0.95 during hour 8..18
    cloud_cost / claims_processed < 0.05
    latency_p99_ms < 800 for endpoint "GET /claims/{claim_id}"
    error_rate < 0.5 during db_down              while the fault db_down was active
    recovery_time_s(db_down) < 600               back to the steady state within 10 simulated minutes

`parse_assertion` checks the syntax and the metric names before anything runs; `evaluate`
judges a parsed assertion against a `RunFold` and returns the observed value.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from lark import Lark, Token, Transformer, UnexpectedInput

from esr.core.buckets import RunFold
from esr.core.clock import SimClock
from esr.core.errors import AssertionSyntaxError, JudgementError
from esr.core.fault_windows import during, recovery_time_s
from esr.core.grammar import error_column, expected_tokens, token_column
from esr.core.input_limits import assertion_size_error
from esr.core.metrics import MetricFunction, MetricsView, is_known_metric, is_request_metric, known_metric_names
from esr.core.units import parse_duration

__all__ = ["Assertion", "AssertionResult", "evaluate", "expression_metric", "parse_assertion"]

_GRAMMAR = r"""
start: sum COMPARE sum scope*
?sum: product | sum ADD product -> binop
?product: atom | product MUL atom -> binop
?atom: NUMBER -> number
     | NAME "(" NAME ")" -> call
     | NAME -> metric
     | "-" atom -> neg
     | "(" sum ")"
scope: "during" "hour" NUMBER DOTDOT NUMBER -> during_hours
     | "during" NAME -> during_fault
     | "in" "every" DURATION -> every
     | "for" "endpoint" STRING -> endpoint
COMPARE: "<=" | ">=" | "==" | "!=" | "<" | ">"
ADD: "+" | "-"
MUL: "*" | "/"
DOTDOT: ".."
DURATION.2: /\d+(\.\d+)?(ms|min|s|m|h|d)\b/
NUMBER: /\d+(\.\d+)?([eE][-+]?\d+)?/
NAME: /[A-Za-z_][A-Za-z0-9_]*(\.[0-9]+[A-Za-z_][A-Za-z0-9_]*)?/
STRING: /"[^"]*"/ | /'[^']*'/
%import common.WS
%ignore WS
"""

_COMPARE = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
             "==": operator.eq, "!=": operator.ne}
_ARITH: dict[str, Callable[[float, float], float]] = {"+": operator.add, "-": operator.sub, "*": operator.mul,
                                                      "/": operator.truediv}


@cache
def _parser() -> Lark:
    return Lark(_GRAMMAR, parser="lalr", propagate_positions=True, start=["start", "sum"])


@dataclass(frozen=True, slots=True)
class Assertion:
    text: str
    left: Any
    op: str
    right: Any
    from_hour: float | None = None
    to_hour: float | None = None
    every_s: float | None = None
    endpoint: str | None = None
    fault: str | None = None  # `during db_down`: the windows in which that fault was active
    metrics: tuple[str, ...] = field(default=())
    calls: tuple[tuple[str, str], ...] = field(default=())  # (function, fault), e.g. recovery_time_s(db_down)


@dataclass(frozen=True, slots=True)
class AssertionResult:
    assertion: str
    holds: bool | None  # None: could not be judged (no data)
    observed: float | None
    threshold: float | None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"assertion": self.assertion, "holds": self.holds, "observed": self.observed,
                "threshold": self.threshold, "detail": self.detail}


FAULT_FUNCTIONS = ("recovery_time_s",)
_SCOPE_WORDS = {"fault": "during", "during": "during", "every": "in every", "endpoint": "for endpoint"}


class _Build(Transformer[Token, Any]):
    def __init__(self) -> None:
        super().__init__()
        self.names: list[Token] = []
        self.calls: list[tuple[Token, Token]] = []

    def call(self, items: list[Token]) -> tuple[Any, ...]:
        self.calls.append((items[0], items[1]))
        return ("call", f"{items[0]}({items[1]})")

    def number(self, items: list[Token]) -> tuple[Any, ...]:
        return ("num", float(items[0]))

    def metric(self, items: list[Token]) -> tuple[Any, ...]:
        self.names.append(items[0])
        return ("metric", str(items[0]))

    def neg(self, items: list[Any]) -> tuple[Any, ...]:
        return ("neg", items[0])

    def binop(self, items: list[Any]) -> tuple[Any, ...]:
        return ("op", str(items[1]), items[0], items[2])

    def during_hours(self, items: list[Token]) -> tuple[Any, ...]:
        return ("during", float(items[0]), float(items[2]), items[0])

    def during_fault(self, items: list[Token]) -> tuple[Any, ...]:
        return ("fault", str(items[0]), items[0])

    def every(self, items: list[Token]) -> tuple[Any, ...]:
        return ("every", parse_duration(str(items[0])), items[0])

    def endpoint(self, items: list[Token]) -> tuple[Any, ...]:
        return ("endpoint", str(items[0])[1:-1], items[0])


def parse_assertion(
    text: str,
    counters: frozenset[str] | set[str] = frozenset(),
    custom: Mapping[str, Any] | None = None,
    window_s: float = 60.0,
    faults: frozenset[str] | set[str] | None = None,
) -> Assertion:
    """Parse and check one assertion; raises AssertionSyntaxError naming the column.
    `faults` are the fault names of the scenario (None: not checked)."""
    custom = custom or {}
    too_big = assertion_size_error(text)  # before the parser recurses into it
    if too_big is not None:
        raise AssertionSyntaxError(text, 1, too_big)
    try:
        tree = _parser().parse(text, start="start")
    except UnexpectedInput as exc:
        column = error_column(exc, text)
        raise AssertionSyntaxError(
            text, column, f"expected {expected_tokens(exc)}; an assertion reads like "
            "'latency_p95_ms < 2000' or 'error_rate < 0.01 in every 1h'"
        ) from None
    build = _Build()
    left, op, right, *scopes = build.transform(tree).children
    for token in build.names:
        if not is_known_metric(str(token), counters, custom):
            known = ", ".join(known_metric_names(counters, custom))
            raise AssertionSyntaxError(text, token_column(token),
                                       f"unknown metric {str(token)!r}; known metrics: {known}")
    def check_fault(token: Token) -> None:
        if faults is not None and str(token) not in faults:
            known = ", ".join(sorted(faults)) or "none: add one to failure_injection"
            raise AssertionSyntaxError(text, token_column(token), f"no fault named {str(token)!r} in failure_injection "
                                                           f"(faults: {known})")

    for function, fault in build.calls:
        if str(function) not in FAULT_FUNCTIONS:
            raise AssertionSyntaxError(text, token_column(function), f"unknown function {str(function)!r}; "
                                                              f"known: {', '.join(FAULT_FUNCTIONS)}(FAULT)")
        check_fault(fault)
    kwargs: dict[str, Any] = {}
    kinds = [scope[0] for scope in scopes]
    for i, kind in enumerate(kinds):
        if (kind in kinds[:i] or (kind == "fault" and "during" in kinds[:i])
                or (kind == "during" and "fault" in kinds[:i])):
            raise AssertionSyntaxError(text, scopes[i][-1].column, "one scope of each kind: a second "
                                                                   f"'{_SCOPE_WORDS[kind]}' scope")
    if build.calls and scopes:
        raise AssertionSyntaxError(text, scopes[0][-1].column, f"{build.calls[0][0]}(...) is a figure of the "
                                                               "whole run; write it without scopes")
    if "fault" in kinds and ("during" in kinds or "every" in kinds):
        token = scopes[kinds.index("fault")][-1]
        raise AssertionSyntaxError(text, token_column(token), "'during FAULT' cannot be combined with 'during hour' "
                                                       "or 'in every'; write one scope")
    for scope in scopes:
        kind, *args, token = scope
        if kind == "fault":
            check_fault(token)
            kwargs["fault"] = args[0]
        elif kind == "during":
            if not args[0] < args[1]:
                raise AssertionSyntaxError(text, token_column(token), f"hour range {args[0]:g}..{args[1]:g} is empty; "
                                                                      "write 'during hour 8..18'")
            if window_s > 3600 and any((hour * 3600) % window_s for hour in args[:2]):
                raise AssertionSyntaxError(  # a replay's long windows (more than an hour) cannot be cut
                    text, token_column(token), f"hours {args[0]:g}..{args[1]:g} do not fall on the metric window's "
                    f"boundaries ({window_s / 3600:g}h): give hours that are multiples of {window_s / 3600:g}")
            kwargs["from_hour"], kwargs["to_hour"] = args
        elif kind == "every":
            if args[0] < window_s or args[0] % window_s:
                raise AssertionSyntaxError(
                    text, token.column, f"'every {token}' must be a multiple of the metric window ({window_s:g}s)")
            kwargs["every_s"] = args[0]
        else:
            kwargs["endpoint"] = args[0]
            for name_token in build.names:
                if not is_request_metric(str(name_token)):
                    raise AssertionSyntaxError(
                        text, token_column(name_token), "'for endpoint' applies to request metrics (latency, "
                        f"requests, errors, throughput, bytes); {str(name_token)!r} is not one")
    names = tuple(dict.fromkeys(str(t) for t in build.names))
    calls = tuple(dict.fromkeys((str(f), str(a)) for f, a in build.calls))
    return Assertion(text, left, str(op), right, metrics=names, calls=calls, **kwargs)


def _value(node: tuple[Any, ...], view: MetricsView) -> float:
    kind = node[0]
    if kind == "num":
        return float(node[1])
    if kind in ("metric", "call"):
        return view[node[1]]
    if kind == "neg":
        return -_value(node[1], view)
    try:
        return _ARITH[node[1]](_value(node[2], view), _value(node[3], view))
    except ZeroDivisionError:
        raise JudgementError("division by zero in the assertion") from None


def _judge_once(a: Assertion, view: MetricsView) -> tuple[bool, float, float]:
    left, right = _value(a.left, view), _value(a.right, view)
    if math.isnan(left) or math.isnan(right):
        raise JudgementError("the value is not a number")
    return bool(_COMPARE[a.op](left, right)), left, right


def _result(a: Assertion, holds: bool, left: float, right: float, detail: str = "") -> AssertionResult:
    """An infinite value is a recovery that never came: reported in words (JSON has no inf)."""
    if math.isinf(left):
        return AssertionResult(a.text, holds, None, None if math.isinf(right) else right,
                               "not recovered by the end of the run")
    return AssertionResult(a.text, holds, left, right, detail)


def evaluate(
    assertion: Assertion,
    fold: RunFold,
    clock: SimClock,
    custom: Mapping[str, MetricFunction] | None = None,
    counters: frozenset[str] = frozenset(),
) -> AssertionResult:
    """Judge one assertion over the run (or its scope); the observed value is the left side."""
    start = assertion.from_hour * 3600 if assertion.from_hour is not None else 0.0
    end = assertion.to_hour * 3600 if assertion.to_hour is not None else None
    last = max(fold.last_sim_time, clock.load_end_sim)
    extra: dict[str, float] = {}

    def view(lo: float, hi: float | None) -> MetricsView:
        bucket = fold.merged(from_sim=lo, to_sim=hi, endpoint=assertion.endpoint)
        if assertion.endpoint is not None and not bucket.requests:
            raise JudgementError(f"no requests to endpoint {assertion.endpoint!r}")
        span = clock.real_span(lo, min(hi if hi is not None else last, last))
        return MetricsView(bucket, span, custom, counters, extra)

    try:
        if assertion.endpoint is not None and fold.untracked(assertion.endpoint):
            raise JudgementError(_untracked(fold, assertion.endpoint))
        if assertion.endpoint is not None and (assertion.every_s is not None or assertion.from_hour is not None
                                               or assertion.fault is not None):
            fold.check_windows(assertion.endpoint)  # a replay keeps most endpoints' figures whole-run only
        for function, fault in assertion.calls:  # only recovery_time_s so far
            extra[f"{function}({fault})"] = recovery_time_s(fold, fault)
        if assertion.fault is not None:
            bucket, spans = during(fold, assertion.fault, assertion.endpoint)
            if assertion.endpoint is not None and not bucket.requests:
                raise JudgementError(f"no requests to endpoint {assertion.endpoint!r} during {assertion.fault}")
            span = sum(clock.real_span(lo, hi) for lo, hi in spans)
            return _result(assertion, *_judge_once(assertion, MetricsView(bucket, span, custom, counters, extra)))
        if assertion.every_s is None:
            return _result(assertion, *_judge_once(assertion, view(start, end)))
        stop = end if end is not None else last
        worst: tuple[float, float, float] | None = None
        windows = judged = 0
        t = start
        while t < stop:
            windows += 1
            try:
                holds, left, right = _judge_once(assertion, view(t, min(t + assertion.every_s, stop)))
            except JudgementError:
                t += assertion.every_s
                continue  # a window without data cannot break the rule
            judged += 1
            if not holds and worst is None:
                worst = (t, left, right)
            t += assertion.every_s
        if not judged:
            raise JudgementError("no window had data")
        if worst is not None:
            hour = worst[0] / 3600
            return _result(assertion, False, worst[1], worst[2], f"first failing window starts at sim hour {hour:g}")
        return AssertionResult(assertion.text, True, None, None,
                               f"held in all {judged} windows with data ({windows} in scope)")
    except JudgementError as exc:
        return AssertionResult(assertion.text, None, None, None, str(exc))


def expression_metric(text: str, counters: frozenset[str] | set[str] | None = frozenset(),
                      custom: Mapping[str, Any] | None = None) -> MetricFunction:
    """A metric defined by an expression over other metrics, e.g. `cloud_cost / claims_processed`
    (how a target registry or a JSON scenario defines what Python scenarios write as a function)."""
    custom = custom or {}
    try:
        tree = _parser().parse(text, start="sum")
    except UnexpectedInput as exc:
        raise AssertionSyntaxError(text, error_column(exc, text),
                                   f"expected {expected_tokens(exc)}; a metric expression reads like "
                                   "'cloud_cost / claims_processed'") from None
    build = _Build()
    node = build.transform(tree)
    if counters is not None:  # None: names are checked when judged
        for token in build.names:
            if not is_known_metric(str(token), counters, custom):
                known = ", ".join(known_metric_names(counters, custom))
                raise AssertionSyntaxError(text, token_column(token),
                                           f"unknown metric {str(token)!r}; known metrics: {known}")

    def metric(metrics: Mapping[str, float]) -> float:
        return _value(node, metrics)  # type: ignore[arg-type]

    metric.__name__ = text
    return metric


def _untracked(fold: RunFold, endpoint: str) -> str:
    cap = fold.endpoint_cap
    assert cap is not None
    other = cap.other
    held = f"{'about ' if other.estimated else ''}{other.count:,} endpoints"
    return (f"endpoint {endpoint!r} is not among the {cap.top:,} endpoints tracked one by one: its requests, if "
            f"any, are counted in the 'other' row ({held}); replay with a larger --top-endpoints to judge it")
