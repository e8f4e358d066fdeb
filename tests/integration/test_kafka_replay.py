"""`esr replay` on the Kafka runtime: the replay producer publishes the logged requests to
`esr.requests`, two bot workers send them, the metrics worker judges the replay."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kafka_pipeline import Pipeline
from loopback import wait_until
from test_kafka_same_answer import changelog_parts
from test_replay import BASE, write_logs

from esr.core.buckets import REST, RunFold
from esr.core.heavy_hitters import OTHER

pytestmark = [pytest.mark.integration, pytest.mark.kafka]


async def test_a_replay_on_kafka_sends_every_logged_request_once_and_is_judged(
        pipeline: Pipeline, recorder: Any, tmp_path: Path) -> None:
    url, rec = recorder
    expected = write_logs(tmp_path / "logs")
    await pipeline.start_all(bots=2)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "esr.cli", "replay", "--warp", "60", str(tmp_path / "logs"), "--target", url,
        "--json", "--assert", "requests == 7", "--redact", "ssn", stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=pipeline.env)
    out, err = await asyncio.wait_for(proc.communicate(), 180)
    assert proc.returncode == 0, err.decode()
    result = json.loads(out)
    verdict = result["verdict"]
    assert verdict["verdict"] == "PASS", verdict["reason"]
    c = verdict["completeness"]
    assert c["complete"] is True and c["results_recorded"] == 7 and c["arrivals_planned"] == 7
    assert (c["results_lost"], c["shard_reports_missing"], c["duplicates_dropped"]) == (0, 0, 0)
    assert result["replay"]["runtime"] == "kafka"

    sent = {(s["method"], s["target"], s["sim_time"]) for s in rec.seen}
    assert len(rec.seen) == 7
    assert sent == {(m.split()[0], m.split()[1].replace("123-45-6789", "REDACTED"),
                     datetime.fromtimestamp(BASE + dt, UTC).isoformat(timespec="milliseconds"))
                    for dt, m in expected}
    # one client's requests stay in order on one bot
    first_client = [s["sim_time"] for s in rec.seen if s["target"] != "/status"]
    assert first_client == sorted(first_client)


async def test_a_replay_on_kafka_is_capped_and_flat_as_on_the_embedded_runtime(
        pipeline: Pipeline, recorder: Any, tmp_path: Path) -> None:
    """The run's fold, merged from the partitions' folds, goes through the same endpoint cap:
    an endpoint counted in 'other' is said to be there, the heaviest keep rows, and an endpoint
    judged by window keeps its windows, over a log spanning 444 days (6 h windows)."""
    from test_replay import combined

    url, rec = recorder
    t0, span = 1_672_531_200, 730 * 86_400  # 2023-01-01, two years
    pages = [f"/pages/{chr(97 + i // 26)}{chr(97 + i % 26)}cold" for i in range(40)]
    # the first page a year before the rest (1 s at warp 3e7, so it is answered first): it is let
    # go from the cap early and never comes back
    times = [t0] + [t0 + span // 2 + 86_400 * k for k in range(1, 80)]  # one a day
    targets = pages + ["/hot"] * 30 + ["/broken/alpha"] * 10
    order = targets[:1] + [t for pair in zip(targets[1:40], targets[40:79], strict=True) for t in pair] + targets[79:]
    log = tmp_path / "two-years.log"
    clients = [f"203.0.113.{1 + i // 2 % 2}" for i in range(80)]  # two clients, on two of the four shards
    log.write_text("\n".join(combined(t, "GET", target, client=client)
                             for t, target, client in zip(times, order, clients, strict=True)) + "\n")
    cold = f"GET {pages[0]}"
    await pipeline.start_all(bots=2)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "esr.cli", "replay", "--warp", "3e7", str(log), "--target", url, "--json",
        "--top-endpoints", "5", "--assert", "requests == 80",
        "--assert", 'error_rate > 0.5 for endpoint "GET /broken/alpha"',
        "--assert", 'requests >= 1 for endpoint "GET /hot" in every 1d',
        "--assert", f'latency_p95_ms < 10000 for endpoint "{cold}"',
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=pipeline.env)
    out, err = await asyncio.wait_for(proc.communicate(), 180)
    assert proc.returncode == 2, err.decode()
    result = json.loads(out)
    verdict = result["verdict"]
    assert verdict["verdict"] == "ERROR" and verdict["completeness"]["complete"] is True, verdict
    by_text = {a["assertion"]: a for a in verdict["assertions"]}
    assert by_text["requests == 80"]["holds"] and by_text["requests == 80"]["observed"] == 80
    assert by_text['error_rate > 0.5 for endpoint "GET /broken/alpha"']["holds"]
    assert by_text['requests >= 1 for endpoint "GET /hot" in every 1d']["detail"].startswith(
        "held in all 30 windows with data")  # one request a day, judged day by day
    detail = by_text[f'latency_p95_ms < 10000 for endpoint "{cold}"']["detail"]
    assert "not among the 5 endpoints tracked one by one" in detail and "'other'" in detail
    assert verdict["reason"].startswith(f"cannot judge 'latency_p95_ms < 10000 for endpoint \"{cold}\"'")
    assert result["replay"]["plan"]["metric_window"]["window_s"] == 21_600  # 444 days: 6 h windows
    assert len(rec.seen) == 80

    # the partitions' folds on the metrics worker are capped and flat too: no bucket per window
    # and endpoint, at most 5 rows tracked one by one (plus the windowed one and "other")
    folds = await wait_until(lambda: part_folds(pipeline, 80), 30, "esr-partials holding all 80 results")
    assert len(folds) >= 2
    for fold in folds:
        assert fold.endpoint_cap is not None and fold.endpoint_cap.top == 5 and fold.windowed == {"GET /hot"}
        assert {label for _, label in fold.buckets} <= {REST, "GET /hot", ""}, sorted(fold.buckets)
        assert len(set(fold.rows) - {"GET /hot", OTHER}) <= 5
    assert sum(f.merged().requests for f in folds) == 80
    assert sum(row.requests for f in folds for row in f.rows.values()) == 80  # every request in one row
    for fold in folds:
        assert OTHER in fold.rows and fold.endpoint_cap.other.count > 0, {k: b.requests for k, b in fold.rows.items()}  # type: ignore[union-attr]


def part_folds(pipe: Pipeline, results: int) -> list[RunFold] | None:
    """Each partition's fold as the metrics worker stored it (its changelog), once they hold `results`."""
    folds = [part.fold for part in changelog_parts(pipe, "esr-partials").values()]
    return folds if sum(f.results_recorded for f in folds) >= results else None


async def test_max_in_flight_holds_for_the_whole_replay_not_for_each_shard(
        pipeline: Pipeline, recorder: Any, tmp_path: Path) -> None:
    """`--max-in-flight 8` over four shards: the target, holding the first requests until 8 are
    in hand, never has more than 8 of the replay's requests at once (each shard takes 2 of the
    run's slots), and has all 8 once."""
    from test_replay import combined

    url, rec = recorder
    log = tmp_path / "slow.log"
    log.write_text("".join(combined(1_700_000_000, "GET", f"/slow/{i}", client=f"203.0.113.{i % 16}") + "\n"
                           for i in range(240)))
    rec.hold_until = 8
    await pipeline.start_all(bots=2)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "esr.cli", "replay", "--warp", "1e9", str(log), "--target", url, "--json",
        "--max-in-flight", "8", "--assert", "requests == 240", stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=pipeline.env)
    out, err = await asyncio.wait_for(proc.communicate(), 180)
    assert proc.returncode == 0, err.decode()
    verdict = json.loads(out)["verdict"]
    assert verdict["verdict"] == "PASS" and verdict["completeness"]["complete"] is True, verdict["reason"]
    assert len(rec.seen) == 240
    assert rec.most_in_hand == 8  # all four shards' slots, and no more (240 without the cap: all at once)
