"""esr.core.fault_spec.parse_fault: every form of a failure_injection entry, and positioned errors."""

from __future__ import annotations

import pytest

from esr.core.errors import EsrError, FaultSyntaxError
from esr.core.fault_spec import FaultSpec, Seconds, parse_fault

HOUR = 3_600.0
DAY = 86_400.0


@pytest.mark.parametrize(
    ("text", "name", "start", "duration", "args", "kwargs"),
    [
        # the four forms of the module docstring
        ("db_down@hour12", "db_down", 12 * HOUR, None, (), ()),
        ("latency(500ms)@hour3+1h", "latency", 3 * HOUR, HOUR, (Seconds(0.5),), ()),
        ("errors(rate=0.2, status=503)@8:30+30m", "errors", 8.5 * HOUR, 1_800.0, (), (("rate", 0.2), ("status", 503))),
        ("caseworkers_out(3)@day 2 hour 9", "caseworkers_out", DAY + 9 * HOUR, None, (3,), ()),
        # variations
        ("db_down@hour 12", "db_down", 12 * HOUR, None, (), ()),
        ("db_down @ hour 12 + 2h", "db_down", 12 * HOUR, 2 * HOUR, (), ()),
        ("x@hour1.5", "x", 1.5 * HOUR, None, (), ()),
        ("x@hour0", "x", 0.0, None, (), ()),
        ("x()@hour1", "x", HOUR, None, (), ()),
        ("x@0:05", "x", 300.0, None, (), ()),
        ("x@23:59+1m", "x", 23 * HOUR + 59 * 60, 60.0, (), ()),
        ("x@day 1 hour 0", "x", 0.0, None, (), ()),
        ("x@day 3 9", "x", 2 * DAY + 9 * HOUR, None, (), ()),  # "hour" is optional after day N
        ("x@day 2 hour 9.5+1h30m", "x", DAY + 9.5 * HOUR, 5_400.0, (), ()),
        ("x(1h30m)@hour2", "x", 2 * HOUR, None, (Seconds(5_400.0),), ()),
        ("x(2.5)@hour2", "x", 2 * HOUR, None, (2.5,), ()),
        ("x(slow)@hour2", "x", 2 * HOUR, None, ("slow",), ()),
        ("x('a b', \"c\")@hour2", "x", 2 * HOUR, None, ("a b", "c"), ()),
        ("x(3, mode=slow, wait=5m)@hour2", "x", 2 * HOUR, None, (3,), (("mode", "slow"), ("wait", Seconds(300.0)))),
        ("x@hour2+500ms", "x", 2 * HOUR, 0.5, (), ()),
        ("x@hour2+2d", "x", 2 * HOUR, 2 * DAY, (), ()),
    ],
)
def test_valid_forms(text: str, name: str, start: float, duration: float | None, args: tuple, kwargs: tuple) -> None:
    spec = parse_fault(text)
    assert spec == FaultSpec(name, start, duration, args, kwargs, text)
    assert type(spec.start_sim) is float
    # 3 stays an int, 2.5 a float, 5m becomes seconds (a float marked as a duration)
    assert [type(a) for a in spec.args] == [type(a) for a in args]
    assert [type(v) for _, v in spec.kwargs] == [type(v) for _, v in kwargs]



def test_end_sim() -> None:
    assert parse_fault("latency(500ms)@hour3+1h").end_sim == 4 * HOUR
    assert parse_fault("db_down@hour12").end_sim is None


@pytest.mark.parametrize(
    ("text", "column"),
    [
        ("", 1),
        ("9x@hour1", 1),
        ("x#hour", 2),
        ("db_down@noon", 9),
        ("x(@hour1", 3),
        ("x(a=)@hour1", 5),
        ("x@day hour 1", 7),
        ("x@hour12+5", 10),
        ("x@hour12 extra", 10),
    ],
)
def test_syntax_errors_carry_the_column(text: str, column: int) -> None:
    with pytest.raises(FaultSyntaxError) as info:
        parse_fault(text)
    err = info.value
    assert err.column == column
    assert err.text == text
    assert isinstance(err, EsrError)
    assert f"column {column}" in str(err)
    assert "db_down@hour12" in str(err)  # shows a correct form
    caret_line = str(err).splitlines()[-1]
    assert caret_line == "    " + " " * (column - 1) + "^"


@pytest.mark.parametrize("text", ["db_down", "db_down@hour", "x(1"])
def test_unexpected_end_points_after_the_text(text: str) -> None:
    # The caret for a missing part goes after the last character (the code means to: it falls
    # back to len(text) + 1), not under the start of the last token.
    with pytest.raises(FaultSyntaxError) as info:
        parse_fault(text)
    assert info.value.column == len(text) + 1


@pytest.mark.parametrize(
    ("text", "column", "words"),
    [
        ("x@8:75", 3, "minutes must be below 60"),
        ("x@day 0 hour 1", 7, "days count from 1"),
    ],
)
def test_value_errors_point_at_the_bad_value(text: str, column: int, words: str) -> None:
    with pytest.raises(FaultSyntaxError) as info:
        parse_fault(text)
    assert words in info.value.message
    assert info.value.column == column  # today: always 1 (the fault's name)


@pytest.mark.parametrize(
    "text",
    ["x@hour", "x@", "@hour1", "x@hour1+", "x@hour1+1", "x@day 2.5 hour 1", "x@8:5", "x((1))@hour1",
     "x(a=1=2)@hour1", "x@hour -1", "x@hour1+1x", "x@hour1+-1h", "x,y@hour1"],
)
def test_malformed_entries_raise_fault_syntax_error_only(text: str) -> None:
    with pytest.raises(FaultSyntaxError) as info:
        parse_fault(text)
    assert 1 <= info.value.column <= len(text) + 1
