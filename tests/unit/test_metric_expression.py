"""Python metric functions as the expressions the server judges with: translated from the
syntax tree (never run), equal in value, and refused with a reason when they cannot travel."""

from __future__ import annotations

from typing import Any

import pytest

from esr.core.assertions import expression_metric
from esr.core.metric_expression import MetricNotPortable, metric_expression
from esr.core.scenario import Scenario
from esr.core.targets import TargetRegistry

VALUES = {"cloud_cost": 10.0, "claims_processed": 4.0, "a": 3.0, "b": 1.5}


def cost_per_claim(metrics):  # the chapter's section 6, as written
    return metrics["cloud_cost"] / metrics["claims_processed"]


def signed(m: Any) -> float:
    """A docstring is fine."""
    return -(m["a"] - 2) * 0.5 + m["b"] / 3


@pytest.mark.parametrize(("function", "expected"), [(cost_per_claim, "cloud_cost / claims_processed"),
                                                    (signed, "-(a - 2) * 0.5 + b / 3")])
def test_a_single_return_of_arithmetic_travels_and_means_the_same(function: Any, expected: str) -> None:
    text = metric_expression(function.__name__, function)
    assert text.replace("(", "").replace(")", "") == expected.replace("(", "").replace(")", "")
    assert expression_metric(text, None)(VALUES) == pytest.approx(function(VALUES))


def two_statements(metrics):
    total = metrics["cloud_cost"]
    return total / metrics["claims_processed"]


def calls_something(metrics):
    return max(metrics["a"], metrics["b"])


def reads_an_attribute(metrics):
    return metrics.cloud_cost


def computed_key(metrics):
    return metrics["cloud" + "_cost"]


def other_mapping(metrics, extra):
    return metrics["a"]


@pytest.mark.parametrize(("function", "why"), [
    (two_statements, "more than a single `return`"),
    (calls_something, "`max(metrics['a'], metrics['b'])` is not arithmetic"),
    (reads_an_attribute, "`metrics.cloud_cost` is not arithmetic"),
    (computed_key, "is not arithmetic"),
    (other_mapping, "exactly one argument"),
    (lambda metrics: metrics["a"], "not a plain `def` function"),
    (len, "its source cannot be read"),
])
def test_anything_else_is_refused_saying_what_can_travel(function: Any, why: str) -> None:
    with pytest.raises(MetricNotPortable) as caught:
        metric_expression("m", function)
    assert why in str(caught.value) and "single `return` of arithmetic" in str(caught.value)


def test_a_scenarios_own_metric_wins_over_the_targets_and_the_origin_is_recorded() -> None:
    registry = TargetRegistry()
    target = registry.resolve("http://127.0.0.1:9")
    target.metrics["cost_per_claim"] = "cloud_cost / claims_processed"
    base = {"name": "s", "duration_hours": 1, "time_warp": 60, "load_profile": [[0, 1]],
            "counters": ["cloud_cost", "claims_processed"], "assertions": ["cost_per_claim < 0.05"]}
    by_target = Scenario.from_dict(target.fill_in(base))
    assert by_target.metric_definitions == {"cost_per_claim": {
        "expression": "cloud_cost / claims_processed", "defined_by": "target http://127.0.0.1:9"}}
    own = Scenario.from_dict(target.fill_in(base | {"derived_metrics": {"cost_per_claim": "cloud_cost * 1000"}}))
    assert own.metric_definitions == {"cost_per_claim": {"expression": "cloud_cost * 1000", "defined_by": "scenario"}}
