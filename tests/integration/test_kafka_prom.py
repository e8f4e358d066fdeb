"""The Kafka metrics worker's /metrics (ESR_METRICS_PORT), scraped directly during and after a run."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest
from kafka_pipeline import Pipeline, RunProcess
from loopback import free_port
from prometheus_client.parser import text_string_to_metric_families
from test_kafka_runtime import single_request

pytestmark = [pytest.mark.integration, pytest.mark.kafka]

Samples = list[tuple[str, dict[str, str], float]]


async def scrape(port: int) -> Samples:
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/metrics") as response:
        assert response.status == 200
        text = await response.text()
    return [(s.name, s.labels, s.value) for family in text_string_to_metric_families(text) for s in family.samples]


def total(samples: Samples, name: str) -> float:
    return sum(value for n, _, value in samples if n == name)


async def test_the_metrics_worker_serves_the_same_series(pipeline: Pipeline, demo_target: Any,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    monkeypatch.setenv("ESR_METRICS_PORT", str(port))  # read by the metrics worker alone
    url, _ = await demo_target()
    await pipeline.start_all()
    live: list[Samples] = []

    async def while_playing(run: RunProcess) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # until a scrape shows the run playing with requests counted
            samples = await scrape(port)
            states = {labels["state"] for n, labels, _ in samples if n == "esr_run_info"}
            if states & {"RUNNING", "DRAINING"} and total(samples, "esr_requests_total") > 0:
                live.append(samples)
                return
            if run.proc.returncode is not None:
                return
            await asyncio.sleep(0.1)

    code, verdict, err = await pipeline.run(single_request(rate=40, real_seconds=6), url, during=while_playing)
    assert code == 0, err
    assert live, "no scrape showed the run playing"
    assert all(labels["sim"] == "true" and labels["run_id"] == verdict["run_id"] for _, labels, _ in live[0])
    assert total(live[0], "esr_sim_time_seconds") > 0

    ended = await scrape(port)
    assert all(labels["sim"] == "true" and labels["scenario"] == "kafka_status" for _, labels, _ in ended)
    requests = verdict["summary"]["requests"]
    assert total(ended, "esr_requests_total") == requests == verdict["completeness"]["arrivals_planned"] > 0
    assert total(ended, "esr_request_latency_seconds_count") == requests
    assert [labels["endpoint"] for n, labels, _ in ended if n == "esr_requests_total"] == ["GET /"]
    assert [(labels["verdict"], v) for n, labels, v in ended if n == "esr_verdict"] == [(verdict["verdict"], 1.0)]
    assert [labels["state"] for n, labels, _ in ended if n == "esr_run_info"] == ["FINISHED"]
    holds = {labels["assertion"]: v for n, labels, v in ended if n == "esr_assertion_holds"}
    assert holds == {a["assertion"]: float(a["holds"]) for a in verdict["assertions"]}
