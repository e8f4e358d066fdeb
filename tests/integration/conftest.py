"""Integration fixtures: the test session's Kafka broker (started by deploy/kafka/with-broker.sh,
which `make test` uses) and a pipeline of real `esr worker` processes on a fresh topic prefix."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from kafka_pipeline import Pipeline
from real_parts import missing
from recording_server import Recorder

from esr.bus.kafka import KafkaSettings, ensure_topics


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    bootstrap = os.environ.get("ESR_TEST_KAFKA", "")
    if not bootstrap:
        missing("no Kafka broker for the tests: run them with `make test` or "
                "`deploy/kafka/with-broker.sh python -m pytest` (needs Java 17+ and Maven)")
    return bootstrap


@pytest.fixture
def kafka_settings(kafka_bootstrap: str) -> KafkaSettings:
    """Topics and groups under a prefix of this test's own, so tests never see each other."""
    settings = KafkaSettings(kafka_bootstrap, prefix=f"t{uuid.uuid4().hex[:8]}.", partitions=4)
    ensure_topics(settings)
    return settings


@pytest.fixture
async def pipeline(kafka_settings: KafkaSettings, tmp_path: Path) -> AsyncIterator[Pipeline]:
    pipe = Pipeline(kafka_settings, tmp_path)
    yield pipe
    await pipe.close()


@pytest.fixture
async def recorder() -> AsyncIterator[tuple[str, Recorder]]:
    rec = Recorder()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", rec.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # noqa: SLF001
    yield f"http://127.0.0.1:{port}", rec
    await runner.cleanup()
