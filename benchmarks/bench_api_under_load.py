#!/usr/bin/env python3
"""The server's API while a run saturates it, and how fast SIGTERM ends it.

    python benchmarks/bench_api_under_load.py [--quick]

Starts the demo target (`esr demo-target`, CPU 1) and `esr serve` (CPU 0) on loopback, then:

1. idle: 200 `GET /runs` and 200 `GET /run/{id}/summary` (of a finished small run), one at a
   time, timing each from this process;
2. loaded: the same while a run at the server's maximum rate (5,000 journey starts/s, 30 real
   seconds; --quick 15 s) plays on the server;
3. SIGTERM to the server while that run still plays: seconds until the process has exited.

The peer figure is the same API idle: the ratio says what a saturating run costs a user of the
API. Goal: p99 under 100 ms for both calls while loaded; SIGTERM ends the server within 5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from tempfile import TemporaryDirectory

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import PYTHON, free_port, have_two_cpus, percentile, pinned, table  # noqa: E402

TOKEN = "bench-launch-token-0123456789"
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
GOAL_P99_MS = 100.0
GOAL_SIGTERM_S = 5.0


def call(url: str, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers=HEADERS, method="POST" if body else "GET")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def wait_for(predicate, timeout: float, what: str):  # noqa: ANN001, ANN201
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except OSError:
            value = None
        if value:
            return value
        time.sleep(0.05)
    raise RuntimeError(f"not within {timeout:g} s: {what}")


def timings(api: str, run_id: str, count: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"GET /runs": [], "GET /run/{id}/summary": []}
    for _ in range(count):
        for name, path in (("GET /runs", "/runs"), ("GET /run/{id}/summary", f"/run/{run_id}/summary")):
            start = time.perf_counter()
            call(api + path)
            out[name].append((time.perf_counter() - start) * 1000)
    return {k: sorted(v) for k, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a 15 s saturating run, 100 calls each")
    args = parser.parse_args()
    seconds, count = (15, 100) if args.quick else (30, 200)
    with TemporaryDirectory(prefix="esr-bench-api-") as home:
        env = os.environ | {"ESR_HOME": home, "ESR_TOKEN": TOKEN, "ESR_OBSERVER_TOKEN": TOKEN[::-1]}
        target_port, api_port = free_port(), free_port()
        target = subprocess.Popen([*pinned("1"), PYTHON, "-m", "esr.cli", "demo-target", "--port", str(target_port)],
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        server = subprocess.Popen([*pinned("0"), PYTHON, "-m", "esr.cli", "serve", "--port", str(api_port),
                                   "--max-concurrent", "2"], env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        api, target_url = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{target_port}"
        try:
            wait_for(lambda: call(api + "/runs") is not None, 60, "the server answering")
            small = call(api + "/run", {"name": "small", "duration_hours": 1, "time_warp": 36000,
                                        "load_profile": [[0, 10]], "target": target_url})["run_id"]
            wait_for(lambda: call(f"{api}/run/{small}/summary")["verdict"], 60, "the small run's verdict")
            idle = timings(api, small, count)
            warp = 3600.0
            big = call(api + "/run", {"name": "saturating", "duration_hours": seconds * warp / 3600, "time_warp": warp,
                                      "load_profile": [[0, 5000]], "target": target_url})["run_id"]
            wait_for(lambda: call(f"{api}/run/{big}/summary")["state"] == "RUNNING", 60, "the big run playing")
            loaded = timings(api, big, count)
            playing = call(f"{api}/run/{big}/summary")["state"]
            sent = time.monotonic()
            server.send_signal(signal.SIGTERM)
            server.wait(60)
            sigterm_s = time.monotonic() - sent
        finally:
            for proc in (server, target):
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
    rows = []
    for name in idle:
        rows.append([f"{name} p50 ms", percentile(loaded[name], 50), percentile(idle[name], 50), ""])
        rows.append([f"{name} p99 ms", percentile(loaded[name], 99), percentile(idle[name], 99), f"< {GOAL_P99_MS:g}"])
        rows.append([f"{name} max ms", loaded[name][-1], idle[name][-1], ""])
    rows.append(["SIGTERM to exit (s)", sigterm_s, "", f"< {GOAL_SIGTERM_S:g}"])
    note = "server CPU 0, target CPU 1" if have_two_cpus() else "not pinned (fewer than two CPUs)"
    print(f"{count} calls of each, one at a time; saturating run: 5,000 journey starts/s for {seconds} s "
          f"(state when SIGTERM was sent: {playing}); {note}")
    print(table(["figure", "while a run saturates", "idle (peer)", "goal"], rows))
    worst = max(percentile(loaded[n], 99) for n in loaded)
    ok = worst < GOAL_P99_MS and sigterm_s < GOAL_SIGTERM_S
    print(f"p99 loaded / idle: {worst / max(0.001, max(percentile(idle[n], 99) for n in idle)):.1f}x; "
          f"goals {'met' if ok else 'NOT met'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
