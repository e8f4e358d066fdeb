"""Replication on a real 3-broker KRaft cluster (`deploy/kafka/kafka.sh cluster-start`, every node
broker and controller): ESR's topics and the metrics app's changelogs with 3 replicas and
min.insync.replicas=2, and a run on the Kafka runtime (clock, bot and metrics workers as separate
processes) that loses a broker mid-run, to `kill -9` or to a rolling restart of all three, and
still gives a complete verdict: every request the target received counted once, nothing lost."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pytest
from busy import PUNCTUALITY_NOT_JUDGED
from confluent_kafka.admin import AdminClient, ConfigResource
from kafka_pipeline import Pipeline, RunProcess
from loopback import free_ports, wait_until
from real_parts import missing
from recording_server import Recorder

from esr.bus.kafka import TOPICS, KafkaSettings, ensure_topics

pytestmark = [pytest.mark.integration, pytest.mark.kafka]

KAFKA_SH = Path(__file__).resolve().parents[2] / "deploy" / "kafka" / "kafka.sh"
NODES = 3
# three JVMs beside the workers on a small machine: small heaps, and the quick JIT only, so that a
# broker restarting while a run plays starts in seconds
HEAP = "-Xms128m -Xmx384m -XX:TieredStopAtLevel=1"


@dataclass
class Cluster:
    folder: Path
    bootstrap: str

    def node(self, k: int) -> Path:
        return self.folder / f"node{k}"

    @cached_property
    def admin(self) -> AdminClient:
        """One client for the module (its "connection refused" lines while a broker is down go to logging)."""
        return AdminClient({"bootstrap.servers": self.bootstrap, "logger": logging.getLogger("cluster-admin")})

    async def kafka_sh(self, *args: str) -> None:
        proc = await asyncio.create_subprocess_exec(
            str(KAFKA_SH), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "ESR_KAFKA_HEAP": HEAP})
        out, _ = await proc.communicate()
        assert proc.returncode == 0, out.decode()

    async def kill(self, k: int) -> None:
        """`kill -9` of node k, returning once its process is gone."""
        pid = int((self.node(k) / "kafka.pid").read_text())
        os.kill(pid, signal.SIGKILL)

        def gone() -> bool:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            return False

        await wait_until(gone, 30, f"node {k} (pid {pid}) gone")

    def leaders(self, topic: str) -> dict[int, int]:
        """Partition -> the broker leading it, as the cluster says now."""
        meta = self.admin.list_topics(topic, timeout=10).topics[topic]
        return {p.id: p.leader for p in meta.partitions.values()}

    def in_sync(self) -> bool:
        """Every broker up, and every partition of every topic led and with all its replicas in sync."""
        try:
            meta = self.admin.list_topics(timeout=5)
        except Exception:  # noqa: BLE001 - not answering yet is not in sync
            return False
        if len(meta.brokers) != NODES:
            return False
        return all(p.leader >= 0 and sorted(p.isrs) == sorted(p.replicas)
                   for t in meta.topics.values() for p in t.partitions.values())

    def replication(self, topic: str) -> tuple[int, str]:
        """A topic's replication factor and its min.insync.replicas; (0, "") for a topic the
        broker asked does not know yet (a new topic reaches each broker's metadata in turn)."""
        meta = self.admin.list_topics(topic, timeout=10).topics[topic]
        replicas = {len(p.replicas) for p in meta.partitions.values()}
        if not replicas:
            return 0, ""
        assert len(replicas) == 1, (topic, replicas)
        [future] = self.admin.describe_configs([ConfigResource("topic", topic)]).values()
        return replicas.pop(), future.result(10)["min.insync.replicas"].value


@pytest.fixture(scope="module")
def cluster(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Three nodes on ports of their own (the session's single broker tells us Kafka can run here)."""
    folder = tmp_path_factory.mktemp("cluster")
    base = free_ports(2 * NODES)
    done = subprocess.run([str(KAFKA_SH), "cluster-start", str(folder), str(NODES), str(base)],
                          env={**os.environ, "ESR_KAFKA_HEAP": HEAP}, capture_output=True, text=True, timeout=240)
    if done.returncode != 0:
        subprocess.run([str(KAFKA_SH), "cluster-stop", str(folder)], timeout=120)
        missing(f"the 3-node Kafka cluster did not start: {done.stderr[-2000:]}")
    bootstrap = done.stdout.strip().splitlines()[-1]
    assert bootstrap == ",".join(f"127.0.0.1:{base + 2 * k}" for k in range(NODES))
    try:
        yield Cluster(folder, bootstrap)
    finally:
        subprocess.run([str(KAFKA_SH), "cluster-stop", str(folder)], timeout=120)


@pytest.fixture
async def replicated(cluster: Cluster, tmp_path: Path) -> AsyncIterator[Pipeline]:
    """A pipeline on the cluster, on a prefix of the test's own, with replication 3 and min ISR 2."""
    await wait_until(cluster.in_sync, 120, "every partition of the cluster in sync")
    settings = KafkaSettings(cluster.bootstrap, prefix=f"c{uuid.uuid4().hex[:8]}.", partitions=4,
                             replication=3, min_isr=2)
    ensure_topics(settings)
    pipe = Pipeline(settings, tmp_path)
    yield pipe
    await pipe.close()


def scenario(rate: float, real_seconds: float) -> dict[str, Any]:
    """One GET per journey, to a path naming the journey's user: the target can tell a repeat."""
    warp = 360.0
    return {
        "name": "replicated", "duration_hours": real_seconds * warp / 3600, "time_warp": warp, "seed": 16,
        "load_profile": [[0, rate]],
        "journeys": [{"name": "one", "steps": [
            {"name": "get", "request": {"method": "GET", "path": "/u/{{ user.id }}"}, "expect": {"status": [200]}}]}],
        "assertions": ["error_rate < 0.01"],
        **PUNCTUALITY_NOT_JUDGED,  # about data kept through a lost broker, not the generator's punctuality
    }


def assert_counted_once(verdict: dict[str, Any], seen: Counter[str], err: str) -> str:
    """Complete, and what the target received is what was counted: each journey's request once,
    and every request it received more than once (a shard re-run) dropped as a duplicate."""
    assert verdict, f"no verdict:\n{err[-3000:]}"
    c = verdict["completeness"]
    assert verdict["verdict"] == "PASS", (verdict["reason"], c)
    planned = c["arrivals_planned"]
    assert c["complete"] is True
    assert (c["journeys_started"], c["results_recorded"], verdict["summary"]["journeys_completed"]) == (
        planned, planned, planned)
    assert (c["results_lost"], c["shard_reports_missing"]) == (0, 0)
    assert len(seen) == planned  # every journey's request reached the target, and was counted once
    assert sum(seen.values()) == planned + c["duplicates_dropped"]  # repeats: all dropped
    assert verdict["generator"]["requests_resent"] == c["duplicates_dropped"]  # and the verdict says so
    return f"{planned} journeys, {sum(seen.values())} requests received, {c['duplicates_dropped']} repeats dropped"


async def test_existing_topics_keep_their_replication_and_a_lower_min_isr_is_raised(cluster: Cluster) -> None:
    await wait_until(cluster.in_sync, 120, "every partition of the cluster in sync")
    prefix = f"e{uuid.uuid4().hex[:8]}."
    three = KafkaSettings(cluster.bootstrap, prefix=prefix, replication=3, min_isr=2)
    ensure_topics(KafkaSettings(cluster.bootstrap, prefix=prefix, replication=3, min_isr=1))
    await wait_until(lambda: all(cluster.replication(three.topic(t)) == (3, "1") for t in TOPICS), 30,
                     "the new topics described")
    changes = ensure_topics(three)
    assert changes.replicas == ()
    assert dict(changes.min_isr_raised) == dict.fromkeys(map(three.topic, TOPICS), 1)
    await wait_until(lambda: all(cluster.replication(three.topic(t)) == (3, "2") for t in TOPICS), 30,
                     "every broker describing the raised min ISR")  # the change reaches each broker's metadata
    await wait_until(lambda: ensure_topics(three).lines(three) == [], 30, "nothing left to change")
    one = KafkaSettings(cluster.bootstrap, prefix=prefix)  # a process started without the variables
    [line] = ensure_topics(one).lines(one)
    assert line.startswith(f"esr: {prefix}runs has 3 replicas, {prefix}ticks 3, ") and "kafka-reassign" in line
    assert cluster.replication(three.topic("results")) == (3, "2")  # nothing weakened


async def test_kill_9_of_the_broker_leading_most_results_partitions_loses_and_repeats_nothing(
        cluster: Cluster, replicated: Pipeline, recorder: tuple[str, Recorder]) -> None:
    pipe = replicated
    url, rec = recorder
    await wait_until(lambda: all(cluster.replication(pipe.settings.topic(t)) == (3, "2") for t in TOPICS), 30,
                     "every topic created with 3 replicas and min ISR 2")
    await pipe.start_all(bots=1)
    killed: list[int] = []
    results = pipe.settings.topic("results")

    async def kill_leader(_: RunProcess) -> None:
        await wait_until(lambda: len(rec.seen) >= 120, 120, "a quarter of the requests sent")
        leading = Counter(cluster.leaders(results).values())
        node, _ = max(sorted(leading.items()), key=lambda item: item[1])
        killed.append(node)
        await cluster.kill(node)
        await wait_until(lambda: node not in cluster.leaders(results).values(), 60,
                         f"the results partitions led by brokers other than {node}")

    started = time.monotonic()
    try:
        code, verdict, err = await pipe.run(scenario(rate=30, real_seconds=16), url, during=kill_leader)
        seen = Counter(r["target"] for r in rec.seen)
        assert killed, "the broker was never killed"
        assert killed[0] not in cluster.leaders(results).values()  # still down, and no partition waits for it
        figures = assert_counted_once(verdict, seen, err)
        assert code == 0
        changelog = pipe.settings.group("metrics") + "-esr-partials-changelog"
        assert cluster.replication(changelog) == (3, "2")  # the metrics app's state is replicated too
    finally:
        for node in killed:
            await cluster.kafka_sh("start", str(cluster.node(node)))
        await wait_until(cluster.in_sync, 120, "the killed broker back in sync")
    print(f"kill -9 of broker {killed[0]}: {figures}; run and restart in {time.monotonic() - started:.1f} s")


async def test_a_rolling_restart_of_all_three_brokers_loses_and_repeats_nothing(
        cluster: Cluster, replicated: Pipeline, recorder: tuple[str, Recorder]) -> None:
    pipe = replicated
    url, rec = recorder
    await pipe.start_all(bots=1)
    restarted: list[int] = []

    async def rolling_restart(run: RunProcess) -> None:
        await wait_until(lambda: len(rec.seen) >= 15, 120, "the run under way")
        for node in range(1, NODES + 1):
            t0 = time.monotonic()
            await cluster.kafka_sh("stop", str(cluster.node(node)))  # SIGTERM: a controlled shutdown
            t1 = time.monotonic()
            await cluster.kafka_sh("start", str(cluster.node(node)))
            t2 = time.monotonic()
            await wait_until(cluster.in_sync, 120, f"every partition in sync after broker {node} restarted")
            print(f"broker {node}: stop {t1 - t0:.1f} s, start {t2 - t1:.1f} s, in sync {time.monotonic() - t2:.1f} s,"
                  f" requests {len(rec.seen)}")
            restarted.append(node)
        assert run.proc.returncode is None, "the run ended before the third broker was back"

    started = time.monotonic()
    # a broker stops in 5-9 s and starts in 5-26 s on a busy 2-core machine: three in a row need the 100 s
    code, verdict, err = await pipe.run(scenario(rate=15, real_seconds=100), url, during=rolling_restart)
    seen = Counter(r["target"] for r in rec.seen)
    assert restarted == [1, 2, 3]
    figures = assert_counted_once(verdict, seen, err)
    assert code == 0
    print(f"rolling restart: {figures}; run in {time.monotonic() - started:.1f} s")
