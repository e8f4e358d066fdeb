"""The `esr` command line. Wiring happens in `main()`; nothing runs at import."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import signal
import sys
import time
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from esr.bus.runlog import check_run_id, read_events, run_log_path
from esr.cli.options import http_client, kafka_option, run_loop
from esr.cli.output import EXIT_ABORTED, fail, report_verdict
from esr.core.buckets import RunFold
from esr.core.errors import EsrError
from esr.core.run_limits import RunLimits
from esr.core.scenario import Scenario, load_scenario, read_scenario_json, scenario_json_schema
from esr.core.targets import TargetRegistry
from esr.core.verdict import Verdict, judge
from esr.engine.sender import HTTP_CLIENTS
from esr.settings import Settings

__all__ = ["main"]


_EPILOG_RUN = """examples:
  esr run scenario.json --target http://127.0.0.1:8080
  esr run scenario.py --target staging --json > verdict.json
  ESR_TARGET=http://127.0.0.1:8080 esr run scenario.json

exit codes: 0 PASS, 1 FAIL, 2 invalid input or ERROR (could not be judged), 3 ABORTED
environment: ESR_HOME (run logs, default ~/.esr), ESR_TARGET (default target),
             ESR_TARGETS (target registry file, default $ESR_HOME/targets.json),
             ESR_HTTP_CLIENT (pooled or aiohttp),
             ESR_KAFKA (HOST:PORT: run on the Kafka runtime, as --kafka does),
             ESR_KAFKA_CONFIG (a Kafka client properties file: security.protocol, SASL, TLS)"""

_EPILOG_WORKER = """The Kafka runtime's processes; run one clock, one metrics worker and as many bot
workers as the load needs (each owns some of the tick topic's partitions, i.e. shards).

examples:
  esr worker clock   --kafka 127.0.0.1:9092
  esr worker bots    --kafka 127.0.0.1:9092     # start several for more capacity
  esr worker metrics --kafka 127.0.0.1:9092
  ESR_KAFKA=127.0.0.1:9092 esr run scenario.json --target http://127.0.0.1:8080

environment: ESR_KAFKA (broker), ESR_KAFKA_PREFIX (topic prefix, default "esr."),
             ESR_KAFKA_PARTITIONS (partitions of new topics = bot shards per run, default 4),
             ESR_KAFKA_CONFIG (a Kafka client properties file for every client: security.protocol,
             sasl.*, ssl.*; the metrics worker gets it translated for Faust; docs/kafka.md)"""

_EPILOG_JUDGE = """examples:
  esr judge 20261127-090512-3f9a1c
  esr judge latest --assert "latency_p99_ms < 500" --assert "error_rate < 0.001"
  esr judge latest --scenario scenario.py     # custom metric functions from Python"""


_GRAFANA_DIR = "deploy/grafana/provisioning/dashboards"
_GRAFANA_URL = "http://127.0.0.1:3000"
_EPILOG_GRAFANA = f"""examples:
  esr grafana write                 # regenerate {_GRAFANA_DIR}/*.json
  ESR_GRAFANA_TOKEN=glsa_... esr grafana push
  esr grafana push --url http://127.0.0.1:3000 --token glsa_... --run 20261127-090512-3f9a1c

push upserts "ESR overview" and "ESR run drill-down" into the folder "ESR (simulated)" and
replaces each run's annotations (start, end, faults, decisions, verdict; tags sim=true, run_id:ID).
environment: ESR_GRAFANA_URL (loopback only; another host only as --url), ESR_GRAFANA_TOKEN, ESR_HOME"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="esr",
        description="HMS-ESR: run a policy-rollout scenario against a staging system in warped "
                    "simulated time and get a PASS/FAIL verdict.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="start with:  esr demo     (a bundled scenario against a bundled local target)\n"
               "then:        esr schema > scenario.schema.json; esr plan FILE; esr run FILE --target URL")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    raw = argparse.RawDescriptionHelpFormatter

    run = sub.add_parser("run", help="run a scenario and print its verdict", epilog=_EPILOG_RUN, formatter_class=raw)
    run.add_argument("scenario", help="scenario file: JSON, or Python defining `scenario = Scenario(...)`")
    run.add_argument("--target",
                     help="registered target name or loopback URL (default: $ESR_TARGET, then the scenario's)")
    run.add_argument("--json", action="store_true", help="print the verdict as JSON on stdout")
    run.add_argument("--quiet", action="store_true", help="no live progress display")
    run.add_argument("--run-id", help="use this run id instead of a generated one")
    run.add_argument("--http-client", choices=HTTP_CLIENTS,
                     help="pooled: the lean keep-alive client (default); aiohttp: aiohttp's client "
                          "(env ESR_HTTP_CLIENT)")
    kafka_option(run, "run on the Kafka runtime through this broker (env ESR_KAFKA); needs "
                       "`esr worker clock`, `bots` and `metrics` running")

    judge_p = sub.add_parser("judge", help="re-judge a finished run from its run log", epilog=_EPILOG_JUDGE,
                             formatter_class=raw)
    judge_p.add_argument("run_id", help="run id, or `latest`")
    judge_p.add_argument("--assert", dest="assertions", action="append", metavar="RULE",
                         help="judge with this rule instead of the scenario's (repeatable)")
    judge_p.add_argument("--scenario", help="Python scenario file providing custom metric functions")
    judge_p.add_argument("--json", action="store_true", help="print the verdict as JSON")

    report = sub.add_parser("report", help="a finished run's charts, verdict, faults and decisions: HTML or JSON",
                            epilog="examples:\n"
                                   "  esr report latest --html report.html   # one file, opens with no network\n"
                                   "  esr report 20261127-090512-3f9a1c --json > run.json", formatter_class=raw)
    report.add_argument("run_id", help="run id, or `latest`")
    report.add_argument("--html", metavar="FILE", help="write a self-contained HTML page to FILE")
    report.add_argument("--json", action="store_true", help="print the timeline and the verdict as JSON")

    validate = sub.add_parser(
        "validate", help="check a scenario file and list every error",
        epilog="examples:\n  esr validate scenario.json\n"
               "  esr validate scenario.json --target prod-like-staging.dol.gov   # its metrics and faults too",
        formatter_class=raw)
    validate.add_argument("scenario", help="scenario file (JSON, or Python defining `scenario`)")
    validate.add_argument("--target", help="also check against this target, as `esr run` would: the metrics it "
                                           "derives, its faults and default journey (default: $ESR_TARGET, or the "
                                           "scenario's own `target`; none: the file alone)")

    sub.add_parser("schema", help="print the JSON Schema of scenario files",
                   epilog="example:\n  esr schema > scenario.schema.json   # point your editor at it",
                   formatter_class=raw)

    plan = sub.add_parser("plan", help="show what a scenario will do: real duration, rates, drain bound",
                          epilog="example:\n  esr plan scenario.json", formatter_class=raw)
    plan.add_argument("scenario", help="scenario file (JSON, or Python defining `scenario`)")
    plan.add_argument("--target", help="target whose default journey applies when the scenario has none")
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")

    demo = sub.add_parser("demo", help="run the bundled example scenario against a bundled local target",
                          epilog="example:\n  esr demo && esr judge latest --assert 'latency_p99_ms < 50'",
                          formatter_class=raw)
    demo.add_argument("--json", action="store_true", help="print the verdict as JSON on stdout")
    demo.add_argument("--quiet", action="store_true", help="no live progress display")

    serve = sub.add_parser("serve", help="run the ESR server: launch and watch runs over HTTP",
                           epilog="examples:\n  esr serve                      # 127.0.0.1:9700, prints the token\n"
                                  "  ESR_TOKEN=$(openssl rand -hex 16) esr serve --max-concurrent 2 --max-rate 2000\n\n"
                                  "API: POST /run, GET /runs, GET /run/ID/summary, POST /run/ID/abort, "
                                  "GET /openapi.json\n"
                                  "environment: ESR_TOKEN (launch token), ESR_OBSERVER_TOKEN (read-only), ESR_HOME,\n"
                                  "             ESR_KAFKA and ESR_KAFKA_CONFIG (the Kafka runtime and its client "
                                  "properties file)",
                           formatter_class=raw)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=9700, help="port (default 9700)")
    serve.add_argument("--max-concurrent", type=int, default=1, help="runs played at once; the rest queue")
    _public_url_option(serve)
    _limit_options(serve)
    kafka_option(serve, "play runs on the Kafka runtime through this broker (env ESR_KAFKA)")

    worker = sub.add_parser("worker", help="a process of the Kafka runtime: clock, bots or metrics",
                            epilog=_EPILOG_WORKER, formatter_class=raw)
    worker.add_argument("role", choices=("clock", "bots", "metrics"),
                        help="clock: ticks per shard at the warp; bots: run the journeys of owned shards; "
                             "metrics: buckets, completeness and verdicts (Faust)")
    kafka_option(worker, "the broker (env ESR_KAFKA)")
    worker.add_argument("--http-client", choices=HTTP_CLIENTS,
                        help="bots: the HTTP client (default pooled)")
    worker.add_argument("--log-level", default="warn", choices=("debug", "info", "warn", "error"),
                        help="metrics: Faust's log level (default warn)")

    sandbox = sub.add_parser("sandbox", help="the ESR server plus a sample DOL claims system to run scenarios against",
                             epilog="examples:\n  esr sandbox\n  python -m esr.mock_server --port 9700\n"
                                    "  ESR_URL=http://127.0.0.1:9700 python examples/run_simulation.py\n\n"
                                    "The claims system is registered as prod-like-staging.dol.gov (and 'sandbox'),\n"
                                    "with its claim journey as the default and cost_per_claim as a metric.",
                             formatter_class=raw)
    sandbox.add_argument("--host", default="127.0.0.1", help="address of the ESR server (default 127.0.0.1)")
    sandbox.add_argument("--port", type=int, default=9700, help="ESR server port (default 9700)")
    sandbox.add_argument("--sut-port", type=int, default=9701, help="claims system port (default 9701)")
    sandbox.add_argument("--max-concurrent", type=int, default=1, help="runs played at once; the rest queue")
    sandbox.add_argument("--caseworkers", type=int, default=110, help="review capacity of the claims office")
    _public_url_option(sandbox)
    _limit_options(sandbox)
    sandbox.add_argument("--auth", action="store_true",
                         help="ask for tokens, as `esr serve` does (on loopback the sandbox is a playground without "
                              "them; on any other address they are always on)")

    grafana = sub.add_parser("grafana", help="Grafana dashboards for GET /metrics: write the files, or push them "
                                        "with annotations of the runs", epilog=_EPILOG_GRAFANA, formatter_class=raw)
    grafana_sub = grafana.add_subparsers(dest="grafana_command", required=True, metavar="ACTION")
    write = grafana_sub.add_parser("write", help="write the dashboards' JSON files (the provisioned copies)")
    write.add_argument("dir", nargs="?", default=_GRAFANA_DIR, help=f"folder (default {_GRAFANA_DIR})")
    push = grafana_sub.add_parser("push", help="upsert the dashboards and post the runs' annotations")
    push.add_argument("--url", help=f"Grafana's root URL (env ESR_GRAFANA_URL: loopback only; default {_GRAFANA_URL})")
    push.add_argument("--token", help="service account token, Editor role (env ESR_GRAFANA_TOKEN, better than a flag)")
    push.add_argument("--run", dest="runs", action="extend", nargs="+", metavar="RUN_ID", default=[],
                      help="annotate these runs only (default: every run under $ESR_HOME/runs)")

    from esr.cli.replay import add_parser as add_replay

    add_replay(sub)

    target = sub.add_parser("demo-target", help="serve the bundled local target (for trying scenarios)",
                            epilog="endpoints:\n"
                                   "  GET  /               'ok' after --latency ms (503 at --error-rate)\n"
                                   "  GET  /status/CODE    answers with that status\n"
                                   "  POST /claims         files a claim: 201 {\"id\", \"status\": \"filed\"}, "
                                   "header X-Cost\n"
                                   "  GET  /claims/ID      'pending', then 'paid' 12-60 simulated hours after filing\n"
                                   "                       (simulated time from the X-ESR-Sim-Time header)\n\n"
                                   "example:\n  esr demo-target --port 8080 --latency 20 --error-rate 0.01",
                            formatter_class=raw)
    target.add_argument("--host", default="127.0.0.1", help="loopback address to listen on")
    target.add_argument("--port", type=int, default=8080)
    target.add_argument("--latency", type=float, default=0.0, help="added latency in ms")
    target.add_argument("--jitter", type=float, default=0.0, help="uniform jitter in ms (+/-)")
    target.add_argument("--error-rate", type=float, default=0.0, help="share of requests answered with 503")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.current(kafka=getattr(args, "kafka", None), http_client=getattr(args, "http_client", None),
                                    public_url=getattr(args, "public_url", None))
        return _COMMANDS[args.command](args, settings)
    except EsrError as exc:
        return fail(exc)
    except KeyboardInterrupt:
        return EXIT_ABORTED


# -- commands -------------------------------------------------------------------------------
def _cmd_validate(args: argparse.Namespace, settings: Settings) -> int:
    from esr.faults.plan import plan_faults

    path = Path(args.scenario)
    name = (args.target or settings.target or _scenario_target(path)) if path.is_file() else None
    target = _registry(settings).resolve(name) if name else None
    scenario = load_scenario(path, fill_in=target.fill_in if target else None)
    against = ""
    if target is not None:  # what `esr run` checks next: the faults against what the target offers
        plan_faults(scenario.failure_injection, {**target.faults, **scenario.fault_actions}, target.name, target.url)
        against = f" for target {target.name}"
    count = len(scenario.assertions)
    print(f"{args.scenario}: valid scenario {scenario.name!r}{against} ({count} assertion{'' if count == 1 else 's'})")
    return 0


def _cmd_schema(args: argparse.Namespace, settings: Settings) -> int:
    print(json.dumps(scenario_json_schema(), indent=2))
    return 0


def _cmd_plan(args: argparse.Namespace, settings: Settings) -> int:
    from esr.core.plan import make_plan
    from esr.observe.display import console, plan_table

    scenario = load_scenario(args.scenario)
    target = _registry(settings).resolve(args.target) if args.target else None
    from esr.core.journey_spec import DEFAULT_JOURNEY

    plan = make_plan(scenario, target.default_journey if target else DEFAULT_JOURNEY)
    if args.json:
        print(json.dumps(plan.to_dict(), indent=2))
    else:
        console().print(plan_table(plan))
    return 0


def _cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    http_client(settings)
    if args.run_id is not None:
        check_run_id(args.run_id, settings.home)
    path = Path(args.scenario)
    if not path.is_file():
        raise EsrError(f"no such scenario file: {path}")
    name = args.target or settings.target or _scenario_target(path)
    if not name:
        raise EsrError(
            "no target: pass --target URL (a loopback URL or a registered name), set ESR_TARGET, "
            "or put \"target\" in the scenario")
    target = _registry(settings).resolve(name)
    scenario = load_scenario(path, fill_in=target.fill_in)  # the target's metrics and counters
    if settings.kafka:
        return _execute_kafka(scenario, target, args, settings, scenario_file=str(path.resolve()))
    return _execute(scenario, target, args, settings, scenario_file=str(path.resolve()))


def _execute_kafka(scenario: Scenario, target: Any, args: argparse.Namespace, settings: Settings,
                   scenario_file: str) -> int:
    """Publish the run's start, then wait for the metrics worker's verdict. Ctrl-C or SIGTERM
    at any moment after the start publishes the abort and waits for the ABORTED verdict (a
    second one stops waiting); before the start, nothing was sent and the command just ends."""
    from esr.bus.kafka import KafkaSettings, ensure_topics
    from esr.cli.kafka_run import abort_and_wait
    from esr.cli.stop_signals import Interrupted, StopSignals
    from esr.core.ticks import expected_end
    from esr.producers.launch import VerdictWatch, start_run

    kafka = KafkaSettings.from_settings(settings)
    for line in ensure_topics(kafka).lines(kafka):  # before the watch: it reads every partition there is
        print(line, file=sys.stderr, flush=True)
    started = None
    watch = None
    with StopSignals() as stop:
        try:
            watch = VerdictWatch(kafka, progress=True)  # the worker's progress also says it is still at work
            with stop.held():  # the start is published whole, then a held signal aborts it
                started = start_run(kafka, scenario, target, run_id=args.run_id, scenario_file=scenario_file)
            if not args.quiet:
                print(f"esr: run {started.run_id} on Kafka at {kafka.bootstrap}: {started.shards} shards, "
                      f"{started.arrivals_planned} journeys planned; waiting for the verdict", file=sys.stderr,
                      flush=True)
            verdict = watch.wait(started.run_id, expected_end(started) - time.time() + 30,
                                 progress=None if args.quiet else _kafka_progress)
        except Interrupted as exc:
            if started is None:
                print(f"esr: {exc.reason} before the run started; nothing was sent", file=sys.stderr)
                return EXIT_ABORTED
            assert watch is not None  # made before the start
            verdict = abort_and_wait(kafka, started, exc.reason, watch, stop)
            if verdict is None:
                return EXIT_ABORTED
        finally:
            if watch is not None:
                watch.close()
    if verdict is None:
        raise EsrError(f"no verdict for run {started.run_id} arrived on {kafka.topic('verdicts')}: "
                       "is `esr worker metrics` running?")
    return report_verdict(Verdict.from_dict(verdict), as_json=args.json)


def _scenario_target(path: Path) -> str | None:
    """The scenario's own `target`, read before validation (validation needs the target)."""
    if path.suffix == ".py":
        return load_scenario(path).target
    data = read_scenario_json(path)
    return data.get("target") if isinstance(data, dict) and isinstance(data.get("target"), str) else None


def _cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from esr.sandbox.demo_target import DemoTargetConfig, start

    text = resources.files("esr").joinpath("examples/quickstart.json").read_text(encoding="utf-8")
    scenario = Scenario.from_dict(json.loads(text))

    async def with_target() -> tuple[Verdict, str]:
        runner, url = await start(DemoTargetConfig(latency_ms=2, jitter_ms=1, seed=scenario.seed))
        try:
            print(f"bundled target listening on {url}", file=sys.stderr)
            return await _play(scenario, _registry(settings).resolve(url), settings, run_id=None, quiet=args.quiet)
        finally:
            await runner.cleanup()

    verdict, log_path = run_loop(with_target())
    return report_verdict(verdict, as_json=args.json, log_path=log_path)


def _cmd_demo_target(args: argparse.Namespace, settings: Settings) -> int:
    from aiohttp import web

    from esr.sandbox.demo_target import DemoTargetConfig, make_app

    TargetRegistry().resolve(f"http://{args.host}:{args.port}")  # serve on loopback only
    config = DemoTargetConfig(latency_ms=args.latency, jitter_ms=args.jitter, error_rate=args.error_rate)
    print(f"demo target on http://{args.host}:{args.port} (Ctrl-C stops it)", file=sys.stderr)
    web.run_app(make_app(config), host=args.host, port=args.port, print=None, access_log=None)
    return 0


def _cmd_judge(args: argparse.Namespace, settings: Settings) -> int:
    path = run_log_path(settings.home, args.run_id)
    events = read_events(path)
    fold = RunFold()
    first = next(events, None)
    if first is not None:
        fold.apply(first)
        if fold.endpoint_cap is not None and args.assertions:  # a replay, folded flat: keep per-window figures
            fold.windowed.update(_windowed(fold, args.assertions))  # for the endpoints these judge by window
    fold.apply_all(events)
    if fold.started is None:
        raise EsrError(f"{path}: the log has no run_started event")
    data = dict(fold.started.scenario)
    metrics: dict[str, Any] = {}
    source = args.scenario or fold.started.scenario_file
    python_only = sorted(set(data.get("python_metrics", [])) - set(data.get("derived_metrics", {})))
    if python_only:
        if not source or not Path(source).exists() or not source.endswith(".py"):
            raise EsrError(f"the scenario uses custom metric functions ({', '.join(python_only)}); "
                           "pass --scenario FILE.py that defines them")
        metrics = dict(load_scenario(source).metrics)
    if args.assertions:
        data["assertions"] = list(args.assertions)
    scenario = Scenario.from_dict(data, metrics=metrics)
    verdict = judge(fold, scenario.parsed_assertions(), custom=scenario.custom_metrics,
                    counters=scenario.counter_names, definitions=scenario.metric_definitions)
    return report_verdict(verdict, as_json=args.json, log_path=str(path))


def _windowed(fold: RunFold, assertions: list[str]) -> list[str]:
    """The endpoints that `assertions` judge over a time scope, for the replay whose start `fold` holds."""
    from esr.replay.player import windowed_endpoints

    assert fold.started is not None
    try:
        return windowed_endpoints(Scenario.from_dict({**fold.started.scenario, "assertions": list(assertions)}))
    except EsrError:
        return []  # judged below, where a bad assertion is reported as such


def _cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    from esr.observe.timeline import finished_timeline

    if not args.html and not args.json:
        raise EsrError("say what to write: --html FILE (a page) or --json (on stdout)")
    path = run_log_path(settings.home, args.run_id)
    fold = RunFold().apply_all(read_events(path))
    if fold.started is None:
        raise EsrError(f"{path}: the log has no run_started event")
    timeline = finished_timeline(fold)
    if args.html:
        from esr.observe.web.pages import report_html

        page = report_html(timeline, settings.assets)  # rendered first: a missing asset leaves no half-written file
        target = Path(args.html)
        partial = target.with_name(target.name + ".partial")
        partial.write_text(page, encoding="utf-8")
        partial.replace(target)
        print(f"{target}: report of run {fold.started.run_id} ({len(page) // 1024} KB, self-contained)",
              file=sys.stderr)
    if args.json:
        print(json.dumps(timeline, indent=1))
    return 0


def _cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from esr.api.auth import Tokens
    from esr.api.server import MANAGER, make_app, serve_app

    home = settings.home
    tokens = Tokens.load(home, admin=settings.token, observer=settings.observer_token)
    kafka = None
    if settings.kafka:
        from esr.bus.kafka import KafkaSettings, ensure_topics

        kafka = KafkaSettings.from_settings(settings)
        for line in ensure_topics(kafka).lines(kafka):
            print(line, file=sys.stderr)
    app = make_app(home, registry=_registry(settings), tokens=tokens, max_concurrent=max(1, args.max_concurrent),
                   kafka=kafka, public_url=_public_url(args, settings), limits=_limits(args, settings),
                   assets=settings.assets)
    recovered = len(app[MANAGER].runs)
    runtime = f"Kafka at {kafka.bootstrap} (topics {kafka.prefix}*)" if kafka else "embedded"
    print(f"ESR server on http://{args.host}:{args.port}  (API description: /openapi.json; runtime: {runtime})\n"
          f"launch token:   {tokens.admin}\n"
          f"observer token: {tokens.observer}\n"
          f"run logs: {home / 'runs'} ({recovered} runs recovered)", file=sys.stderr)
    serve_app(app, args.host, args.port)
    return 0


def _kafka_progress(figures: dict[str, Any]) -> None:
    """One line per metrics-worker update of a run on Kafka: where it stands so far."""
    summary = figures.get("summary", {})
    p95 = summary.get("latency_p95_ms")
    held = sum(1 for a in figures.get("assertions", []) if a.get("holds"))
    print(f"esr: sim {figures.get('sim_time', 0) / 3600:6.2f} h  {summary.get('requests', 0):8,.0f} requests  "
          f"errors {summary.get('error_rate') or 0:.2%}  p95 {'-' if p95 is None else f'{p95:,.1f} ms'}  "
          f"assertions holding so far {held}/{len(figures.get('assertions', []))}", file=sys.stderr, flush=True)


def _cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    from esr.cli.replay import cmd_replay

    return cmd_replay(args, settings, _registry(settings))


def _cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from esr.bus.kafka import KafkaSettings, ensure_topics

    kafka = KafkaSettings.from_settings(settings)
    for line in ensure_topics(kafka).lines(kafka):
        print(line, file=sys.stderr)
    print(f"esr worker {args.role}: broker {kafka.bootstrap}, topics {kafka.prefix}*", file=sys.stderr)
    if args.role == "clock":
        from esr.producers.clock import run_clock_worker

        run_clock_worker(kafka)
    elif args.role == "bots":
        from esr.producers.bots import run_bots

        run_bots(kafka, http_client=http_client(settings), registry_file=settings.registry_file,
                 backlog=settings.bot_backlog)
    else:
        from esr.stream_apps.metrics import run_metrics_worker

        run_metrics_worker(kafka, loglevel=args.log_level, metrics_port=settings.metrics_port)
    return 0


def _cmd_sandbox(args: argparse.Namespace, settings: Settings) -> int:
    from esr.sandbox.claims import OfficeConfig
    from esr.sandbox.serve import serve_sandbox

    serve_sandbox(settings, args.host, args.port, args.sut_port, max(1, args.max_concurrent),
                  config=OfficeConfig(caseworkers=args.caseworkers), auth=args.auth,
                  public_url=_public_url(args, settings), limits=_limits(args, settings))
    return 0


def _limit_options(parser: argparse.ArgumentParser) -> None:
    """How big a run the server accepts (a bigger one is a 422 naming the limit)."""
    group = parser.add_argument_group("limits on each scenario (defaults from ESR_MAX_*, else as shown)")
    defaults = RunLimits()
    group.add_argument("--max-journeys", type=int,
                       help=f"expected journeys of one run (default {defaults.max_journeys:,})")
    group.add_argument("--max-rate", type=float,
                       help=f"peak journey starts per real second (default {defaults.max_rate:g})")
    group.add_argument("--max-real-hours", type=float,
                       help=f"real hours of load plus drain bound (default {defaults.max_real_hours:g})")
    group.add_argument("--max-requests-per-journey", type=int,
                       help=f"requests one journey may send (default {defaults.max_requests_per_journey:,})")


def _limits(args: argparse.Namespace, settings: Settings) -> RunLimits:
    limits = settings.limits
    given = {name: getattr(args, name) for name in ("max_journeys", "max_rate", "max_real_hours",
                                                     "max_requests_per_journey") if getattr(args, name) is not None}
    for name, value in given.items():
        if not value > 0:
            raise EsrError(f"--{name.replace('_', '-')} must be positive, not {value:g}")
    return dataclasses.replace(limits, **given)


def _public_url_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--public-url", metavar="URL",
                        help="where users reach the server, e.g. behind a proxy: the dashboard links it hands out "
                             "start with it, whatever Host a request names (env ESR_PUBLIC_URL; default "
                             "http://HOST:PORT)")


def _public_url(args: argparse.Namespace, settings: Settings) -> str:
    from urllib.parse import urlsplit

    public_url = settings.public_url
    if not public_url:
        return f"http://{args.host}:{args.port}"
    parts = urlsplit(public_url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment or parts.password:
        raise EsrError(f"--public-url {public_url!r}: expected an http(s) URL such as "
                       "https://esr.agency.example (no query, fragment or credentials)")
    return public_url.rstrip("/")


def _cmd_grafana(args: argparse.Namespace, settings: Settings) -> int:
    from esr.observe import grafana

    if args.grafana_command == "write":
        for path in grafana.write_dashboards(Path(args.dir)):
            print(f"wrote {path}", file=sys.stderr)
        return 0
    source = "--url" if args.url else "ESR_GRAFANA_URL"
    url = grafana.check_url(args.url or settings.grafana_url or _GRAFANA_URL, source=source,
                            explicit=bool(args.url))
    token = grafana.check_token(args.token or settings.grafana_token,
                                source="--token" if args.token else "ESR_GRAFANA_TOKEN")
    folds, skipped = grafana.read_runs(settings.home, args.runs)
    report = grafana.push(url, token, folds)
    print(f"Grafana {report.version} at {url}, folder {grafana.FOLDER_TITLE!r}:", file=sys.stderr)
    for uid, url_path in report.dashboards.items():
        print(f"  dashboard {uid}: {url}{url_path}", file=sys.stderr)
    for uid in report.provisioned:
        print(f"  dashboard {uid}: provisioned from files on that Grafana, left as it is", file=sys.stderr)
    for run_id, (posted, replaced) in report.annotations.items():
        print(f"  run {run_id}: {posted} annotations ({replaced} replaced)", file=sys.stderr)
    for path in skipped:
        print(f"  skipped {path}: no run_started event", file=sys.stderr)
    if not folds:
        print(f"  no run logs under {settings.home / 'runs'}: dashboards only", file=sys.stderr)
    return 0


_COMMANDS = {
    "run": _cmd_run, "judge": _cmd_judge, "validate": _cmd_validate, "schema": _cmd_schema,
    "plan": _cmd_plan, "demo": _cmd_demo, "demo-target": _cmd_demo_target, "serve": _cmd_serve,
    "sandbox": _cmd_sandbox, "worker": _cmd_worker, "replay": _cmd_replay, "report": _cmd_report,
    "grafana": _cmd_grafana,
}


# -- helpers --------------------------------------------------------------------------------
def _registry(settings: Settings) -> TargetRegistry:
    """The target registry file, plus the names of a local sandbox while one runs."""
    from esr.sandbox.serve import register_running_sandbox

    registry = TargetRegistry.load(settings.registry_file)
    register_running_sandbox(registry, settings.home)
    return registry


async def _play(scenario: Scenario, target: Any, settings: Settings, *, run_id: str | None, quiet: bool,
                scenario_file: str | None = None) -> tuple[Verdict, str]:
    """Play a run in this process with a live progress line; its verdict and the path of its log."""
    from esr.engine.runner import Run
    from esr.observe.display import console, progress_text

    run = Run(scenario, target, run_id=run_id, scenario_file=scenario_file,
              home=settings.home, http_client=settings.http_client)
    err = console(stderr=True)
    show = not quiet
    live = None
    last_plain = [0.0]

    def progress(r: Run) -> None:
        snapshot = r.snapshot()
        if live is not None:
            live.update(progress_text(snapshot))
        elif time.monotonic() - last_plain[0] >= 5:
            last_plain[0] = time.monotonic()
            err.print(progress_text(snapshot))

    err.print(f"run {run.run_id}: {scenario.name} -> {target.url} "
              f"({scenario.duration_hours:g} simulated h at warp {scenario.time_warp:g})")
    for fault in run.faults:
        how = "through the fault proxy" if fault.toxic is not None else "by the target's own fault action"
        err.print(f"fault {fault.key}: applied {how} at simulated hour {fault.spec.start_sim / 3600:g}")
    loop = asyncio.get_running_loop()
    task = loop.create_task(run.execute(progress if show else None))
    for sig, why in ((signal.SIGINT, "interrupted (Ctrl-C)"), (signal.SIGTERM, "terminated (SIGTERM)")):
        loop.add_signal_handler(sig, task.cancel, why)
    try:
        if show and err.is_terminal:
            from rich.live import Live

            with Live(console=err, refresh_per_second=4, transient=True) as live:
                await asyncio.shield(task)
        else:
            await asyncio.shield(task)
    except asyncio.CancelledError:
        pass  # the run recorded its ABORTED verdict; report it like any other
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        if task.cancelled() or run.status.value == "ABORTED":
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a late second Ctrl-C must not cut the report short
    if run.verdict is None:  # cancelled before the log was opened
        raise KeyboardInterrupt
    if run.verdict.status == "ABORTED":
        err.print(f"run {run.run_id} aborted; its log ends with an ABORTED verdict")
    return run.verdict, str(run.log_path)


def _execute(scenario: Scenario, target: Any, args: argparse.Namespace, settings: Settings,
             scenario_file: str | None) -> int:
    try:
        verdict, log_path = run_loop(_play(scenario, target, settings, run_id=args.run_id, quiet=args.quiet,
                                           scenario_file=scenario_file))
    except KeyboardInterrupt:
        print("esr: run aborted before it started", file=sys.stderr)
        return EXIT_ABORTED
    return report_verdict(verdict, as_json=args.json, log_path=log_path)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
