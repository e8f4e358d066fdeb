"""GET /metrics scraped by a real Prometheus (Debian's `prometheus`), every port on loopback."""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from busy import PUNCTUALITY_NOT_JUDGED
from loopback import free_port, wait_until
from prometheus_client.parser import text_string_to_metric_families
from real_parts import missing
from test_server import ADMIN, SMALL, call, server, wait_until_ended, wait_until_playing  # noqa: F401 - server is a fixture

pytestmark = pytest.mark.integration

PROMETHEUS = "/usr/bin/prometheus"
CLAIM = {
    "name": "claim",
    "steps": [
        {"name": "file", "request": {"method": "POST", "path": "/claims", "json": {"wages": 1000}},
         "expect": {"status": [201]}, "extract": {"claim_id": "$.id"}},
        {"name": "paid", "request": {"path": "/claims/{{ vars.claim_id }}"},
         "poll": {"every": "2h", "until": "$.status == 'paid'", "give_up_after": "72h"}},
    ],
    "sla": [{"from": "file", "to": "paid", "within": "48h"}],
}
SLA_RUN = {"name": "prom", "duration_hours": 1, "time_warp": 3600, "drain_warp": 72000, "seed": 5,
           "load_profile": [[0, 20]], "journeys": [CLAIM],
           "assertions": ["error_rate < 0.5", "sla_48h_success_rate > 0.99", "latency_p95_ms < 5000"],
           **PUNCTUALITY_NOT_JUDGED}


@pytest.fixture
def prometheus_binary() -> str:
    if os.path.exists(PROMETHEUS):
        return PROMETHEUS
    missing(f"no Prometheus at {PROMETHEUS}: install Debian's package (`apt-get install prometheus`, "
            "or `make system-deps` as root)")


@pytest.fixture
async def prometheus(prometheus_binary: str, tmp_path: Path) -> AsyncIterator[Callable[[str], Awaitable[str]]]:
    """Factory: `api = await prometheus("127.0.0.1:PORT")` scrapes that /metrics every second."""
    procs: list[tuple[subprocess.Popen, Path]] = []

    async def start(target: str) -> str:
        folder = tmp_path / f"prometheus-{len(procs)}"
        folder.mkdir()
        (folder / "prometheus.yml").write_text(
            "global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}\n"
            "scrape_configs: [{job_name: esr, metrics_path: /metrics, "
            f"static_configs: [{{targets: ['{target}']}}]}}]\n")
        listen = f"127.0.0.1:{free_port()}"
        log = folder / "prometheus.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(  # noqa: S603 - a fixed binary, loopback only
                [prometheus_binary, f"--config.file={folder / 'prometheus.yml'}",
                 f"--storage.tsdb.path={folder / 'data'}", f"--web.listen-address={listen}"],
                stdout=out, stderr=out, stdin=subprocess.DEVNULL)
        procs.append((proc, log))
        api = f"http://{listen}"

        async def ready() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"prometheus exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
            try:
                async with aiohttp.ClientSession() as session, session.get(f"{api}/-/ready") as response:
                    return response.status == 200
            except aiohttp.ClientError:
                return False

        try:
            await wait_until(ready, 120, "prometheus ready")
        except AssertionError as late:
            raise AssertionError(f"{late}; its log:\n{log.read_text()[-3000:]}") from None
        return api

    yield start
    for proc, _ in procs:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


async def query(api: str, promql: str) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{api}/api/v1/query", params={"query": promql}) as response:
            body = await response.json()
    assert body["status"] == "success", body
    return body["data"]["result"]


async def wait_for_series(api: str, promql: str, *, limit_s: float = 60.0, count: int = 1) -> list[dict[str, Any]]:
    """Poll (bounded) until the query returns at least `count` series."""
    async def found() -> list[dict[str, Any]] | None:
        series = await query(api, promql)
        return series if len(series) >= count else None

    return await wait_until(found, limit_s, f"Prometheus has {promql}")


def by_name(series: list[dict[str, Any]]) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for s in series:
        labels = dict(s["metric"])
        out.setdefault(labels.pop("__name__"), []).append((labels, float(s["value"][1])))
    return out


async def scrape(url: str, accept: str = "") -> tuple[str, str]:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{url}/metrics", headers={"Accept": accept} if accept else {}) as response:
            assert response.status == 200
            return response.headers["Content-Type"], await response.text()


def samples(text: str, run_id: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples
            if s.labels.get("run_id") == run_id}


async def test_prometheus_scrapes_a_finished_run_exactly(server: Any, demo_target: Any, prometheus: Any) -> None:
    target_url, _ = await demo_target(error_rate=0.03, process_hours=(20.0, 70.0), seed=3)
    url, _ = await server()
    status, launched = await call("POST", f"{url}/run", ADMIN, SLA_RUN | {"target": target_url})
    assert status == 202
    run_id = launched["run_id"]
    summary = await wait_until_ended(url, run_id)
    figures = summary["summary"]
    assert summary["state"] == "FINISHED" and figures["requests"] > 0
    assert figures["errors"] > 0 and figures["sla_48h_met"] > 0 and figures["sla_48h_missed"] > 0

    content_type, text = await scrape(url)
    assert content_type.startswith("text/plain; version=0.0.4")
    content_type, _ = await scrape(url, "application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    restarted, _ = await server()  # the run recovered from its log gives the same series
    assert samples((await scrape(restarted))[1], run_id) == samples(text, run_id)

    api = await prometheus(url.removeprefix("http://"))
    await wait_for_series(api, f'esr_requests_total{{run_id="{run_id}"}}')
    series = await query(api, f'{{__name__=~"esr_.+", run_id="{run_id}"}}')
    assert series and all(s["metric"]["sim"] == "true" and s["metric"]["scenario"] == "prom" for s in series)
    found = by_name(series)
    total = {name: sum(v for _, v in found.get(name, [])) for name in found}
    assert total["esr_requests_total"] == figures["requests"]
    assert total["esr_request_latency_seconds_count"] == figures["requests"]
    assert total["esr_errors_total"] == figures["errors"]
    kinds: dict[str, float] = {}
    for labels, v in found["esr_errors_total"]:
        kinds[labels["kind"]] = kinds.get(labels["kind"], 0) + v
    assert kinds == {k.removeprefix("errors_"): v for k, v in figures.items() if k.startswith("errors_")}
    run = {"sim": "true", "run_id": run_id, "scenario": "prom", "instance": url.removeprefix("http://"), "job": "esr"}
    assert found["esr_sla_met_total"] == [(run | {"sla": "48h"}, figures["sla_48h_met"])]
    assert found["esr_sla_missed_total"] == [(run | {"sla": "48h"}, figures["sla_48h_missed"])]
    assert found["esr_verdict"] == [(run | {"verdict": summary["verdict"]}, 1.0)]
    assert found["esr_run_info"] == [(run | {"state": "FINISHED"}, 1.0)]
    holds = {labels["assertion"]: v for labels, v in found["esr_assertion_holds"]}
    assert holds == {a["assertion"]: float(a["holds"]) for a in summary["assertions"]}
    values = {labels["assertion"]: v for labels, v in found["esr_assertion_value"]}
    assert values == pytest.approx({a["assertion"]: a["observed"] for a in summary["assertions"]})
    infinite = [v for labels, v in found["esr_request_latency_seconds_bucket"] if labels["le"] == "+Inf"]
    assert sorted(infinite) == sorted(v for _, v in found["esr_request_latency_seconds_count"])


async def test_prometheus_follows_a_live_run(server: Any, demo_target: Any, prometheus: Any) -> None:
    target_url, _ = await demo_target()
    url, _ = await server()
    # 200 s of load, aborted below: it plays on whatever the test takes
    long = SMALL | {"name": "prom", "duration_hours": 100, "time_warp": 1800, "target": target_url}
    _, launched = await call("POST", f"{url}/run", ADMIN, long)
    run_id = launched["run_id"]
    await wait_until_playing(url, run_id)  # so every scrape sees it past simulated time 0
    api = await prometheus(url.removeprefix("http://"))

    async def three_scrapes() -> list[dict[str, Any]] | None:  # of the playing run, stored
        series = await query(api, f'esr_sim_time_seconds{{run_id="{run_id}"}}[30s]')
        return series if series and len(series[0]["values"]) >= 3 else None

    played = await wait_until(three_scrapes, 60, "three scrapes of the playing run")
    sim = [float(v) for _, v in played[0]["values"]]
    assert len(sim) >= 3 and sim == sorted(sim) and sim[-1] > sim[0] > 0
    requests = await query(api, f'sum(esr_requests_total{{run_id="{run_id}"}})')
    assert float(requests[0]["value"][1]) > 0
    state = await query(api, f'esr_run_info{{run_id="{run_id}"}}')
    assert state[0]["metric"]["state"] == "RUNNING" and state[0]["metric"]["sim"] == "true"
    status, aborted = await call("POST", f"{url}/run/{run_id}/abort", ADMIN)
    assert status == 200 and aborted["verdict"] == "ABORTED"
