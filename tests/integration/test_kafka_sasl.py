"""ESR_KAFKA_CONFIG on a real broker that wants a login: a broker of this test's own with a
SASL_PLAINTEXT (PLAIN) listener (deploy/kafka/kafka.sh with ESR_KAFKA_SASL_USERS); the clock,
bot and Faust metrics workers and `esr run` all reach it only through that listener. With the
right password the run passes; with a wrong one every command stops at once with the broker's
refusal, and the password never shows."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from kafka_pipeline import Pipeline
from loopback import free_ports
from test_kafka_runtime import KAFKA_SH, single_request

from esr.bus.client_config import read_client_config
from esr.bus.kafka import KafkaSettings, ensure_topics

pytestmark = [pytest.mark.integration, pytest.mark.kafka]


async def kafka_sh(*args: str, env: dict[str, str] | None = None) -> str:
    proc = await asyncio.create_subprocess_exec(str(KAFKA_SH), *args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT, env=env)
    out, _ = await proc.communicate()
    assert proc.returncode == 0, out.decode()
    return out.decode()


async def esr(*args: str, env: dict[str, str], timeout: float = 60.0) -> tuple[int, str]:
    """An `esr` command to its end (killed past `timeout`: a hang fails the test, it does not stall it)."""
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "esr.cli", *args, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        out, _ = await proc.communicate()
        raise AssertionError(f"esr {' '.join(args)} still running after {timeout}s:\n{out.decode()[-2000:]}") from None
    return proc.returncode or 0, out.decode(errors="replace")


async def test_a_run_through_a_sasl_listener_passes_and_a_wrong_password_is_refused_at_once(
        kafka_bootstrap: str, demo_target: Any, tmp_path: Path) -> None:
    port = free_ports(3)
    password = secrets.token_hex(8)
    await kafka_sh("start", str(tmp_path / "broker"), str(port), env={**os.environ,
                                                                      "ESR_KAFKA_SASL_USERS": f"alice:{password}"})
    good, bad = tmp_path / "good.properties", tmp_path / "bad.properties"
    login = "# the test broker's SASL listener\nsecurity.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n"
    good.write_text(f"{login}sasl.username=alice\nsasl.password={password}\n")
    bad.write_text(f"{login}sasl.username=alice\nsasl.password=not-{password}\n")
    sasl = f"127.0.0.1:{port + 2}"
    settings = KafkaSettings(sasl, prefix=f"t{uuid.uuid4().hex[:8]}.", partitions=2,
                             client_config=read_client_config(good))
    pipe = Pipeline(settings, tmp_path, extra_env={"ESR_KAFKA_CONFIG": str(good)})
    try:
        ensure_topics(settings)  # through the SASL listener, as alice
        url, target = await demo_target()
        await pipe.start_all(bots=1)

        code, verdict, err = await pipe.run(single_request(rate=20, real_seconds=4), url)

        assert code == 0, err
        assert verdict["verdict"] == "PASS", verdict["reason"]
        c = verdict["completeness"]
        planned = c["arrivals_planned"]
        assert 40 < planned < 130  # Poisson arrivals around 20/s for 4 s
        assert (c["complete"], c["results_recorded"], c["results_lost"]) == (True, planned, 0)
        assert target.requests == planned
        for worker in pipe.workers:
            assert password not in worker.text()
        assert password not in err

        # the same commands with a wrong password: refused by the broker, said at once, non-zero
        wrong = pipe.env | {"ESR_KAFKA_CONFIG": str(bad)}
        scenario = tmp_path / "wrong.json"
        scenario.write_text(json.dumps(single_request(rate=20, real_seconds=4)))
        for args in (("run", str(scenario), "--target", url), ("worker", "bots")):
            code, out = await esr(*args, env=wrong)
            assert code == 2, out
            assert f"the Kafka broker at {sasl} refused ESR's login" in out, out
            assert "Authentication failed" in out and f"ESR_KAFKA_CONFIG={bad}" in out, out
            assert password not in out and "Traceback" not in out
        assert target.requests == planned  # nothing was sent for the refused run
    finally:
        await pipe.close()
        await kafka_sh("stop", str(tmp_path / "broker"))
