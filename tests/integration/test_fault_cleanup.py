"""However a run with faults ends, the target is restored: Ctrl-C and kill -9 of `esr run`, and
an abort through the server, against the sandbox's claims system on loopback."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from loopback import serve, wait_until

from esr.api.auth import Tokens
from esr.api.server import make_app
from esr.core.targets import TargetRegistry
from esr.sandbox.app import ClaimsService, make_claims_app
from esr.sandbox.serve import sandbox_target

pytestmark = pytest.mark.integration

ADMIN = {"Authorization": "Bearer launch-token-for-tests"}
# a long day (30 simulated hours at one per real second): the faults are on when the test acts
DAY = {"name": "outage", "duration_hours": 30, "time_warp": 3600, "load_profile": [[0, 20]], "seed": 8,
       "failure_injection": ["db_down@hour1", "latency(50ms)@hour1"]}


@pytest.fixture
async def claims() -> AsyncIterator[tuple[ClaimsService, str]]:
    service = ClaimsService()
    runner, url = await serve(make_claims_app(service))
    yield service, url
    await runner.cleanup()


def db_down(service: ClaimsService, run_id: str) -> bool:
    office = service.offices.get(run_id)
    return office is not None and "db_down" in office.faults


def refused(url: str) -> bool:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError:
        return True
    return False


async def esr_run(tmp_path: Path, url: str, run_id: str) -> asyncio.subprocess.Process:
    """`esr run` against the claims system, registered with its faults as `dol` in a registry file."""
    registry = {"targets": {"dol": {"url": url, "faults": {
        name: action.model_dump(mode="json", by_alias=True, exclude_none=True)
        for name, action in sandbox_target("dol", url).faults.items()}}}}
    (tmp_path / "targets.json").write_text(json.dumps(registry))
    (tmp_path / "day.json").write_text(json.dumps(DAY))
    env = {"ESR_TARGETS": str(tmp_path / "targets.json"), "ESR_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"}
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "esr.cli", "run", str(tmp_path / "day.json"), "--target", "dol", "--run-id", run_id,
        "--quiet", "--json", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)


@pytest.mark.parametrize("presses", [1, 2], ids=["ctrl-c", "impatient-second-ctrl-c"])
async def test_ctrl_c_restores_the_target(claims: tuple[ClaimsService, str], tmp_path: Path, presses: int) -> None:
    """A second Ctrl-C soon after the first waits for the cleanup: recovery and the log's end still happen."""
    service, url = claims
    run_id = f"20260101-000000-ctrlc{presses}"
    proc = await esr_run(tmp_path, url, run_id)
    await wait_until(lambda: db_down(service, run_id), 60, "db_down on")
    for press in range(presses):
        if press:
            await asyncio.sleep(0.02)  # impatient on purpose: the second press lands during the cleanup
        proc.send_signal(signal.SIGINT)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 3, err.decode()
    assert not db_down(service, run_id), "Ctrl-C must run db_down's recovery"
    verdict = json.loads(out)
    assert verdict["verdict"] == "ABORTED"
    ended = {w["fault"]: w["ended"] for w in verdict["faults"]["windows"]}
    assert ended["db_down@hour1"] == "aborted" and set(ended.values()) == {"aborted"}  # latency may not have begun


async def test_kill_9_leaves_the_guard_to_restore_the_target(claims: tuple[ClaimsService, str],
                                                              tmp_path: Path) -> None:
    service, url = claims
    run_id = "20260101-000000-kill91"
    proc = await esr_run(tmp_path, url, run_id)
    await wait_until(lambda: db_down(service, run_id), 60, "db_down on")
    proc.kill()  # SIGKILL: the run cannot recover anything itself
    await proc.wait()
    await wait_until(lambda: not db_down(service, run_id), 60, "db_down recovered")  # the fault guard did


async def test_an_abort_through_the_server_restores_the_target(claims: tuple[ClaimsService, str],
                                                               esr_home: Path) -> None:
    service, url = claims
    registry = TargetRegistry()
    registry.register(sandbox_target("prod-like-staging.dol.gov", url))
    app = make_app(esr_home, registry=registry,
                   tokens=Tokens(admin="launch-token-for-tests", observer="observer-token-for-tests"))
    runner, server = await serve(app)
    try:
        async with aiohttp.ClientSession(headers=ADMIN) as session:
            async with session.post(f"{server}/run", json=DAY | {"target": "prod-like-staging.dol.gov"}) as r:
                assert r.status == 202
                run_id = (await r.json())["run_id"]
            await wait_until(lambda: db_down(service, run_id), 60, "db_down on")

            async def summary() -> dict[str, Any]:
                async with session.get(f"{server}/run/{run_id}/summary") as r:
                    return await r.json()

            async def both_on() -> dict[str, Any] | None:  # db_down counts once its start action answered
                progress = (await summary()).get("progress", {})
                return progress if progress.get("active_faults") == ["db_down", "latency"] else None

            async def aborted() -> dict[str, Any] | None:  # ABORTED shows a moment before the verdict does
                ended = await summary()
                return ended if ended["state"] == "ABORTED" and ended["verdict"] else None

            progress = await wait_until(both_on, 60, "both faults active")
            proxy = progress["fault_proxy"]
            assert proxy.startswith("http://127.0.0.1:") and not refused(proxy)
            async with session.post(f"{server}/run/{run_id}/abort") as r:
                assert r.status in (200, 202)
            ended = await wait_until(aborted, 60, "the run aborted, with its verdict")
        assert ended["state"] == "ABORTED"
        assert not db_down(service, run_id), "an abort must run db_down's recovery"
        assert refused(proxy), "the fault proxy must be gone"
        assert {w["fault"]: w["ended"] for w in ended["faults"]["windows"]} == {
            "db_down@hour1": "aborted", "latency(50ms)@hour1": "aborted"}
    finally:
        await runner.cleanup()
