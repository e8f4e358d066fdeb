"""The local sandbox (`python -m esr.mock_server`) as the chapter's readers use it: a playground
on loopback where the chapter's own client code (section 5.1, no token) launches and reads
runs and the dashboard URL opens without a token; `--auth` turns tokens on; a taken port is a
one-line error."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from busy import PUNCTUALITY_NOT_JUDGED
from loopback import free_port, port_open, wait_until_sync

from esr.api.auth import Tokens
from esr.core.errors import EsrError
from esr.sandbox.serve import sandbox_tokens

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CHAPTER = ROOT / "tests" / "seed" / "simulation-sandbox-chapter.md"  # the product description, as given
# A short day at a fast warp, so the chapter's client (which polls every 5 s) sees it end soon
SHORT = {"name": "short_day", "duration_hours": 2, "time_warp": 3600, "drain_warp": 86400,
         "load_profile": [[0, 5]], "assertions": ["sla_48h_success_rate > 0.95"], **PUNCTUALITY_NOT_JUDGED}


def chapter_client_code() -> str:
    """Section 5.1's `hms_esr_client.py`, read from the chapter as it is written."""
    text = CHAPTER.read_text(encoding="utf-8")
    section = text.split("### 5.1", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]


def start_sandbox(home: Path, *flags: str, port: int | None = None) -> tuple[subprocess.Popen, str]:
    port = port or free_port()
    proc = subprocess.Popen([sys.executable, "-m", "esr.mock_server", "--port", str(port),
                             "--sut-port", str(free_port()), *flags],
                            env=os.environ | {"ESR_HOME": str(home)}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)

    def listening() -> bool:
        assert proc.poll() is None, f"the sandbox exited: {proc.stderr.read() if proc.stderr else ''}"
        return port_open(port)

    wait_until_sync(listening, 60, f"the sandbox listening on {port}")
    return proc, f"http://127.0.0.1:{port}"


def stop(proc: subprocess.Popen) -> str:
    proc.terminate()
    _, err = proc.communicate(timeout=60)
    return err


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[str]:
    proc, url = start_sandbox(tmp_path / "home")
    yield url
    stop(proc)


def test_the_chapters_client_code_launches_and_reads_a_run_without_a_token(sandbox: str, tmp_path: Path) -> None:
    (tmp_path / "chapter_client.py").write_text(chapter_client_code())
    script = ("import json\nfrom chapter_client import launch, report\nfrom hms_esr_client import Scenario\n"
              f"scenario = Scenario.from_dict(json.loads({json.dumps(json.dumps(SHORT))}))\n"
              "run_id = launch(scenario, target='prod-like-staging.dol.gov')\n"
              "summary = report(run_id, wait=True)\n"
              "print(json.dumps({'run_id': run_id, 'state': summary['state'], 'verdict': summary['verdict'],\n"
              "                  'dashboard_url': summary['dashboard_url']}))\n")
    env = {k: v for k, v in os.environ.items() if k != "ESR_TOKEN"} | {"ESR_URL": sandbox,
                                                                       "ESR_HOME": str(tmp_path / "elsewhere")}
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert (seen["state"], seen["verdict"]) == ("FINISHED", "PASS")
    assert seen["dashboard_url"] == f"{sandbox}/dashboard/{seen['run_id']}"  # no token in it


def test_the_dashboard_url_opens_without_a_token_in_chromium(sandbox: str) -> None:
    from test_dashboard import CHROMIUM, _chromium

    _chromium()
    answer = requests.post(f"{sandbox}/run", json=SHORT | {"target": "prod-like-staging.dol.gov"}, timeout=60)
    assert answer.status_code == 202, answer.text
    run_id, url = answer.json()["run_id"], answer.json()["dashboard_url"]
    assert url == f"{sandbox}/dashboard/{run_id}"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            page = browser.new_page()
            for address in (url, url.replace("127.0.0.1", "localhost")):  # the chapter's mini-lab, step 4
                response = page.goto(address)
                assert response is not None and response.status == 200, address
                wait_until_sync(lambda: page.evaluate("document.body.innerText.includes('VERDICT') || "
                                                      "document.body.innerText.includes('PASS')"), 120,
                                "the verdict on the page")
                assert run_id in page.content()
        finally:
            browser.close()


def test_auth_turns_tokens_on(tmp_path: Path) -> None:
    proc, url = start_sandbox(tmp_path / "home", "--auth")
    try:
        refused = requests.post(f"{url}/run", json=SHORT | {"target": "sandbox"}, timeout=60)
        assert refused.status_code == 401
        token = (tmp_path / "home" / "token").read_text().strip()
        launched = requests.post(f"{url}/run", json=SHORT | {"target": "sandbox"}, timeout=60,
                                 headers={"Authorization": f"Bearer {token}"})
        assert launched.status_code == 202
        page = launched.json()["dashboard_url"]
        assert "?token=esr1." in page  # a signed observer link
        assert requests.get(page.split("?")[0], timeout=60).status_code == 401
        assert requests.get(page, timeout=60).status_code == 200
    finally:
        err = stop(proc)
    assert "tokens:         on" in err and "launch token:" in err


def test_an_open_playground_still_checks_a_token_that_is_given(sandbox: str) -> None:
    wrong = requests.get(f"{sandbox}/runs", headers={"Authorization": "Bearer not-the-token"}, timeout=60)
    assert wrong.status_code == 401
    assert requests.get(f"{sandbox}/runs", timeout=60).status_code == 200


def test_tokens_are_forced_on_beyond_loopback() -> None:
    tokens = Tokens("a" * 32, "o" * 32)
    assert sandbox_tokens(tokens, "127.0.0.1", auth=False) == (Tokens("a" * 32, "o" * 32, open=True), False)
    assert sandbox_tokens(tokens, "::1", auth=False)[0].open is True
    assert sandbox_tokens(tokens, "localhost", auth=False)[0].open is True
    assert sandbox_tokens(tokens, "127.0.0.1", auth=True) == (tokens, False)
    assert sandbox_tokens(tokens, "0.0.0.0", auth=False) == (tokens, True)
    assert sandbox_tokens(tokens, "192.168.1.10", auth=False) == (tokens, True)
    assert sandbox_tokens(tokens, "staging.example", auth=False) == (tokens, True)


def test_a_taken_port_is_one_line_naming_the_flag(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "esr.mock_server", "--port", str(port), "--sut-port",
                               str(free_port())], env=os.environ | {"ESR_HOME": str(tmp_path)},
                              capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert re.fullmatch(rf"esr: error: cannot listen on 127\.0\.0\.1:{port} \(.+\): choose another port with --port",
                        lines[0])


def test_metric_functions_travel_as_expressions_and_a_users_own_definition_wins(sandbox: str) -> None:
    from esr.client import Scenario, launch, report

    def cost_per_claim(metrics):  # wrong on purpose: a thousand times the cost
        return metrics["cloud_cost"] * 1000 / metrics["claims_processed"]

    mine = Scenario.from_dict(SHORT)
    mine.assertions.append("cost_per_claim < 0.05")  # the chapter's section 6: the sandbox's definition
    theirs = Scenario(**SHORT | {"metrics": [cost_per_claim], "assertions": [*SHORT["assertions"],
                                                                            "cost_per_claim < 0.05"]})
    target = "prod-like-staging.dol.gov"
    by_target = report(launch(mine, target, url=sandbox), wait=True, url=sandbox, poll_s=0.2)
    by_user = report(launch(theirs, target, url=sandbox), wait=True, url=sandbox, poll_s=0.2)
    assert by_target["verdict"] == "PASS", by_target["reason"]
    assert by_target["metric_definitions"]["cost_per_claim"] == {
        "expression": "cloud_cost / claims_processed", "defined_by": "target prod-like-staging.dol.gov"}
    assert by_user["verdict"] == "FAIL" and by_user["reason"].startswith("failed: cost_per_claim < 0.05")
    assert [a["assertion"] for a in by_user["assertions"] if a["holds"] is False] == ["cost_per_claim < 0.05"]
    # (a busy machine adds a saturation warning to the reason; the failed assertion is the same)
    assert by_user["metric_definitions"]["cost_per_claim"] == {
        "expression": "(cloud_cost * 1000) / claims_processed", "defined_by": "scenario"}
    cost = {a["assertion"]: a["observed"] for a in by_target["assertions"]}["cost_per_claim < 0.05"]
    wrong = {a["assertion"]: a["observed"] for a in by_user["assertions"]}["cost_per_claim < 0.05"]
    assert wrong == pytest.approx(cost * 1000)

    def not_portable(metrics):
        return max(metrics["cloud_cost"], 1)

    with pytest.raises(EsrError, match="cannot travel to the ESR server"):
        launch(Scenario(**SHORT | {"metrics": [not_portable]}), target, url=sandbox)


def test_python_journeys_sent_to_the_server_are_a_422_that_says_why(sandbox: str) -> None:
    body = SHORT | {"target": "prod-like-staging.dol.gov", "python_journeys": ["mymodule:ClaimJourney"],
                    "python_metrics": ["cost_per_claim"]}
    answer = requests.post(f"{sandbox}/run", json=body, timeout=60)
    assert answer.status_code == 422
    errors = {e["path"]: e["message"] for e in answer.json()["errors"]}
    assert "embedded runtime only" in errors["python_journeys"] and "derived_metrics" in errors["python_metrics"]
    assert requests.get(f"{sandbox}/runs", timeout=60).json()["runs"] == []  # nothing was queued


def test_esr_plan_and_run_find_a_running_sandbox_by_name(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = os.environ | {"ESR_HOME": str(home)}

    def esr(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "esr.cli", *args], env=env, capture_output=True, text=True,
                              timeout=300, cwd=ROOT / "examples")

    proc, _ = start_sandbox(home)
    try:
        planned = esr("plan", "dol_scenario.py", "--target", "prod-like-staging.dol.gov", "--json")
        assert planned.returncode == 0, planned.stderr
        plan = json.loads(planned.stdout)
        # the sandbox's claim journey: a filing, then hourly polls for up to 72 h; decided within 48 h
        assert plan["max_requests_per_journey"] == {"claim": 74}
        assert plan["drain_bound_sim_hours"] == 48.0 and plan["drain_bound_real_seconds"] == 48 * 60
        assert 34_000 < plan["planned_journeys"] < 35_600
        (tmp_path / "short.json").write_text(json.dumps(SHORT))
        ran = esr("run", str(tmp_path / "short.json"), "--target", "prod-like-staging.dol.gov", "--json")
        assert ran.returncode == 0, ran.stderr
        verdict = json.loads(ran.stdout)
        assert verdict["verdict"] == "PASS" and verdict["summary"]["sla_48h_met"] > 0
    finally:
        stop(proc)
    assert not (home / "sandbox.json").exists()  # gone with the sandbox
    gone = esr("plan", "dol_scenario.py", "--target", "prod-like-staging.dol.gov")
    assert gone.returncode == 2 and "unknown target 'prod-like-staging.dol.gov'" in gone.stderr


def listener_pid(port: int) -> int | None:
    """The process that listens on 127.0.0.1:`port`, found as `ss -p` does: the socket's inode in
    /proc/net/tcp, then the process holding it among /proc/*/fd."""
    inodes = {fields[9] for fields in (line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:])
              if fields[1] == f"0100007F:{port:04X}" and fields[3] == "0A"}  # 0A: LISTEN
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            if any(os.readlink(fd) in {f"socket:[{inode}]" for inode in inodes} for fd in fd_dir.iterdir()):
                return int(fd_dir.parent.name)
        except OSError:  # a process that ended, or another user's
            continue
    return None


def test_the_claims_system_runs_in_a_process_of_its_own_that_ends_with_the_sandbox(tmp_path: Path) -> None:
    """DESIGN: its work never delays the generator, so a latency assertion measures the system."""
    home = tmp_path / "home"
    proc, url = start_sandbox(home)
    try:
        sut_url = json.loads((home / "sandbox.json").read_text())["url"]
        sut_port = int(sut_url.rsplit(":", 1)[1])
        assert requests.post(f"{sut_url}/claims", json={"ssn": "900-00-0001"}, timeout=30).status_code == 201
        sut_pid = listener_pid(sut_port)
        assert sut_pid is not None and sut_pid != proc.pid
        assert listener_pid(int(url.rsplit(":", 1)[1])) == proc.pid
        assert b"esr.sandbox.sut_process" in Path(f"/proc/{sut_pid}/cmdline").read_bytes()
    finally:
        proc.kill()  # kill -9: no cleanup runs in the sandbox
        proc.communicate(timeout=60)
    wait_until_sync(lambda: not port_open(sut_port) and not Path(f"/proc/{sut_pid}").exists(), 60,
                    "the claims system gone with its sandbox")


def test_a_taken_claims_port_is_one_line_naming_its_flag_and_leaves_nothing_running(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        sut_port, port = taken.getsockname()[1], free_port()
        done = subprocess.run([sys.executable, "-m", "esr.mock_server", "--port", str(port), "--sut-port",
                               str(sut_port)], env=os.environ | {"ESR_HOME": str(tmp_path)},
                              capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert re.fullmatch(rf"esr: error: the claims system cannot listen on 127\.0\.0\.1:{sut_port} \(.+\): "
                        "choose another port with --sut-port", lines[0])
    assert not port_open(port) and not (tmp_path / "sandbox.json").exists()
