#!/usr/bin/env python3
"""(g) The dashboard server under load: do `GET /metrics` and `GET /run/{id}/summary` answer
within 50 ms p99 while a 1,000 req/s run plays and 20 dashboards follow it?

    python benchmarks/bench_dashboard.py [--quick] [--dashboards 20] [--rate 1000] [--no-metrics]

Starts nginx (temp prefix, free 127.0.0.1 port, pinned to CPU 1), then:

- ESR: `esr serve` in a subprocess pinned to CPU 1 beside nginx (ESR_HOME in a temp dir,
  tokens from ESR_TOKEN / ESR_OBSERVER_TOKEN). One run is POSTed: one `GET /` journey, 1,000
  journey starts per real second, 24 simulated hours of one-minute windows at warp 1,440
  (60 s real; --quick: warp 4,320, 20 s), so the dashboards' timelines grow to 1,440 windows.
  For the whole run, 20 server-sent-event clients follow `/run/{id}/events?token=OBSERVER`
  (read and discarded, events counted), while `/metrics` and the summary are each polled 4
  times a second on a fixed schedule (a poll is sent on time even if the previous one has not
  answered); latency = send to last body byte.
- Peer: Locust with its web UI (`--autostart`, not headless) in a subprocess pinned to CPU 1
  beside nginx, 100 FastHttpUsers at `constant_throughput(10)` (~1,000 req/s) against the same
  nginx for as long. Its UI polls `/stats/requests` every 2 s, so 20 "dashboards" do that,
  while `/stats/requests` is polled 4 times a second like ESR's endpoints.

This script (the pollers and the dashboards) runs on CPU 0; without two CPUs nothing is pinned
and the header line says so. ESR runs first, then Locust; they never overlap. Afterwards the
finished run's fold is read back from its log and the two computations the server repeats
while a run plays (the timeline every dashboard is sent; the /metrics series) are timed here,
in-process, to show what the server spends per second.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import LOAD_CPU, PYTHON, SERVER_CPU, free_port, have_two_cpus, nginx_server, percentile, require, table  # noqa: E402

GOAL_P99_MS = 50.0
POLL_TIMEOUT_S = 10.0
LOCUST_USERS = 100
LOCUSTFILE = '''\
"""Written by bench_dashboard.py: a constant-throughput `GET /` user (rate per user from env)."""
import os
from locust import FastHttpUser, constant_throughput, task


class Paced(FastHttpUser):
    wait_time = constant_throughput(float(os.environ["BENCH_PER_USER_RPS"]))

    @task
    def root(self):
        self.client.get("/")
'''


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- processes --------------------------------------------------------------------------------
@contextlib.contextmanager
def process(cmd: list[str], out: Path, env: dict[str, str] | None = None):
    """A subprocess in its own session (Ctrl-C reaches only us), stopped on exit: SIGINT (both
    aiohttp and Locust shut down cleanly on it), then SIGKILL to its group after 10 s."""
    with open(out, "wb") as sink:
        proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)


def wait_listening(port: int, proc: subprocess.Popen, out: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited {proc.returncode}:\n{out.read_text()[-3000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:g}s:\n{out.read_text()[-3000:]}")


# -- measuring (runs on this process's loop, CPU 0) -------------------------------------------
class Poller:
    """GET `url` `count` times at `interval` on a fixed schedule from `start` (loop time)."""

    def __init__(self, session: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None) -> None:
        self.session, self.url, self.headers = session, url, headers or {}
        self.latencies_ms: list[float] = []
        self.send_lag_ms: list[float] = []  # our own lateness in sending: the measuring side's health
        self.errors: list[str] = []

    async def one(self, due: float) -> None:
        loop = asyncio.get_running_loop()
        t0 = time.perf_counter()
        self.send_lag_ms.append((loop.time() - due) * 1000)
        try:
            async with self.session.get(self.url, headers=self.headers,
                                        timeout=aiohttp.ClientTimeout(total=POLL_TIMEOUT_S)) as resp:
                body = await resp.read()
                if resp.status != 200:
                    self.errors.append(f"HTTP {resp.status}: {body[:200]!r}")
                    return
        except (TimeoutError, aiohttp.ClientError) as exc:
            self.errors.append(f"{type(exc).__name__}: {exc}")
            return
        self.latencies_ms.append((time.perf_counter() - t0) * 1000)

    async def run(self, start: float, interval: float, count: int) -> None:
        loop = asyncio.get_running_loop()
        tasks = []
        for i in range(count):
            due = start + i * interval
            await asyncio.sleep(max(0.0, due - loop.time()))
            tasks.append(asyncio.create_task(self.one(due)))
        await asyncio.gather(*tasks)

    def figures(self) -> dict[str, float]:
        values = sorted(self.latencies_ms)
        return {"n": len(values), "p50": percentile(values, 50), "p95": percentile(values, 95),
                "p99": percentile(values, 99), "max": values[-1] if values else float("nan"),
                "errors": len(self.errors), "lag_p99": percentile(sorted(self.send_lag_ms), 99)}


async def follow_events(session: aiohttp.ClientSession, url: str, deadline: float) -> dict[str, Any]:
    """One dashboard: read the event stream to its end (or the deadline), counting events."""
    loop = asyncio.get_running_loop()
    events = nbytes = 0
    first = last = None
    prev_nl = ended = False
    tail = b""
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=None, sock_read=30)) as resp:
            if resp.status != 200:
                return {"error": f"HTTP {resp.status}", "events": 0}
            async for chunk in resp.content.iter_any():
                # an event ends with a blank line; the JSON in `data:` never holds a raw newline
                found = chunk.count(b"\n\n") + (1 if prev_nl and chunk[:1] == b"\n" else 0)
                if found:
                    now = loop.time()
                    first = first if first is not None else now
                    last = now
                    events += found
                prev_nl = chunk[-1:] == b"\n"
                nbytes += len(chunk)
                tail = (tail + chunk)[-64:]
                if loop.time() > deadline:
                    break
            ended = b"event: end" in tail
    except (TimeoutError, aiohttp.ClientError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}", "events": events}
    timelines = events - (1 if ended else 0)
    span = (last - first) if first is not None and last is not None else 0.0
    return {"events": timelines, "bytes": nbytes, "span_s": span, "ended": ended,
            "per_s": (timelines - 1) / span if span > 0 and timelines > 1 else float("nan")}


def _session(limit: int = 8) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=limit))


async def served(session: aiohttp.ClientSession, nginx) -> int:
    """nginx's request count (stub_status), read without blocking the loop."""
    async with session.get(f"{nginx.url}/nginx_status") as resp:
        return int((await resp.text()).splitlines()[2].split()[2])


async def nginx_rate(session: aiohttp.ClientSession, nginx, start: float, work) -> float:
    """Requests per second nginx served from `start` (loop time) until `work` is done."""
    loop = asyncio.get_running_loop()
    await asyncio.sleep(max(0.0, start - loop.time()))
    before, t_before = await served(session, nginx), loop.time()
    await work
    return (await served(session, nginx) - before - 1) / (loop.time() - t_before)


async def observe_esr(base: str, run_id: str, observer: str, *, dashboards: int, load_s: float,
                      polls_per_s: float, poll_metrics: bool, nginx) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    async with _session(dashboards + 2) as sse, _session() as s_metrics, _session() as s_summary:
        followers = [asyncio.create_task(follow_events(sse, f"{base}/run/{run_id}/events?token={observer}",
                                                       t0 + load_s + 120)) for _ in range(dashboards)]
        metrics = Poller(s_metrics, f"{base}/metrics")
        summary = Poller(s_summary, f"{base}/run/{run_id}/summary", {"Authorization": f"Bearer {observer}"})
        start, count = t0 + 1.0, int((load_s - 2.0) * polls_per_s)  # inside the load window
        polls = asyncio.gather(metrics.run(start, 1 / polls_per_s, count if poll_metrics else 0),
                               summary.run(start + 0.5 / polls_per_s, 1 / polls_per_s, count))
        rate = await nginx_rate(s_summary, nginx, start, polls)
        final = None
        while loop.time() < t0 + load_s + 120:  # the verdict: after the load and the drain
            async with s_summary.get(summary.url, headers=summary.headers) as r:
                data = await r.json()
            if data.get("verdict") is not None:
                final = data
                break
            await asyncio.sleep(0.5)
        done, pending = await asyncio.wait(followers, timeout=15) if followers else (set(), set())
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        streams = [t.result() for t in done if not t.cancelled()]
    return {"metrics": metrics, "summary": summary, "final": final, "streams": streams,
            "nginx_rate": rate, "stream_timeouts": len(pending)}


async def observe_locust(base: str, *, dashboards: int, load_s: float, polls_per_s: float, nginx) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    async with _session(dashboards + 2) as ui, _session() as s_stats:
        uis = [Poller(ui, f"{base}/stats/requests") for _ in range(dashboards)]
        count_ui = int((load_s - 2.0) / 2.0)
        ui_tasks = [asyncio.create_task(p.run(t0 + 1.0 + 2.0 * i / max(1, dashboards), 2.0, count_ui))
                    for i, p in enumerate(uis)]  # each like a browser tab: every 2 s, spread out
        stats = Poller(s_stats, f"{base}/stats/requests")
        start = t0 + 1.0
        rate = await nginx_rate(s_stats, nginx, start, stats.run(start, 1 / polls_per_s,
                                                                 int((load_s - 2.0) * polls_per_s)))
        await asyncio.gather(*ui_tasks)
        async with s_stats.get(f"{base}/stats/requests") as r:
            final = await r.json()
    return {"stats": stats, "final": final, "nginx_rate": rate,
            "ui_polls": sum(len(p.latencies_ms) for p in uis), "ui_errors": sum(len(p.errors) for p in uis)}


def _run_loop(coro):
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.run(coro)
    return uvloop.run(coro)


# -- the two phases ---------------------------------------------------------------------------
def esr_phase(a: argparse.Namespace, nginx, tmp: Path) -> dict[str, Any]:
    home, port = tmp / "esr-home", free_port()
    admin, observer = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    env = {**os.environ, "ESR_HOME": str(home), "ESR_TOKEN": admin, "ESR_OBSERVER_TOKEN": observer}
    esr = str(Path(PYTHON).parent / "esr")
    out = tmp / "esr-serve.log"
    base = f"http://127.0.0.1:{port}"
    scenario = {"name": "bench", "duration_hours": 24, "time_warp": a.warp, "load_profile": [[0, a.rate]],
                "journeys": [{"name": "get", "steps": [{"name": "get", "request": {"path": "/"}}]}],
                "target": nginx.url}
    with process([*a.server_pin, esr, "serve", "--port", str(port)], out, env) as proc:
        wait_listening(port, proc, out)

        async def go() -> dict[str, Any]:
            async with _session() as s:
                async with s.post(f"{base}/run", json=scenario, headers={"Authorization": f"Bearer {admin}"}) as r:
                    body = await r.json()
                    if r.status != 202:
                        raise RuntimeError(f"POST /run answered {r.status}: {body}")
            log(f"  run {body['run_id']} posted; {a.dashboards} dashboards following it, polling for {a.load_s:g}s")
            result = await observe_esr(base, body["run_id"], observer, dashboards=a.dashboards, load_s=a.load_s,
                                       polls_per_s=a.polls_per_s, poll_metrics=not a.no_metrics, nginx=nginx)
            return result | {"run_id": body["run_id"]}

        result = _run_loop(go())
    result["home"] = home
    return result


def locust_phase(a: argparse.Namespace, nginx, tmp: Path) -> dict[str, Any]:
    port = free_port()
    locustfile = tmp / "locustfile_paced.py"
    locustfile.write_text(LOCUSTFILE)
    out = tmp / "locust.log"
    env = {**os.environ, "BENCH_PER_USER_RPS": f"{a.rate / LOCUST_USERS:g}"}
    cmd = [*a.server_pin, PYTHON, "-m", "locust", "-f", str(locustfile), "--host", nginx.url,
           "--web-host", "127.0.0.1", "--web-port", str(port), "--autostart", "-u", str(LOCUST_USERS),
           "-r", str(LOCUST_USERS), "--run-time", f"{a.load_s + 15:g}s", "--autoquit", "5",
           "--stop-timeout", "2", "--loglevel", "WARNING"]
    with process(cmd, out, env) as proc:
        wait_listening(port, proc, out)
        time.sleep(2.0)  # users spawned (100 at 100/s) and pacing
        log(f"  Locust UI on 127.0.0.1:{port}; {a.dashboards} UI pollers, polling for {a.load_s:g}s")
        return _run_loop(observe_locust(f"http://127.0.0.1:{port}", dashboards=a.dashboards, load_s=a.load_s,
                                        polls_per_s=a.polls_per_s, nginx=nginx))


def server_costs(home: Path, run_id: str, repeat: int) -> dict[str, float]:
    """The finished run's fold from its log; the timeline and /metrics computations timed here."""
    import orjson
    from prometheus_client.exposition import generate_latest
    from prometheus_client.registry import Collector, CollectorRegistry

    from esr.bus.runlog import read_events, run_log_path
    from esr.core.buckets import RunFold
    from esr.observe.prom import families, fold_series
    from esr.observe.timeline import run_timeline

    fold = RunFold().apply_all(read_events(run_log_path(home, run_id)))

    def best(fn) -> float:
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t) * 1000)
        return min(times)

    body = orjson.dumps(run_timeline(fold, live={"status": "RUNNING"}))

    class One(Collector):
        def collect(self):
            return families([fold_series(fold, run_id=run_id, scenario="bench", state="RUNNING",
                                         sim_time_s=fold.last_sim_time, assertions=[], faults={})])

    registry = CollectorRegistry(auto_describe=False)
    registry.register(One())
    return {"windows": len(orjson.loads(body)["t"]), "buckets": len(fold.buckets), "timeline_kb": len(body) / 1024,
            "timeline_ms": best(lambda: orjson.dumps(run_timeline(fold, live={"status": "RUNNING"}))),
            "metrics_ms": best(lambda: generate_latest(registry))}


# -- report -----------------------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="20 s per phase instead of 60 s (warp 4,320)")
    ap.add_argument("--rate", type=float, default=1000.0, help="journey starts (GET /) per second (default 1000)")
    ap.add_argument("--dashboards", type=int, default=20, help="event-stream clients (default 20)")
    ap.add_argument("--polls-per-s", type=float, default=4.0, help="polls of each endpoint per second (default 4)")
    ap.add_argument("--no-metrics", action="store_true", help="do not poll /metrics (what the dashboards alone cost)")
    a = ap.parse_args()
    if not (0 < a.rate <= 5000 and 0 <= a.dashboards <= 200 and 0 < a.polls_per_s <= 20):
        ap.error("need 0 < --rate <= 5000, 0 <= --dashboards <= 200, 0 < --polls-per-s <= 20")
    a.warp = 4320.0 if a.quick else 1440.0
    a.load_s = 24 * 3600 / a.warp  # 60 s (quick 20 s)
    require("nginx")
    sys.stdout.reconfigure(line_buffering=True)
    two = have_two_cpus()  # asked once: this process is pinned below, after nginx has started
    a.server_pin = ["taskset", "-c", SERVER_CPU] if two else []
    pin = ("ESR server / Locust and nginx pinned to CPU 1, pollers and dashboards (this script) to CPU 0"
           if two else "NOT pinned (fewer than 2 CPUs)")

    begun = time.monotonic()
    with nginx_server() as nginx, tempfile.TemporaryDirectory(prefix="esr-bench-dashboard-") as tmpdir:
        tmp = Path(tmpdir)
        if two:
            os.sched_setaffinity(0, {int(LOAD_CPU)})  # the pollers and dashboards (nginx is on CPU 1)
        log(f"nginx on {nginx.url}; {os.cpu_count()} CPUs; {pin}")
        log(f"ESR: esr serve, run of 24 simulated hours at warp {a.warp:g} ({a.load_s:g}s), {a.rate:,.0f}/s")
        esr = esr_phase(a, nginx, tmp)
        log("server-side costs on the finished run's fold (in-process, CPU 0)")
        costs = server_costs(esr["home"], esr["run_id"], repeat=3 if a.quick else 5)
        log(f"Locust: web UI, {LOCUST_USERS} users x constant_throughput({a.rate / LOCUST_USERS:g}) for {a.load_s:g}s")
        loc = locust_phase(a, nginx, tmp)

    m, s, ls = esr["metrics"].figures(), esr["summary"].figures(), loc["stats"].figures()
    final = esr["final"] or {}
    requests = (final.get("summary") or {}).get("requests") or 0
    real_s = (final.get("time") or {}).get("load_real_seconds") or a.load_s
    gen = final.get("generator") or {}
    streams = [st for st in esr["streams"] if "error" not in st]
    per_s = sorted(st["per_s"] for st in streams if st["per_s"] == st["per_s"])
    events = sorted(st["events"] for st in streams)
    kb = sum(st["bytes"] for st in streams) / max(1, sum(st["events"] for st in streams)) / 1024
    loc_final = loc["final"]

    print(f"bench_dashboard ({'quick' if a.quick else 'full'}): {a.rate:,.0f} GET / per second for {a.load_s:g}s "
          f"(24 simulated h of 1-min windows at warp {a.warp:g}), {a.dashboards} dashboards, each endpoint polled "
          f"{a.polls_per_s:g}/s; {os.cpu_count()} CPUs; {pin}; Python {sys.version.split()[0]}")
    print(table(
        ["endpoint (latency ms)", "polls", "p50", "p95", "p99", "max", "errors", "our send lag p99"],
        [
            ["ESR GET /metrics", m["n"], m["p50"], m["p95"], m["p99"], m["max"], m["errors"], m["lag_p99"]],
            ["ESR GET /run/{id}/summary", s["n"], s["p50"], s["p95"], s["p99"], s["max"], s["errors"], s["lag_p99"]],
            ["Locust GET /stats/requests", ls["n"], ls["p50"], ls["p95"], ls["p99"], ls["max"], ls["errors"],
             ls["lag_p99"]],
        ]))

    def ratio(x: float, y: float) -> str:
        return f"{x / y:.2f}" if y and x == x and y == y else "n/a"
    print(f"ESR / Locust at p50, p95, p99: /metrics {ratio(m['p50'], ls['p50'])}, {ratio(m['p95'], ls['p95'])}, "
          f"{ratio(m['p99'], ls['p99'])}; summary {ratio(s['p50'], ls['p50'])}, {ratio(s['p95'], ls['p95'])}, "
          f"{ratio(s['p99'], ls['p99'])} (lower is better)")
    judged = [s] if a.no_metrics else [m, s]
    met = all(f["p99"] < GOAL_P99_MS and not f["errors"] for f in judged)
    m_p99 = "not polled" if a.no_metrics else f"{m['p99']:.1f} ms"
    print(f"goal p99 < {GOAL_P99_MS:g} ms for /metrics and summary: {'met' if met else 'NOT met'} "
          f"(/metrics {m_p99}, summary {s['p99']:.1f} ms)")
    print(table(
        ["load and dashboards", "ESR", "Locust"],
        [
            ["achieved req/s (ESR: requests / load real s; Locust: total_rps)",
             requests / real_s if real_s else float("nan"), loc_final.get("total_rps", float("nan"))],
            ["req/s nginx saw while polling", esr["nginx_rate"], loc["nginx_rate"]],
            ["late starts > 10 ms (ESR verdict `generator`)",
             f"{gen.get('late_start_rate', float('nan')):.2%} ({gen.get('late_starts', '?'):,})", "-"],
            ["dashboards: events / s each, min-max",
             f"{per_s[0]:.2f}-{per_s[-1]:.2f}" if per_s else "n/a", "polls every 2 s (its UI)"],
            ["dashboards: events (or UI polls) received, min-max / total",
             f"{events[0]}-{events[-1]} / {sum(events):,}" if events else "n/a",
             f"{loc['ui_polls']:,} (errors {loc['ui_errors']})"],
            ["KB per event (whole timeline) on average", kb, "-"],
            ["verdict / stream errors", f"{final.get('verdict')} / {len(esr['streams']) - len(streams)} "
             f"+ {esr['stream_timeouts']} unfinished", f"failures {loc_final.get('fail_ratio', 0):.2%}"],
        ]))
    print(f"server-side work measured on the finished run's fold ({costs['buckets']:,} buckets, "
          f"{costs['windows']:,} windows): a timeline (build + JSON, {costs['timeline_kb']:,.0f} KB) "
          f"{costs['timeline_ms']:.1f} ms, built at most twice a second per run and shared by its dashboards "
          f"(their streams wake together: about once a second here); a /metrics body {costs['metrics_ms']:.1f} ms "
          "per scrape. Both run on the event loop that also plays the run.")
    if final.get("verdict") != "PASS":
        print(f"ESR verdict {final.get('verdict')}: {final.get('reason')}; completeness {final.get('completeness')}")
    if esr["metrics"].errors or esr["summary"].errors or loc["stats"].errors:
        print("first errors:", (esr["metrics"].errors + esr["summary"].errors + loc["stats"].errors)[:3])
    print(f"({time.monotonic() - begun:.0f}s in all)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # everything started was stopped on the way out
        sys.exit("interrupted; nginx, the ESR server and Locust were stopped")
