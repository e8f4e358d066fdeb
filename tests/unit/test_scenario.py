"""esr.core.scenario.Scenario.from_dict: valid scenarios load; anything else is a ScenarioError.

The fuzz test mutates a valid scenario (drops keys, puts wrong types and random strings where
durations, rates, conditions, paths and names go) and requires that validation either returns
a Scenario or raises ScenarioError whose every FieldError has a message: never another
exception, which the CLI would show as a traceback.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from esr.core.errors import FieldError, ScenarioError
from esr.core.scenario import Scenario

VALID: dict[str, Any] = {
    "name": "claims_48h",
    "description": "file claims, poll until paid",
    "duration_hours": 24,
    "time_warp": 2880,
    "drain_warp": 8640,
    "seed": 7,
    "sim_start": "2024-03-04T00:00:00Z",
    "window": "5m",
    "request_timeout": "10s",
    "late_threshold_ms": 25,
    "max_late_start_share": 0.1,
    "max_in_flight": 500,
    "load_profile": [[0, 4], {"hour": 6, "rate": "600/min", "ramp": True}, [18, "20/s"], [22, 6, "ramp"]],
    "counters": ["refunds"],
    "journeys": [
        {
            "name": "claim",
            "weight": 3,
            "data": {"ssn": "ssn", "wages": {"int": [1000, 9000]}, "kind": {"choice": ["a", "b"]}},
            "steps": [
                {"name": "file",
                 "request": {"method": "post", "path": "/claims", "headers": {"X-Ssn": "{{ data.ssn }}"},
                             "json": {"ssn": "{{ data.ssn }}", "wages": "{{ data.wages }}"}, "timeout": "5s"},
                 "expect": {"status": [201]},
                 "extract": {"claim_id": "$.id"},
                 "counters": {"cloud_cost": "header:X-Cost"}},
                {"name": "cool_off", "wait": "2h"},
                {"name": "paid",
                 "request": {"path": "/claims/{{ vars.claim_id }}", "label": "GET /claims/{id}"},
                 "poll": {"every": "2h", "until": "$.status in ['paid', 'denied']", "give_up_after": "72h"},
                 "counters": {"claims_paid": {"value": 1, "when": "$.status == 'paid'"}, "fees": "$.fee"}},
            ],
            "sla": [{"from": "file", "to": "paid", "within": "48h"}],
        },
        {"name": "browse", "steps": [{"name": "home", "request": {"path": "/"}, "expect": 200}]},
    ],
    "assertions": [
        "latency_p95_ms < 250",
        "error_rate < 0.01 in every 1h",
        "sla_48h_success_rate > 0.6 during hour 8..18",
        "cloud_cost / claims_paid < 0.05",
        "refunds == 0",
        "latency_p99_ms < 800 for endpoint 'GET /claims/{id}'",
    ],
    "failure_injection": ["db_down@hour12+30m", "latency(500ms)@day 1 hour 3"],
}


def errors_of(data: Any) -> list[FieldError]:
    with pytest.raises(ScenarioError) as info:
        Scenario.from_dict(data)
    assert info.value.errors
    return info.value.errors


# -- valid scenarios -----------------------------------------------------------------------------
def test_the_valid_scenario_loads() -> None:
    s = Scenario.from_dict(copy.deepcopy(VALID))
    assert s.name == "claims_48h"
    assert s.window == 300.0
    assert s.request_timeout == 10.0
    assert s.effective_drain_warp == 8640
    assert [(p.hour, p.rate, p.ramp) for p in s.load_profile] == [(0, 4, False), (6, 10, True), (18, 20, False),
                                                                    (22, 6, True)]
    assert s.counter_names == {"refunds", "cloud_cost", "claims_paid", "fees"}
    assert s.journeys[0].steps[0].request is not None and s.journeys[0].steps[0].request.method == "POST"
    assert s.journeys[0].steps[2].poll is not None and s.journeys[0].steps[2].poll.every == 7_200.0
    assert s.journeys[0].sla[0].key == "48h"
    assert s.journeys[1].steps[0].expect_status == [200]
    assert [a.text for a in s.parsed_assertions()] == VALID["assertions"]
    assert [(f.name, f.start_sim, f.duration_sim) for f in s.faults()] == [("db_down", 43_200.0, 1_800.0),
                                                                           ("latency", 10_800.0, None)]
    assert s.profile.expected_arrivals(s.time_warp) == pytest.approx(
        (7 * 6 + 10 * 12 + 13 * 4 + 6 * 2) * 3_600 / 2_880)


def test_to_dict_round_trips() -> None:
    s = Scenario.from_dict(copy.deepcopy(VALID))
    assert Scenario.from_dict(s.to_dict()) == s


def test_every_error_is_reported_at_once_with_its_path() -> None:
    data = copy.deepcopy(VALID)
    data["time_warp"] = 0
    data["journeys"][0]["steps"][2]["poll"]["every"] = "1x"
    data["assertions"].append("bogus < 1")
    data["failure_injection"].append("x@hour")
    paths = [e.path for e in errors_of(data)]
    assert "time_warp" in paths
    assert "journeys[0].steps[2].poll.every" in paths
    assert f"assertions[{len(VALID['assertions'])}]" in paths
    assert f"failure_injection[{len(VALID['failure_injection'])}]" in paths


@pytest.mark.parametrize(
    ("mutate", "path", "words"),
    [
        (lambda d: d.pop("name"), "name", "required field is missing"),
        (lambda d: d.update(colour="red"), "colour", "unknown field"),
        (lambda d: d.update(window="7m"), "window", "must divide one hour"),
        (lambda d: d["load_profile"].__setitem__(1, [6, "2400/day"]), "load_profile[1].rate", "'2400/min'"),
        (lambda d: d["journeys"][0]["steps"][2]["request"].update(path="/c/{{ vars.nope }}"), "journeys[0]",
         "no earlier step extracts 'nope'"),
        (lambda d: d["journeys"][0]["steps"][2]["poll"].update(until="$.status = 'paid'"),
         "journeys[0].steps[2].poll.until", "column 10"),
        (lambda d: d["journeys"][0]["data"].update(x="not_a_faker_provider"), "journeys[0].data",
         "unknown data generator"),
        (lambda d: d.update(assertions=["cloud_costs < 1"]), "assertions[0]", "unknown metric 'cloud_costs'"),
        (lambda d: d.update(max_late_start_share=1.5), "max_late_start_share", "less than or equal to 1"),
        (lambda d: d.update(max_late_start_share=-0.01), "max_late_start_share", "greater than or equal to 0"),
        (lambda d: d.update(max_late_start_share="5%"), "max_late_start_share", "number"),
    ],
)
def test_field_errors(mutate: Any, path: str, words: str) -> None:
    data = copy.deepcopy(VALID)
    mutate(data)
    errors = errors_of(data)
    assert any(e.path == path and words in e.message for e in errors), [str(e) for e in errors]


@pytest.mark.parametrize("data", [None, [], "scenario", 3])
def test_not_an_object(data: Any) -> None:
    errors = errors_of(data)
    assert errors == [FieldError("", f"expected a JSON object, got {type(data).__name__}")]


# -- values of the wrong type must be field errors, not crashes ---------------------------------
@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda d: d.update(counters=5), "counters"),
        (lambda d: d.update(journeys=5), "journeys"),
        (lambda d: d["journeys"][0].update(steps=5), "journeys[0].steps"),
        (lambda d: d["load_profile"].__setitem__(0, [0, None]), "load_profile[0]"),
        (lambda d: d["load_profile"].__setitem__(0, [0, [4]]), "load_profile[0]"),
        (lambda d: d.update(window=None), "window"),
        (lambda d: d.update(request_timeout=[10]), "request_timeout"),
        (lambda d: d["journeys"][0]["steps"][2]["poll"].update(every={"h": 2}), "journeys[0].steps[2].poll"),
        (lambda d: d["journeys"][0]["data"].update(x="seed"), "journeys[0].data"),
    ],
)
def test_wrong_types_are_field_errors(mutate: Any, path: str) -> None:
    data = copy.deepcopy(VALID)
    mutate(data)
    errors = errors_of(data)
    assert any(e.path.startswith(path) and e.message for e in errors), [str(e) for e in errors]


# -- fuzzing -----------------------------------------------------------------------------------
DOMAIN_STRINGS = [
    # durations
    "1h", "0s", "0", "-1h", "1x", "", " ", "72h", "1h30m", "500ms", "1e3h", "1.5", "2d", "nan", "inf",
    # rates
    "2400/min", "1/day", "-5", "abc", "40/s", "0/s",
    # conditions and JSON paths
    "$.status == 'paid'", "$.a ==", "status == 1", "$.. == 1", "$.a in ['x']", "$", "$.id", "$..", "$[",
    "header:X-Cost", "header:",
    # templated paths
    "/claims/{{ vars.claim_id }}", "{{ nope }}", "claims", "/x/{{ data.missing }}", "{{", "/{{ user.x }}",
    # assertions and faults
    "latency_p95_ms < 2000", "bogus < 1", "error_rate < 0.01 in every 90s", "requests > 0 during hour 9..1",
    "db_down@hour12", "x@8:75", "@", "x@day 0 hour 1",
    # names, generators, methods, dates
    "claim", "1bad", "file", "paid", "ssn", "seed", "_private", "name", "ramp", "GET", "TRACE", "post",
    "2024-01-01", "yesterday",
]

json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6),
    st.floats(allow_nan=False, allow_infinity=False, width=32), st.text(max_size=12),
    st.sampled_from(DOMAIN_STRINGS),
)
json_value = st.recursive(
    json_leaf,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.one_of(st.text(max_size=6), st.sampled_from(["name", "path", "every", "status", "hour",
                                                                         "rate", "int", "value"])),
                        children, max_size=3),
    ),
    max_leaves=6,
)


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            out += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            out += _paths(child, (*prefix, i))
    return out


PATHS = _paths(VALID)

mutation = st.tuples(
    st.sampled_from(PATHS),
    st.sampled_from(["drop", "replace", "domain", "insert"]),
    json_value,
    st.sampled_from(DOMAIN_STRINGS),
)


def _apply(data: dict[str, Any], path: tuple, op: str, value: Any, word: str) -> None:
    parent: Any = data
    for part in path[:-1]:
        try:
            parent = parent[part]
        except (KeyError, IndexError, TypeError):
            return  # an earlier mutation changed the shape: nothing to do
    last = path[-1]
    if isinstance(parent, dict):
        if op == "drop":
            parent.pop(last, None)
        elif op == "insert":
            parent[word if isinstance(last, str) else str(last)] = value
        else:
            parent[last] = value if op == "replace" else word
    elif isinstance(parent, list) and isinstance(last, int) and last < len(parent):
        if op == "drop":
            del parent[last]
        elif op == "insert":
            parent.insert(last, value)
        else:
            parent[last] = value if op == "replace" else word


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mutation, min_size=1, max_size=4))
def test_fuzz_mutated_scenarios(mutations: list[tuple]) -> None:
    data = copy.deepcopy(VALID)
    for path, op, value, word in mutations:
        _apply(data, path, op, value, word)
    try:
        scenario = Scenario.from_dict(data)
    except ScenarioError as exc:
        assert exc.errors
        for error in exc.errors:
            assert isinstance(error, FieldError)
            assert isinstance(error.path, str)
            assert isinstance(error.message, str) and error.message.strip(), error
    else:
        assert isinstance(scenario, Scenario)
        assert scenario.duration_hours > 0 and scenario.time_warp > 0
        scenario.parsed_assertions()  # what validation accepted also parses for the run
        scenario.faults()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from([*VALID, "python_journeys", "metrics", "extra"]), json_value, max_size=8))
def test_fuzz_arbitrary_top_level_dicts(data: dict[str, Any]) -> None:
    try:
        Scenario.from_dict(data)
    except ScenarioError as exc:
        assert exc.errors
        assert all(isinstance(e, FieldError) and e.message.strip() for e in exc.errors)


def test_assertions_must_name_slas_and_endpoints_the_journeys_have() -> None:
    journey = {"name": "claim", "steps": [
        {"name": "file", "request": {"method": "POST", "path": "/claims"}},
        {"name": "paid", "request": {"path": "/claims/1"}}],
        "sla": [{"from": "file", "to": "paid", "within": "48h"}]}
    base = {"name": "t", "duration_hours": 4, "time_warp": 60, "load_profile": [[0, 1]], "journeys": [journey]}
    Scenario.from_dict(base | {"assertions": ["sla_48h_success_rate > 0.9",
                                              'latency_p95_ms < 9 for endpoint "POST /claims"']})
    with pytest.raises(ScenarioError) as caught:
        Scenario.from_dict(base | {"assertions": ["sla_24h_success_rate > 0.9",
                                                  'latency_p95_ms < 9 for endpoint "GET /claim"']})
    messages = [str(e) for e in caught.value.errors]
    assert messages[0] == "assertions[0]: sla_24h_success_rate: no journey has a 24h SLA (SLAs in this scenario: 48h)"
    assert messages[1] == ("assertions[1]: no endpoint is labelled 'GET /claim'; labels: GET /claims/1, POST /claims")


def test_a_fault_after_the_load_is_an_error() -> None:
    with pytest.raises(ScenarioError) as caught:
        Scenario.from_dict({"name": "t", "duration_hours": 4, "time_warp": 60, "load_profile": [[0, 1]],
                            "failure_injection": ["db_down@hour3", "db_down@hour99"]})
    assert [e.path for e in caught.value.errors] == ["failure_injection[1]"]
    assert "starts at simulated hour 99, after the load ends (duration_hours=4)" in caught.value.errors[0].message


def test_derived_metrics_are_expressions_recorded_with_the_scenario() -> None:
    journey = {"name": "j", "steps": [{"name": "s", "request": {"path": "/"},
                                        "counters": {"cloud_cost": "header:X-Cost", "paid": 1}}]}
    base = {"name": "t", "duration_hours": 1, "time_warp": 60, "load_profile": [[0, 1]], "journeys": [journey]}
    s = Scenario.from_dict(base | {"derived_metrics": {"cost_per_paid": "cloud_cost / paid"},
                                   "assertions": ["cost_per_paid < 0.05"]})
    assert s.to_dict()["derived_metrics"] == {"cost_per_paid": "cloud_cost / paid"}
    assert s.custom_metrics["cost_per_paid"]({"cloud_cost": 1.0, "paid": 50.0}) == 0.02
    assert Scenario.from_dict(s.to_dict()) == s
    with pytest.raises(ScenarioError) as caught:
        Scenario.from_dict(base | {"derived_metrics": {"bad": "cloud_cost /", "typo": "cloud_costs / paid"}})
    assert [e.path for e in caught.value.errors] == ["derived_metrics.bad", "derived_metrics.typo"]
    assert "unknown metric 'cloud_costs'" in caught.value.errors[1].message


def test_the_late_start_share_defaults_to_five_percent_and_is_in_the_json_schema() -> None:
    from esr.core.scenario import scenario_json_schema

    assert Scenario.from_dict(copy.deepcopy(VALID)).max_late_start_share == 0.1
    assert Scenario(name="x", duration_hours=1, time_warp=60, load_profile=[(0, 1)]).max_late_start_share == 0.05
    field = scenario_json_schema()["properties"]["max_late_start_share"]
    assert (field["type"], field["minimum"], field["maximum"], field["default"]) == ("number", 0, 1, 0.05)
