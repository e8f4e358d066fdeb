"""The Kafka runtime's processes, started for real: `esr worker clock|bots|metrics` and
`esr run --kafka`, each a subprocess talking to the test session's broker."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from esr.bus.kafka import KafkaSettings


@dataclass
class Worker:
    role: str
    proc: asyncio.subprocess.Process
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    async def wait_for(self, needle: str, timeout: float = 120.0, *, count: int = 1) -> None:
        deadline = time.monotonic() + timeout
        while self.text().count(needle) < count:
            if self.proc.returncode is not None:
                raise AssertionError(f"esr worker {self.role} exited ({self.proc.returncode}):\n{self.text()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"esr worker {self.role}: no {needle!r} within {timeout}s:\n{self.text()[-3000:]}")
            await asyncio.sleep(0.1)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 20)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


@dataclass
class RunProcess:
    """A running `esr run --kafka`, with the lines it has written to stderr so far."""

    proc: asyncio.subprocess.Process
    lines: list[str] = field(default_factory=list)

    async def read_stderr(self) -> None:
        assert self.proc.stderr is not None
        async for line in self.proc.stderr:
            self.lines.append(line.decode(errors="replace").rstrip("\n"))

    def stderr(self) -> str:
        return "\n".join(self.lines)

    def send_signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    async def wait_for_line(self, matches: Any, timeout: float = 120.0) -> str:
        """The first stderr line for which `matches(line)` holds (waiting for it to be written)."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for line in self.lines[seen:]:
                if matches(line):
                    return line
            seen = len(self.lines)
            if self.proc.returncode is not None:
                raise AssertionError(f"esr run exited ({self.proc.returncode}) first:\n{self.stderr()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"esr run: no such line within {timeout}s:\n{self.stderr()[-3000:]}")
            await asyncio.sleep(0.05)


def progress_requests(line: str) -> int | None:
    """The request count of one of `esr run --kafka`'s progress lines (None for other lines)."""
    found = re.match(r"esr: sim +[\d.]+ h +([\d,]+) requests", line)
    return int(found.group(1).replace(",", "")) if found else None


def progress_sim_hours(line: str) -> float | None:
    found = re.match(r"esr: sim +([\d.]+) h ", line)
    return float(found.group(1)) if found else None


@dataclass
class Pipeline:
    settings: KafkaSettings
    folder: Path
    workers: list[Worker] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)  # for every process, e.g. ESR_KAFKA_CONFIG

    @property
    def env(self) -> dict[str, str]:
        kafka = self.settings
        return {**os.environ, "ESR_KAFKA": kafka.bootstrap, "ESR_KAFKA_PREFIX": kafka.prefix,
                "ESR_KAFKA_PARTITIONS": str(kafka.partitions), "ESR_KAFKA_REPLICATION": str(kafka.replication),
                "ESR_KAFKA_MIN_ISR": str(kafka.min_isr), "PYTHONUNBUFFERED": "1", **self.extra_env}

    async def start(self, role: str, env: dict[str, str] | None = None) -> Worker:
        """`esr worker ROLE`; `env` adds to (or overrides) the pipeline's environment."""
        n = sum(w.role == role for w in self.workers)
        log = self.folder / f"{role}-{n}.log"
        out = log.open("wb")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "esr.cli", "worker", role, stdout=out, stderr=out, env=self.env | (env or {}))
        worker = Worker(role, proc, log)
        self.workers.append(worker)
        return worker

    async def start_all(self, bots: int = 1, metrics: int = 1) -> list[Worker]:
        """`metrics` metrics workers, a clock and `bots` bot workers, each ready (bots, and
        metrics workers when there are several, owning partitions); returns the bot workers."""
        folds = [await self.start("metrics") for _ in range(metrics)]
        clock = await self.start("clock")
        started = [await self.start("bots") for _ in range(bots)]
        for worker in folds:
            await worker.wait_for("esr worker metrics: ready", 180)
        await clock.wait_for("owns partitions")
        await self.wait_balanced(started)
        if metrics > 1:
            await self.wait_balanced(folds)
        return started

    async def wait_balanced(self, workers: list[Worker], timeout: float = 120.0) -> None:
        """Until every live worker's latest assignment is non-empty and together they own all."""
        deadline = time.monotonic() + timeout
        while True:
            owned: list[set[int]] = []
            for worker in workers:
                lines = [ln for ln in worker.text().splitlines() if "owns partitions" in ln]
                listed = re.search(r"owns partitions (\[[^\]]*\])", lines[-1]) if lines else None
                owned.append(set(json.loads(listed.group(1))) if listed else set())
            if all(owned) and set().union(*owned) == set(range(self.settings.partitions)):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"the {workers[0].role} workers never shared the partitions: {owned}")
            await asyncio.sleep(0.2)

    async def run(self, scenario: dict[str, Any], target: str, *extra: str, during: Any = None,
                  sigint_ignored: bool = False) -> tuple[int, dict[str, Any], str]:
        """`esr run --kafka` on `scenario`; `during(run)` runs while it waits for the verdict and
        can wait on its progress (`RunProcess.wait_for_line`). With `sigint_ignored` it starts
        the way a shell starts a background job: with SIGINT ignored."""
        path = self.folder / f"scenario-{len(list(self.folder.glob('scenario-*')))}.json"
        path.write_text(json.dumps(scenario))
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "esr.cli", "run", str(path), "--target", target, "--json", *extra,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=self.env,
            preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if sigint_ignored else None)
        run = RunProcess(proc)
        reading = asyncio.ensure_future(run.read_stderr())
        try:
            if during is not None:
                await during(run)
            out = await asyncio.wait_for(proc.stdout.read(), 300)  # type: ignore[union-attr]
            await asyncio.wait_for(proc.wait(), 60)
            await reading
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            reading.cancel()
        verdict = json.loads(out) if out.strip() else {}
        return proc.returncode or 0, verdict, run.stderr()

    async def close(self) -> None:
        for worker in self.workers:
            await worker.stop()
