"""The Kafka runtime end to end on the real broker: `esr run --kafka` with a clock, bot workers
and the Faust metrics worker as separate processes, against a real HTTP target on loopback."""

from __future__ import annotations

import asyncio
import json
import re
import signal
from pathlib import Path
from typing import Any

import pytest
from busy import PUNCTUALITY_NOT_JUDGED
from confluent_kafka import TopicPartition
from kafka_pipeline import Pipeline, RunProcess, Worker, progress_requests, progress_sim_hours
from loopback import free_ports, wait_until
from test_schedule_lag import claims

from esr.bus.kafka import KafkaSettings, decode_event, ensure_topics, make_consumer, run_partition
from esr.cli.stop_signals import REASONS
from esr.core.events import RunAborted, RunStarted, ShardReport

pytestmark = [pytest.mark.integration, pytest.mark.kafka]


def single_request(rate: float, real_seconds: float, warp: float = 360.0, **extra: Any) -> dict[str, Any]:
    """One GET per journey: each planned arrival gives exactly one result, so counts are exact."""
    return {
        "name": "kafka_status", "duration_hours": real_seconds * warp / 3600, "time_warp": warp, "seed": 11,
        "load_profile": [[0, rate]],
        "journeys": [{"name": "status", "steps": [
            {"name": "get", "request": {"method": "GET", "path": "/"}, "expect": {"status": [200]}}]}],
        "assertions": ["error_rate < 0.01", "latency_p95_ms < 1000"], **PUNCTUALITY_NOT_JUDGED,
        **extra,
    }


def run_topic(settings: KafkaSettings, run_id: str, name: str = "runs", decoder: Any = decode_event) -> list[Any]:
    """Every message of one run on a topic (decoded), read from the start."""
    consumer = make_consumer(settings, None)
    topic = settings.topic(name)
    parts = []
    for p in range(settings.partitions):
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        if high > low:
            parts.append((TopicPartition(topic, p, low), high))
    consumer.assign([tp for tp, _ in parts])
    remaining = {tp.partition: high for tp, high in parts}
    events = []
    while remaining:
        msg = consumer.poll(5)
        assert msg is not None, f"runs topic ended early; still expecting {remaining}"
        if msg.offset() + 1 >= remaining.get(msg.partition(), 0):
            remaining.pop(msg.partition(), None)
        event = decoder(msg.value())
        if (event["run_id"] if isinstance(event, dict) else event.run_id) == run_id:
            events.append(event)
    consumer.close()
    return events


async def test_two_bot_workers_share_the_shards_and_every_result_counts_once(
        pipeline: Pipeline, demo_target: Any) -> None:
    url, target = await demo_target()
    bots = await pipeline.start_all(bots=2)

    code, verdict, err = await pipeline.run(single_request(rate=60, real_seconds=8), url)

    assert code == 0, f"{verdict.get('reason')}\n{err}"
    assert verdict["verdict"] == "PASS", verdict["reason"]
    progress_lines = [line for line in err.splitlines() if line.startswith("esr: sim ")]
    assert progress_lines and "assertions holding so far" in progress_lines[-1]  # a long run shows progress
    c = verdict["completeness"]
    planned = c["arrivals_planned"]
    assert 400 < planned < 560  # Poisson arrivals around 60/s for 8 s
    assert c["complete"] is True
    assert (c["journeys_started"], c["requests_sent"], c["results_recorded"]) == (planned, planned, planned)
    assert (c["results_lost"], c["shard_reports_missing"], c["duplicates_dropped"]) == (0, 0, 0)
    assert verdict["generator"]["requests_resent"] == 0
    assert target.requests == planned  # what the target saw is what the verdict counted
    assert verdict["summary"]["journeys_completed"] == planned

    events = run_topic(pipeline.settings, verdict["run_id"])
    started = [e for e in events if isinstance(e, RunStarted)]
    assert len(started) == 1 and started[0].shards == pipeline.settings.partitions
    assert verdict["generator"]["shards"] == pipeline.settings.partitions  # the verdict says how it was sharded
    assert f"{pipeline.settings.partitions} shards" in err  # and so did the start line
    finals = [e for e in events if isinstance(e, ShardReport) and e.final]
    assert sorted(r.shard for r in finals) == list(range(pipeline.settings.partitions))
    workers = {r.attempt.rsplit(":", 1)[0] for r in finals}
    assert len(workers) == 2, f"both bot workers should own shards: {workers}"
    assert sum(r.requests_sent for r in finals) == planned
    for bot in bots:
        assert "owns partitions" in bot.text()
    # each shard opened says how this machine's clock stands against the clock worker's (one machine here)
    checks = [re.search(r"shard (\d+) opens at tick \d+: clock check: this machine's clock is ([+-][\d.]+) s", line)
              for bot in bots for line in bot.text().splitlines() if "clock check:" in line]
    assert sorted(int(m[1]) for m in checks if m) == list(range(pipeline.settings.partitions))
    assert all(m and abs(float(m[2])) < 5 for m in checks)  # transit only, no skew on one machine

    progress = run_topic(pipeline.settings, verdict["run_id"], "metrics", json.loads)
    assert progress, "the metrics worker publishes figures while the run plays"
    assert all(p["type"] == "run_progress" and p["sim"] is True for p in progress)
    requests = [p["summary"]["requests"] for p in progress]
    assert requests == sorted(requests) and 0 < requests[-1] <= planned
    final = progress[-1]  # the last picture, for dashboards, comes with the verdict
    assert final.get("final") is True and sum(final["timeline"]["requests"]) == planned
    assert final["timeline"]["verdict"]["verdict"] == "PASS"
    assert [a["assertion"] for a in progress[-1]["assertions"]] == ["error_rate < 0.01", "latency_p95_ms < 1000"]


async def test_a_bot_worker_killed_mid_run_loses_nothing_and_counts_nothing_twice(
        pipeline: Pipeline, demo_target: Any) -> None:
    url, target = await demo_target()
    bots = await pipeline.start_all(bots=2)

    async def kill_one(_: RunProcess) -> None:  # a quarter of the way into the run
        await bots[0].wait_for("owns partitions")
        await wait_until(lambda: target.requests >= 160, 120, "a quarter of the requests sent")
        bots[0].kill()

    code, verdict, err = await pipeline.run(single_request(rate=40, real_seconds=16), url, during=kill_one)

    assert code == 0, f"{verdict.get('reason')}\n{err}"
    c = verdict["completeness"]
    planned = c["arrivals_planned"]
    assert 560 < planned < 720  # around 40/s for 16 s
    assert c["complete"] is True, verdict["reason"]
    # every journey counted exactly once, although the survivor re-ran the dead worker's open ticks
    assert c["journeys_started"] == planned
    assert c["results_recorded"] == planned
    assert (c["results_lost"], c["shard_reports_missing"]) == (0, 0)
    # the re-run sent some requests again; their results were dropped (the dead worker's last
    # requests may never have produced a result at all, hence <=)
    assert c["duplicates_dropped"] > 0
    assert planned + c["duplicates_dropped"] <= target.requests
    # each repeat came from the survivor's attempt, not the one counted: requests the target got twice
    assert verdict["generator"]["requests_resent"] == c["duplicates_dropped"]
    # and each re-sent request carried its first send's Idempotency-Key: one key per journey
    assert len(target.idempotency_keys) == planned < target.requests
    events = run_topic(pipeline.settings, verdict["run_id"])
    reports = [e for e in events if isinstance(e, ShardReport)]
    survivor = bots[1].text().split("owns partitions")[0].rsplit("bots: ", 1)[1].strip()
    finals = [r for r in reports if r.final]
    assert {r.attempt.rsplit(":", 1)[0] for r in finals} == {survivor}, "the survivor finished every shard"
    taken_over = {r.shard for r in finals if r.first_tick > 0}
    assert taken_over, "some shard should have moved to the survivor mid-run"
    assert json.dumps(verdict)  # the verdict is plain JSON for other services


async def test_a_metrics_worker_killed_and_restarted_mid_run_gives_the_same_verdict(
        pipeline: Pipeline, demo_target: Any) -> None:
    url, target = await demo_target()
    await pipeline.start_all(bots=1)
    metrics = pipeline.workers[0]
    assert metrics.role == "metrics"

    async def restart_metrics(run: RunProcess) -> None:  # several batches folded and stored, 560 planned
        await run.wait_for_line(lambda line: (progress_requests(line) or 0) >= 150)
        metrics.kill()
        await metrics.proc.wait()
        again = await pipeline.start("metrics")
        await again.wait_for("esr worker metrics: ready", 180)

    code, verdict, err = await pipeline.run(single_request(rate=40, real_seconds=14), url, during=restart_metrics)

    assert code == 0, f"{verdict.get('reason')}\n{err}"
    c = verdict["completeness"]
    planned = c["arrivals_planned"]
    assert c["complete"] is True
    # the restarted worker rebuilt its tables from their changelogs and re-read only what they lacked:
    # every result counted once, none twice, none lost
    assert (c["journeys_started"], c["results_recorded"]) == (planned, planned)
    assert target.requests == planned
    assert (c["results_lost"], c["duplicates_dropped"]) == (0, 0)
    assert verdict["summary"]["requests"] == planned
    assert len(pipeline.workers[-1].text()) > 0


def latest_owned(worker: Worker) -> set[int]:
    found = re.findall(r"owns partitions (\[[^\]]*\])", worker.text())
    return set(json.loads(found[-1])) if found else set()


@pytest.mark.parametrize("victim", ["owner", "other"])
async def test_one_of_two_metrics_workers_killed_mid_run_leaves_a_complete_verdict(
        pipeline: Pipeline, demo_target: Any, victim: str) -> None:
    """kill -9 of the metrics worker that owns the run (it judges the run and folds half the
    partitions), or of the other one (it folds the other half and sends their partials): the
    survivor takes the dead one's partitions over, rebuilds their folds (and the run's merged
    partials) from the changelogs, and judges the run complete, nothing counted twice."""
    url, target = await demo_target()
    await pipeline.start_all(bots=1, metrics=2)
    folds = [w for w in pipeline.workers if w.role == "metrics"]
    killed: list[Worker] = []

    async def kill_one(run: RunProcess) -> None:  # several batches folded and merged, 560 planned
        line = await run.wait_for_line(lambda line: line.startswith("esr: run ") and " on Kafka at " in line)
        partition = run_partition(line.split()[2].encode(), pipeline.settings.partitions)
        await run.wait_for_line(lambda line: (progress_requests(line) or 0) >= 150)
        owner = next(w for w in folds if partition in latest_owned(w))
        dead = owner if victim == "owner" else next(w for w in folds if w is not owner)
        killed.append(dead)
        dead.kill()

    code, verdict, err = await pipeline.run(single_request(rate=40, real_seconds=14), url, during=kill_one)

    assert code == 0, f"{verdict.get('reason')}\n{err}"
    c = verdict["completeness"]
    planned = c["arrivals_planned"]
    assert 460 < planned < 660  # around 40/s for 14 s
    assert c["complete"] is True, verdict["reason"]
    assert (c["journeys_started"], c["results_recorded"]) == (planned, planned)
    assert target.requests == planned
    assert (c["results_lost"], c["journey_events_lost"], c["duplicates_dropped"]) == (0, 0, 0)
    assert verdict["summary"]["requests"] == planned
    [survivor] = [w for w in folds if w not in killed]
    assert latest_owned(survivor) == set(range(pipeline.settings.partitions))  # it took the dead one's over
    assert killed[0].proc.returncode == -signal.SIGKILL


KAFKA_SH = Path(__file__).resolve().parents[2] / "deploy" / "kafka" / "kafka.sh"


async def kafka_sh(*args: str) -> None:
    proc = await asyncio.create_subprocess_exec(str(KAFKA_SH), *args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    assert proc.returncode == 0, out.decode()


async def test_the_broker_stopped_and_restarted_mid_run_never_gives_a_silent_pass(
        kafka_bootstrap: str, demo_target: Any, tmp_path: Path) -> None:
    """A broker of this test's own: stopped 5 s into the run and started again on the same data."""
    port = free_ports(2)
    data = tmp_path / "broker"
    await kafka_sh("start", str(data), str(port))
    settings = KafkaSettings(f"127.0.0.1:{port}", prefix="outage.", partitions=4)
    ensure_topics(settings)
    pipe = Pipeline(settings, tmp_path)
    try:
        url, target = await demo_target()
        await pipe.start_all(bots=1)

        async def outage(_: RunProcess) -> None:  # a quarter of the way into the run (600 planned)
            await wait_until(lambda: target.requests >= 150, 120, "a quarter of the requests sent")
            logged = {id(w): len(w.text()) for w in pipe.workers}
            await kafka_sh("stop", str(data))
            # the outage lasts until every worker (clock, bots, metrics) has found the broker gone
            await wait_until(lambda: all(("Connection refused" in w.text()[logged[id(w)]:]
                                          or "Connect call failed" in w.text()[logged[id(w)]:]) for w in pipe.workers),
                             120, "every worker seeing the broker gone")
            await kafka_sh("start", str(data), str(port))

        scenario = single_request(rate=30, real_seconds=20, assertions=["error_rate < 0.01"])
        code, verdict, err = await pipe.run(scenario, url, during=outage)
    finally:
        await pipe.close()
        await kafka_sh("stop", str(data))

    assert verdict, f"no verdict after the broker came back:\n{err}"
    c = verdict["completeness"]
    if verdict["verdict"] == "ERROR":
        assert "data incomplete" in verdict["reason"] and c["complete"] is False
    else:  # judged: then nothing may be missing
        assert c["complete"] is True, verdict
        planned = c["arrivals_planned"]
        assert (c["journeys_started"], c["results_recorded"]) == (planned, planned)
        # a bot that lost its group during the outage re-ran its open ticks: those repeats were dropped
        assert planned + c["duplicates_dropped"] <= target.requests
        assert (c["results_lost"], c["shard_reports_missing"]) == (0, 0)
    assert code == {"PASS": 0, "FAIL": 1, "ERROR": 2}[verdict["verdict"]]


def aborted_on_the_runs_topic(settings: KafkaSettings, run_id: str) -> list[str]:
    return [e.reason for e in run_topic(settings, run_id) if isinstance(e, RunAborted)]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
async def test_a_signal_before_any_worker_ticks_aborts_the_run(pipeline: Pipeline, demo_target: Any,
                                                                sig: signal.Signals) -> None:
    """Waiting for workers, before the first tick: no clock and no bots are running yet, only
    the metrics worker that judges. SIGINT is inherited ignored, as a shell's background job has it."""
    url, target = await demo_target()
    metrics = await pipeline.start("metrics")
    await metrics.wait_for("esr worker metrics: ready", 180)

    async def interrupt(run: RunProcess) -> None:
        await run.wait_for_line(lambda line: "waiting for the verdict" in line)
        run.send_signal(sig)

    code, verdict, err = await pipeline.run(single_request(rate=20, real_seconds=10), url, during=interrupt,
                                            sigint_ignored=True)

    reason = REASONS[sig]
    assert code == 3, err
    assert (verdict["verdict"], verdict["reason"]) == ("ABORTED", f"the run was aborted: {reason}")
    assert aborted_on_the_runs_topic(pipeline.settings, verdict["run_id"]) == [reason]
    assert target.requests == 0
    assert verdict["completeness"]["results_recorded"] == 0


async def test_ctrl_c_while_playing_aborts_a_kafka_run_and_every_shard_stops(pipeline: Pipeline,
                                                                              demo_target: Any) -> None:
    url, target = await demo_target()
    await pipeline.start_all(bots=1)

    async def interrupt(run: RunProcess) -> None:  # once the metrics worker has counted requests
        await run.wait_for_line(lambda line: (progress_requests(line) or 0) > 0)
        run.send_signal(signal.SIGINT)

    code, verdict, err = await pipeline.run(single_request(rate=20, real_seconds=60), url, during=interrupt,
                                            sigint_ignored=True)

    assert code == 3, err
    assert (verdict["verdict"], verdict["reason"]) == ("ABORTED", "the run was aborted: interrupted (Ctrl-C)")
    assert aborted_on_the_runs_topic(pipeline.settings, verdict["run_id"]) == ["interrupted (Ctrl-C)"]
    sent_at_abort = target.requests
    assert 0 < sent_at_abort < verdict["completeness"]["arrivals_planned"]
    def closed_shards() -> set[int]:
        return {e.shard for e in run_topic(pipeline.settings, verdict["run_id"])
                if isinstance(e, ShardReport) and e.final}

    # the bots hear of it from the clock's aborted ticks and close their shards
    await wait_until(lambda: closed_shards() == set(range(pipeline.settings.partitions)), 120, "every shard closed")
    # every shard reported itself closed: what the target saw stopped within a few requests of the abort
    assert target.requests <= sent_at_abort + 20


async def test_sigterm_while_waiting_for_the_verdict_aborts_the_drain(pipeline: Pipeline, demo_target: Any) -> None:
    """After the load, while the claims' polls wait for 'paid' and no verdict has come yet."""
    url, target = await demo_target()
    await pipeline.start_all(bots=1)

    async def terminate(run: RunProcess) -> None:  # the load ended at simulated hour 1
        await run.wait_for_line(lambda line: (progress_sim_hours(line) or 0) > 3)
        run.send_signal(signal.SIGTERM)

    # one simulated hour of claims, then a drain of up to 60 simulated hours while their polls wait
    code, verdict, err = await pipeline.run(claims(hours=1, rate=10, warp=3600, seed=3), url, during=terminate)

    assert code == 3, err
    assert (verdict["verdict"], verdict["reason"]) == ("ABORTED", "the run was aborted: terminated (SIGTERM)")
    assert aborted_on_the_runs_topic(pipeline.settings, verdict["run_id"]) == ["terminated (SIGTERM)"]
    filed = len(target.claims)
    assert filed == verdict["completeness"]["arrivals_planned"] > 0  # the load had ended
    assert target.requests > filed  # polls had begun


async def test_a_bot_worker_refuses_a_target_its_own_registry_does_not_allow(
        pipeline: Pipeline, demo_target: Any, tmp_path: Path) -> None:
    """Whoever can write to the runs topic names the target; each bot worker checks it against
    its own registry (here: registered targets only, none registered) and sends nothing."""
    url, target = await demo_target()
    strict = tmp_path / "strict-targets.json"
    strict.write_text(json.dumps({"loopback": False, "targets": {}}))
    metrics = await pipeline.start("metrics")
    clock = await pipeline.start("clock")
    bots = await pipeline.start("bots", env={"ESR_TARGETS": str(strict)})
    await metrics.wait_for("esr worker metrics: ready", 180)
    await clock.wait_for("owns partitions")
    await pipeline.wait_balanced([bots])
    code, verdict, err = await pipeline.run(single_request(rate=20, real_seconds=4), url)
    assert code == 2, err
    assert verdict["verdict"] == "ERROR"
    assert "refused" in verdict["reason"] and url in verdict["reason"] and "loopback" in verdict["reason"]
    assert target.requests == 0
