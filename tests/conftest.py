"""Shared fixtures: an isolated ESR_HOME per test, and a real demo target on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from esr.sandbox.demo_target import TARGET_KEY, DemoTarget, DemoTargetConfig, start


@pytest.fixture(autouse=True)
def esr_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "esr-home"
    monkeypatch.setenv("ESR_HOME", str(home))
    monkeypatch.delenv("ESR_TARGET", raising=False)
    monkeypatch.delenv("ESR_TARGETS", raising=False)
    monkeypatch.delenv("ESR_KAFKA", raising=False)  # tests choose their runtime themselves
    return home


@pytest.fixture
async def demo_target() -> AsyncIterator[Callable[..., object]]:
    """Factory: `url, target = await demo_target(latency_ms=5)` starts a target on loopback."""
    runners = []

    async def make(**config: object) -> tuple[str, DemoTarget]:
        runner, url = await start(DemoTargetConfig(**config))  # type: ignore[arg-type]
        runners.append(runner)
        return url, runner.app[TARGET_KEY]

    yield make
    for runner in runners:
        await runner.cleanup()
