"""Parsing of the human units scenarios use: durations ("1h30m") and rates ("2400/min").

Pure functions that raise `ValueError` with a message saying what was expected; the scenario
model turns that into a field error with its path.
"""

from __future__ import annotations

import re

__all__ = ["format_duration", "parse_duration", "parse_rate"]

_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|min|s|m|h|d)")
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:/\s*(ms|s|sec|min|m|h|hour))?\s*$")
_RATE_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "sec": 1.0, "min": 60.0, "m": 60.0, "h": 3600.0, "hour": 3600.0}


def parse_duration(value: str | int | float) -> float:
    """Seconds in `value`: a number of seconds, or a string like "48h", "1h30m", "500ms", "2d"."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as '1h' or '90s', got {value!r}")
    if isinstance(value, (int, float)):
        if value < 0 or value != value or value == float("inf"):
            raise ValueError(f"a duration must be a finite number of seconds >= 0, got {value}")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"expected a duration such as '48h', '1h30m' or 90 (seconds), got {value!r}")
    text = value.strip().replace(" ", "")
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if not text or pos != len(text):
        raise ValueError(
            f"expected a duration such as '48h', '1h30m', '90s' or '500ms', got {value!r}"
        )
    return total


def parse_rate(value: str | int | float) -> float:
    """Requests per real second in `value`: a bare number (per second) or "2400/min", "3/s"."""
    if isinstance(value, bool):
        raise ValueError(f"expected a rate such as 40 or '2400/min', got {value!r}")
    if isinstance(value, (int, float)):
        rate = float(value)
    elif not isinstance(value, str):
        raise ValueError(f"expected a rate such as 40, '40/s' or '2400/min', got {value!r}")
    else:
        match = _RATE.match(value)
        if not match:
            raise ValueError(f"expected a rate such as 40, '40/s' or '2400/min', got {value!r}")
        rate = float(match.group(1)) / _RATE_UNIT_SECONDS[match.group(2) or "s"]
    if rate < 0 or rate != rate or rate == float("inf"):
        raise ValueError(f"a rate must be a finite number >= 0, got {value!r}")
    return rate


def format_duration(seconds: float) -> str:
    """A short human form: 90061 -> '1d 1h 1m 1s', 0.25 -> '250ms'."""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    parts, rest = [], round(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count}{unit}")
    return " ".join(parts) or "0s"
