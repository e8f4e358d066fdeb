"""Limits on depth and size, checked before anything recurses into the input."""

from __future__ import annotations

import pytest

from esr.core.errors import ScenarioError
from esr.core.input_limits import (
    MAX_ASSERTION_TERMS,
    MAX_NESTING,
    assertion_size_error,
    nesting_error,
    text_nesting_error,
)
from esr.core.scenario import Scenario

BASE = {"name": "x", "duration_hours": 1, "time_warp": 60, "load_profile": [[0, 1]]}


def nested(levels: int) -> dict:
    value: dict = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


def test_nesting_is_measured_without_recursion_at_any_depth() -> None:
    assert nesting_error(nested(MAX_NESTING)) is None
    path, message = nesting_error({"x": [nested(100_000)]}) or ("", "")
    assert path.startswith("x[0].a.a") and str(MAX_NESTING) in message
    text = '{"s": "[[[[{{{{ not brackets", "v": ' + "[" * 40 + "]" * 40 + "}"
    found = text_nesting_error(text)
    assert found is not None and found.startswith("line 1, column ") and "32" in found
    assert text_nesting_error('{"s": "' + "[" * 100 + '"}') is None  # inside a string: not nesting


def test_a_scenario_nested_too_deep_names_the_field_and_the_limit() -> None:
    deep = BASE | {"journeys": [{"name": "j", "steps": [
        {"name": "s", "request": {"method": "POST", "path": "/x", "json": nested(1000)}}]}]}
    with pytest.raises(ScenarioError) as refused:
        Scenario.from_dict(deep)
    error = refused.value.errors[0]
    assert error.path.startswith("journeys[0].steps[0].request.json.a") and "32 levels" in error.message


@pytest.mark.parametrize(("text", "why"), [
    (" + ".join(["requests"] * 500) + " > 0", "terms"),
    ("(" * 300 + "requests" + ")" * 300 + " > 0", "parentheses"),
    ("requests > " + "1" * 2000, "characters"),
])
def test_assertions_too_big_to_parse_are_refused_with_the_limit(text: str, why: str) -> None:
    assert why in (assertion_size_error(text) or "")
    with pytest.raises(ScenarioError) as refused:
        Scenario.from_dict(BASE | {"assertions": ["error_rate < 1", text]})
    error = refused.value.errors[0]
    assert error.path == "assertions[1]" and why in error.message


def test_ordinary_assertions_are_within_the_limits() -> None:
    for text in ("latency_p95_ms < 2000", "sla_48h_success_rate > 0.95 in every 1h",
                 "(errors_5xx + errors_timeout) / requests < 0.01 during db_down",
                 " + ".join(["requests"] * (MAX_ASSERTION_TERMS - 1)) + " > 0"):
        assert assertion_size_error(text) is None


def test_a_template_with_thousands_of_placeholders_is_refused() -> None:
    with pytest.raises(ScenarioError) as refused:
        Scenario.from_dict(BASE | {"journeys": [{"name": "j", "steps": [
            {"name": "s", "request": {"path": "/x" + "{{ user.id }}" * 5000}}]}]})
    assert refused.value.errors[0].path == "journeys[0].steps[0].request.path"
    assert "at most 100" in refused.value.errors[0].message
