"""Nothing acknowledged is lost: a run log cut anywhere by a crash recovers, again and again, and
every run the server answered 202 is still there after a restart (`kill -9` or SIGTERM)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from loopback import free_port, wait_for_port, wait_until_sync

from esr.api.runs import RunManager
from esr.bus.runlog import LOG_NAME, read_events
from esr.core.scenario import Scenario
from esr.core.targets import TargetRegistry
from esr.engine.runner import Run

pytestmark = pytest.mark.integration

TOKEN = "launch-token-for-restarts"
ADMIN = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
# one simulated hour at warp 60: a minute of real time, longer than any of these tests
LONG = {"name": "long", "duration_hours": 1, "time_warp": 60, "load_profile": [[0, 1]], "seed": 2}


async def _small_log(home: Path, target_url: str) -> bytes:
    run = Run(Scenario.from_dict({"name": "tiny", "duration_hours": 1, "time_warp": 3600, "seed": 1,
                                  "load_profile": [[0, 3]], "assertions": ["error_rate < 0.5"]}),
              TargetRegistry().resolve(target_url), home=home)
    await run.execute()
    return run.log_path.read_bytes()


async def test_a_log_cut_at_every_byte_offset_recovers_twice_to_the_same_runs(
        demo_target: Any, tmp_path: Path) -> None:
    url, _ = await demo_target()
    whole = await _small_log(tmp_path / "original", url)
    lines = whole.split(b"\n")
    first_event_end = len(lines[0])  # run_started is whole here (its newline follows): before, no run
    run_id = json.loads(lines[0])["run_id"]
    home = tmp_path / "home"
    for offset in range(len(whole) + 1):
        shutil.rmtree(home, ignore_errors=True)
        log = home / "runs" / run_id / LOG_NAME
        log.parent.mkdir(parents=True)
        log.write_bytes(whole[:offset])
        first = RunManager(home)
        first.recover()
        after_first = log.read_bytes()
        second = RunManager(home)
        second.recover()
        assert log.read_bytes() == after_first, offset  # a second recovery changes nothing
        fragment = whole[:offset].rsplit(b"\n", 1)[-1]
        whole_but_newline = bool(fragment) and whole[offset:offset + 1] == b"\n"  # an event cut before its newline
        kept = whole[:offset - len(fragment)] + (fragment + b"\n" if whole_but_newline else b"")
        assert after_first.startswith(kept), offset  # nothing complete was lost
        side = log.with_name(LOG_NAME + ".torn")
        assert ((side.read_bytes() == fragment + b"\n") if fragment and not whole_but_newline
                else not side.exists()), offset
        if offset < first_event_end:
            assert run_id not in first.runs and run_id not in second.runs, offset
            continue
        summary = first.get(run_id).summary()
        assert second.get(run_id).summary() == summary, offset
        events = list(read_events(log))  # every line whole: nothing appended after a fragment
        assert type(events[-1]).__name__ == "VerdictIssued", offset
        assert sum(type(e).__name__ == "VerdictIssued" for e in events) == 1, offset
        if offset == len(whole):
            assert after_first == whole  # a complete log is left as it was


class Server:
    """`esr serve` as a process on the test's ESR_HOME."""

    def __init__(self, home: Path, env: dict[str, str] | None = None, concurrent: int = 1) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "esr.cli", "serve", "--port", str(self.port), "--max-concurrent", str(concurrent)],
            env={**os.environ, "ESR_HOME": str(home), "ESR_TOKEN": TOKEN, **(env or {})},
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_for_port(self.port)

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=ADMIN)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")

    def stop(self, sig: int) -> None:
        self.proc.send_signal(sig)
        self.proc.wait(30)


@pytest.fixture
def servers(esr_home: Path) -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        if server.proc.poll() is None:
            server.stop(signal.SIGKILL)


def _launch(server: Server, target_url: str) -> str:
    status, body = server.call("POST", "/run", LONG | {"target": target_url})
    assert status == 202, body
    return body["run_id"]


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGTERM])
async def test_every_accepted_run_is_there_after_a_restart(
        esr_home: Path, demo_target: Any, servers: list[Server], stop: int) -> None:
    url, _ = await demo_target()
    first = Server(esr_home)
    servers.append(first)
    playing, queued, dropped = (_launch(first, url) for _ in range(3))
    assert first.call("POST", f"/run/{dropped}/abort")[0] == 200  # aborted while still queued
    wait_until_sync(lambda: first.call("GET", f"/run/{playing}/summary")[1]["state"] == "RUNNING", 60,
                    "the first run playing")
    assert first.call("GET", f"/run/{queued}/summary")[1]["state"] == "QUEUED"
    first.stop(stop)

    again = Server(esr_home)
    servers.append(again)
    states = {run_id: again.call("GET", f"/run/{run_id}/summary") for run_id in (playing, queued, dropped)}
    assert {run_id: status for run_id, (status, _) in states.items()} == dict.fromkeys(states, 200)
    assert states[playing][1]["state"] == "ABORTED"  # it was playing: closed with the data it had
    assert states[dropped][1]["state"] == "ABORTED" and "queued" in states[dropped][1]["reason"]
    assert states[queued][1]["state"] in ("QUEUED", "RUNNING")  # queued again, under its own id
    wait_until_sync(lambda: again.call("GET", f"/run/{queued}/summary")[1]["state"] == "RUNNING", 60,
                    "the queued run playing after the restart")
    listed = {r["run_id"] for r in again.call("GET", "/runs")[1]["runs"]}
    assert {playing, queued, dropped} <= listed


async def test_a_queued_run_the_restarted_server_cannot_play_is_closed_with_the_reason(
        esr_home: Path, demo_target: Any, servers: list[Server], tmp_path: Path) -> None:
    url, _ = await demo_target()
    first = Server(esr_home)
    servers.append(first)
    _launch(first, url)
    queued = _launch(first, url)
    first.stop(signal.SIGKILL)
    strict = tmp_path / "strict.json"
    strict.write_text(json.dumps({"loopback": False, "targets": {}}))  # loopback targets no longer allowed
    again = Server(esr_home, {"ESR_TARGETS": str(strict)})
    servers.append(again)
    status, summary = again.call("GET", f"/run/{queued}/summary")
    assert status == 200 and summary["state"] == "ABORTED"
    assert "not queued again after a restart" in summary["reason"] and "refusing" in summary["reason"]
    again.stop(signal.SIGTERM)
    third = Server(esr_home, {"ESR_TARGETS": str(strict)})  # and it stays so
    servers.append(third)
    assert third.call("GET", f"/run/{queued}/summary")[1]["reason"] == summary["reason"]


async def test_run_logs_are_readable_by_their_owner_only(esr_home: Path, demo_target: Any, tmp_path: Path) -> None:
    url, _ = await demo_target()
    await _small_log(esr_home, url)
    runs = esr_home / "runs"
    for path in [runs, *runs.iterdir(), *runs.glob(f"*/{LOG_NAME}")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o077 == 0, (path, oct(mode))
