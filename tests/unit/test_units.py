"""esr.core.units: durations ("1h30m"), rates ("2400/min") and the short human form of a duration."""

from __future__ import annotations

import pytest

from esr.core.units import format_duration, parse_duration, parse_rate


# -- parse_duration ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("48h", 172_800.0),
        ("1h30m", 5_400.0),
        ("90s", 90.0),
        ("500ms", 0.5),
        ("2d", 172_800.0),
        ("1.5h", 5_400.0),
        ("5min", 300.0),
        ("1m", 60.0),
        ("0s", 0.0),
        ("1d2h3m4s5ms", 86_400 + 7_200 + 180 + 4 + 0.005),
        (" 1h 30m ", 5_400.0),  # spaces are ignored
        ("2h15min", 8_100.0),
    ],
)
def test_parse_duration_strings(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds, rel=1e-12)


@pytest.mark.parametrize(("value", "seconds"), [(90, 90.0), (0, 0.0), (2.5, 2.5)])
def test_parse_duration_numbers_are_seconds(value: float, seconds: float) -> None:
    result = parse_duration(value)
    assert result == seconds
    assert type(result) is float


@pytest.mark.parametrize("text", ["", " ", "h", "1x", "1h-", "-1h", "abc", "1hh", "h1", "1h 30", "1.h", "1,5h"])
def test_parse_duration_rejects_malformed_strings(text: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_duration(text)
    message = str(info.value)
    assert repr(text) in message  # names the bad value
    assert "'48h'" in message and "'1h30m'" in message  # and shows what was expected


def test_parse_duration_rejects_negative_numbers_and_bools() -> None:
    with pytest.raises(ValueError, match="must be a finite number of seconds >= 0, got -5"):
        parse_duration(-5)
    with pytest.raises(ValueError, match="expected a duration"):
        parse_duration(True)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_parse_duration_rejects_non_finite_numbers(value: float) -> None:
    # parse_rate rejects NaN and infinity; a duration must too. Python's json module reads
    # `NaN`/`Infinity`, so `"poll": {"every": NaN, ...}` would otherwise validate and poll forever.
    with pytest.raises(ValueError):
        parse_duration(value)


@pytest.mark.parametrize("value", [None, [1], {"h": 1}])
def test_parse_duration_wrong_type_is_a_value_error(value: object) -> None:
    # The module promises ValueError with a message; callers (pydantic validators) only turn
    # ValueError into a field error, so any other exception escapes scenario validation.
    with pytest.raises(ValueError):
        parse_duration(value)  # type: ignore[arg-type]


# -- parse_rate ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "per_second"),
    [
        (40, 40.0),
        (2.5, 2.5),
        (0, 0.0),
        ("40", 40.0),
        ("0.5", 0.5),
        ("2400/min", 40.0),
        ("120/m", 2.0),
        ("3/s", 3.0),
        ("3/sec", 3.0),
        ("36000/h", 10.0),
        ("36000/hour", 10.0),
        ("1/ms", 1000.0),
        (" 5 / s ", 5.0),
    ],
)
def test_parse_rate_valid_forms(value: str | float, per_second: float) -> None:
    result = parse_rate(value)
    assert result == pytest.approx(per_second, rel=1e-12)
    assert type(result) is float


@pytest.mark.parametrize("value", ["abc", "-5", "40/day", "40/", "", "1e3", "/s", "4 0"])
def test_parse_rate_rejects_malformed_strings(value: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_rate(value)
    assert repr(value) in str(info.value)
    assert "'2400/min'" in str(info.value)


@pytest.mark.parametrize("value", [-5, -0.1, float("nan"), float("inf"), True])
def test_parse_rate_rejects_bad_numbers(value: float) -> None:
    with pytest.raises(ValueError):
        parse_rate(value)


@pytest.mark.parametrize("value", [None, [40]])
def test_parse_rate_wrong_type_is_a_value_error(value: object) -> None:
    with pytest.raises(ValueError):
        parse_rate(value)  # type: ignore[arg-type]


# -- format_duration -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (90_061, "1d 1h 1m 1s"),
        (0.25, "250ms"),
        (0, "0ms"),
        (1, "1s"),
        (60, "1m"),
        (3_600, "1h"),
        (86_400, "1d"),
        (61, "1m 1s"),
        (172_800 + 30, "2d 30s"),
        (3_661.4, "1h 1m 1s"),  # rounded to whole seconds
        (59.6, "1m"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("seconds", [1, 59, 61, 3_599, 3_601, 86_399, 90_061, 1_000_000])
def test_format_then_parse_round_trips_whole_seconds(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds
