"""`esr replay`: wiring from the command line to the log stream, the plan and the replay run.

Two passes over the logs: the first plans (counts, span, peak rate; with `--dry-run` that is
all) and checks there is something to send before anything is sent; the second sends. Both
stream, so memory does not grow with the logs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from esr.cli.options import http_client, kafka_option, run_loop
from esr.cli.output import EXIT_ABORTED, report_verdict
from esr.core.endpoints import EndpointFolder, EndpointTemplateError
from esr.core.errors import EsrError
from esr.core.units import parse_duration
from esr.engine.sender import HTTP_CLIENTS
from esr.observe.display import printable
from esr.replay.record import LogRecord
from esr.replay.redact import Redactor
from esr.replay.schedule import ReplayPlan, plan_replay
from esr.replay.select import Selection, When, check_order, parse_slice, parse_when
from esr.replay.sources import LogStream, Tally, readers
from esr.settings import Settings

__all__ = ["TOP_ENDPOINTS", "add_parser", "cmd_replay"]

TOP_ENDPOINTS = 1000  # endpoint labels a replay keeps rows for; the rest are one 'other' row
PRINTED_ROWS = 50  # endpoint rows printed, the busiest first; the report file has them all

EPILOG = """examples:
  esr replay --warp 120 logs/ --target http://127.0.0.1:8080 --dry-run
  esr replay --warp 120 logs/ --target staging --assert "error_rate < 0.01" --assert "latency_p95_ms < 300"
  esr replay access.log.gz --format clf --from 2024-03-04T09:00 --to 2024-03-04T12:00 --status 5xx --dry-run
  esr replay --warp 60 logs/ --slice 2025-03-14T14:00/2025-03-14T16:30 --target http://127.0.0.1:8080
  esr replay --warp 1e9 logs-2023-2024/ --target http://127.0.0.1:8080 --dry-run   # two years in 0.06 s
  esr replay capture.har --target http://127.0.0.1:8080 --allow-writes --redact ssn --redact /citizens/{id}
  esr replay u_ex250314.log --fields "date time cs-method cs-uri-stem sc-status time-taken" --dry-run
  esr replay --warp 60 traefik-access.json --preset traefik --target http://127.0.0.1:8080 --dry-run
  esr replay --warp 60 app.jsonl --field-map time=ts,method=req.verb,path=req.uri,status=code --dry-run
  esr replay --warp 60 blog.log --target http://127.0.0.1:8080 --endpoint '/articles/{slug}' --endpoint '/terms'

Formats (detected per file; --format forces one): clf (Apache/nginx common and combined),
json (JSON lines: --preset for Caddy, nginx, Traefik, Envoy, Cloudflare, ECS, Google Cloud load
balancer, Fastly, Azure Front Door, --field-map for any other layout), w3c (IIS), alb, elb,
cloudfront (AWS), har, gor (GoReplay). Plain or gzip, single files or whole folders
(recursively), merged by time. Only GET and HEAD are sent unless --allow-writes. Exit codes as
for `esr run`.

Spans, warps, slices: a log may span years; --warp goes from below 1 up to 1e9. --from/--to, or
--slice START/END, replay a slice (from START, before END; either side may be left out). A time
without a zone is read on the log's clock: UTC unless the log says otherwise (a CLF line's
-0700); 2025-03-14T14:00Z or +01:00 is an instant. A slice outside the log is an error naming
the log's first and last times. --dry-run checks what a real run checks (the target, the
assertions) and sends nothing.

Endpoints: requests are counted per endpoint label. An --endpoint template that matches wins
(the first given); otherwise dates become {date}, numbers, UUIDs, hashes and random tokens {id},
slugs and NAME.html pages {slug}; the report says which rule folded each row."""


def add_parser(sub: Any) -> None:
    p = sub.add_parser("replay", help="send archived access logs again at a chosen warp and judge the replay",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="*", help="log files or folders")
    p.add_argument("--warp", type=float,
                   help="how many times faster than the original pace (> 0, at most 1e9; required)")
    p.add_argument("--list-formats", action="store_true", help="print the log formats known, with a sample of each")
    p.add_argument("--target", help="registered target name or loopback URL: replaces scheme and host")
    p.add_argument("--format", dest="fmt", help="force a log format instead of detecting it per file")
    p.add_argument("--fields", metavar='"FIELD ..."',
                   help='the W3C field list of files without a #Fields line, e.g. --fields "date time cs-method '
                        'cs-uri-stem sc-status time-taken"; files no other format recognises are read as w3c with it')
    from esr.replay.formats.jsonl import PRESETS

    p.add_argument("--preset", metavar="NAME",
                   help=f"read the logs as JSON lines written by this product: {', '.join(PRESETS)}; "
                        "e.g. --preset traefik (--list-formats shows a line of each)")
    p.add_argument("--field-map", metavar="MAP",
                   help="read the logs as JSON lines whose fields are named here, dotted for nested objects: "
                        "time, method and path (path and query, or a full URL) are needed; status, duration "
                        "(with duration_unit=s|ms|us|ns, default ms), bytes, client, host, query and headers "
                        "may be added. With --preset, these entries replace the preset's. "
                        "e.g. --field-map time=ts,method=req.verb,path=req.uri")
    p.add_argument("--reorder-window", default="60s",
                   help="re-sort lines out of order by up to this much log time (default 60s)")
    p.add_argument("--from", dest="start",
                   help="replay requests logged at or after this time (ISO 8601; without a zone: the log's clock, "
                        "UTC unless the log says otherwise)")
    p.add_argument("--to", dest="end", help="replay requests logged before this time (ISO 8601, as --from)")
    p.add_argument("--slice", metavar="START/END",
                   help="--from and --to in one, e.g. --slice 2025-03-14T14:00/2025-03-14T16:30 "
                        "(either side may be empty)")
    p.add_argument("--method", action="append", default=[], help="only this method (repeatable)")
    p.add_argument("--path", action="append", default=[], help="only paths matching this pattern, e.g. '/claims/*'")
    p.add_argument("--status", action="append", default=[],
                   help="only requests whose original status was this: 200, 5xx")
    p.add_argument("--allow-writes", action="store_true", help="also send methods other than GET and HEAD")
    p.add_argument("--redact", action="append", default=[],
                   help="query parameter, header or JSON/form body field name, or path template like "
                        "/citizens/{ssn}, whose values are replaced before sending, storing and printing (repeatable)")
    p.add_argument("--keep-credentials", action="store_true",
                   help="replay logged Authorization, Cookie, Proxy-Authorization and API-key headers (dropped by "
                        "default: a replay must not act as the people who made the requests)")
    p.add_argument("--assert", dest="assertions", action="append", default=[], help="assertion (repeatable)")
    p.add_argument("--scenario", help="take the assertions (and derived metrics) from this scenario file too")
    p.add_argument("--endpoint", dest="endpoints", action="append", default=[], metavar="'[METHOD] /path/{name}'",
                   help="count requests whose path matches this template under it, e.g. --endpoint "
                        "'/articles/{slug}' ({name}: one segment; a last {name...} or *: the rest); repeatable, "
                        "the first match wins over the built-in folding")
    p.add_argument("--top-endpoints", type=int, default=TOP_ENDPOINTS, metavar="N",
                   help=f"keep rows for at most N endpoint labels, the heaviest by requests and by errors "
                        f"(half each); the rest are counted in one 'other' row (default {TOP_ENDPOINTS:,})")
    p.add_argument("--window", metavar="DURATION",
                   help="metric window (bucket width in log time), e.g. 1m, 15m, 1h, 6h, 1d; default 1m, widened "
                        "for long logs so that the span makes at most 2,000 windows (the plan says which); a "
                        "window that makes more is refused")
    p.add_argument("--dry-run", action="store_true", help="print the plan and what was read; send nothing")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--run-id", help="use this run id")
    p.add_argument("--timeout", type=float, default=10.0, help="per-request timeout in seconds (default 10)")
    p.add_argument("--max-in-flight", type=int, default=10_000, help="cap on concurrent requests")
    p.add_argument("--http-client", choices=HTTP_CLIENTS,
                   help="pooled (the lean default) or aiohttp (env ESR_HTTP_CLIENT), as for `esr run`")

    kafka_option(p, "replay on the Kafka runtime: requests go to esr.requests for the bot workers, the "
                     "metrics worker judges (env ESR_KAFKA; client security from ESR_KAFKA_CONFIG)")


def _slice(args: argparse.Namespace) -> tuple[When | None, When | None, str | None]:
    """The time slice from --slice or --from/--to, and how to name it in messages."""
    if args.slice is not None:
        if args.start is not None or args.end is not None:
            raise EsrError("give --slice or --from/--to, not both (--slice START/END is --from START --to END)")
        return *parse_slice(args.slice), f"--slice {args.slice}"
    start = parse_when(args.start, "--from") if args.start is not None else None
    end = parse_when(args.end, "--to") if args.end is not None else None
    shown = " ".join(f"{flag} {value}" for flag, value in (("--from", args.start), ("--to", args.end)) if value)
    check_order(start, end, shown)
    return start, end, shown or None


@dataclass
class _Span:
    """The first and last time of every request read, selected or not, and how many."""

    first: float | None = None
    last: float | None = None
    count: int = 0

    def see(self, t: float) -> None:
        if self.first is None or t < self.first:
            self.first = t
        if self.last is None or t > self.last:
            self.last = t
        self.count += 1


def _check_slice(shown: str | None, span: _Span, not_selected: dict[str, int]) -> None:
    """A slice that misses the whole log is an error naming the log's first and last times."""
    if shown is None or not span.count or span.first is None or span.last is None:
        return
    if span.count in (not_selected.get("before --from", 0), not_selected.get("after --to", 0)):
        side = "after" if not_selected.get("before --from", 0) else "before"
        raise EsrError(f"{shown} is outside the log ({side} it): the log's {span.count:,} requests run from "
                       f"{_iso(span.first)} to {_iso(span.last)}")


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat()


def _endpoint_folder(templates: list[str]) -> EndpointFolder:
    try:
        return EndpointFolder(templates)
    except EndpointTemplateError as exc:
        raise EsrError(f"--endpoint {exc.template!r}: {exc.reason}") from None


def _w3c_fields(fields: str | None, fmt: str | None) -> dict[str, dict[str, str]] | None:
    """Reader options for `--fields`, checked before anything is read."""
    if fields is None:
        return None
    from esr.replay.formats.w3c import field_list

    if fmt not in (None, "w3c"):
        raise EsrError(f"--fields gives the field list of W3C logs; it cannot be used with --format {fmt}")
    try:
        field_list(fields)
    except ValueError as exc:
        raise EsrError(str(exc)) from None
    return {"w3c": {"fields": fields}}


def _json_options(args: argparse.Namespace) -> dict[str, Any]:
    """The JSON reader's options from --preset and --field-map (whose entries replace the preset's)."""
    from esr.replay.formats.jsonl import PRESETS, parse_field_map

    if args.preset is not None and args.preset not in PRESETS:
        raise EsrError(f"unknown --preset {args.preset!r}; known presets: {', '.join(PRESETS)}")
    if args.field_map is not None:
        try:
            return {"field_map": parse_field_map(args.field_map, PRESETS[args.preset] if args.preset else None)}
        except ValueError as exc:
            raise EsrError(str(exc)) from None
    return {"preset": args.preset} if args.preset is not None else {}


def _plan_dict(plan: ReplayPlan, notes: dict[str, dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    """The plan, and for JSON logs the kind of time their timestamps were read as and the preset used
    ("epoch milliseconds", "traefik"), said once when every file agrees, else file by file."""
    out: dict[str, Any] = plan.to_dict()
    if not notes:
        return out
    out["timestamps"] = _per_file({path: " and ".join(note["timestamps"]) for path, note in notes.items()})
    if args.field_map is not None:
        out["json_preset"] = f"{args.preset} (with --field-map)" if args.preset else "none (--field-map)"
    else:
        out["json_preset"] = _per_file({path: note["preset"] for path, note in notes.items()})
    return out


def _per_file(values: dict[str, str | None]) -> str | None:
    known = {path: value for path, value in values.items() if value}
    if len(set(known.values())) <= 1:
        return next(iter(known.values()), None)
    return "; ".join(f"{value} in {path}" for path, value in known.items())


def _selected(stream: LogStream, selection: Selection, redactor: Redactor,
              skipped: dict[str, int], span: _Span | None = None) -> Iterator[LogRecord]:
    why_not, redact = selection.checker(), redactor.record
    for record in stream:
        if span is not None:
            span.see(record.time)
        why = why_not(record)
        if why is not None:
            skipped[why] = skipped.get(why, 0) + 1
            continue
        yield redact(record)


def _tally_dict(tally: Tally, not_selected: dict[str, int], redactor: Redactor) -> dict[str, Any]:
    """What was read; lines that could not be parsed are redacted as text before they are shown."""
    return {
        "files": tally.files,
        "parsed": tally.parsed,
        "skipped": dict(tally.skipped),
        "malformed": dict(tally.bad),
        "malformed_total": sum(tally.bad.values()),
        "late_beyond_reorder_window": tally.late,
        "not_selected": not_selected,
        "first_malformed": [{"where": b.source, "reason": redactor.text(b.reason), "line": redactor.text(b.text)}
                            for b in tally.examples],
        "unreadable": tally.unreadable,
    }


def cmd_replay(args: argparse.Namespace, settings: Settings, registry: Any) -> int:
    from esr.replay.player import ReplayRun, check_warp, metric_window, replay_scenario

    if args.list_formats:
        _print_formats()
        return 0
    if not args.paths:
        raise EsrError("no logs: give log files or folders to replay (`esr replay --list-formats` shows the formats)")
    if args.warp is None:
        raise EsrError("--warp is required: how many times faster than the log's own pace, e.g. --warp 60")
    check_warp(args.warp)
    if args.top_endpoints < 1:
        raise EsrError(f"--top-endpoints must be 1 or more, not {args.top_endpoints} (default {TOP_ENDPOINTS:,})")
    if args.max_in_flight < 1:
        raise EsrError(f"--max-in-flight must be 1 or more, not {args.max_in_flight} (default 10,000)")
    if not args.timeout > 0:
        raise EsrError(f"--timeout must be a number of seconds above 0, not {args.timeout:g} (default 10)")
    if args.fmt is not None and args.fmt not in readers():
        raise EsrError(f"unknown --format {args.fmt!r}; known formats: {', '.join(sorted(readers()))}")
    options = _w3c_fields(args.fields, args.fmt)
    endpoints = _endpoint_folder(args.endpoints)
    json_options, fmt = _json_options(args), args.fmt
    if json_options:
        if options is not None:
            raise EsrError("--fields reads W3C logs and --preset/--field-map read JSON lines; give one or the other")
        if fmt not in (None, "json"):
            raise EsrError(f"--preset and --field-map read JSON lines; they cannot be used with --format {fmt}")
        fmt = "json"
    notes: dict[str, dict[str, Any]] = {}  # per JSON file: the preset used and the kinds of time seen
    window = parse_duration(args.reorder_window)
    start, end, slice_shown = _slice(args)
    selection = Selection(start, end, frozenset(m.upper() for m in args.method), tuple(args.path),
                          tuple(args.status), args.allow_writes)
    redactor = Redactor.from_options(args.redact, keep_credentials=args.keep_credentials)

    def stream() -> LogStream:
        return LogStream(args.paths, fmt=fmt, reorder_window_s=window,
                         options={**(options or {}), "json": {**json_options, "notes": notes}},
                         fallback=None if options is None else "w3c")

    # a dry run checks what a real run checks, in the same order: the target, then what is judged
    target = registry.resolve(args.target) if args.target else None
    assertions, derived, asked_window, window_by = _assertions(args)

    first = stream()
    not_selected: dict[str, int] = {}
    span = _Span()
    plan: ReplayPlan = plan_replay((r.time for r in _selected(first, selection, redactor, not_selected, span)),
                                   args.warp)
    _check_slice(slice_shown, span, not_selected)
    scenario = replay_scenario(plan, assertions, derived_metrics=derived, scenario_file=args.scenario,
                               top_endpoints=args.top_endpoints, window=asked_window, window_by=window_by,
                               max_in_flight=args.max_in_flight, request_timeout=args.timeout)
    plan_out = {**_plan_dict(plan, notes, args),
                "metric_window": metric_window(plan.span_s, asked_window, window_by).to_dict()}
    read = _tally_dict(first.tally, not_selected, redactor)
    if args.dry_run or not plan.requests:
        out = {"plan": plan_out, "read": read,
               "target": target.shown_url if target is not None else None}
        _print_plan(out, args.json)
        if not plan.requests:
            print("esr: error: nothing to replay (see what was read above)", file=sys.stderr)
            return 2
        return 0
    if target is None:
        raise EsrError("no target: pass --target URL (a loopback URL or a registered name)")
    second = stream()
    if settings.kafka:
        return _replay_on_kafka(args, settings, _selected(second, selection, redactor, {}), plan, scenario, target,
                                read, plan_out, endpoints)
    run = ReplayRun(_selected(second, selection, redactor, {}), plan, target, scenario=scenario,
                    run_id=args.run_id, timeout=args.timeout, max_in_flight=args.max_in_flight,
                    home=settings.home, http_client=http_client(settings), endpoints=endpoints)
    if not args.json:
        print(f"esr: replaying {plan.requests:,} requests spanning {plan.span_s:,.0f} s of log in "
              f"{plan.real_s:,.1f} s (warp {plan.warp:g}, peak {plan.peak_rate:,.0f} req/s) to {target.url}",
              file=sys.stderr)
    verdict = run_loop(run.execute())
    report = {"plan": plan_out, "read": read, "metric_windows": run.windows_report(),
              "comparison": run.comparison.to_dict()}
    (run.log_path.parent / "replay_report.json").write_text(json.dumps(report, indent=2))
    if args.json:
        print(json.dumps({"verdict": verdict.to_dict(), "replay": report, "run_log": str(run.log_path)}, indent=2))
        return verdict.exit_code
    _print_report(report)
    return report_verdict(verdict, as_json=args.json, log_path=str(run.log_path))


def _assertions(args: argparse.Namespace) -> tuple[list[str], dict[str, str], float | None, str]:
    """The assertions and derived metrics of --scenario (if given), then the --assert ones; the
    window asked for (--window, else the --scenario file's own `window` if it sets one) and by whom."""
    window = _window(args.window) if args.window is not None else None
    if not args.scenario:
        return list(args.assertions), {}, window, "--window"
    from esr.core.scenario import load_scenario

    source = load_scenario(args.scenario)
    if source.failure_injection:
        raise EsrError(f"{args.scenario}: esr replay applies no faults (failure_injection); replay without "
                       "them, or rehearse the faults with `esr run`")
    if window is None and "window" in source.model_fields_set:
        return (list(source.assertions) + list(args.assertions), dict(source.derived_metrics), source.window,
                f"the window of {args.scenario}")
    return list(source.assertions) + list(args.assertions), dict(source.derived_metrics), window, "--window"


def _window(text: str) -> float:
    try:
        seconds = parse_duration(text)
    except (EsrError, ValueError) as exc:
        raise EsrError(f"--window {text!r}: {exc}; give a duration such as 1m, 15m, 1h or 1d") from None
    if not seconds > 0:
        raise EsrError(f"--window {text!r}: must be more than 0, e.g. 1m, 15m, 1h or 1d")
    return seconds


def _replay_on_kafka(args: argparse.Namespace, settings: Settings, records: Iterator[LogRecord], plan: ReplayPlan,
                     scenario: Any, target: Any, read: dict[str, Any], plan_dict: dict[str, Any],
                     endpoints: EndpointFolder) -> int:
    from esr.bus.kafka import KafkaSettings, ensure_topics
    from esr.cli.kafka_run import abort_and_wait
    from esr.cli.stop_signals import Interrupted, StopSignals
    from esr.core.ticks import expected_end
    from esr.core.verdict import Verdict
    from esr.producers.launch import VerdictWatch
    from esr.replay.kafka import publish_replay

    kafka = KafkaSettings.from_settings(settings)
    for line in ensure_topics(kafka).lines(kafka):
        print(line, file=sys.stderr)
    holder: dict[str, Any] = {}
    if not args.json:
        print(f"esr: replaying {plan.requests:,} requests on Kafka at {kafka.bootstrap} in {plan.real_s:,.1f} s "
              f"(warp {plan.warp:g}) to {target.url}", file=sys.stderr)
    with StopSignals() as stop:  # Ctrl-C and SIGTERM abort the replay, whatever the shell left ignored
        watch = VerdictWatch(kafka, progress=True)  # while the worker still folds, the wait goes on
        try:
            started = publish_replay(kafka, records, plan, scenario, target, run_id=args.run_id,
                                     on_started=lambda s: holder.update(started=s),
                                     endpoints=tuple(t.text for t in endpoints.templates))
            # at least a minute from now: publishing a big log can outlast the run's expected end
            verdict = watch.wait(started.run_id, max(expected_end(started) - time.time(), 0.0) + 60)
        except Interrupted as exc:
            if "started" not in holder:
                print(f"esr: {exc.reason} before the replay started; nothing was sent", file=sys.stderr)
                return EXIT_ABORTED
            verdict = abort_and_wait(kafka, holder["started"], exc.reason, watch, stop)
            if verdict is None:
                return EXIT_ABORTED
        finally:
            watch.close()
    if verdict is None:
        raise EsrError(f"no verdict for the replay arrived on {kafka.topic('verdicts')}: are `esr worker bots` "
                       "and `esr worker metrics` running?")
    report = {"plan": plan_dict, "read": read, "runtime": "kafka"}
    if args.json:
        print(json.dumps({"verdict": verdict, "replay": report, "run_log": None}, indent=2))
        return Verdict.from_dict(verdict).exit_code
    _print_read(read)
    return report_verdict(Verdict.from_dict(verdict), as_json=args.json)


def _print_formats() -> None:
    """Each format `--format` takes, in the order detection tries them, with a sample."""
    for name, module in readers().items():
        summary = (module.__doc__ or "").strip().splitlines()[0]
        print(f"{name}: {summary}")
        for line in module.SAMPLE:
            print(f"    {printable(line)}")
        for preset, (product, sample) in getattr(module, "PRESET_SAMPLES", {}).items():
            print(f"  --preset {preset}: {product}\n      {printable(sample)}")
        print()


def _print_plan(out: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(out, indent=2))
        return
    plan, read = out["plan"], out["read"]
    first = datetime.fromtimestamp(plan["first"], UTC).isoformat() if plan["first"] else "-"
    last = datetime.fromtimestamp(plan["last"], UTC).isoformat() if plan["last"] else "-"
    target = out.get("target") or "none given (a real run needs --target)"
    print(f"target: {printable(target)}")
    print(f"requests to send: {plan['requests']:,}\nlog time: {first} .. {last} ({plan['span_s']:,.0f} s)\n"
          f"real duration at warp {plan['warp']:g}: {plan['real_s']:,.1f} s\n"
          f"peak real rate: {plan['peak_rate_per_s']:,.0f} requests/s")
    if plan.get("metric_window"):
        print(f"metric window: {printable(plan['metric_window']['text'])}")
    if plan.get("timestamps"):
        print(f"timestamps: {printable(plan['timestamps'])}")
    if plan.get("json_preset"):
        print(f"json preset: {printable(plan['json_preset'])}")
    _print_read(read)


def _print_read(read: dict[str, Any]) -> None:
    print(f"read: {read['parsed']:,} requests parsed, {sum(read['skipped'].values()):,} lines skipped, "
          f"{read['malformed_total']:,} malformed, {read['late_beyond_reorder_window']:,} later than the "
          f"reorder window, {sum(read['not_selected'].values()):,} not selected")
    for reason, count in sorted(read["malformed"].items(), key=lambda kv: -kv[1]):
        print(f"  malformed: {count:,} x {printable(reason)}")
    for reason, count in sorted({**read["skipped"], **read["not_selected"]}.items(), key=lambda kv: -kv[1]):
        print(f"  skipped: {count:,} x {printable(reason)}")
    for bad in read["first_malformed"]:  # a log's own bytes: escaped before they reach a terminal
        print(f"  {printable(bad['where'])}: {printable(bad['reason'])}\n    {printable(bad['line'])}")
    for line in read["unreadable"]:
        print(f"  unreadable: {printable(line)}")


def _print_report(report: dict[str, Any]) -> None:
    _print_read(report["read"])
    comparison = report["comparison"]
    print("endpoint                                  rule        then: count  p95 ms   now: count  p95 ms  "
          "statuses then -> now")
    rows = list(comparison["endpoints"].items())
    shown = [r for r in rows if r[0] != "other" or "labels" not in r[1]]
    if len(shown) > PRINTED_ROWS:
        shown.sort(key=lambda row: -row[1]["now"]["count"])
    hidden = max(0, len(shown) - PRINTED_ROWS)
    shown = shown[:PRINTED_ROWS] + [r for r in rows if r[0] == "other" and "labels" in r[1]]
    for label, sides in shown:
        then, now = sides["then"], sides["now"]
        fmt = lambda v: "-" if v is None else f"{v:,.1f}"  # noqa: E731
        print(f"{printable(label)[:40]:40}  {sides.get('rule', 'none'):10}  {then['count']:>11,}  "
              f"{fmt(then['latency_p95_ms']):>6}  "
              f"{now['count']:>10,}  {fmt(now['latency_p95_ms']):>6}  {then['statuses']} -> {now['statuses']}")
    if hidden:
        print(f"... {hidden:,} more endpoints in replay_report.json")
    windows = report.get("metric_windows")
    if windows:
        print(f"metric windows: {windows['window_s']:g} s each, {windows['windows_with_data']:,} with data "
              f"(at most {windows['max_windows']:,}); per window: the whole replay"
              + "".join(f", {printable(e)}" for e in windows["windowed_endpoints"])
              + "; per endpoint: whole-run rows")
    cap = comparison.get("endpoint_cap")
    other = comparison["endpoints"].get("other")
    if cap is not None and other is not None and "labels" in other:
        about = "about " if other["labels_estimated"] else ""
        print(f"other: {about}{other['labels']:,} endpoints beyond the {cap['top']:,} tracked one by one "
              "(--top-endpoints)")
    for change in comparison["changed"][:10]:
        print(f"changed: {change['count']:,} x {printable(change['endpoint'])}: {change['then']} then, "
              f"{change['now']} now")
    for example in comparison["changed_examples"][:5]:
        print(f"  e.g. {printable(example['source'])}: {printable(example['request'])} was {example['then']}, "
              f"now {example['now']}")
