"""The whole walk-through in one command (`make demo`): start the sandbox on free loopback
ports, run `run_simulation.py` against it as written, print the verdict and where to look."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(port: int, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"the sandbox did not start on port {port}")


def main() -> int:
    port, sut_port = free_port(), free_port()
    sandbox = subprocess.Popen([sys.executable, "-m", "esr.mock_server", "--port", str(port), "--sut-port", str(sut_port)])
    try:
        wait_for(port)
        env = os.environ | {"ESR_URL": f"http://127.0.0.1:{port}"}
        print(f"running examples/run_simulation.py against the sandbox at {env['ESR_URL']} (about two minutes)",
              flush=True)
        done = subprocess.run([sys.executable, "run_simulation.py"], cwd=HERE, env=env, capture_output=True, text=True)
        sys.stdout.write(done.stdout)
        sys.stderr.write(done.stderr)
        if done.returncode == 0:
            print("the run's verdict table: esr judge latest    its events: $ESR_HOME/runs/<run id>/events.jsonl")
        return done.returncode
    finally:
        sandbox.terminate()
        sandbox.wait(15)


if __name__ == "__main__":
    sys.exit(main())
