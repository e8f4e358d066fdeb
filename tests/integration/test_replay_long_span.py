"""A real replay of a log spanning two years keeps a bounded number of metric windows: the window
widens (stated in the plan and the report) so that the span makes at most 2,000 windows, the
endpoints keep whole-run rows, and the verdict is judged on those windows; a window asked for
that would make more is refused, never widened behind the user's back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from recording_server import Recorder
from test_replay import combined, esr

pytestmark = pytest.mark.integration

T0 = 1_672_531_200  # 2023-01-01T00:00:00Z
DAY = 86_400
SPAN = 730 * DAY  # two years of log
MAX_WINDOWS = 2_000


def write_log(path: Path) -> list[tuple[int, str]]:
    """60 requests over two years: 40 to claims, 15 to a status page, 5 that now fail (500)."""
    sent = []
    for k in range(60):
        t = T0 + (k * SPAN) // 59
        target = f"/claims/{k}" if k % 4 else ("/broken/x" if k % 12 == 0 else "/status")
        sent.append((t, target))
    path.write_text("\n".join(combined(t, "GET", target) for t, target in sent) + "\n")
    return sent


async def test_a_two_year_log_replays_with_a_bounded_number_of_windows_and_rows(
        recorder: tuple[str, Recorder], tmp_path: Path) -> None:
    url, rec = recorder
    log = tmp_path / "two-years.log"
    sent = write_log(log)
    broken = sum(1 for _, target in sent if target.startswith("/broken"))
    claims = sum(1 for _, target in sent if target.startswith("/claims"))
    assert (len(sent), broken, claims) == (60, 5, 45)
    assertions = ["requests == 60", f"errors == {broken}", "errors <= 1 in every 1d",
                  'latency_p95_ms < 10000 for endpoint "GET /claims/{id}" in every 1d',
                  'requests == 10 for endpoint "GET /status"']
    args = ["--warp", "1e9", str(log), "--target", url, "--top-endpoints", "4"]
    for a in assertions:
        args += ["--assert", a]

    code, out, err = await esr("replay", *args, "--dry-run", "--json")
    assert code == 0, err
    planned = json.loads(out)["plan"]["metric_window"]
    # 60 s would make 1,051,201 windows: widened to the first width that makes at most 2,000 (12 h)
    assert planned["window_s"] == 43_200 and planned["chosen"] == "widened"
    assert planned["windows"] == SPAN // 43_200 + 1 == 1_461 <= planned["max_windows"] == MAX_WINDOWS
    assert "widened from 1min" in planned["text"]

    code, out, err = await esr("replay", *args, "--json")
    assert code == 0, out[:2500] + err
    assert len(rec.seen) == 60
    result = json.loads(out)
    verdict = result["verdict"]
    assert verdict["verdict"] == "PASS", verdict
    by_text = {a["assertion"]: a for a in verdict["assertions"]}
    assert [by_text[a]["holds"] for a in assertions] == [True] * 5
    assert by_text["requests == 60"]["observed"] == 60
    assert by_text[f"errors == {broken}"]["observed"] == broken
    # the windowed endpoint was judged day by day: its 45 requests fall in 45 distinct days
    claims_daily = by_text['latency_p95_ms < 10000 for endpoint "GET /claims/{id}" in every 1d']["detail"]
    assert claims_daily.startswith(f"held in all {claims} windows with data")

    report = result["replay"]
    assert report["plan"]["metric_window"] == planned
    windows = report["metric_windows"]
    assert windows["window_s"] == 43_200 and windows["max_windows"] == MAX_WINDOWS
    assert windows["windows_with_data"] == 60  # one request per window here; never more than 2,000
    assert windows["windowed_endpoints"] == ["GET /claims/{id}"]  # judged 'in every 1d': kept per window
    # per window, one bucket for the windowed endpoint's requests and one for all the others': here
    # each window holds one request, so 45 of the first kind and 15 of the second
    assert windows["buckets"] == claims + (60 - claims)
    rows = report["comparison"]["endpoints"]
    assert windows["endpoint_rows"] == len(rows) == 3  # at most --top-endpoints 4, the windowed one and other
    assert rows["GET /status"]["now"]["count"] == 10 and rows["GET /broken/x"]["now"]["statuses"] == {"500": broken}
    assert rows["GET /claims/{id}"]["now"]["count"] == claims
    assert sum(r["now"]["count"] for r in rows.values()) == 60
    assert sum(r["now"]["statuses"].get("500", 0) for r in rows.values()) == broken

    # re-judged from the run log, with a new endpoint judged by window: the same figures
    run_id = Path(result["run_log"]).parent.name
    code, out, err = await esr("judge", run_id, "--json", "--assert", "errors <= 1 in every 2d",
                               "--assert", 'requests == 10 for endpoint "GET /status" in every 1000d')
    assert code == 0, err
    judged = json.loads(out)
    assert judged["verdict"] == "PASS", judged
    assert [a["holds"] for a in judged["assertions"]] == [True, True]

    # the user's window is used or refused, never widened silently
    code, out, err = await esr("replay", *args, "--window", "1h", "--dry-run")
    assert code == 2
    assert "--window 1h makes 17,521 metric windows" in err and "give --window 12h or more" in err
    code, out, err = await esr("replay", "--warp", "1e9", str(log), "--target", url, "--window", "1d", "--json",
                               "--assert", "errors <= 1 in every 1d")
    assert code == 0, err
    again = json.loads(out)["replay"]
    assert again["plan"]["metric_window"]["chosen"] == "asked" and again["metric_windows"]["window_s"] == DAY
    # an 'every' scope finer than the widened window is refused before anything is sent, saying why
    seen = len(rec.seen)
    code, out, err = await esr("replay", *args, "--assert", "errors <= 1 in every 1h")
    assert code == 2
    assert "must be a multiple of the metric window (43200s)" in err and "widened" in err
    assert len(rec.seen) == seen
