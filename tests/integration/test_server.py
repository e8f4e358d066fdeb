"""The ESR server over real HTTP on loopback: launch, summary, abort, errors, recovery, client."""

from __future__ import annotations

import asyncio
import json
import re
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from busy import PUNCTUALITY_NOT_JUDGED
from loopback import wait_for_port, wait_until
from openapi_spec_validator import validate

from esr import client
from esr.api.auth import Tokens
from esr.api.server import MANAGER, make_app
from esr.bus.runlog import read_events
from esr.core.targets import TargetRegistry

pytestmark = pytest.mark.integration

TOKENS = Tokens(admin="launch-token-for-tests", observer="observer-token-for-tests")
ADMIN = {"Authorization": "Bearer launch-token-for-tests"}
OBSERVER = {"Authorization": "Bearer observer-token-for-tests"}
SMALL = {"name": "api", "duration_hours": 1, "time_warp": 1800, "load_profile": [[0, 20]], "seed": 2,
         "assertions": ["error_rate < 0.01"], **PUNCTUALITY_NOT_JUDGED}


@pytest.fixture
async def server(esr_home: Path) -> AsyncIterator[Callable[..., Awaitable[tuple[str, web.Application]]]]:
    runners: list[web.AppRunner] = []

    async def start(**kw: Any) -> tuple[str, web.Application]:
        app = make_app(esr_home, registry=TargetRegistry(), tokens=TOKENS, **kw)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        return f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}", app  # type: ignore[union-attr]

    yield start
    for runner in runners:
        await runner.cleanup()


async def call(method: str, url: str, headers: dict[str, str] | None = None, body: Any = None) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session:
        async with session.request(method, url, headers=headers, json=body) as response:
            return response.status, await response.json()


async def summary_of(url: str, run_id: str) -> dict[str, Any]:
    status, summary = await call("GET", f"{url}/run/{run_id}/summary", OBSERVER)
    assert status == 200, summary
    return summary


async def wait_until_ended(url: str, run_id: str, limit_s: float = 120) -> dict[str, Any]:
    """The summary once the run ended and its verdict is in (an aborted run is ABORTED a moment
    before its verdict is)."""
    async def ended() -> dict[str, Any] | None:
        summary = await summary_of(url, run_id)
        return summary if summary["state"] in ("FINISHED", "ABORTED") and summary["verdict"] else None

    return await wait_until(ended, limit_s, f"run {run_id} ended")


async def wait_until_playing(url: str, run_id: str) -> dict[str, Any]:
    """The summary once the run is RUNNING and has recorded results."""
    async def playing() -> dict[str, Any] | None:
        summary = await summary_of(url, run_id)
        return summary if summary["state"] == "RUNNING" and summary["progress"]["requests"] > 0 else None

    return await wait_until(playing, 60, f"run {run_id} playing")


async def test_launch_and_read_the_verdict(server: Any, demo_target: Any) -> None:
    target_url, _ = await demo_target()
    url, _ = await server()
    status, launched = await call("POST", f"{url}/run", ADMIN, SMALL | {"target": target_url})
    assert status == 202 and launched["state"] == "QUEUED"
    summary = await wait_until_ended(url, launched["run_id"])
    assert summary["state"] == "FINISHED" and summary["verdict"] == "PASS"
    assert summary["assertions"][0]["assertion"] == "error_rate < 0.01"
    assert summary["summary"]["requests"] == summary["completeness"]["arrivals_planned"] > 0
    status, listing = await call("GET", f"{url}/runs", OBSERVER)
    assert status == 200 and listing["runs"][0]["run_id"] == launched["run_id"]


async def test_errors_are_specific(server: Any, demo_target: Any) -> None:
    target_url, _ = await demo_target()
    url, _ = await server()
    assert (await call("POST", f"{url}/run", None, SMALL | {"target": target_url}))[0] == 401
    status, body = await call("POST", f"{url}/run", OBSERVER, SMALL | {"target": target_url})
    assert status == 403 and "read-only" in body["error"]
    status, body = await call("POST", f"{url}/run", ADMIN, SMALL | {"target": "http://192.0.2.7"})
    assert status == 403 and "not in the target registry" in body["error"]
    status, body = await call("POST", f"{url}/run", ADMIN, SMALL | {"time_warp": -1, "assertions": ["latncy < 1"],
                                                                    "target": target_url})
    assert status == 422
    assert {e["path"] for e in body["errors"]} == {"time_warp", "assertions[0]"}
    status, body = await call("GET", f"{url}/run/nope/summary", OBSERVER)
    assert status == 404 and "GET /runs lists them" in body["error"]
    assert (await call("POST", f"{url}/run/nope/abort", ADMIN))[0] == 404
    status, spec = await call("GET", f"{url}/openapi.json")
    assert status == 200
    validate(spec)


async def test_abort_and_queueing(server: Any, demo_target: Any) -> None:
    target_url, _ = await demo_target()
    url, _ = await server(max_concurrent=1)
    long = SMALL | {"duration_hours": 10, "time_warp": 600, "target": target_url}
    _, first = await call("POST", f"{url}/run", ADMIN, long)
    _, second = await call("POST", f"{url}/run", ADMIN, long)
    playing = await wait_until_playing(url, first["run_id"])  # a minute of load: it plays on while we look
    assert playing["state"] == "RUNNING" and playing["progress"]["requests"] > 0
    queued = await summary_of(url, second["run_id"])
    assert queued["state"] == "QUEUED"
    assert (await call("POST", f"{url}/run/{first['run_id']}/abort", OBSERVER))[0] == 403
    status, aborted = await call("POST", f"{url}/run/{first['run_id']}/abort", ADMIN)
    assert status == 200 and aborted["state"] == "ABORTED" and aborted["verdict"] == "ABORTED"
    _, also = await call("POST", f"{url}/run/{second['run_id']}/abort", ADMIN)
    assert also["state"] == "ABORTED"


async def test_a_restarted_server_rebuilds_runs_from_their_logs(server: Any, demo_target: Any, esr_home: Path) -> None:
    target_url, _ = await demo_target()
    url, app = await server()
    _, done = await call("POST", f"{url}/run", ADMIN, SMALL | {"target": target_url})
    finished = await wait_until_ended(url, done["run_id"])
    _, playing = await call("POST", f"{url}/run", ADMIN, SMALL | {"duration_hours": 10, "time_warp": 600,
                                                                 "target": target_url})
    # a hard stop: the run's task dies without writing its end (as when the process is killed),
    # once its log holds results (flushed every 0.25 s)
    managed = app[MANAGER].get(playing["run_id"])
    await wait_until(lambda: managed.run is not None and getattr(managed.run, "log_path", None) is not None
                     and b'"type":"result"' in managed.run.log_path.read_bytes(), 60, "results in the run log")
    log = managed.run.log_path  # type: ignore[union-attr]
    lines = log.read_bytes().split(b"\n")
    assert managed.task is not None
    managed.task.cancel()
    await asyncio.gather(managed.task, return_exceptions=True)
    log.write_bytes(b"\n".join(line for line in lines
                               if b'"type":"verdict"' not in line and b"run_aborted" not in line))

    url2, _ = await server()
    _, again = await call("GET", f"{url2}/run/{done['run_id']}/summary", OBSERVER)
    assert {k: again[k] for k in ("state", "verdict", "summary", "assertions")} == \
           {k: finished[k] for k in ("state", "verdict", "summary", "assertions")}
    _, interrupted = await call("GET", f"{url2}/run/{playing['run_id']}/summary", OBSERVER)
    assert interrupted["state"] == "ABORTED" and interrupted["verdict"] == "ABORTED"
    assert "server stopped" in interrupted["reason"] and interrupted["completeness"]["results_recorded"] > 0
    assert list(read_events(log))[-1].verdict["verdict"] == "ABORTED"  # type: ignore[attr-defined]


async def test_the_python_client(server: Any, demo_target: Any, monkeypatch: pytest.MonkeyPatch,
                                 esr_home: Path) -> None:
    target_url, _ = await demo_target()
    url, _ = await server()
    monkeypatch.setenv("ESR_URL", url)
    monkeypatch.setenv("ESR_TOKEN", TOKENS.admin)
    scenario = client.Scenario(**SMALL)
    run_id = await asyncio.to_thread(client.launch, scenario, target=target_url)
    summary = await asyncio.to_thread(client.report, run_id, True, poll_s=0.2, timeout_s=120)
    assert summary["state"] == "FINISHED" and summary["verdict"] == "PASS"
    with pytest.raises(client.EsrServerError) as refused:
        await asyncio.to_thread(client.launch, scenario, target="http://192.0.2.7")
    assert refused.value.status == 403
    import hms_esr_client

    assert hms_esr_client.launch is client.launch and hms_esr_client.Scenario is client.Scenario
    assert json.loads(json.dumps(scenario.to_dict()))["name"] == "api"


def test_schemathesis_finds_no_server_error_and_no_schema_mismatch(tmp_path: Path, esr_home: Path) -> None:
    """A client nobody here wrote fuzzes every operation from /openapi.json, every check on. The
    server's registry holds one loopback target (a demo target in its own process) and allows
    no other, so generated scenarios are validated for real and the ones that pass play against
    it, bounded by small server limits."""
    import os
    import socket
    import subprocess
    import sys

    def free() -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]

    sink_port, port = free(), free()
    sink = subprocess.Popen([sys.executable, "-m", "esr.cli", "demo-target", "--port", str(sink_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    esr_home.mkdir(parents=True, exist_ok=True)
    (esr_home / "targets.json").write_text(json.dumps({"loopback": False, "targets": {
        "fuzz": {"url": f"http://127.0.0.1:{sink_port}"}}}))
    assert TargetRegistry.load(esr_home / "targets.json").allow_loopback is False
    env = os.environ.copy() | {"ESR_TOKEN": TOKENS.admin, "ESR_OBSERVER_TOKEN": TOKENS.observer}
    server = subprocess.Popen([sys.executable, "-m", "esr.cli", "serve", "--port", str(port), "--max-concurrent", "4",
                               "--max-rate", "20", "--max-journeys", "200", "--max-real-hours", "0.01",
                               "--max-requests-per-journey", "20"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        wait_for_port(port, 60, f"esr serve listening on port {port}")
        spec = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/openapi.json", timeout=30).read())
        target = spec["components"]["schemas"]["Scenario"] and spec["paths"]["/run"]["post"]["requestBody"]
        assert target["content"]["application/json"]["schema"]["allOf"][1]["properties"]["target"]["enum"] == ["fuzz"]
        schemathesis = Path(sys.executable).with_name("schemathesis")
        # Every check is on. A scenario's strings follow grammars JSON Schema cannot state (response
        # conditions, assertions over known metrics, faults): a schema-valid body may be refused
        # with 422 naming the field, which is the contract, so 422 counts as accepting valid data.
        (tmp_path / "schemathesis.toml").write_text(
            '[checks.positive_data_acceptance]\nexpected-statuses = ["2xx", "401", "403", "404", "409", "422"]\n')
        done = subprocess.run(
            [str(schemathesis), "run", f"http://127.0.0.1:{port}/openapi.json", "--checks", "all",
             "-H", f"Authorization: Bearer {TOKENS.admin}", "--max-examples", "40", "--workers", "1",
             "--seed", "1"],
            capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)  # its cache stays out of the repo
        assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    finally:
        server.terminate()
        server.wait(60)
        sink.terminate()
        sink.wait(60)
    summary = done.stdout.rsplit("Test cases:", 1)[-1]
    assert re.search(r"\d+ passed", summary) and "❌" not in done.stdout, done.stdout[-3000:]
    assert list(esr_home.glob("runs/*/events.jsonl"))  # generated scenarios were accepted and played
