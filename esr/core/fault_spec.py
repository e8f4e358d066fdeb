"""`FaultSpec`: one `failure_injection` entry, parsed by a grammar.

    db_down@hour12                         from simulated hour 12 until the run ends
    latency(500ms)@hour3+1h                with a parameter and a duration
    errors(rate=0.2, status=503)@8:30+30m  named parameters, start at 08:30
    caseworkers_out(3)@day 2 hour 9        day 1 is the first simulated day

Start and duration are simulated seconds. This module only parses and validates; applying
faults is the fault injector's job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

from lark import Lark, Token, Transformer, UnexpectedInput, v_args
from lark.exceptions import VisitError

from esr.core.errors import FaultSyntaxError
from esr.core.grammar import error_column, expected_tokens, token_column
from esr.core.units import parse_duration

__all__ = ["FaultSpec", "Seconds", "parse_call", "parse_fault"]

_GRAMMAR = r"""
start: NAME params? "@" when duration?
call: NAME params?
params: "(" [param ("," param)*] ")"
?param: NAME "=" value -> named
      | value          -> positional
?value: DURATION -> duration_value
      | NUMBER   -> number
      | NAME     -> word
      | STRING   -> string
when: "hour" NUMBER                  -> at_hour
    | CLOCK                          -> at_clock
    | "day" INT "hour"? NUMBER       -> at_day_hour
duration: "+" DURATION
NAME: /[A-Za-z_][A-Za-z0-9_]*/
DURATION.2: /\d+(\.\d+)?(ms|min|s|m|h|d)(\d+(\.\d+)?(ms|min|s|m|h|d))*/
CLOCK.3: /\d{1,2}:\d{2}/
NUMBER: /\d+(\.\d+)?/
INT: /\d+/
STRING: /'[^']*'/ | /"[^"]*"/
%import common.WS
%ignore WS
"""


@dataclass(frozen=True, slots=True)
class FaultSpec:
    name: str
    start_sim: float
    duration_sim: float | None  # None: until the run ends
    args: tuple[Any, ...] = ()
    kwargs: tuple[tuple[str, Any], ...] = ()
    text: str = ""
    # 1-based column of each parameter (key: its position, or its name), for errors that
    # checking the parameters finds after parsing
    columns: tuple[tuple[int | str, int], ...] = field(default=(), compare=False, repr=False)

    @property
    def end_sim(self) -> float | None:
        return None if self.duration_sim is None else self.start_sim + self.duration_sim

    def column_of(self, key: int | str) -> int:
        """Where parameter `key` (an index or a name) is written; else just after the name."""
        return dict(self.columns).get(key, len(self.name) + 1)

    def error(self, key: int | str | None, message: str) -> FaultSyntaxError:
        """A positioned error about this entry (its name when `key` is None)."""
        return FaultSyntaxError(self.text, 1 if key is None else self.column_of(key), message)


RESERVED = frozenset({"hour", "day", "during", "in", "every", "for", "endpoint"})


class Seconds(float):
    """A parameter written as a duration (`500ms`), as opposed to a bare number."""


class _BadValue(ValueError):
    def __init__(self, token: Token, message: str) -> None:
        super().__init__(message)
        self.token = token


@cache
def _parser() -> Lark:
    return Lark(_GRAMMAR, parser="lalr", propagate_positions=True, start=["start", "call"])


class _Build(Transformer[Token, Any]):
    def duration_value(self, items: list[Token]) -> float:
        return Seconds(parse_duration(str(items[0])))

    def number(self, items: list[Token]) -> float:
        value = float(items[0])
        return int(value) if value.is_integer() else value

    def word(self, items: list[Token]) -> str:
        return str(items[0])

    def string(self, items: list[Token]) -> str:
        return str(items[0])[1:-1]

    def named(self, items: list[Any]) -> tuple[str, Any, int]:
        return (str(items[0]), items[1], items[0].column)

    @v_args(meta=True)
    def positional(self, meta: Any, items: list[Any]) -> tuple[None, Any, int]:
        return (None, items[0], meta.column)

    def params(self, items: list[Any]) -> list[Any]:
        return [i for i in items if i is not None]

    def at_hour(self, items: list[Token]) -> float:
        return float(items[0]) * 3600

    def at_clock(self, items: list[Token]) -> float:
        hours, minutes = str(items[0]).split(":")
        if int(minutes) >= 60:
            raise _BadValue(items[0], f"minutes must be below 60 in {items[0]}")
        if int(hours) >= 24:
            raise _BadValue(items[0], f"{items[0]} is not a time of day; write 'hour {hours}' or 'day D hour H'")
        return int(hours) * 3600 + int(minutes) * 60

    def at_day_hour(self, items: list[Token]) -> float:
        day = int(items[0])
        if day < 1:
            raise _BadValue(items[0], "days count from 1 (day 1 is the first simulated day)")
        if float(items[1]) >= 24:
            raise _BadValue(items[1], f"the hour of a day is below 24, got {items[1]}")
        return (day - 1) * 86400 + float(items[1]) * 3600

    def duration(self, items: list[Token]) -> float:
        value = parse_duration(str(items[0]))
        if value <= 0:
            raise _BadValue(items[0], "a fault's duration must be above zero; leave it out to last until the run ends")
        return value


def parse_fault(text: str) -> FaultSpec:
    """Parse one entry; raises FaultSyntaxError with the column of the problem."""
    try:
        tree = _parser().parse(text, start="start")
    except UnexpectedInput as exc:
        hint = "; write e.g. 'db_down@hour12', 'latency(500ms)@hour3+1h' or 'x@day 2 hour 9'"
        raise FaultSyntaxError(text, error_column(exc, text),
                               f"unexpected input (expected {expected_tokens(exc)}){hint}") from None
    try:
        parts = _Build().transform(tree).children
    except VisitError as exc:  # a value error inside a rule
        cause = exc.orig_exc
        column = token_column(cause.token) if isinstance(cause, _BadValue) else 1
        raise FaultSyntaxError(text, column, str(cause)) from None
    name = str(parts[0])
    if name in RESERVED:
        raise FaultSyntaxError(text, 1, f"{name!r} is a word of the assertion grammar ('during hour 8..18'); "
                                        "give the fault another name")
    params: list[Any] = parts[1] if len(parts) > 1 and isinstance(parts[1], list) else []
    rest = parts[2:] if params or (len(parts) > 1 and isinstance(parts[1], list)) else parts[1:]
    start = float(rest[0])
    duration = float(rest[1]) if len(rest) > 1 else None
    args = tuple(v for k, v, _ in params if k is None)
    kwargs = tuple((k, v) for k, v, _ in params if k is not None)
    positions = [c for k, _, c in params if k is None]
    columns = tuple(enumerate(positions)) + tuple((k, c) for k, _, c in params if k is not None)
    return FaultSpec(name, start, duration, args, kwargs, text, columns)


def parse_call(text: str) -> FaultSpec | None:
    """`add_caseworkers(5)` or `pause_intake`: a named action with parameters (a trainee's
    decision), as a FaultSpec without a time; None when the text is not such a call (a note)."""
    try:
        tree = _parser().parse(text.strip(), start="call")
        parts = _Build().transform(tree).children
    except (UnexpectedInput, VisitError):
        return None
    params: list[Any] = parts[1] if len(parts) > 1 else []
    args = tuple(v for k, v, _ in params if k is None)
    kwargs = tuple((k, v) for k, v, _ in params if k is not None)
    return FaultSpec(str(parts[0]), 0.0, None, args, kwargs, text.strip())
