"""`esr grafana push` against a loopback stub of Grafana's HTTP API, with the log of a real run
(a fault and a trainee decision in it). No Grafana server is installed here: the stub answers the
calls grafana-client makes, as Grafana documents them, and records them."""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from busy import PUNCTUALITY_NOT_JUDGED
from loopback import wait_until

from esr.bus.runlog import read_events, run_log_path
from esr.core.buckets import RunFold
from esr.core.scenario import Scenario
from esr.core.targets import TargetRegistry
from esr.engine.runner import Run

pytestmark = pytest.mark.integration

TOKEN = "glsa_stub-token"
FAULT = "errors(rate=0.5, status=503)@hour1+1h"


@dataclass
class GrafanaStub:
    """Grafana's folder, dashboard and annotation endpoints, kept in memory; 401 without the token."""

    token: str = TOKEN
    provisioned: set[str] = field(default_factory=set)  # dashboard uids Grafana loaded from files
    fail: dict[str, int] = field(default_factory=dict)  # path -> status to answer instead
    requests: list[dict[str, Any]] = field(default_factory=list)
    folders: dict[str, str] = field(default_factory=dict)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)
    annotations: dict[int, dict[str, Any]] = field(default_factory=dict)
    ids: Any = field(default_factory=lambda: itertools.count(1))

    @web.middleware
    async def record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body = await request.json() if request.body_exists else None
        self.requests.append({"method": request.method, "path": request.path, "query": request.query,
                              "authorization": request.headers.get("Authorization"), "body": body})
        if request.path != "/api/health" and request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"message": "invalid API key"}, status=401)
        if request.path in self.fail:
            return web.json_response({"message": "database is locked"}, status=self.fail[request.path])
        return await handler(request)

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"commit": "stub", "database": "ok", "version": "12.1.0"})

    async def list_folders(self, request: web.Request) -> web.Response:
        return web.json_response([{"uid": uid, "title": title} for uid, title in self.folders.items()])

    async def create_folder(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.folders[body["uid"]] = body["title"]
        return web.json_response({"id": next(self.ids), "uid": body["uid"], "title": body["title"]})

    async def get_dashboard(self, request: web.Request) -> web.Response:
        uid = request.match_info["uid"]
        if uid in self.provisioned:
            return web.json_response({"dashboard": {"uid": uid}, "meta": {"provisioned": True}})
        if uid not in self.dashboards:
            return web.json_response({"message": "Dashboard not found"}, status=404)
        return web.json_response({"dashboard": self.dashboards[uid]["dashboard"], "meta": {"provisioned": False}})

    async def save_dashboard(self, request: web.Request) -> web.Response:
        body = await request.json()
        uid = body["dashboard"]["uid"]
        if uid in self.dashboards and not body.get("overwrite"):
            return web.json_response({"message": "version-mismatch", "status": "version-mismatch"}, status=412)
        self.dashboards[uid] = body
        return web.json_response({"id": next(self.ids), "uid": uid, "url": f"/d/{uid}/x", "status": "success",
                                  "version": 1})

    async def find_annotations(self, request: web.Request) -> web.Response:
        wanted = set(request.query.getall("tags", []))
        return web.json_response([{"id": i, **a} for i, a in self.annotations.items() if wanted <= set(a["tags"])])

    async def add_annotation(self, request: web.Request) -> web.Response:
        annotation_id = next(self.ids)
        self.annotations[annotation_id] = await request.json()
        return web.json_response({"id": annotation_id, "message": "Annotation added"})

    async def delete_annotation(self, request: web.Request) -> web.Response:
        del self.annotations[int(request.match_info["id"])]
        return web.json_response({"message": "Annotation deleted"})

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.record])
        app.router.add_get("/api/health", self.health)
        app.router.add_get("/api/folders", self.list_folders)
        app.router.add_post("/api/folders", self.create_folder)
        app.router.add_get("/api/dashboards/uid/{uid}", self.get_dashboard)
        app.router.add_post("/api/dashboards/db", self.save_dashboard)
        app.router.add_get("/api/annotations", self.find_annotations)
        app.router.add_post("/api/annotations", self.add_annotation)
        app.router.add_delete("/api/annotations/{id}", self.delete_annotation)
        return app


@pytest.fixture
async def grafana_stub() -> AsyncIterator[tuple[str, GrafanaStub]]:
    stub = GrafanaStub()
    runner = web.AppRunner(stub.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}", stub  # type: ignore[union-attr]  # noqa: SLF001
    await runner.cleanup()


async def esr(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """`esr ARGS` in a subprocess (ESR_HOME is the test's); its exit code and stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "esr.cli", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=os.environ | (env or {}))
    _, err = await asyncio.wait_for(proc.communicate(), 120)
    return proc.returncode or 0, err.decode()


@pytest.fixture
async def finished_run(demo_target: Any, esr_home: Path) -> RunFold:
    """A real three-hour run at one simulated hour per second: a fault in hour 1, a decision on the way."""
    url, _ = await demo_target(latency_ms=1)
    scenario = Scenario(name="grafana_push", duration_hours=3, time_warp=3600, load_profile=[(0, 30)], seed=6,
                        assertions=["error_rate < 0.9"], failure_injection=[FAULT], **PUNCTUALITY_NOT_JUDGED)
    run = Run(scenario, TargetRegistry().resolve(url), home=esr_home)
    task = asyncio.get_running_loop().create_task(run.execute())
    # the decision is made while the load plays (3 s), after the first results: 0 < its sim time < 3 h
    await wait_until(lambda: run.status.value == "RUNNING" and run.live.requests > 0, 60, "the run playing")
    await run.record_decision("page on-call", "Jane")
    verdict = await task
    assert verdict.status == "PASS", verdict.reason
    return RunFold().apply_all(read_events(run_log_path(esr_home, run.run_id)))


def epoch_ms(fold: RunFold, sim: float) -> int:
    """The real time at which simulated second `sim` was played: the load at the warp, then the drain."""
    s = fold.started
    assert s is not None
    load_end_real = s.load_end_sim / s.time_warp
    real = sim / s.time_warp if sim <= s.load_end_sim else load_end_real + (sim - s.load_end_sim) / s.drain_warp
    return round((s.real_time + real) * 1000)


def calls(stub: GrafanaStub, method: str, path: str) -> list[dict[str, Any]]:
    return [r for r in stub.requests if r["method"] == method and r["path"] == path]


async def test_push_upserts_the_dashboards_and_annotates_the_run(grafana_stub: tuple[str, GrafanaStub],
                                                                 finished_run: RunFold) -> None:
    url, stub = grafana_stub
    fold = finished_run
    run_id = fold.started.run_id  # type: ignore[union-attr]
    code, err = await esr("grafana", "push", "--url", url, "--token", TOKEN)
    assert code == 0, err
    assert f"run {run_id}: 5 annotations (0 replaced)" in err and "dashboard esr-run: " in err

    assert all(r["authorization"] == f"Bearer {TOKEN}" for r in stub.requests if r["path"] != "/api/health")
    assert stub.folders == {"esr-simulated": "ESR (simulated)"}
    saved = calls(stub, "POST", "/api/dashboards/db")
    assert [s["body"]["dashboard"]["uid"] for s in saved] == ["esr-overview", "esr-run"]
    for body in (s["body"] for s in saved):
        assert body["overwrite"] is True and body["folderUid"] == "esr-simulated"
        assert "sim=true" in body["dashboard"]["tags"] and body["dashboard"].get("id") is None

    run = ["sim=true", f"run_id:{run_id}"]
    posted = [r["body"] for r in calls(stub, "POST", "/api/annotations")]
    (window,) = fold.faults.values()
    (decision,) = fold.decisions
    assert fold.finished is not None and fold.verdict is not None
    assert [(a["time"], a["timeEnd"], a["tags"]) for a in posted] == [
        (epoch_ms(fold, 0.0), None, [*run, "esr:start"]),
        (epoch_ms(fold, 3600.0), epoch_ms(fold, 7200.0), [*run, "esr:fault", "fault:errors"]),
        (epoch_ms(fold, decision.sim_time), None, [*run, "esr:decision"]),
        (epoch_ms(fold, fold.finished.sim_time), None, [*run, "esr:end"]),
        (epoch_ms(fold, fold.verdict.sim_time), None, [*run, "esr:verdict", "verdict:PASS"]),
    ]
    assert (window.fault, window.start_sim, window.end_sim) == (FAULT, 3600.0, 7200.0)
    assert posted[0]["time"] == round(fold.started.real_time * 1000)  # type: ignore[union-attr]
    assert posted[2]["text"] == "decision by Jane: page on-call" and FAULT in posted[1]["text"]
    assert posted[4]["text"].startswith("verdict PASS")
    assert 0 < decision.sim_time < 3 * 3600 and fold.finished.sim_time >= 3 * 3600

    # a second push, from the environment, replaces the run's annotations instead of adding more
    code, err = await esr("grafana", "push", "--run", run_id, env={"ESR_GRAFANA_URL": url, "ESR_GRAFANA_TOKEN": TOKEN})
    assert code == 0, err
    assert f"run {run_id}: 5 annotations (5 replaced)" in err
    assert sorted(a["time"] for a in stub.annotations.values()) == sorted(a["time"] for a in posted)
    assert len(calls(stub, "POST", "/api/folders")) == 1


async def test_a_wrong_token_is_refused_with_the_fix(grafana_stub: tuple[str, GrafanaStub],
                                                     finished_run: RunFold) -> None:
    url, stub = grafana_stub
    code, err = await esr("grafana", "push", "--url", url, "--token", "glsa_wrong")
    assert code == 2
    assert "answered 401 to GET /api/folders" in err and "--token or ESR_GRAFANA_TOKEN" in err
    assert "glsa_wrong" not in err and "Traceback" not in err
    assert stub.dashboards == {} and stub.annotations == {}


async def test_a_grafana_failure_names_the_call(grafana_stub: tuple[str, GrafanaStub]) -> None:
    url, stub = grafana_stub
    stub.fail["/api/dashboards/db"] = 500
    code, err = await esr("grafana", "push", "--url", url, "--token", TOKEN)
    assert code == 2 and "Traceback" not in err
    assert "failed POST /api/dashboards/db (esr-overview): Server Error 500: database is locked" in err


async def test_provisioned_dashboards_are_left_alone(grafana_stub: tuple[str, GrafanaStub]) -> None:
    url, stub = grafana_stub
    stub.provisioned = {"esr-overview", "esr-run"}
    code, err = await esr("grafana", "push", "--url", url, "--token", TOKEN)
    assert code == 0, err
    assert calls(stub, "POST", "/api/dashboards/db") == [] and "provisioned from files" in err
    assert "dashboards only" in err


async def test_no_grafana_there() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    code, err = await esr("grafana", "push", "--url", f"http://127.0.0.1:{port}", "--token", TOKEN)
    assert code == 2 and "cannot reach Grafana" in err and "GET /api/health" in err

