"""One run cannot hurt another: a run at the server's maximum rate beside a small one; the
small run's verdict is complete and its own, and the API answers throughout."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from busy import PUNCTUALITY_NOT_JUDGED
from loopback import free_port, wait_for_port, wait_until_sync
from test_restarts import Server, servers  # noqa: F401 - the fixture

pytestmark = pytest.mark.integration


def test_a_saturating_run_leaves_a_small_run_beside_it_complete(esr_home: Path, servers: list[Server]) -> None:  # noqa: F811
    port = free_port()  # the target in its own process, so the server's loop is the one that saturates
    target = subprocess.Popen([sys.executable, "-m", "esr.cli", "demo-target", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        url = f"http://127.0.0.1:{port}"
        server = Server(esr_home, concurrent=2)
        servers.append(server)
        status, big = server.call("POST", "/run", {"name": "saturating", "duration_hours": 8, "time_warp": 3600,
                                                   "load_profile": [[0, 5000]], "target": url})
        assert status == 202, big
        wait_until_sync(lambda: server.call("GET", f"/run/{big['run_id']}/summary")[1]["state"] == "RUNNING", 60,
                        "the saturating run playing")
        status, small = server.call("POST", "/run", {
            "name": "small", "duration_hours": 2, "time_warp": 3600, "load_profile": [[0, 5]], "seed": 4,
            "assertions": ["error_rate < 0.01", "requests > 0"], "target": url,
            **PUNCTUALITY_NOT_JUDGED})  # a run beside a saturating one is complete, though it may start late
        assert status == 202, small
        polled = []

        def small_ended() -> dict | None:
            status, summary = server.call("GET", f"/run/{small['run_id']}/summary")
            polled.append(server.call("GET", "/runs")[0])  # the API answers while both play
            return summary if status == 200 and summary["verdict"] else None

        verdict = wait_until_sync(small_ended, 180, "the small run's verdict")
        assert set(polled) == {200}
        assert verdict["verdict"] == "PASS", verdict["reason"]
        c = verdict["completeness"]
        assert c["complete"] is True and c["journeys_started"] == c["arrivals_planned"] > 0
        assert server.call("GET", f"/run/{big['run_id']}/summary")[1]["state"] in ("RUNNING", "DRAINING", "FINISHED")
    finally:
        target.terminate()
        target.wait(30)
