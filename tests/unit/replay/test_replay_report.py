"""The replay report per endpoint: a replay through an in-memory sender, folded by the heuristics
and by `--endpoint` templates, says which rule folded each row."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from esr.cli.replay import _print_report
from esr.core.endpoints import EndpointFolder
from esr.core.journey import PreparedRequest
from esr.core.targets import Target
from esr.engine.response import Response
from esr.replay.player import ReplayRun, replay_scenario
from esr.replay.record import LogRecord
from esr.replay.schedule import plan_replay

T0 = 1741946400.0  # 2025-03-14T10:00:00Z
TARGETS = ["/articles/hello", "/articles/world", "/2025/03/14/my-first-post/", "/2025/03/15/a-second-post/",
           "/claims/7", "/claims/8", "/health", "/docs/intro.html"]


class Answers:
    """A sender that answers 200 at once and remembers what it was asked."""

    def __init__(self) -> None:
        self.sent: list[PreparedRequest] = []
        self.headers: list[dict[str, str]] = []  # ESR's own headers of each request

    async def send(self, request: PreparedRequest, headers: dict[str, str]) -> Response:
        self.sent.append(request)
        self.headers.append(headers)
        return Response(200, {}, b"ok")

    async def close(self) -> None:
        pass


async def replay(tmp_path: Path, folder: EndpointFolder | None) -> tuple[ReplayRun, Answers]:
    records = [LogRecord(time=T0 + i * 0.01, method="GET", target=t, source=f"a.log:{i + 1}", status=200,
                         duration_ms=5.0) for i, t in enumerate(TARGETS)]
    plan = plan_replay((r.time for r in records), 1000.0)
    answers = Answers()
    run = ReplayRun(records, plan, Target("http://127.0.0.1:9", "http://127.0.0.1:9"),
                    scenario=replay_scenario(plan, []), home=tmp_path, sender=answers,
                    **({} if folder is None else {"endpoints": folder}))
    await run.execute()
    return run, answers


async def test_each_row_says_which_rule_folded_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run, answers = await replay(tmp_path, EndpointFolder(["/articles/{slug}"]))
    rows = run.comparison.to_dict()["endpoints"]
    assert {label: (row["rule"], row["now"]["count"]) for label, row in rows.items()} == {
        "GET /articles/{slug}": ("template", 2),
        "GET /{date}/{slug}/": ("date+slug", 2),
        "GET /claims/{id}": ("id", 2),
        "GET /health": ("none", 1),
        "GET /docs/{slug}.html": ("slug", 1),
    }
    assert sorted(r.endpoint for r in answers.sent) == sorted(
        ["GET /articles/{slug}"] * 2 + ["GET /{date}/{slug}/"] * 2 + ["GET /claims/{id}"] * 2
        + ["GET /health", "GET /docs/{slug}.html"])
    started = json.loads(run.log_path.read_text().splitlines()[0])
    assert (started["type"], started["endpoints"]) == ("run_started", ["/articles/{slug}"])
    _print_report({"read": {"parsed": 8, "skipped": {}, "malformed": {}, "malformed_total": 0,
                            "late_beyond_reorder_window": 0, "not_selected": {}, "first_malformed": [],
                            "unreadable": []}, "comparison": run.comparison.to_dict()})
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[:2] == ["endpoint", "rule"]
    assert next(line for line in lines if line.startswith("GET /articles/{slug}")).split()[:3] == [
        "GET", "/articles/{slug}", "template"]


async def test_without_templates_the_heuristics_fold(tmp_path: Path) -> None:
    run, _ = await replay(tmp_path, None)
    rows = run.comparison.to_dict()["endpoints"]
    assert rows["GET /articles/hello"]["rule"] == "none"
    assert rows["GET /{date}/{slug}/"]["rule"] == "date+slug"


def test_on_kafka_the_templates_travel_in_the_run_start_to_the_bots(tmp_path: Path) -> None:
    from esr.bus.kafka import decode_tick, encode
    from esr.core.ticks import Tick
    from esr.producers.bots import ReplayShardRun
    from esr.replay.kafka import replay_started

    plan = plan_replay([T0, T0 + 1], 60.0)
    started = replay_started(plan, replay_scenario(plan, []), Target("http://127.0.0.1:9", "http://127.0.0.1:9"),
                             shards=2, endpoints=("GET /articles/{slug}",))
    tick = decode_tick(encode(Tick(run_id=started.run_id, shard=0, tick=0, sim_from=0.0, sim_to=30.0, last=True,
                                   run=started, requests=[])))
    assert tick.run.endpoints == ("GET /articles/{slug}",)
    shard = ReplayShardRun(tick.run, 0, "a:1", lambda topic, batch: None, registry_file=tmp_path / "targets.json")
    assert shard.endpoints.fold("GET", "/articles/hello").rule == "template"
    assert shard.endpoints.fold("GET", "/2025/03/14/hello-world").label == "GET /{date}/{slug}"


async def test_each_replayed_request_gets_an_idempotency_key_unless_the_log_gave_it_one(tmp_path: Path) -> None:
    logged = (("Idempotency-Key", "from-the-log"),)
    records = [LogRecord(time=T0 + i, method="POST", target="/claims", source=f"a.log:{i + 1}", status=201,
                         headers=logged if i == 1 else ()) for i in range(3)]
    plan = plan_replay((r.time for r in records), 1000.0)
    answers = Answers()
    run = ReplayRun(records, plan, Target("http://127.0.0.1:9", "http://127.0.0.1:9"),
                    scenario=replay_scenario(plan, []), home=tmp_path, sender=answers)
    await run.execute()
    ours = [h.get("Idempotency-Key") for h in answers.headers]
    theirs = [r.headers.get("Idempotency-Key") for r in answers.sent]
    assert ours == [f"{run.run_id}-u1-r0", None, f"{run.run_id}-u3-r0"]
    assert theirs == [None, "from-the-log", None]  # sent as it was logged, and only once
