"""`esr replay` on the Kafka runtime: the replay producer publishes the logged requests to
`esr.requests`, two bot workers send them, the metrics worker judges the replay."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kafka_pipeline import Pipeline
from test_replay import BASE, write_logs

pytestmark = [pytest.mark.integration, pytest.mark.kafka]


async def test_a_replay_on_kafka_sends_every_logged_request_once_and_is_judged(
        pipeline: Pipeline, recorder: Any, tmp_path: Path) -> None:
    url, rec = recorder
    expected = write_logs(tmp_path / "logs")
    await pipeline.start_all(bots=2)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "esr.cli", "replay", "--warp", "60", str(tmp_path / "logs"), "--target", url,
        "--json", "--assert", "requests == 7", "--redact", "ssn", stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=pipeline.env)
    out, err = await asyncio.wait_for(proc.communicate(), 180)
    assert proc.returncode == 0, err.decode()
    result = json.loads(out)
    verdict = result["verdict"]
    assert verdict["verdict"] == "PASS", verdict["reason"]
    c = verdict["completeness"]
    assert c["complete"] is True and c["results_recorded"] == 7 and c["arrivals_planned"] == 7
    assert (c["results_lost"], c["shard_reports_missing"], c["duplicates_dropped"]) == (0, 0, 0)
    assert result["replay"]["runtime"] == "kafka"

    sent = {(s["method"], s["target"], s["sim_time"]) for s in rec.seen}
    assert len(rec.seen) == 7
    assert sent == {(m.split()[0], m.split()[1].replace("123-45-6789", "REDACTED"),
                     datetime.fromtimestamp(BASE + dt, UTC).isoformat(timespec="milliseconds"))
                    for dt, m in expected}
    # one client's requests stay in order on one bot
    first_client = [s["sim_time"] for s in rec.seen if s["target"] != "/status"]
    assert first_client == sorted(first_client)
