"""Shared helpers for the benchmark scripts (not a benchmark itself).

- `nginx_server()`: a throw-away nginx (one worker, `daemon off`, its own `-p` prefix in a temp
  dir) on a free 127.0.0.1 port, pinned to CPU 1, always stopped on exit.
- `pinned()`: the command line prefix that pins a load generator to CPU 0.
- `run_json()`: run a helper subprocess (bounded by a timeout) whose last stdout line is JSON.
- `table()`: a plain-text table.

Everything here talks to 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable
LOAD_CPU = "0"  # load generators
SERVER_CPU = "1"  # nginx

NGINX_CONF = """\
worker_processes 1;
daemon off;
master_process on;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 65;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location = /nginx_status {{ stub_status; }}
        location / {{ default_type text/plain; return 200 "ok\\n"; }}
    }}
}}
"""


def require(tool: str) -> str:
    path = shutil.which(tool) or (f"/usr/sbin/{tool}" if Path(f"/usr/sbin/{tool}").exists() else None)
    if path is None:
        sys.exit(f"error: `{tool}` not found; install it with `apt-get install -y {tool}`")
    return path


def have_two_cpus() -> bool:
    try:
        return len(os.sched_getaffinity(0)) >= 2 and shutil.which("taskset") is not None
    except AttributeError:
        return False


def pinned(cpu: str = LOAD_CPU) -> list[str]:
    """`taskset -c <cpu>` if the machine lets us pin, else nothing (and the table says so)."""
    return ["taskset", "-c", cpu] if have_two_cpus() else []


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Nginx:
    def __init__(self, prefix: Path, port: int, proc: subprocess.Popen) -> None:
        self.prefix, self.port, self.proc = prefix, port, proc
        self.url = f"http://127.0.0.1:{port}"

    def served(self) -> int:
        """Requests nginx has handled so far (stub_status), including these status requests."""
        with urllib.request.urlopen(f"{self.url}/nginx_status", timeout=5) as r:
            lines = r.read().decode().splitlines()
        return int(lines[2].split()[2])

    def worker_cpu_seconds(self) -> float | None:
        """CPU time (user+sys) of the single nginx worker, from /proc."""
        try:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
            fields = Path(f"/proc/{children[0]}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return None


@contextlib.contextmanager
def nginx_server() -> Iterator[Nginx]:
    """nginx on a free loopback port in a temp prefix, pinned to CPU 1; stopped even on error."""
    binary = require("nginx")
    prefix = Path(tempfile.mkdtemp(prefix="esr-bench-nginx-"))
    for sub in ("logs", "tmp"):
        (prefix / sub).mkdir()
    proc = None
    old_term = signal.getsignal(signal.SIGTERM)
    # a SIGTERM (e.g. `timeout`) unwinds through the finally below instead of orphaning nginx
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        for _attempt in range(5):  # the free port can be taken between probe and bind: retry
            port = free_port()
            conf = prefix / "nginx.conf"
            conf.write_text(NGINX_CONF.format(prefix=prefix, port=port))
            proc = subprocess.Popen(
                [*pinned(SERVER_CPU), binary, "-p", str(prefix), "-e", str(prefix / "logs/error.log"),
                 "-c", str(conf)],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
            deadline = time.monotonic() + 10
            up = False
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                        up = True
                        break
                except OSError:
                    time.sleep(0.05)
            if up:
                server = Nginx(prefix, port, proc)
                server.served()  # answers HTTP, not just accepts
                yield server
                return
            _stop(proc)
            proc = None
        raise RuntimeError(f"nginx did not start; see {prefix}/logs/error.log")
    finally:
        if proc is not None:
            _stop(proc)
        signal.signal(signal.SIGTERM, old_term)
        shutil.rmtree(prefix, ignore_errors=True)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGQUIT)  # graceful stop of master and worker
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # its own session: master and worker only
        proc.wait(timeout=5)


def run_json(cmd: Sequence[str], timeout: float) -> dict:
    """Run a helper; its last stdout line is a JSON object. Raises on failure or timeout."""
    proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr[-4000:]}")
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    if not lines:
        raise RuntimeError(f"{' '.join(cmd)} printed nothing:\n{proc.stderr[-4000:]}")
    result = json.loads(lines[-1])
    if proc.stderr.strip():
        result.setdefault("stderr", proc.stderr.strip()[-2000:])
    return result


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    def line(r: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), sep, *(line(r) for r in cells[1:])])


def _fmt(value: object) -> str:
    if isinstance(value, float):
        if value != value:
            return "n/a"
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values (nan if empty)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), int(-(-p * len(sorted_values) // 100))))
    return sorted_values[rank - 1]


def machine_note() -> str:
    cpus = os.cpu_count()
    pin = "load generators pinned to CPU 0, nginx to CPU 1" if have_two_cpus() else "NOT pinned (fewer than 2 CPUs)"
    return f"{cpus} CPUs; {pin}; Python {sys.version.split()[0]}"
