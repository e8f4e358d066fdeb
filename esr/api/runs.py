"""`RunManager`: the server's runs, queued, running at most N at once, and rebuilt from the
run logs when the server starts again.

A run's state is its status (QUEUED, RUNNING, DRAINING, FINISHED, ABORTED) and, once it ended,
its verdict. On the Kafka runtime (`kafka` settings given) the manager only publishes the run's
start and waits for its verdict on the verdict topic; the workers play it. Its run log then
holds the start and the verdict. Everything a summary shows of a finished run comes from its log, so a restarted
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

import orjson

from esr.api.pending import PendingRun, PendingRuns
from esr.bus.codec import encode
from esr.bus.kafka import KafkaSettings
from esr.bus.runlog import LOG_NAME, RunLog, cut_torn_tail, new_run_id, read_events, run_log_path
from esr.core.buckets import RunFold
from esr.core.errors import EsrError, RunLogError
from esr.core.events import RunAborted, RunStarted, VerdictIssued
from esr.core.run_state import RunStatus
from esr.core.scenario import Scenario
from esr.core.targets import Target
from esr.core.ticks import expected_end, kafka_progress
from esr.core.verdict import Verdict, judge
from esr.engine.runner import Run

__all__ = ["ManagedRun", "RunManager", "UnknownRun"]


def timeline_path(home: Path, run_id: str) -> Path:
    """Where a Kafka run's final timeline is kept (its log holds only its start and verdict)."""
    return run_log_path(home, run_id).with_name("timeline.json")


class UnknownRun(EsrError, KeyError):
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
        started = self.extra.get("started")
        out: dict[str, Any] = {
            "run_id": self.run_id, "scenario": self.scenario_name, "target": self.target,
            "state": state, "verdict": self.verdict["verdict"] if self.verdict else None,
        }
        if self.verdict:
            out |= {k: self.verdict[k]
                    for k in ("reason", "assertions", "summary", "completeness", "generator", "time")}
            out["faults"] = self.verdict.get("faults", {})
            out["metric_definitions"] = self.verdict.get("metric_definitions", {})
        elif live is not None and live.status in (RunStatus.RUNNING, RunStatus.DRAINING):
            out["progress"] = live.snapshot()
        elif started is not None and state == RunStatus.RUNNING.value:
            out["progress"] = kafka_progress(started, time.time())
        return out


class RunManager:
    def __init__(self, home: Path, *, max_concurrent: int = 1, http_client: str = "pooled",
                 on_end: Callable[[str], object] | None = None, kafka: KafkaSettings | None = None) -> None:
        self.home = home
        self.kafka = kafka
        self._waiting: dict[str, asyncio.Future] = {}  # Kafka runtime: run id -> its verdict
        self._feed: asyncio.Task | None = None
        self.on_end = on_end  # called with the run id when a run ends (the sandbox purges its fork)
        self.http_client = http_client
        self.runs: dict[str, ManagedRun] = {}
        self._slots = asyncio.Semaphore(max_concurrent)
        self.pending = PendingRuns(home)
        self._records: dict[str, PendingRun] = {}  # accepted runs without a finished log
        self._requeue: list[tuple[ManagedRun, Scenario, Target]] = []  # recovered, started by start()
        self._stopping = False
        self._feed_ready = asyncio.Event()

    # -- lifecycle ------------------------------------------------------------------------
    def recover(self, resolve: Callable[[str], Target] | None = None) -> int:
        """Rebuild every run from its log (a torn last line is cut off first); close runs a
        stopped server left open; queue again the accepted runs that never got to play (their
        target found again with `resolve`). Returns how many runs there are."""
        runs = self.home / "runs"
        for log in sorted(runs.glob(f"*/{LOG_NAME}")) if runs.exists() else []:
            try:
                cut_torn_tail(log)
                fold = RunFold().apply_all(read_events(log))
            except (RunLogError, OSError):
                continue  # unreadable: left for `esr judge` to explain
            if fold.started is None:
                continue
            if fold.verdict is None:
                fold = self._close_interrupted(log, fold)
            assert fold.verdict is not None and fold.started is not None
            self.runs[fold.started.run_id] = ManagedRun(
                fold.started.run_id, str(fold.started.scenario.get("name", "")), fold.started.target,
                fold.started.real_time, state=_state_of(fold), verdict=fold.verdict.verdict)
        for record in self.pending.load():
            if record.run_id in self.runs:  # its log has its end: the record is done with
                self.pending.remove(record.run_id)
            else:
                self._recover_pending(record, resolve)
        return len(self.runs)

    def _recover_pending(self, record: PendingRun, resolve: Callable[[str], Target] | None) -> None:
        """An accepted run that never played to its end: queued again, or closed as ABORTED
        (with the reason) when it was aborted while queued or can no longer be played."""
        name = str(record.scenario.get("name", ""))
        reason = record.aborted
        if not reason:
            try:
                if resolve is None:
                    raise RuntimeError("no target registry to find its target in")
                target = resolve(record.target)
                scenario = Scenario.from_dict(record.scenario)
            except Exception as exc:  # noqa: BLE001 - a target or scenario this server refuses now
                record = self.pending.aborted(record, f"not queued again after a restart: {exc}")
                reason = record.aborted
        if reason:
            self.runs[record.run_id] = ManagedRun(record.run_id, name, record.target, record.created,
                                                  state=RunStatus.ABORTED.value,
                                                  verdict=_no_verdict(record.run_id, reason))
            return
        log = self.home / "runs" / record.run_id / LOG_NAME
        if log.exists():  # created for a Kafka run that never started: nothing in it
            log.unlink()
            try:
                log.parent.rmdir()
            except OSError:
                pass
        managed = ManagedRun(record.run_id, name, target.shown_url, record.created)
        self.runs[record.run_id] = managed
        self._records[record.run_id] = record
        self._requeue.append((managed, scenario, target))

    async def start(self) -> None:
        """Play the runs `recover` queued again, oldest first (on the server's loop)."""
        requeue, self._requeue = self._requeue, []
        for managed, scenario, target in requeue:
            self._queue(managed, scenario, target)

    def _close_interrupted(self, log: Path, fold: RunFold) -> RunFold:
        """Append the end the previous server could not write: aborted, with the data it had."""
        assert fold.started is not None
        run_id = fold.started.run_id
        events: list[RunAborted | VerdictIssued] = []
        if fold.finished is None and fold.aborted is None:
            events.append(RunAborted(run_id=run_id, seq=fold.events + 1, sim_time=fold.last_sim_time,
                                     real_time=time.time(), reason="the server stopped while the run was playing"))
            fold.apply(events[-1])
        scenario = Scenario.from_dict({k: v for k, v in fold.started.scenario.items()})
        try:
            assertions = scenario.parsed_assertions()
        except Exception:  # noqa: BLE001 - custom metrics from Python are not available here
            assertions = []
        verdict = judge(fold, assertions, custom=scenario.custom_metrics, counters=scenario.counter_names,
                        definitions=scenario.metric_definitions)
        last = fold.aborted or fold.finished
        events.append(VerdictIssued(run_id=run_id, seq=fold.events + 1, sim_time=last.sim_time if last else 0.0,
                                    real_time=time.time(), verdict=verdict.to_dict()))
        fold.apply(events[-1])
        with open(log, "ab") as file:
            file.write(b"".join(encode(e) for e in events))
        return fold

    async def close(self) -> None:
        """Abort whatever is playing (the logs end ABORTED); runs still queued stay queued for
        the next start."""
        self._stopping = True
        tasks = [m.task for m in self.runs.values() if m.task is not None and not m.task.done()]
        for task in tasks:
            task.cancel("the server is stopping")
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._feed is not None:
            self._feed.cancel()
            await asyncio.gather(self._feed, return_exceptions=True)

    # -- operations -----------------------------------------------------------------------
    def submit(self, scenario: Scenario, target: Target) -> ManagedRun:
        """Queue a run, written down before it is answered (a restart queues it again); a
        ScenarioError (e.g. a fault this target cannot apply) before anything is kept."""
        run_id = new_run_id()
        managed = ManagedRun(run_id, scenario.name, target.shown_url, time.time())
        if self.kafka is not None:
            from esr.producers.launch import kafka_scenario

            kafka_scenario(scenario, target)  # what it cannot run is a 422 now, not a run stuck QUEUED
        else:  # a fault this target cannot apply is refused here
            managed.run = Run(scenario, target, run_id=run_id, home=self.home, http_client=self.http_client)
        record = PendingRun(run_id, scenario.to_dict(), target.name, managed.created)
        self.pending.write(record)
        self._records[run_id] = record
        self.runs[run_id] = managed
        self._queue(managed, scenario, target)
        return managed

    def _queue(self, managed: ManagedRun, scenario: Scenario, target: Target) -> None:
        loop = asyncio.get_running_loop()
        if self.kafka is not None:
            managed.task = loop.create_task(self._play_kafka(managed, scenario, target))
            return
        if managed.run is None:
            managed.run = Run(scenario, target, run_id=managed.run_id, home=self.home, http_client=self.http_client)
        managed.task = loop.create_task(self._play(managed))

    def _settled(self, managed: ManagedRun, logged: bool, reason: str = "") -> None:
        """The run's record is done with once its log holds its end; aborted while queued, the
        record (marked) is all there is. A run still queued when the server stops stays queued."""
        record = self._records.pop(managed.run_id, None)
        if record is None:
            return
        if logged:
            self.pending.remove(managed.run_id)
        elif not self._stopping:
            self.pending.aborted(record, reason)
        # else: the server is stopping with the run still queued: the record queues it again

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
            self._settled(managed, logged=True)
        except asyncio.CancelledError:
            managed.state = RunStatus.ABORTED.value
            if managed.run.verdict is not None:
                managed.verdict = managed.run.verdict.to_dict()
                self._settled(managed, logged=True)
            else:  # aborted while queued: nothing was sent, no log was written
                managed.verdict = _no_verdict(managed.run_id, "aborted while queued")
                self._settled(managed, logged=False, reason="aborted while queued")

    async def _play_kafka(self, managed: ManagedRun, scenario: Scenario, target: Target) -> None:
        from esr.producers.launch import abort_run, start_run

        assert self.kafka is not None
        loop = asyncio.get_running_loop()
        verdict: dict[str, Any] | None = None
        started: RunStarted | None = None
        future = self._waiting[managed.run_id] = loop.create_future()
        log = RunLog(self.home, managed.run_id)
        try:
            async with self._slots:
                if self._feed is None:
                    self._feed = loop.create_task(self._read_verdicts())
                await self._feed_ready.wait()
                started = await asyncio.to_thread(start_run, self.kafka, scenario, target, run_id=managed.run_id)
                log.append(started)
                log.flush()
                managed.extra["started"] = started
                managed.state = RunStatus.RUNNING.value
                try:
                    verdict = await asyncio.wait_for(asyncio.shield(future), expected_end(started) - time.time() + 60)
                except TimeoutError:
                    verdict = _no_verdict(managed.run_id, "no verdict arrived from the metrics worker "
                                                          "(is `esr worker metrics` running?)", "ERROR")
        except Exception as exc:  # noqa: BLE001 - e.g. the broker is gone: the run ends ERROR, not QUEUED forever
            verdict = _no_verdict(managed.run_id, f"the run could not start on Kafka: {exc}", "ERROR")
        except asyncio.CancelledError:
            if started is not None:
                await asyncio.to_thread(abort_run, self.kafka, started, "aborted through the API")
                try:
                    verdict = await asyncio.wait_for(asyncio.shield(future), 30)
                except TimeoutError:
                    verdict = None
            verdict = verdict or _no_verdict(managed.run_id, "aborted" + ("" if started else " while queued"))
        finally:
            self._waiting.pop(managed.run_id, None)
            if verdict is not None:
                managed.verdict = verdict
                managed.state = (RunStatus.ABORTED if verdict["verdict"] == "ABORTED" else RunStatus.FINISHED).value
                if started is not None:
                    log.append(VerdictIssued(run_id=managed.run_id, seq=2, sim_time=0.0, real_time=time.time(),
                                             verdict=verdict))
            log.close()
            self._settled(managed, logged=started is not None, reason=verdict["reason"] if verdict else "")
            if self.on_end is not None:
                self.on_end(managed.run_id)

    async def _read_verdicts(self) -> None:
        """One reader of the verdict topic for every run this server waits on."""
        from esr.bus.kafka import decode_event
        from esr.producers.launch import VerdictWatch

        assert self.kafka is not None
        watch = await asyncio.to_thread(VerdictWatch, self.kafka, progress=True)
        metrics = self.kafka.topic("metrics")
        self._feed_ready.set()
        try:
            while True:
                messages = await asyncio.to_thread(watch.consumer.consume, 100, 0.2)
                for msg in messages:
                    if msg.error() is not None:
                        continue
                    if msg.topic() == metrics:
                        self._on_progress(orjson.loads(msg.value()))
                        continue
                    event = decode_event(msg.value())
                    waiting = self._waiting.get(event.run_id)
                    if type(event) is VerdictIssued and waiting is not None and not waiting.done():
                        waiting.set_result(event.verdict)
        finally:
            await asyncio.to_thread(watch.close)

    def _on_progress(self, figures: dict[str, Any]) -> None:
        """The metrics worker's timeline of a Kafka run, for its dashboard; the final one is
        kept beside the run's log, so the page survives a restart."""
        managed = self.runs.get(str(figures.get("run_id")))
        timeline = figures.get("timeline")
        if managed is None or not isinstance(timeline, dict):
            return
        managed.extra["timeline"] = timeline
        managed.extra["timeline_seq"] = managed.extra.get("timeline_seq", 0) + 1
        if figures.get("final"):
            path = timeline_path(self.home, managed.run_id)
            partial = path.with_name(path.name + ".partial")
            partial.write_bytes(orjson.dumps(timeline))
            partial.replace(path)

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


def _no_verdict(run_id: str, reason: str, status: str = "ABORTED") -> dict[str, Any]:
    return {"run_id": run_id, "verdict": status, "reason": reason, "assertions": [], "summary": {},
            "completeness": {}, "generator": {}, "time": {}}


def _state_of(fold: RunFold) -> str:
    return RunStatus.ABORTED.value if fold.aborted is not None else RunStatus.FINISHED.value
