"""Resolving failure_injection before launch: built-in proxy faults and their parameters, the
system's own faults and their actions, and the errors a user sees (with the column)."""

from __future__ import annotations

import pytest

from esr.core.errors import AssertionSyntaxError, FaultSyntaxError, ScenarioError
from esr.core.fault_actions import ActionCall, FaultAction, fault_context, render_action
from esr.core.fault_spec import parse_fault
from esr.core.scenario import Scenario
from esr.core.toxics import Bandwidth, Down, Errors, Latency, Reset, Timeout, toxic_for
from esr.faults.plan import plan_faults

ADMIN = "{{ target.url }}/_esr/runs/{{ run.id }}/faults/db_down"
DB_DOWN = FaultAction.model_validate({"start": {"http": {"url": ADMIN}},
                                      "recover": {"http": {"method": "DELETE", "url": ADMIN}}})


@pytest.mark.parametrize(("text", "toxic"), [
    ("latency(500ms)@hour1", Latency(0.5)),
    ("latency(500ms, jitter=100ms)@hour1", Latency(0.5, 0.1)),
    ("latency(delay=2s, jitter=1s)@hour1", Latency(2.0, 1.0)),
    ("errors@hour1", Errors()),
    ("errors(0.2)@hour1", Errors(0.2, 503)),
    ("errors(rate=0.2, status=500)@hour8+30m", Errors(0.2, 500)),
    ("down@hour1+5m", Down()),
    ("reset@hour1", Reset()),
    ("reset(rate=0.5, after=100)@hour1", Reset(0.5, 100)),
    ("timeout(0.1)@hour1", Timeout(0.1)),
    ("bandwidth(64)@hour1", Bandwidth(64_000.0)),
    ("bandwidth(kb_per_s=0.5)@hour1", Bandwidth(500.0)),
])
def test_built_in_faults(text: str, toxic: object) -> None:
    assert toxic_for(parse_fault(text)) == toxic


def test_other_names_are_not_built_in() -> None:
    assert toxic_for(parse_fault("db_down@hour12")) is None


@pytest.mark.parametrize(("text", "column", "message"), [
    ("latency(500)@hour1", 9, "latency delay: expected a duration with a unit such as 500ms or 2s, got 500"),
    ("latency@hour1", 1, "latency needs its delay; write latency(500ms) or latency(500ms, jitter=100ms)"),
    ("latency(1s, jitter=5)@hour1", 13, "latency jitter: expected a duration"),
    ("errors(rate=2)@hour1", 8, "errors rate: expected a share between 0 (exclusive) and 1"),
    ("errors(rate=0)@hour1", 8, "errors rate: expected a share"),
    ("errors(0.2, status=99)@hour1", 13, "errors status: expected an HTTP status from 100 to 599"),
    ("errors(0.2, status=5xx)@hour1", 21, "unexpected input (expected ')', ',')"),  # the grammar's own check
    ("errors(code=5)@hour1", 8, "errors has no parameter 'code' (parameters: rate, status)"),
    ("errors(0.2, rate=0.3)@hour1", 13, "parameter 'rate' given twice"),
    ("down(1)@hour1", 6, "down takes at most 0 parameters; write down"),
    ("reset(after=-1)@hour1", 13, "unexpected input"),
    ("reset(after=1.5)@hour1", 7, "reset after: expected a whole number of bytes"),
    ("bandwidth(1, 2)@hour1", 14, "bandwidth takes at most 1 parameter; write bandwidth(64)"),
    ("bandwidth@hour1", 1, "bandwidth needs its kb_per_s"),
])
def test_bad_parameters_name_the_column(text: str, column: int, message: str) -> None:
    with pytest.raises(FaultSyntaxError) as caught:
        toxic_for(parse_fault(text))
    assert caught.value.column == column
    assert message in caught.value.message


def test_a_scenario_reports_bad_faults_and_fault_assertions_before_launch() -> None:
    with pytest.raises(ScenarioError) as caught:
        Scenario(name="s", duration_hours=4, time_warp=60, load_profile=[(0, 1)],
                 failure_injection=["latency(500)@hour1", "db_down@hour1+1h"],
                 assertions=["error_rate < 0.5 during db_dwn", "recovery_time_s(db_down) < 600"])
    paths = [e.path for e in caught.value.errors]
    assert paths == ["assertions[0]", "failure_injection[0]"]
    assert "no fault named 'db_dwn' in failure_injection (faults: db_down, latency)" in caught.value.errors[0].message
    assert "column 9: latency delay" in caught.value.errors[1].message


def test_scenario_fault_actions_are_http_only() -> None:
    with pytest.raises(ScenarioError) as caught:
        Scenario(name="s", duration_hours=4, time_warp=60, load_profile=[(0, 1)], failure_injection=["x@hour1"],
                 fault_actions={"x": {"start": {"command": ["touch", "/tmp/x"]}}})
    assert [str(e) for e in caught.value.errors] == [
        "fault_actions.x: commands run only from the target registry, never from a scenario (which may arrive "
        "over the API); use an HTTP action"]


def test_plan_resolves_built_ins_and_named_faults() -> None:
    planned = plan_faults(["latency(200ms)@hour1+1h", "db_down@hour2+30m"], {"db_down": DB_DOWN})
    assert [(p.key, p.name, p.kind) for p in planned] == [
        ("latency(200ms)@hour1+1h", "latency", "proxy"), ("db_down@hour2+30m", "db_down", "action")]
    assert planned[0].toxic == Latency(0.2) and planned[1].action is DB_DOWN


def test_plan_errors_list_every_bad_entry_with_what_the_target_knows() -> None:
    with pytest.raises(ScenarioError) as caught:
        plan_faults(["db_dwn@hour1", "latency(200ms)@hour1", "latency(200ms)@hour1", "errors@hour1"],
                    {"db_down": DB_DOWN, "errors": DB_DOWN}, "prod-like-staging.dol.gov")
    errors = [str(e) for e in caught.value.errors]
    assert errors[0].startswith("failure_injection[0]: failure_injection 'db_dwn@hour1', column 1: unknown fault "
                                "'db_dwn': built-in faults are latency, errors, down, reset, timeout, bandwidth; "
                                "prod-like-staging.dol.gov defines: db_down, errors")
    assert "the same fault is listed twice (also failure_injection[1])" in errors[1]
    assert "'errors' is a built-in fault of the proxy" in errors[2]
    assert len(errors) == 3


def test_built_in_faults_need_a_plain_http_target() -> None:
    with pytest.raises(ScenarioError, match="the fault proxy speaks plain HTTP"):
        plan_faults(["down@hour1"], {}, "t", "https://127.0.0.1:8443")


def test_actions_render_with_the_run_target_and_fault() -> None:
    spec = parse_fault("caseworkers_out(3, mode=slow)@day 1 hour 9+4h")
    context = fault_context(spec, "run-1", "http://127.0.0.1:9701", "2026-01-01T09:00:00+00:00")
    start = render_action(DB_DOWN.start, spec, context)
    assert start == ActionCall("http", "POST", "http://127.0.0.1:9701/_esr/runs/run-1/faults/db_down",
                               {"run_id": "run-1", "fault": "caseworkers_out", "args": [3],
                                "params": {"mode": "slow"}, "sim_time": "2026-01-01T09:00:00+00:00"})
    assert ActionCall.from_dict(start.to_dict()) == start
    command = FaultAction.model_validate({"start": {"command": ["out", "{{ fault.arg0 }}", "{{ fault.mode }}",
                                                                "{{ run.id }}"], "timeout": "5s"}})
    call = render_action(command.start, spec, context)
    assert (call.argv, call.timeout) == (("out", "3", "slow", "run-1"), 5.0)
    assert command.runs_commands and not DB_DOWN.runs_commands
    body = FaultAction.model_validate({"start": {"http": {"url": "http://127.0.0.1:1/{{ fault.name }}",
                                                          "json": {"n": "{{ fault.arg0 }}"}}}})
    assert render_action(body.start, spec, context).body == {"n": 3}  # a whole placeholder keeps its type


@pytest.mark.parametrize(("action", "message"), [
    ({"start": {"http": {"url": "{{ user.x }}"}}}, "must be a dotted name starting with one of run, target, fault"),
    ({"start": {}}, 'write either {"http": {"url": ...}} or {"command": ["argv", ...]}'),
    ({"start": {"http": {"url": "http://x"}, "command": ["a"]}}, "write either"),
    ({"start": {"command": []}}, "at least 1 item"),
    ({"start": {"http": {"url": "http://x", "method": "post"}}}, "should match pattern"),
])
def test_bad_actions(action: dict, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        FaultAction.model_validate(action)
    assert message in str(caught.value)


@pytest.mark.parametrize(("text", "column", "message"), [
    ("error_rate < 0.5 during db_dwn", 25, "no fault named 'db_dwn' in failure_injection (faults: db_down)"),
    ("recovery_time_s(x) < 6", 17, "no fault named 'x'"),
    ("recover(db_down) < 6", 1, "unknown function 'recover'; known: recovery_time_s(FAULT)"),
    ("error_rate < 0.5 during db_down in every 1h", 25, "cannot be combined"),
])
def test_fault_assertion_errors(text: str, column: int, message: str) -> None:
    from esr.core.assertions import parse_assertion

    with pytest.raises(AssertionSyntaxError) as caught:
        parse_assertion(text, faults={"db_down"})
    assert caught.value.column == column and message in caught.value.message


@pytest.mark.parametrize(("text", "column", "message"), [
    ("x@hour1+0s", 9, "a fault's duration must be above zero"),
    ("x@99:00", 3, "99:00 is not a time of day"),
    ("x@day 1 hour 30", 14, "the hour of a day is below 24, got 30"),
    ("hour@hour1", 1, "'hour' is a word of the assertion grammar"),
    ("during@hour1", 1, "'during' is a word of the assertion grammar"),
    ("errors(rate=500ms)@hour1", 8, "errors rate: expected a share"),
    ("bandwidth(2s)@hour1", 11, "bandwidth kb_per_s: expected kilobytes"),
])
def test_entries_that_read_but_mean_nothing(text: str, column: int, message: str) -> None:
    with pytest.raises(FaultSyntaxError) as caught:
        toxic_for(parse_fault(text))
    assert caught.value.column == column and message in caught.value.message


def test_plan_renders_actions_before_launch() -> None:
    uses_arg = FaultAction.model_validate({"start": {"http": {"url": "{{ target.url }}/out/{{ fault.arg0 }}"}}})
    with pytest.raises(ScenarioError, match=r"uses \{\{ fault.arg0 \}\}, which this entry does not give"):
        plan_faults(["out@hour1"], {"out": uses_arg}, "t", "http://127.0.0.1:9")
    assert plan_faults(["out(3)@hour1"], {"out": uses_arg}, "t", "http://127.0.0.1:9")[0].name == "out"
    elsewhere = FaultAction.model_validate({"start": {"http": {"url": "http://192.0.2.1/x"}}})
    with pytest.raises(ScenarioError, match=r"calls http://192.0.2.1/x: fault actions call loopback or the "
                                            r"target's own origin \(http://staging.example:80\) only"):
        plan_faults(["x@hour1"], {"x": elsewhere}, "t", "http://staging.example:80")
    same_origin = FaultAction.model_validate({"start": {"http": {"url": "http://staging.example/admin"}}})
    assert plan_faults(["x@hour1"], {"x": same_origin}, "t", "http://staging.example:80")  # port 80 is the default


def test_the_same_system_fault_cannot_overlap_itself() -> None:
    with pytest.raises(ScenarioError) as caught:
        plan_faults(["db_down@hour2+2h", "db_down @ hour3+2h"], {"db_down": DB_DOWN})
    assert "overlaps 'db_down@hour2+2h'" in str(caught.value.errors[0])
    with pytest.raises(ScenarioError, match="overlaps"):
        plan_faults(["db_down@hour2", "db_down@hour9+1h"], {"db_down": DB_DOWN})  # the first never ends
    back_to_back = plan_faults(["db_down@hour2+1h", "db_down@hour3+1h"], {"db_down": DB_DOWN})
    assert [p.key for p in back_to_back] == ["db_down@hour2+1h", "db_down@hour3+1h"]


def test_recovery_time_takes_no_scope_and_scopes_come_once() -> None:
    from esr.core.assertions import parse_assertion

    for text, message in [
        ("recovery_time_s(db_down) < 600 during hour 0..6", "is a figure of the whole run; write it without scopes"),
        ("recovery_time_s(db_down) < 600 for endpoint \"GET /\"", "is a figure of the whole run"),
        ("error_rate < 1 during db_down during hour 1..2", "a second 'during' scope"),
        ("error_rate < 1 in every 1h in every 2h", "a second 'in every' scope"),
    ]:
        with pytest.raises(AssertionSyntaxError, match=message):
            parse_assertion(text, faults={"db_down"})
