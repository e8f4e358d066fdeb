"""Every panel's PromQL of the generated Grafana dashboards, run by a real Prometheus (Debian's
`prometheus`) that scraped an ESR server while a run with a fault played and after it ended."""

from __future__ import annotations

import math
import time
from typing import Any

import aiohttp
import pytest
from test_prometheus import CLAIM, prometheus, prometheus_binary, wait_for_series  # noqa: F401 - fixtures
from test_server import ADMIN, call, server, wait_until_ended  # noqa: F401 - server is a fixture

from esr.observe.grafana import dashboards

pytestmark = pytest.mark.integration

RATE_INTERVAL = "1m"
FAULT = "errors(rate=0.5, status=503)@hour1+1h"
FAULTED_RUN = {"name": "grafana", "duration_hours": 3, "time_warp": 1800, "drain_warp": 72000, "seed": 5,
               "load_profile": [[0, 40]], "journeys": [CLAIM], "failure_injection": [FAULT],
               "assertions": ["error_rate < 0.9", "sla_48h_success_rate > 0.1", "latency_p95_ms < 5000"]}


async def prom_api(api: str, path: str, params: dict[str, Any]) -> Any:
    async with aiohttp.ClientSession() as session, session.get(f"{api}{path}", params=params) as response:
        body = await response.json()
    assert body["status"] == "success", (params, body)
    return body["data"]


def panel_queries(run_id: str) -> list[tuple[str, str, str, bool]]:
    """(dashboard, panel, PromQL with Grafana's variables filled in, instant?) of every target."""
    out = []
    for board in dashboards():
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                expr = target["expr"].replace("$run_id", run_id).replace("$__rate_interval", RATE_INTERVAL)
                assert "$" not in expr, f"an unsubstituted variable in {expr}"
                out.append((board["uid"], panel["title"], expr, bool(target.get("instant"))))
    return out


def finite(values: list[list[Any]]) -> bool:
    return any(math.isfinite(float(v)) for _, v in values)


async def test_every_panel_query_has_data_for_a_finished_run_with_a_fault(
        server: Any, demo_target: Any, prometheus: Any) -> None:
    target_url, _ = await demo_target(process_hours=(20.0, 70.0), seed=3)
    url, _ = await server()
    api = await prometheus(url.removeprefix("http://"))
    await wait_for_series(api, 'up{job="esr"} == 1')  # scraping before the run starts
    begin = time.time() - 5
    status, launched = await call("POST", f"{url}/run", ADMIN, FAULTED_RUN | {"target": target_url})
    assert status == 202, launched
    run_id = launched["run_id"]
    summary = await wait_until_ended(url, run_id, 90)
    assert summary["state"] == "FINISHED" and summary["summary"]["errors_5xx"] > 0
    assert summary["faults"]["windows"][0]["fault"] == FAULT
    await wait_for_series(api, f'esr_verdict{{sim="true", run_id="{run_id}"}}')  # the ended run is scraped
    end = time.time() + 1

    queries = panel_queries(run_id)
    assert len(queries) == sum(len(p.get("targets", [])) for b in dashboards() for p in b["panels"]) >= 20
    empty, no_number = [], []
    for uid, title, expr, instant in queries:
        if instant:
            result = (await prom_api(api, "/api/v1/query", {"query": expr, "time": end}))["result"]
            values = [s["value"] for s in result]
        else:
            data = await prom_api(api, "/api/v1/query_range", {"query": expr, "start": begin, "end": end, "step": 1})
            assert data["resultType"] == "matrix"
            result = data["result"]
            values = [v for s in result for v in s["values"]]
        if not result:
            empty.append(f"{uid} / {title}: {expr}")
        elif not finite(values):
            no_number.append(f"{uid} / {title}: {expr}")
    assert empty == [], "panels without data:\n" + "\n".join(empty)
    assert no_number == [], "panels with only NaN:\n" + "\n".join(no_number)

    # the drill-down's variable lists the run, and its panels are about that run
    runs = await prom_api(api, "/api/v1/label/run_id/values", {"match[]": 'esr_run_info{sim="true"}'})
    assert run_id in runs
    errors = dict((title, expr) for uid, title, expr, _ in queries if uid == "esr-run")["Errors by kind"]
    kinds = {s["metric"]["kind"]
             for s in (await prom_api(api, "/api/v1/query_range",
                                      {"query": errors, "start": begin, "end": end, "step": 1}))["result"]}
    assert "5xx" in kinds
    faults = dict((title, expr) for uid, title, expr, _ in queries if uid == "esr-run")["Faults"]
    found = (await prom_api(api, "/api/v1/query", {"query": faults, "time": end}))["result"]
    assert [(s["metric"]["fault"], s["metric"]["run_id"], s["metric"]["sim"]) for s in found] == [
        ("errors", run_id, "true")]
