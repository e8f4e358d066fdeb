"""`esr replay` end to end: logs in several files and formats, replayed against a recording
server on loopback; exact counts, the order of arrival, the simulated time each request
carried, redaction, and the replay report."""

from __future__ import annotations

import asyncio
import gzip
import json
import sys
from datetime import UTC
from pathlib import Path

import pytest
from recording_server import Recorder

pytestmark = pytest.mark.integration

BASE = 1709542800  # 2024-03-04T09:00:00Z


def clf_time(t: int) -> str:
    from datetime import datetime

    return datetime.fromtimestamp(t, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")


def combined(t: int, method: str, target: str, status: int = 200, client: str = "203.0.113.5") -> str:
    return (f'{client} - - [{clf_time(t)}] "{method} {target} HTTP/1.1" {status} 512 '
            f'"-" "Mozilla/5.0 (X11; Linux x86_64)"')


async def esr(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "esr.cli", *args,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    return proc.returncode or 0, out.decode(), err.decode()


def write_logs(folder: Path) -> list[tuple[int, str]]:
    """Two files: plain LF with a final newline, and gzip CRLF without one; lines interleave in
    time, one is out of order within a minute, one is malformed, one is a POST, one is empty."""
    folder.mkdir()
    a = [combined(BASE + 0, "GET", "/claims?ssn=123-45-6789"),
         combined(BASE + 30, "GET", "/claims/1"),
         combined(BASE + 20, "GET", "/claims/2"),  # written late: out of order by 10 s
         '203.0.113.5 - - [04/Mar/2024:09:01:00 +0000] "-" 400 0 "-" "-"',  # nothing to replay
         combined(BASE + 90, "POST", "/claims"),  # a write: skipped without --allow-writes
         "this is not a log line",
         combined(BASE + 120, "GET", "/broken/1", status=200)]
    (folder / "a.log").write_text("\n".join(a) + "\n")
    b = [combined(BASE + 10, "GET", "/status", client="2001:db8::7"),
         combined(BASE + 60, "HEAD", "/claims/3"),
         combined(BASE + 150, "GET", "/claims/4", status=404)]
    sub = folder / "older"
    sub.mkdir()
    with gzip.open(sub / "b.log.gz", "wb") as f:
        f.write("\r\n".join(b).encode())
    expected = [(0, "GET /claims?ssn=123-45-6789"), (10, "GET /status"), (20, "GET /claims/2"),
                (30, "GET /claims/1"), (60, "HEAD /claims/3"), (120, "GET /broken/1"), (150, "GET /claims/4")]
    return expected


async def test_replay_sends_every_request_once_in_log_order_with_its_logged_time(
        recorder: tuple[str, Recorder], tmp_path: Path) -> None:
    url, rec = recorder
    expected = write_logs(tmp_path / "logs")
    code, out, err = await esr("replay", "--warp", "300", str(tmp_path / "logs"), "--target", url, "--json",
                               "--assert", "requests == 7", "--redact", "ssn")
    assert code == 0, err
    result = json.loads(out)
    assert [f"{s['method']} {s['target']}" for s in rec.seen] == [
        f"{m.split()[0]} {m.split()[1].replace('123-45-6789', 'REDACTED')}" for _, m in expected]
    from datetime import datetime

    assert [s["sim_time"] for s in rec.seen] == [
        datetime.fromtimestamp(BASE + dt, UTC).isoformat(timespec="milliseconds") for dt, _ in expected]
    assert {s["sim"] for s in rec.seen} == {"true"}

    verdict, replay = result["verdict"], result["replay"]
    assert verdict["verdict"] == "PASS"
    assert verdict["completeness"]["results_recorded"] == 7 and verdict["completeness"]["complete"] is True
    assert verdict["summary"]["requests"] == 7 and verdict["summary"]["errors"] == 1  # /broken answers 500 now
    read = replay["read"]
    assert read["parsed"] == 8 and read["malformed_total"] == 1
    assert read["first_malformed"][0]["where"].endswith("a.log:6")
    assert read["not_selected"] == {"write method (replay with --allow-writes to send it)": 1}
    assert sum(read["skipped"].values()) == 1
    assert set(read["files"].values()) == {"clf"}
    assert replay["plan"]["requests"] == 7 and replay["plan"]["span_s"] == 150.0
    changed = {(c["endpoint"], c["then"], c["now"]): c["count"] for c in replay["comparison"]["changed"]}
    assert changed == {("GET /broken/{id}", "2xx", "5xx"): 1, ("GET /claims/{id}", "4xx", "2xx"): 1}
    assert "123-45-6789" not in Path(result["run_log"]).read_text()  # redacted before anything was stored


async def test_endpoint_templates_fold_the_report_rows_and_each_says_its_rule(
        recorder: tuple[str, Recorder], tmp_path: Path) -> None:
    url, rec = recorder
    logs = tmp_path / "logs"
    logs.mkdir()
    targets = ["/articles/hello", "/articles/world?ref=home", "/2025/03/14/my-first-post/",
               "/2025/03/15/a-second-post/", "/claims/7", "/claims/8", "/health", "/docs/intro.html"]
    (logs / "a.log").write_text("\n".join(combined(BASE + i, "GET", t) for i, t in enumerate(targets)) + "\n")
    code, out, err = await esr("replay", "--warp", "300", str(logs), "--target", url, "--json",
                               "--endpoint", "GET /articles/{slug}", "--assert", "requests == 8",
                               "--assert", 'requests == 2 for endpoint "GET /articles/{slug}"')
    assert code == 0, err
    result = json.loads(out)
    assert len(rec.seen) == 8 and result["verdict"]["verdict"] == "PASS"
    rows = result["replay"]["comparison"]["endpoints"]
    assert {label: (row["rule"], row["now"]["count"]) for label, row in rows.items()} == {
        "GET /articles/{slug}": ("template", 2),
        "GET /{date}/{slug}/": ("date+slug", 2),
        "GET /claims/{id}": ("id", 2),
        "GET /health": ("none", 1),
        "GET /docs/{slug}.html": ("slug", 1),
    }
    saved = json.loads((Path(result["run_log"]).parent / "replay_report.json").read_text())
    assert saved["comparison"]["endpoints"] == rows


async def test_dry_run_prints_the_plan_and_sends_nothing(recorder: tuple[str, Recorder], tmp_path: Path) -> None:
    url, rec = recorder
    write_logs(tmp_path / "logs")
    code, out, err = await esr("replay", "--warp", "60", str(tmp_path / "logs"), "--target", url, "--dry-run",
                               "--allow-writes")
    assert code == 0, err
    assert rec.seen == []
    assert "requests to send: 8" in out
    assert "(150 s)" in out and "real duration at warp 60: 2.5 s" in out
    assert "peak real rate: 4 requests/s" in out  # 0, 10, 20, 30 s of log fall in one real second
    assert "a.log:6" in out


async def test_dry_run_checks_the_target_as_a_real_replay_does(tmp_path: Path) -> None:
    write_logs(tmp_path / "logs")
    for target in ("http://203.0.113.7:8080", "not-registered.example"):  # documentation address, never sent to
        code, out, err = await esr("replay", "--warp", "60", str(tmp_path / "logs"), "--target", target, "--dry-run")
        assert code == 2, (target, out, err)
        assert ("refusing" in err or "unknown target" in err) and "Traceback" not in err
        assert out == ""  # refused before the plan is printed, as a real replay would be


async def test_a_log_line_with_escape_sequences_is_printed_escaped(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    write_logs(logs)
    evil = "\x1b]0;owned\x07\x1b[2J\x1b[31mnot a log line\u202e"
    (logs / "c.log").write_text(combined(BASE + 5, "GET", "/fine") + "\n" + evil + "\n")
    code, out, err = await esr("replay", "--warp", "60", str(logs), "--target", "http://127.0.0.1:9", "--dry-run",
                               "--format", "clf")
    assert code == 0, err
    assert "\x1b" not in out + err and "\x07" not in out and "\u202e" not in out
    assert "\\x1b]0;owned\\x07" in out  # shown, escaped


async def test_credentials_and_redacted_fields_never_leave_the_archive(
        recorder: tuple[str, Recorder], tmp_path: Path) -> None:
    url, rec = recorder
    entry = {"startedDateTime": "2024-03-04T09:00:00.000Z", "time": 12, "request": {
        "method": "POST", "url": "https://prod.example/api/claims?ssn=123-45-6789", "httpVersion": "HTTP/1.1",
        "headers": [{"name": "Authorization", "value": "Bearer live-token-xyz"},
                    {"name": "Cookie", "value": "session=live-cookie"},
                    {"name": "X-API-Key", "value": "live-key"},
                    {"name": "Content-Type", "value": "application/json"}],
        "postData": {"mimeType": "application/json", "text": json.dumps({"ssn": "123-45-6789", "amount": 10})}},
        "response": {"status": 201}}
    har = tmp_path / "capture.har"
    har.write_text(json.dumps({"log": {"version": "1.2", "entries": [entry]}}))
    code, out, err = await esr("replay", "--warp", "60", str(har), "--target", url, "--json", "--allow-writes",
                               "--redact", "ssn")
    assert code == 0, err
    assert len(rec.seen) == 1
    sent = rec.seen[0]
    for secret in ("live-token-xyz", "live-cookie", "live-key", "123-45-6789"):
        assert secret not in sent["headers"] + sent["target"] + sent["body"].decode(), secret
    assert json.loads(sent["body"]) == {"ssn": "REDACTED", "amount": 10}
    result = json.loads(out)
    assert "123-45-6789" not in Path(result["run_log"]).read_text()
    code, out, err = await esr("replay", "--warp", "60", str(har), "--target", url, "--json", "--allow-writes",
                               "--keep-credentials")
    assert code == 0 and "Bearer live-token-xyz" in rec.seen[-1]["headers"]


@pytest.mark.parametrize(("client", "accept_encoding"), [("pooled", False), ("aiohttp", True)])
async def test_replay_sends_with_the_http_client_esr_http_client_names(
        recorder: tuple[str, Recorder], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, client: str,
        accept_encoding: bool) -> None:
    url, rec = recorder
    write_logs(tmp_path / "logs")
    monkeypatch.setenv("ESR_HTTP_CLIENT", client)
    code, out, err = await esr("replay", "--warp", "300", str(tmp_path / "logs"), "--target", url, "--json")
    assert code == 0, err
    # aiohttp's client always asks for compressed answers; the pooled client never does
    assert rec.seen and {"accept-encoding" in s["headers"].lower() for s in rec.seen} == {accept_encoding}


async def test_list_formats_prints_every_format_with_a_sample() -> None:
    from esr.replay.sources import readers

    code, out, err = await esr("replay", "--list-formats")
    assert code == 0, err
    for name, module in readers().items():
        assert f"\n{name}: " in "\n" + out
        assert module.SAMPLE[-1].replace("\t", "\\x09") in out


async def test_nothing_readable_is_an_error_that_says_why(tmp_path: Path) -> None:
    (tmp_path / "empty.log").write_text("not a log\nnor this\n")
    code, out, err = await esr("replay", "--warp", "10", str(tmp_path / "empty.log"), "--format", "clf",
                               "--target", "http://127.0.0.1:9")
    assert code == 2
    assert "nothing to replay" in err
    assert "malformed" in out


async def test_assertions_come_from_a_scenario_file_too(recorder: tuple[str, Recorder], tmp_path: Path) -> None:
    url, _ = recorder
    write_logs(tmp_path / "logs")
    scenario = tmp_path / "rules.json"
    scenario.write_text(json.dumps({"name": "rules", "duration_hours": 1, "time_warp": 60,
                                    "load_profile": [[0, 1]], "assertions": ["error_rate < 0.1"]}))
    code, out, err = await esr("replay", "--warp", "300", str(tmp_path / "logs"), "--target", url, "--json",
                               "--scenario", str(scenario), "--assert", "requests == 7")
    verdict = json.loads(out)["verdict"]
    assert [a["assertion"] for a in verdict["assertions"]] == ["error_rate < 0.1", "requests == 7"]
    assert [a["holds"] for a in verdict["assertions"]] == [False, True]  # 1 of 7 answered 500 now
    assert (code, verdict["verdict"]) == (1, "FAIL")


async def test_a_goreplay_capture_is_replayed_with_its_exact_bodies(
        recorder: tuple[str, Recorder], tmp_path: Path) -> None:
    """Bodies that are not UTF-8 and hold CRLFs arrive byte for byte (with --allow-writes)."""
    url, rec = recorder
    binary = b"\x00\xff\xfe PNG\r\n\x1a\nline two\nend"
    payloads = [
        b"1 a1 1709542800000000000 0\n" + b"POST /upload HTTP/1.1\r\nHost: claims.example\r\n"
        b"Content-Type: application/octet-stream\r\nContent-Length: " + str(len(binary)).encode() + b"\r\n\r\n"
        + binary,
        b"1 a2 1709542801000000000 0\n" + b"GET /claims?page=2 HTTP/1.1\r\nHost: claims.example\r\n\r\n",
    ]
    (tmp_path / "capture.gor").write_bytes(b"\n\xf0\x9f\x90\xb5\xf0\x9f\x99\x88\xf0\x9f\x99\x89\n".join(payloads)
                                           + b"\n\xf0\x9f\x90\xb5\xf0\x9f\x99\x88\xf0\x9f\x99\x89\n")
    code, out, err = await esr("replay", "--warp", "100", str(tmp_path / "capture.gor"), "--target", url,
                               "--allow-writes", "--json")
    assert code == 0, err
    assert json.loads(out)["replay"]["read"]["files"] == {str(tmp_path / "capture.gor"): "gor"}
    assert [(s["method"], s["target"], s["body"]) for s in rec.seen] == [
        ("POST", "/upload", binary), ("GET", "/claims?page=2", b"")]
    assert rec.seen[0]["content_type"] == "application/octet-stream"
