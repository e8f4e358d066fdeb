"""`esr serve` on the Kafka runtime: the API publishes the run's start, the workers play it,
the summary shows the verdict from the verdict topic, and a restarted server still has it."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import aiohttp
import pytest
from kafka_pipeline import Pipeline
from loopback import free_port
from test_kafka_runtime import single_request

pytestmark = [pytest.mark.integration, pytest.mark.kafka]

TOKEN = "kafka-test-token"


async def serve(pipeline: Pipeline, port: int) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "esr.cli", "serve", "--port", str(port), stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE, env=pipeline.env | {"ESR_TOKEN": TOKEN})
    assert proc.stderr is not None
    line = await asyncio.wait_for(proc.stderr.readline(), 120)
    # the server's first line says where it runs; nothing of the Kafka client's own logs comes before it
    if b"runtime: Kafka at " + pipeline.settings.bootstrap.encode() not in line:
        proc.kill()  # not left running after the test
        await proc.wait()
        raise AssertionError(line)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return proc
        except OSError:
            await asyncio.sleep(0.1)
    raise AssertionError("the server did not listen")


async def test_the_server_plays_runs_on_the_workers_and_keeps_their_verdicts(
        pipeline: Pipeline, demo_target: Any, esr_home: Any) -> None:
    url, target = await demo_target()
    await pipeline.start_all(bots=1)
    port = free_port()
    server = await serve(pipeline, port)
    base, auth = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {TOKEN}"}
    try:
        async with aiohttp.ClientSession(headers=auth) as http:
            body = single_request(rate=20, real_seconds=5) | {"target": url}
            async with http.post(f"{base}/run", json=body) as resp:
                assert resp.status == 202, await resp.text()
                run_id = (await resp.json())["run_id"]
            states, summary = [], {}
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                async with http.get(f"{base}/run/{run_id}/summary") as resp:
                    summary = await resp.json()
                states.append(summary["state"])
                if summary["state"] == "RUNNING":
                    assert summary["progress"]["runtime"] == "kafka"
                    async with http.get(f"{base}/run/{run_id}/timeline") as resp:
                        live = await resp.json()
                    assert live["run"]["run_id"] == run_id
                    if live["verdict"] is not None:  # it ended between the two requests: no verdict before its time
                        async with http.get(f"{base}/run/{run_id}/summary") as resp:
                            assert (await resp.json())["state"] != "RUNNING"
                if summary["verdict"]:
                    break
                await asyncio.sleep(0.1)
            drawn: dict = {}
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:  # the metrics worker's final timeline reaches the dashboard too
                async with http.get(f"{base}/run/{run_id}/timeline") as resp:
                    drawn = await resp.json()
                if sum(drawn.get("requests", [])) == summary["summary"]["requests"]:
                    break
                await asyncio.sleep(0.1)
        assert "RUNNING" in states
        assert (summary["state"], summary["verdict"]) == ("FINISHED", "PASS"), summary
        c = summary["completeness"]
        assert c["complete"] is True and c["results_recorded"] == c["arrivals_planned"] == target.requests
        assert sum(drawn["requests"]) == target.requests and drawn["verdict"]["verdict"] == "PASS"
        assert len(drawn["t"]) > 10 and drawn["run"]["run_id"] == run_id
    finally:
        server.terminate()
        await server.wait()

    again = await serve(pipeline, port)
    try:
        async with aiohttp.ClientSession(headers=auth) as http:
            async with http.get(f"{base}/run/{run_id}/summary") as resp:
                again_summary = await resp.json()
        # the same run, verdict and figures; the dashboard link is minted anew (a fresh expiry)
        link = again_summary.pop("dashboard_url")
        assert link.startswith(f"{base}/dashboard/{run_id}?token=esr1.{run_id}.")
        assert again_summary == {k: v for k, v in summary.items() if k != "dashboard_url"}
        async with aiohttp.ClientSession(headers=auth) as http:
            async with http.get(f"{base}/runs") as resp:
                listed = (await resp.json())["runs"]
        assert [(r["run_id"], r["state"], r["verdict"]) for r in listed] == [(run_id, "FINISHED", "PASS")]
        async with aiohttp.ClientSession(headers=auth) as http:
            async with http.get(f"{base}/run/{run_id}/timeline") as resp:
                again_drawn = await resp.json()
        assert again_drawn["verdict"]["verdict"] == "PASS" and again_drawn["requests"] == drawn["requests"]
    finally:
        again.terminate()
        await again.wait()
    assert json.dumps(summary)
