"""Other services read the verdict topic: kcat (Debian's Kafka client, written by others)
and the example listener in examples/, after a real run on the Kafka runtime."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from kafka_pipeline import Pipeline
from real_parts import missing
from test_kafka_runtime import single_request

pytestmark = [pytest.mark.integration, pytest.mark.kafka]

ROOT = Path(__file__).resolve().parents[2]


def kcat() -> str:
    path = shutil.which("kcat") or shutil.which("kafkacat")
    if path is None:
        missing("kcat is not installed (Debian package kcat; .ci/run installs it)")
    return path


async def test_kcat_and_the_example_listener_read_the_verdict(pipeline: Pipeline, demo_target: Any) -> None:
    url, _ = await demo_target()
    await pipeline.start_all(bots=1)
    code, verdict, err = await pipeline.run(single_request(rate=20, real_seconds=4), url)
    assert code == 0, err
    run_id = verdict["run_id"]

    topic = pipeline.settings.topic("verdicts")
    out = await asyncio.to_thread(subprocess.run, [
        kcat(), "-b", pipeline.settings.bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-J", "-q"],
        capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    envelopes = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    assert len(envelopes) == 1
    envelope = envelopes[0]
    assert envelope["key"] == run_id
    assert {"sim": "true", "type": "verdict", "run_id": run_id}.items() <= dict(
        zip(envelope["headers"][::2], envelope["headers"][1::2], strict=True)).items()
    event = json.loads(envelope["payload"])
    assert (event["type"], event["run_id"], event["sim"]) == ("verdict", run_id, True)
    assert verdict.pop("run_log") is None  # Kafka runs keep no local run log
    assert event["verdict"] == verdict  # the same JSON `esr run --kafka` printed
    assert event["verdict"]["verdict"] == "PASS"
    assert event["verdict"]["completeness"]["complete"] is True

    listener = await asyncio.to_thread(subprocess.run, [
        sys.executable, str(ROOT / "examples" / "verdict_listener.py"), "--kafka", pipeline.settings.bootstrap,
        "--prefix", pipeline.settings.prefix, "--from-beginning", "--max", "1", "--timeout", "30"],
        capture_output=True, text=True, timeout=60)
    assert listener.returncode == 0, listener.stderr
    heard = json.loads(listener.stdout)
    assert heard == {"run_id": run_id, "verdict": "PASS", "reason": verdict["reason"], "complete": True,
                     "results": verdict["completeness"]["results_recorded"]}
