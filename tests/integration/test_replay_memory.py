"""`esr replay --top-endpoints`: a real replay of many distinct paths keeps a bounded report, with
the heaviest endpoints by requests and by errors, one 'other' row saying how many it holds, and
exact totals; an assertion on an endpoint counted in 'other' says so."""

from __future__ import annotations

import json
import random
import string
from pathlib import Path

import pytest
from recording_server import Recorder
from test_replay import BASE, combined, esr

pytestmark = pytest.mark.integration

PAGES = 20_000  # distinct paths the endpoint folder keeps as they are: /pages/<8 lower-case letters>
HOT, BROKEN = 3_000, 100


def write_log(path: Path) -> list[str]:
    rng = random.Random(5)
    pages = sorted({"".join(rng.choices(string.ascii_lowercase, k=8)) for _ in range(PAGES + 200)})[:PAGES]
    targets = [f"/pages/{p}" for p in pages] + ["/hot"] * HOT + ["/broken/alpha"] * BROKEN
    rng.shuffle(targets)
    path.write_text("\n".join(combined(BASE + i // 40, "GET", t) for i, t in enumerate(targets)) + "\n")
    return pages


async def test_replay_of_many_distinct_paths_keeps_a_bounded_report_with_exact_totals(
        recorder: tuple[str, Recorder], tmp_path: Path) -> None:
    url, rec = recorder
    pages = write_log(tmp_path / "many.log")
    total = PAGES + HOT + BROKEN
    code, out, err = await esr("replay", "--warp", "1e6", str(tmp_path / "many.log"), "--target", url, "--json",
                               "--top-endpoints", "50", "--max-in-flight", "128", "--run-id", "many-paths",
                               "--assert", f"requests == {total}",
                               "--assert", 'error_rate > 0.5 for endpoint "GET /broken/alpha"')
    assert code == 0, err
    assert len(rec.seen) == total
    result = json.loads(out)
    assert result["verdict"]["verdict"] == "PASS", result["verdict"]
    comparison = result["replay"]["comparison"]
    rows = comparison["endpoints"]
    assert len(rows) <= 51
    assert "GET /hot" in rows and "GET /broken/alpha" in rows  # heaviest by requests, by errors
    assert rows["GET /hot"]["now"]["count"] == HOT and rows["GET /hot"]["in_other_at_most"] == 0
    assert rows["GET /broken/alpha"]["now"]["statuses"] == {"500": BROKEN}
    other = rows["other"]
    assert other["rule"] == "other"
    assert abs(other["labels"] - PAGES) < PAGES * 0.05 and other["labels_estimated"]
    assert sum(r["now"]["count"] for r in rows.values()) == total
    assert sum(r["then"]["count"] for r in rows.values()) == total
    assert sum(r["now"]["statuses"].get("500", 0) for r in rows.values()) == BROKEN
    assert comparison["endpoint_cap"]["top"] == 50
    assert sum(c["count"] for c in comparison["changed"]) == BROKEN  # 200 then, 500 now
    report = Path(result["run_log"]).parent / "replay_report.json"
    assert report.stat().st_size < 200_000  # 51 rows, whatever the number of distinct paths

    # the run log re-judged: same rows (the cap is in the run's description), and an endpoint that
    # ended in 'other' is said to be there, not judged on other's data
    cold = next(f"GET /pages/{p}" for p in pages if f"GET /pages/{p}" not in rows)
    code, out, err = await esr("judge", "many-paths", "--json", "--assert", f"requests == {total}",
                               "--assert", 'error_rate > 0.5 for endpoint "GET /broken/alpha"',
                               "--assert", f'latency_p95_ms < 10000 for endpoint "{cold}"')
    verdict = json.loads(out)
    assert verdict["verdict"] == "ERROR", verdict
    by_text = {a["assertion"]: a for a in verdict["assertions"]}
    assert by_text[f"requests == {total}"]["holds"]
    assert by_text['error_rate > 0.5 for endpoint "GET /broken/alpha"']["holds"]
    detail = by_text[f'latency_p95_ms < 10000 for endpoint "{cold}"']["detail"]
    assert "not among the 50 endpoints tracked" in detail and "'other'" in detail
