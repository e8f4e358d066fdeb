"""`esr replay` in-process, with --dry-run: the W3C `--fields` option and the closest-format error
reach the command line with their values and messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from esr.cli.main import main

HEADERLESS = "date time cs-method cs-uri-stem sc-status time-taken"
ROWS = ["2025-03-14 10:00:00 GET /claims/1 200 15", "2025-03-14 10:00:30 HEAD /claims/2 404 3"]
MARCH_14_10H = 1741946400.0  # 2025-03-14T10:00:00Z


def dry_run(*args: str) -> list[str]:
    return ["replay", "--warp", "60", *args, "--target", "http://127.0.0.1:9", "--dry-run", "--json"]


def test_fields_reads_a_header_less_w3c_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "u_ex250314.log"
    path.write_text("\n".join(ROWS) + "\n")
    assert main(dry_run(str(path), "--fields", HEADERLESS)) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["plan"]["requests"], out["plan"]["first"], out["plan"]["last"]) == (2, MARCH_14_10H,
                                                                                  MARCH_14_10H + 30)
    assert out["read"]["files"] == {str(path): "w3c"}
    assert (out["read"]["parsed"], out["read"]["malformed_total"], out["read"]["unreadable"]) == (2, 0, [])


def test_fields_leaves_files_in_other_formats_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.log").write_text("\n".join(ROWS) + "\n")
    (tmp_path / "b.log").write_text('203.0.113.5 - - [14/Mar/2025:10:00:10 +0000] "GET /clf HTTP/1.1" 200 5\n')
    assert main(dry_run(str(tmp_path), "--fields", HEADERLESS)) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["read"]["files"] == {str(tmp_path / "a.log"): "w3c", str(tmp_path / "b.log"): "clf"}
    assert out["plan"]["requests"] == 3


def test_without_fields_the_header_less_file_names_the_closest_format(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "u_ex250314.log"
    path.write_text("\n".join(ROWS) + "\n")
    assert main(dry_run(str(path))) == 2
    captured = capsys.readouterr()
    assert json.loads(captured.out)["read"]["unreadable"] == [
        f"{path}: unknown log format: closest is W3C extended (w3c), line 1 does not match it at column 1: "
        "expected a '#Fields:' directive before the first row (or --fields, e.g. --fields \"date time cs-method "
        "cs-uri-stem sc-status\"), found '2025-03-14 10:00:00 ...'; pass --format to force one"]
    assert "nothing to replay" in captured.err


def test_an_unknown_format_is_printed_with_the_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "access.log"
    path.write_text('203.0.113.5 - - 14/Mar/2025:10:00:00 +0000 "GET /a HTTP/1.1" 200 5\n')
    assert main(["replay", "--warp", "60", str(path), "--target", "http://127.0.0.1:9", "--dry-run"]) == 2
    out = capsys.readouterr().out
    assert (f"unreadable: {path}: unknown log format: closest is combined (clf), line 1 does not match it at "
            "column 17: expected '['") in out


@pytest.mark.parametrize(("args", "message"), [
    (["--fields", " "], 'esr: error: --fields lists no fields: expected W3C field names, e.g. --fields "date time '
                        'cs-method cs-uri-stem sc-status"'),
    (["--fields", "date cs-method cs-uri-stem"], "esr: error: unusable --fields: the list names no time"),
    (["--fields", HEADERLESS, "--format", "clf"],
     "esr: error: --fields gives the field list of W3C logs; it cannot be used with --format clf"),
    (["--fields", HEADERLESS, "--preset", "traefik"],
     "esr: error: --fields reads W3C logs and --preset/--field-map read JSON lines; give one or the other"),
])
def test_a_bad_fields_option_is_an_error(args: list[str], message: str, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "u_ex250314.log"
    path.write_text("\n".join(ROWS) + "\n")
    assert main(dry_run(str(path), *args)) == 2
    captured = capsys.readouterr()
    assert captured.err.strip() == message and captured.out == ""


def test_the_help_teaches_fields_with_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["replay", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert '--fields "date time cs-method cs-uri-stem sc-status time-taken"' in text


@pytest.mark.parametrize(("template", "message"), [
    ("articles/{slug}", "esr: error: --endpoint 'articles/{slug}': a template starts with '/'"),
    ("/articles/{slug", "esr: error: --endpoint '/articles/{slug': unbalanced brace at position 10"),
    ("", "esr: error: --endpoint '': a template is a path such as /articles/{slug}"),
])
def test_a_bad_endpoint_template_is_refused_before_anything_is_read(
        template: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "u_ex250314.log"
    path.write_text("\n".join(ROWS) + "\n")
    assert main(dry_run(str(path), "--fields", HEADERLESS, "--endpoint", "/fine/{id}", "--endpoint", template)) == 2
    captured = capsys.readouterr()
    assert captured.err.strip() == message and captured.out == ""


def test_good_endpoint_templates_pass_a_dry_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "u_ex250314.log"
    path.write_text("\n".join(ROWS) + "\n")
    assert main(dry_run(str(path), "--fields", HEADERLESS, "--endpoint", "GET /claims/{claim}",
                        "--endpoint", "/files/{path...}")) == 0
    assert json.loads(capsys.readouterr().out)["plan"]["requests"] == 2


def test_the_help_teaches_endpoint_with_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["replay", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--endpoint '/articles/{slug}'" in text


@pytest.mark.parametrize(("args", "message"), [
    (["--max-in-flight", "0"], "esr: error: --max-in-flight must be 1 or more, not 0 (default 10,000)"),
    (["--timeout", "0"], "esr: error: --timeout must be a number of seconds above 0, not 0 (default 10)"),
    (["--timeout", "nan"], "esr: error: --timeout must be a number of seconds above 0, not nan (default 10)"),
    (["--top-endpoints", "0"], "esr: error: --top-endpoints must be 1 or more, not 0 (default 1,000)"),
])
def test_a_bad_sending_option_is_refused_not_replaced(args: list[str], message: str, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "u_ex250314.log"
    path.write_text("\n".join(ROWS) + "\n")
    assert main(dry_run(str(path), "--fields", HEADERLESS, *args)) == 2
    captured = capsys.readouterr()
    assert captured.err.strip() == message and captured.out == ""
