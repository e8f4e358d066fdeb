"""The walk-through in one command (`make demo`; `make demo-chaos` with `--chaos`): start the
local sandbox on free loopback ports and run the chapter's scripts as written, `python
dol_scenario.py` then `python run_simulation.py` (or `dol_chaos.py`). The scenario says warp 60,
a simulated day in 24 minutes; the demo asks for warp 1440 through ESR_TIME_WARP, which the
client prints, so the day plays in a minute (then the drain, while the last claims are decided)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEMO_WARP = "1440"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(port: int, sandbox: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if sandbox.poll() is not None:
            raise SystemExit(f"the sandbox exited ({sandbox.returncode}) before it listened")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"the sandbox did not start on port {port} within {seconds:g} s")


def main(argv: list[str]) -> int:
    script = "dol_chaos.py" if "--chaos" in argv else "run_simulation.py"
    port, sut_port = free_port(), free_port()
    sandbox = subprocess.Popen([sys.executable, "-m", "esr.mock_server", "--port", str(port),
                                "--sut-port", str(sut_port)], stderr=subprocess.DEVNULL)
    try:
        wait_for(port, sandbox)
        env = os.environ | {"ESR_URL": f"http://127.0.0.1:{port}", "ESR_TIME_WARP": os.environ.get("ESR_TIME_WARP",
                                                                                                       DEMO_WARP)}
        for step in ("dol_scenario.py", script):
            print(f"$ ESR_URL={env['ESR_URL']} ESR_TIME_WARP={env['ESR_TIME_WARP']} python {step}", flush=True)
            done = subprocess.run([sys.executable, step], cwd=HERE, env=env)
            if done.returncode != 0:
                return done.returncode
        print("the run's verdict table: esr judge latest    its events: $ESR_HOME/runs/<run id>/events.jsonl",
              flush=True)
        return 0
    finally:
        sandbox.terminate()
        sandbox.wait(30)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
