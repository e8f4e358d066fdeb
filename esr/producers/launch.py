"""Starting a run on the Kafka runtime and waiting for its verdict (`esr run --kafka`, the
server in Kafka mode).

A run starts when its `RunStarted` (the scenario with the target's defaults filled in, the
seed, the clock mapping and the shard count) is on the runs topic; the clock worker takes it
from there. Its verdict comes back on the verdict topic from the metrics worker.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from esr.bus.kafka import (
    KafkaError,
    KafkaSettings,
    decode_event,
    encode,
    ensure_topics,
    headers,
    make_consumer,
    make_producer,
    topic_partitions,
)
from esr.bus.runlog import new_run_id
from esr.core.arrivals import ArrivalPlan
from esr.core.clock import SimClock
from esr.core.errors import FieldError, ScenarioError
from esr.core.events import RunAborted, RunStarted, VerdictIssued
from esr.core.scenario import Scenario
from esr.core.targets import Target
from esr.faults.plan import plan_faults

__all__ = ["KAFKA_START_LEAD_S", "VerdictWatch", "abort_run", "kafka_run_started", "kafka_scenario", "start_run"]

KAFKA_START_LEAD_S = 3.0  # real seconds between the request and the run's start: ticks reach the bots first


def kafka_scenario(scenario: Scenario, target: Target) -> Scenario:
    """The scenario as bot workers and the clock will rebuild it from the run's start: every
    journey spelled out (the target's default journey too) and the target's fault actions,
    since a worker knows nothing else about the target. A ScenarioError for what the Kafka
    runtime cannot run."""
    if scenario.python_journeys:
        raise ScenarioError([FieldError("journeys", "Python journeys run on the embedded runtime only: bot workers "
                                                    "on Kafka take declarative journeys (JSON), which they can rebuild "
                                                    "from the run's start")])
    data = scenario.to_dict()
    if not scenario.journeys:
        data["journeys"] = [target.default_journey.model_dump(mode="json", exclude_none=True)]
    data["fault_actions"] = _fault_actions(scenario, target)
    scenario = Scenario.from_dict(data)
    plan_faults(scenario.failure_injection, scenario.fault_actions, target.name, target.url)  # before anything runs
    return scenario


def kafka_run_started(scenario: Scenario, target: Target, *, shards: int, run_id: str | None = None,
                      scenario_file: str | None = None, lead_s: float = KAFKA_START_LEAD_S,
                      tick_s: float = 0.5) -> RunStarted:
    """The run's start as the bots will read it (see `kafka_scenario`)."""
    scenario = kafka_scenario(scenario, target)
    start = scenario.sim_start or datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = start if start.tzinfo else start.replace(tzinfo=UTC)
    clock = SimClock(scenario.time_warp, scenario.duration_hours * 3600, scenario.effective_drain_warp)
    return RunStarted(
        run_id=run_id or new_run_id(), seq=0, sim_time=0.0, real_time=time.time() + lead_s,
        scenario=scenario.to_dict(), target=target.shown_url, seed=scenario.seed, sim_start=start.isoformat(),
        time_warp=clock.time_warp, drain_warp=clock.drain_warp, load_end_sim=clock.load_end_sim,
        window_s=scenario.window, arrivals_planned=ArrivalPlan(scenario.profile, clock, scenario.seed).count(),
        scenario_file=scenario_file, shards=shards, tick_s=tick_s)


def _fault_actions(scenario: Scenario, target: Target) -> dict[str, Any]:
    """The target's fault actions this run uses, spelled out in the scenario: the clock worker
    performs them and knows nothing else about the target. Commands stay on the embedded
    runtime: a command travelling over the runs topic would run wherever a clock reads it."""
    names = scenario.fault_names
    actions = {name: a for name, a in target.faults.items() if name in names} | scenario.fault_actions
    commands = sorted(name for name, action in actions.items() if action.runs_commands)
    if commands:
        raise ScenarioError([FieldError("failure_injection", f"fault {name!r} of target {target.name!r} runs a "
                                                             "command; command actions run on the embedded runtime "
                                                             "only (drop --kafka, or give the fault an HTTP action)")
                             for name in commands])
    return {name: action.model_dump(mode="json", by_alias=True, exclude_none=True) for name, action in actions.items()}


class VerdictWatch:
    """Reads the verdict topic from now on; `wait(run_id)` returns that run's verdict. With
    `progress`, it also reads the metrics worker's `run_progress` messages and hands that run's
    to the callback `wait` is given."""

    def __init__(self, settings: KafkaSettings, *, progress: bool = False) -> None:
        from confluent_kafka import TopicPartition

        self.settings = settings
        self.consumer = make_consumer(settings, None)
        partitions = []
        for name in ("verdicts", "metrics") if progress else ("verdicts",):
            topic = settings.topic(name)
            for p in range(topic_partitions(settings, name)):
                _, high = self.consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                partitions.append(TopicPartition(topic, p, high))
        self.consumer.assign(partitions)

    def wait(self, run_id: str, timeout: float, *, progress: Callable[[dict[str, Any]], None] | None = None,
             alive_s: float = 30.0) -> dict[str, Any] | None:
        """The run's verdict, or None after `timeout` seconds; while the metrics worker keeps
        sending this run's progress (a slow or busy worker still judging), the wait goes on
        until `alive_s` seconds after the latest one."""
        deadline = time.monotonic() + timeout
        metrics = self.settings.topic("metrics")
        while time.monotonic() < deadline:
            msg = self.consumer.poll(0.25)
            if msg is None or msg.error() is not None:
                continue
            if msg.topic() == metrics:
                figures = orjson.loads(msg.value())
                if figures.get("run_id") == run_id:
                    deadline = max(deadline, time.monotonic() + alive_s)
                    if progress is not None:
                        progress(figures)
                continue
            event = decode_event(msg.value())
            if type(event) is VerdictIssued and event.run_id == run_id:
                return event.verdict
        return None

    def close(self) -> None:
        self.consumer.close()


def start_run(settings: KafkaSettings, scenario: Scenario, target: Target, *, run_id: str | None = None,
              scenario_file: str | None = None) -> RunStarted:
    """Create (or grow) the topics if needed and publish the run's start. The run's shard count
    is the tick topic's partition count now, and stays the run's for its whole life."""
    changes = ensure_topics(settings)
    shards = changes.counts.get(settings.topic("ticks")) or topic_partitions(settings, "ticks")
    started = kafka_run_started(scenario, target, shards=shards, run_id=run_id, scenario_file=scenario_file)
    _publish(settings, started)
    return started


def abort_run(settings: KafkaSettings, started: RunStarted, reason: str) -> None:
    _publish(settings, RunAborted(run_id=started.run_id, seq=0, sim_time=0.0, real_time=time.time(), reason=reason))


def _publish(settings: KafkaSettings, event: RunStarted | RunAborted) -> None:
    producer = make_producer(settings)
    kind = "run_started" if type(event) is RunStarted else "run_aborted"
    producer.produce(settings.topic("runs"), key=event.run_id.encode(), value=encode(event),
                     headers=headers(kind, event.run_id))
    if producer.flush(30) > 0:
        raise KafkaError(f"the broker at {settings.bootstrap} did not accept the {kind} of run {event.run_id}")
