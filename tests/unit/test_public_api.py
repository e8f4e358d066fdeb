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


def test_tokens_are_generated_once_and_private(tmp_path, monkeypatch) -> None:
    from esr.api.auth import Tokens, read_token

    first = Tokens.load(tmp_path)
    assert first == Tokens.load(tmp_path) and first.admin != first.observer
    assert (tmp_path / "token").stat().st_mode & 0o777 == 0o600
    assert read_token(tmp_path) == first.admin
    admin, observer = first.from_header(f"Bearer {first.admin}"), first.from_header(f"Bearer {first.observer}")
    assert admin is not None and admin.role == "admin" and observer is not None and observer.role == "observer"
    assert first.from_header("Bearer nope") is None and first.from_header(None) is None
    given = "from-env-0123456789"
    assert Tokens.load(tmp_path, admin=given).admin == given and read_token(tmp_path, given) == given
