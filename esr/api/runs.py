"""`RunManager`: the server's runs, queued, running at most N at once, and rebuilt from the
run logs when the server starts again.

A run's state is its status (QUEUED, RUNNING, DRAINING, FINISHED, ABORTED) and, once it ended,
its verdict. Everything a summary shows of a finished run comes from its log, so a restarted
server shows the same summaries; a run the previous server was playing when it stopped is
closed in its log as ABORTED with the data it had.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..buckets import RunFold
from ..codec import encode
from ..engine.runner import Run, RunStatus
from ..errors import RunLogError
from ..events import RunAborted, VerdictIssued
from ..runlog import LOG_NAME, new_run_id, read_events
from ..scenario import Scenario
from ..targets import Target
from ..verdict import Verdict, judge

__all__ = ["ManagedRun", "RunManager", "UnknownRun"]


class UnknownRun(KeyError):
    """No run has this id."""


@dataclass(slots=True)
class ManagedRun:
    run_id: str
    scenario_name: str
    target: str
    created: float
    state: str = RunStatus.QUEUED.value
    run: Run | None = None
    task: asyncio.Task | None = None
    verdict: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        live = self.run
        state = live.status.value if live is not None and self.verdict is None else self.state
        out: dict[str, Any] = {
            "run_id": self.run_id, "scenario": self.scenario_name, "target": self.target,
            "state": state, "verdict": self.verdict["verdict"] if self.verdict else None,
        }
        if self.verdict:
            out |= {k: self.verdict[k] for k in ("reason", "assertions", "summary", "completeness", "generator", "time")}
        elif live is not None and live.status in (RunStatus.RUNNING, RunStatus.DRAINING):
            out["progress"] = live.snapshot()
        return out


class RunManager:
    def __init__(self, home: Path, *, max_concurrent: int = 1, http_client: str = "pooled",
                 on_end: Callable[[str], None] | None = None) -> None:
        self.home = home
        self.on_end = on_end  # called with the run id when a run ends (the sandbox purges its fork)
        self.http_client = http_client
        self.runs: dict[str, ManagedRun] = {}
        self._slots = asyncio.Semaphore(max_concurrent)

    # -- lifecycle ------------------------------------------------------------------------
    def recover(self) -> int:
        """Rebuild every run from its log; close runs a stopped server left open. Returns how many."""
        runs = self.home / "runs"
        for log in sorted(runs.glob(f"*/{LOG_NAME}")) if runs.exists() else []:
            try:
                fold = RunFold().apply_all(read_events(log))
            except RunLogError:
                continue  # unreadable: left for `esr judge` to explain
            if fold.started is None:
                continue
            if fold.verdict is None:
                fold = self._close_interrupted(log, fold)
            assert fold.verdict is not None and fold.started is not None
            self.runs[fold.started.run_id] = ManagedRun(
                fold.started.run_id, str(fold.started.scenario.get("name", "")), fold.started.target,
                fold.started.real_time, state=_state_of(fold), verdict=fold.verdict.verdict)
        return len(self.runs)

    def _close_interrupted(self, log: Path, fold: RunFold) -> RunFold:
        """Append the end the previous server could not write: aborted, with the data it had."""
        assert fold.started is not None
        run_id = fold.started.run_id
        events = []
        if fold.finished is None and fold.aborted is None:
            events.append(RunAborted(run_id=run_id, seq=fold.events + 1, sim_time=fold.last_sim_time,
                                     real_time=time.time(), reason="the server stopped while the run was playing"))
            fold.apply(events[-1])
        scenario = Scenario.from_dict({k: v for k, v in fold.started.scenario.items()})
        try:
            assertions = scenario.parsed_assertions()
        except Exception:  # noqa: BLE001 - custom metrics from Python are not available here
            assertions = []
        verdict = judge(fold, assertions, custom=scenario.custom_metrics, counters=scenario.counter_names)
        last = fold.aborted or fold.finished
        events.append(VerdictIssued(run_id=run_id, seq=fold.events + 1, sim_time=last.sim_time if last else 0.0,
                                    real_time=time.time(), verdict=verdict.to_dict()))
        fold.apply(events[-1])
        with open(log, "ab") as file:
            file.write(b"".join(encode(e) for e in events))
        return fold

    async def close(self) -> None:
        """Abort whatever is still queued or playing (the logs end ABORTED)."""
        tasks = [m.task for m in self.runs.values() if m.task is not None and not m.task.done()]
        for task in tasks:
            task.cancel("the server is stopping")
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- operations -----------------------------------------------------------------------
    def submit(self, scenario: Scenario, target: Target) -> ManagedRun:
        run_id = new_run_id()
        managed = ManagedRun(run_id, scenario.name, target.url, time.time())
        managed.run = Run(scenario, target, run_id=run_id, home=self.home, http_client=self.http_client)
        self.runs[run_id] = managed
        managed.task = asyncio.get_running_loop().create_task(self._play(managed))
        return managed

    async def _play(self, managed: ManagedRun) -> None:
        try:
            await self._play_run(managed)
        finally:
            if self.on_end is not None:
                self.on_end(managed.run_id)

    async def _play_run(self, managed: ManagedRun) -> None:
        assert managed.run is not None
        try:
            async with self._slots:
                verdict: Verdict = await managed.run.execute()
            managed.state = RunStatus.FINISHED.value
            managed.verdict = verdict.to_dict()
        except asyncio.CancelledError:
            managed.state = RunStatus.ABORTED.value
            if managed.run.verdict is not None:
                managed.verdict = managed.run.verdict.to_dict()
            else:  # aborted while queued: nothing was sent, no log was written
                managed.verdict = {"run_id": managed.run_id, "verdict": "ABORTED", "reason": "aborted while queued",
                                   "assertions": [], "summary": {}, "completeness": {}, "generator": {}, "time": {}}

    def get(self, run_id: str) -> ManagedRun:
        try:
            return self.runs[run_id]
        except KeyError:
            raise UnknownRun(run_id) from None

    def abort(self, run_id: str) -> ManagedRun:
        managed = self.get(run_id)
        if managed.task is not None and not managed.task.done():
            managed.task.cancel("aborted through the API")
        return managed

    def listing(self) -> list[dict[str, Any]]:
        return [{"run_id": m.run_id, "scenario": m.scenario_name, "target": m.target,
                 "state": m.summary()["state"], "verdict": m.verdict["verdict"] if m.verdict else None}
                for m in sorted(self.runs.values(), key=lambda m: m.created, reverse=True)]


def _state_of(fold: RunFold) -> str:
    return RunStatus.ABORTED.value if fold.aborted is not None else RunStatus.FINISHED.value
