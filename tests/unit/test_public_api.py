"""The public API is small and pinned: changing it is a decision, not an accident."""

import esr


def test_all_is_pinned() -> None:
    assert sorted(esr.__all__) == sorted([
        "Assertion", "AssertionResult", "AssertionSyntaxError", "EsrError", "FaultSyntaxError",
        "FieldError", "Journey", "JudgementError", "Run", "RunLogError", "RunStatus", "Scenario",
        "ScenarioError", "TargetRefused", "User", "Verdict", "judge", "load_scenario",
        "parse_assertion", "run_scenario", "scenario_json_schema",
    ])
    for name in esr.__all__:
        assert getattr(esr, name) is not None


def test_every_error_is_an_esr_error() -> None:
    for name in ("AssertionSyntaxError", "FaultSyntaxError", "JudgementError", "RunLogError",
                 "ScenarioError", "TargetRefused"):
        assert issubclass(getattr(esr, name), esr.EsrError)
