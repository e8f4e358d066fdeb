"""The plan and the real run agree on what is sent: `esr replay --dry-run --json` against the
same command without `--dry-run`, on a loopback recorder, for a log spanning more than a year
at warp 1e9 and for a time slice; a refused target is refused the same way by both."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from recording_server import Recorder
from test_replay import combined, esr

from esr.core.events import RunFinished
from esr.replay.schedule import plan_replay

pytestmark = pytest.mark.integration

T0 = 1_672_531_200  # 2023-01-01T00:00:00Z
MARCH_14 = 1_741_910_400  # 2025-03-14T00:00:00Z


def write_log(path: Path, times: list[int]) -> None:
    lines = [combined(t, "GET", f"/claims/{i}") for i, t in enumerate(times)]
    lines.insert(3, combined(times[3], "POST", "/claims"))  # not sent without --allow-writes, by both
    path.write_text("\n".join(lines) + "\n")


def sim_seconds(seen: list[dict[str, str]]) -> list[float]:
    return [datetime.fromisoformat(s["sim_time"]).timestamp() for s in seen]


def finished(run_log: str) -> dict:
    lines = [json.loads(line) for line in Path(run_log).read_text().splitlines()]
    return next(e for e in lines if e["type"] == RunFinished.__struct_config__.tag)


async def plan_then_run(url: str, *args: str) -> tuple[dict, dict]:
    code, out, err = await esr("replay", *args, "--target", url, "--dry-run", "--json")
    assert code == 0, err
    dry = json.loads(out)
    code, out, err = await esr("replay", *args, "--target", url, "--json")
    assert code == 0, err
    return dry, json.loads(out)


async def test_a_log_spanning_twenty_months_at_warp_1e9_sends_what_the_plan_says(
        recorder: tuple[str, Recorder], tmp_path: Path) -> None:
    url, rec = recorder
    # 40 requests over 20 months, bunched unevenly: some a second apart, some months apart
    times = sorted({T0 + (k * k * 40_000) % (600 * 86_400) + k for k in range(40)} | {T0, T0 + 600 * 86_400})
    log = tmp_path / "years.log"
    write_log(log, times)
    dry, real = await plan_then_run(url, "--warp", "1e9", str(log), "--assert", f"requests == {len(times)}")
    plan = dry["plan"]
    assert (plan["requests"], plan["first"], plan["last"], plan["span_s"]) == (
        len(times), T0, T0 + 600 * 86_400, 600 * 86_400)
    assert plan["span_s"] > 366 * 86_400
    # what reached the target, with the logged times, is what the plan counted (at warp 1e9 the
    # requests are all in flight within milliseconds, so they may arrive in any order)
    assert len(rec.seen) == plan["requests"]
    assert sorted(sim_seconds(rec.seen)) == [float(t) for t in times]
    sent = plan_replay(sorted(sim_seconds(rec.seen)), 1e9)
    assert (sent.requests, sent.first, sent.last, sent.span_s, sent.peak_rate) == (
        plan["requests"], plan["first"], plan["last"], plan["span_s"], plan["peak_rate_per_s"])
    # the run's own account agrees too: its report's plan, its events and its verdict
    assert real["replay"]["plan"] == plan
    assert real["replay"]["read"]["not_selected"] == dry["read"]["not_selected"] == {
        "write method (replay with --allow-writes to send it)": 1}
    assert finished(real["run_log"])["requests_sent"] == plan["requests"]
    assert real["verdict"]["verdict"] == "PASS"
    assert [a["holds"] for a in real["verdict"]["assertions"]] == [True]
    # the run log is read back as any run's: `esr judge` gives the same verdict
    run_id = Path(real["run_log"]).parent.name
    code, out, err = await esr("judge", run_id, "--json")
    assert code == 0, err
    assert json.loads(out)["verdict"] == "PASS"


async def test_a_slice_sends_exactly_the_planned_slice(recorder: tuple[str, Recorder], tmp_path: Path) -> None:
    url, rec = recorder
    times = [MARCH_14 + 12 * 3600 + k * 600 for k in range(37)]  # 12:00 .. 18:00 UTC, every 10 minutes
    log = tmp_path / "day.log"
    write_log(log, times)
    dry, real = await plan_then_run(url, "--warp", "1e5", str(log), "--slice", "2025-03-14T14:00/2025-03-14T16:30")
    inside = [float(t) for t in times if MARCH_14 + 14 * 3600 <= t < MARCH_14 + 16.5 * 3600]
    assert dry["plan"]["requests"] == len(inside) == 15
    assert (dry["plan"]["first"], dry["plan"]["last"]) == (inside[0], inside[-1])
    assert sorted(sim_seconds(rec.seen)) == inside
    assert real["replay"]["plan"] == dry["plan"]
    assert finished(real["run_log"])["requests_sent"] == 15


@pytest.mark.parametrize("target", ["http://203.0.113.7:8080", "not-registered.example"])
async def test_a_refused_target_is_refused_alike_with_and_without_dry_run(target: str, tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    write_log(log, [T0 + k for k in range(5)])
    real = await esr("replay", "--warp", "1e9", str(log), "--target", target)
    dry = await esr("replay", "--warp", "1e9", str(log), "--target", target, "--dry-run")
    assert dry == real
    code, out, err = real
    assert code == 2 and out == ""
    assert err.startswith("esr: error: ") and ("refusing" in err or "unknown target" in err)
