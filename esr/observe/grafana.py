"""Grafana dashboards for the series of `GET /metrics`, built in code, and `esr grafana push`.

Two dashboards, built with grafana-foundation-sdk's builders (never written by hand):

    ESR overview        uid esr-overview   every run: states, verdicts, faults on now, request
                                           rate, error rate, p95 latency, SLA met/missed, faults
    ESR run drill-down  uid esr-run        one run (the `run_id` variable): state, verdict,
                                           simulated time, per-endpoint rates, latency
                                           quantiles, errors by kind, SLAs, assertions, faults

Every dashboard is tagged "sim=true" and every query selects `sim="true"`. `dashboards()` gives
them as JSON-able dicts; `esr grafana write DIR` writes them, one file each (the committed copies
in deploy/grafana/provisioning/dashboards/ are what Grafana's provisioning loads).

`run_annotations(fold)` is pure: a run's fold becomes annotations in real epoch milliseconds (the
start, the end, each fault as a region, each trainee decision, the verdict), all tagged "sim=true"
and "run_id:<id>"; a simulated second s is played at started.real_time + clock.real_at(s).
`push` is the thin adapter: grafana-client's calls, every failure translated once into
`GrafanaError` (an `EsrError`), whose message names the field or call and the fix.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from grafana_foundation_sdk.builders import common as common_b
from grafana_foundation_sdk.builders import dashboard, prometheus, stat, statetimeline, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    ValueMap,
    ValueMapping,
    ValueMappingResult,
    VariableRefresh,
    VariableSort,
)

from esr.bus.runlog import LOG_NAME, read_events, run_log_path
from esr.core.buckets import RunFold
from esr.core.errors import EsrError, RunLogError
from esr.core.verdict import fold_clock

__all__ = ["FOLDER_TITLE", "FOLDER_UID", "TAG", "Annotation", "GrafanaError", "PushReport", "check_token",
           "check_url", "dashboards", "push", "read_runs", "render", "run_annotations", "write_dashboards"]

TAG = "sim=true"
FOLDER_TITLE = "ESR (simulated)"
FOLDER_UID = "esr-simulated"
DEFAULT_URL = "http://127.0.0.1:3000"
WINDOW = "$__rate_interval"
_PROMETHEUS = DataSourceRef(type_val="prometheus", uid="${datasource}")
_ANNOTATIONS = DataSourceRef(type_val="grafana", uid="-- Grafana --")
_ON_OFF: list[ValueMapping] = [ValueMap({"0": ValueMappingResult(text="off", color="green"),
                     "1": ValueMappingResult(text="on", color="red")})]
_HOLDS: list[ValueMapping] = [ValueMap({"0": ValueMappingResult(text="fails", color="red"),
                    "1": ValueMappingResult(text="holds", color="green")})]


class GrafanaError(EsrError):
    """A bad Grafana URL or token, or Grafana refused or failed a call."""


# -- dashboards --------------------------------------------------------------------------------
class _Queries:
    """PromQL on the ESR series, every selector filtered on sim="true" (and the chosen run)."""

    def __init__(self, *, one_run: bool) -> None:
        self.labels = 'sim="true", run_id="$run_id"' if one_run else 'sim="true"'

    def sel(self, metric: str) -> str:
        return f"{metric}{{{self.labels}}}"

    def total(self, metric: str, by: str, op: str = "sum") -> str:
        return f"{op} by ({by}) ({self.sel(metric)})"

    def rate(self, metric: str, by: str) -> str:
        return f"sum by ({by}) (rate({self.sel(metric)}[{WINDOW}]))"

    def error_share(self, by: str) -> str:
        """Errors over requests; 0 (not nothing) for a run without errors."""
        requests = self.rate("esr_requests_total", by)
        return f"({self.rate('esr_errors_total', by)} or {requests} * 0) / {requests}"

    def quantile(self, q: float, by: str) -> str:
        return f"histogram_quantile({q}, {self.rate('esr_request_latency_seconds_bucket', f'le, {by}')})"


def _target(expr: str, legend: str, ref: str, *, instant: bool = False) -> prometheus.Dataquery:
    query = prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(_PROMETHEUS)
    return query.instant() if instant else query.range()


class _Layout:
    """Panel ids in order; each panel gets its title, description, queries, width and height."""

    def __init__(self) -> None:
        self.next_id = 0

    def row(self, title: str) -> dashboard.Row:
        self.next_id += 1
        return dashboard.Row(title).id(self.next_id)

    def place(self, panel: Any, title: str, description: str, queries: Sequence[tuple[str, str]], *,
              span: int = 12, height: int = 8, instant: bool = False) -> Any:
        self.next_id += 1
        panel = panel.id(self.next_id).title(title).description(description).datasource(_PROMETHEUS)
        for ref, (expr, legend) in zip("ABCDEFGH", queries, strict=False):
            panel = panel.with_target(_target(expr, legend, ref, instant=instant))
        return panel.span(span).height(height)

    def graph(self, title: str, description: str, queries: Sequence[tuple[str, str]], unit: str,
              span: int = 12) -> timeseries.Panel:
        panel = (timeseries.Panel().unit(unit).fill_opacity(10).line_width(1)
                 .legend(common_b.VizLegendOptions().display_mode(common.LegendDisplayMode.LIST)
                         .placement(common.LegendPlacement.BOTTOM).show_legend(True))
                 .tooltip(common_b.VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI)
                          .sort(common.SortOrder.DESCENDING)))
        return self.place(panel, title, description, queries, span=span)

    def number(self, title: str, description: str, query: tuple[str, str], *, unit: str = "short",
               names: bool = False) -> stat.Panel:
        panel = (stat.Panel().unit(unit).graph_mode(common.BigValueGraphMode.NONE)
                 .color_mode(common.BigValueColorMode.VALUE)
                 .text_mode(common.BigValueTextMode.NAME if names else common.BigValueTextMode.AUTO)
                 .reduce_options(common_b.ReduceDataOptions().calcs(["lastNotNull"]).values(False)))
        return self.place(panel, title, description, [query], span=6, height=4, instant=True)

    def states(self, title: str, description: str, query: tuple[str, str], mappings: list[ValueMapping],
               span: int = 12) -> statetimeline.Panel:
        panel = (statetimeline.Panel().mappings(mappings).merge_values(True).fill_opacity(70)
                 .legend(common_b.VizLegendOptions().display_mode(common.LegendDisplayMode.LIST)
                         .placement(common.LegendPlacement.BOTTOM).show_legend(False)))
        return self.place(panel, title, description, [query], span=span)


def _dashboard(title: str, uid: str, description: str, annotation_tags: list[str]) -> dashboard.Dashboard:
    return (dashboard.Dashboard(title).uid(uid).description(description).tags([TAG, "esr"])
            .time("now-1h", "now").refresh("10s").timezone("browser").readonly()
            .with_variable(dashboard.DatasourceVariable("datasource").label("Prometheus").type("prometheus"))
            .annotation(dashboard.AnnotationQuery().name("ESR runs (sim=true)").datasource(_ANNOTATIONS)
                        .enable(True).icon_color("orange")
                        .target(dashboard.AnnotationTarget().type("tags").tags(annotation_tags)
                                .match_any(False).limit(500))))


def _overview() -> dashboard.Dashboard:
    q, lay = _Queries(one_run=False), _Layout()
    return (_dashboard("ESR overview", "esr-overview",
                       "Every simulated ESR run (sim=\"true\"): load, errors, latency, SLAs, verdicts, faults. "
                       "Rates are per real second at the scrape; runs play in warped simulated time.", [TAG])
            .with_row(lay.row("Runs"))
            .with_panel(lay.number("Runs by state", "Runs the ESR server knows, by state",
                                   (f"count by (state) ({q.sel('esr_run_info')})", "{{state}}"), names=True))
            .with_panel(lay.number("Verdicts", "Ended runs by verdict",
                                   (f"count by (verdict) ({q.sel('esr_verdict')})", "{{verdict}}"), names=True))
            .with_panel(lay.number("Faults on now", "Faults active in any run right now",
                                   (f"sum({q.sel('esr_fault_active')})", "faults on")))
            .with_panel(lay.number("Requests sent", "Requests sent by every run the server knows",
                                   (f"sum({q.sel('esr_requests_total')})", "requests")))
            .with_row(lay.row("Load"))
            .with_panel(lay.graph("Request rate", "Requests per real second, per run",
                                  [(q.rate("esr_requests_total", "run_id"), "{{run_id}}")], "reqps"))
            .with_panel(lay.graph("Error rate", "Share of requests that failed (any kind), per run",
                                  [(q.error_share("run_id"), "{{run_id}}")], "percentunit"))
            .with_panel(lay.graph("Latency p95", "95th percentile latency from the histogram, per run",
                                  [(q.quantile(0.95, "run_id"), "{{run_id}}")], "s"))
            .with_panel(lay.graph("SLA deadlines met / missed", "Deadlines decided so far, per run and SLA",
                                  [(q.total("esr_sla_met_total", "run_id, sla"), "{{run_id}} {{sla}} met"),
                                   (q.total("esr_sla_missed_total", "run_id, sla"), "{{run_id}} {{sla}} missed")],
                                  "short"))
            .with_row(lay.row("Faults"))
            .with_panel(lay.states("Active faults", "Each run's faults: on while injected",
                                   (q.total("esr_fault_active", "run_id, fault", "max"), "{{run_id}} {{fault}}"),
                                   _ON_OFF, span=24)))


def _drill_down() -> dashboard.Dashboard:
    q, lay = _Queries(one_run=True), _Layout()
    run = (dashboard.QueryVariable("run_id").label("Run").datasource(_PROMETHEUS)
           .query('label_values(esr_run_info{sim="true"}, run_id)')
           .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED).sort(VariableSort.ALPHABETICAL_DESC))
    quantiles = [(q.quantile(p, "endpoint"), f"p{round(p * 100)} {{{{endpoint}}}}") for p in (0.5, 0.95, 0.99)]
    return (_dashboard("ESR run drill-down", "esr-run",
                       "One simulated ESR run (sim=\"true\"), chosen by the run_id variable (newest first).",
                       [TAG, "run_id:$run_id"])
            .with_variable(run)
            .with_row(lay.row("Run $run_id"))
            .with_panel(lay.number("State", "The run's state", (q.sel("esr_run_info"), "{{state}}"), names=True))
            .with_panel(lay.number("Verdict", "Once the run ended", (q.sel("esr_verdict"), "{{verdict}}"), names=True))
            .with_panel(lay.number("Simulated time played", "Simulated seconds played so far",
                                   (q.sel("esr_sim_time_seconds"), "simulated"), unit="s"))
            .with_panel(lay.number("Requests sent", "All endpoints",
                                   (f"sum({q.sel('esr_requests_total')})", "requests")))
            .with_row(lay.row("Endpoints"))
            .with_panel(lay.graph("Request rate by endpoint", "Requests per real second",
                                  [(q.rate("esr_requests_total", "endpoint"), "{{endpoint}}")], "reqps"))
            .with_panel(lay.graph("Errors by kind", "Failed requests per real second by endpoint and kind "
                                  "(timeout, connect, 4xx, 5xx, protocol)",
                                  [(q.rate("esr_errors_total", "endpoint, kind"), "{{endpoint}} {{kind}}")], "reqps"))
            .with_panel(lay.graph("Latency quantiles", "p50, p95 and p99 from the histogram, by endpoint",
                                  quantiles, "s", span=24))
            .with_row(lay.row("SLAs, assertions, faults, time"))
            .with_panel(lay.graph("SLA deadlines met / missed", "Deadlines decided so far, by SLA",
                                  [(q.total("esr_sla_met_total", "sla"), "{{sla}} met"),
                                   (q.total("esr_sla_missed_total", "sla"), "{{sla}} missed")], "short"))
            .with_panel(lay.graph("Assertion values", "Each assertion's observed value (so far)",
                                  [(q.sel("esr_assertion_value"), "{{assertion}}")], "short"))
            .with_panel(lay.states("Assertions", "Holds or fails, judged on the data so far",
                                   (q.sel("esr_assertion_holds"), "{{assertion}}"), _HOLDS))
            .with_panel(lay.states("Faults", "On while injected", (q.sel("esr_fault_active"), "{{fault}}"), _ON_OFF))
            .with_panel(lay.graph("Simulated time", "Simulated seconds played against real time: the slope is "
                                  "the warp", [(q.sel("esr_sim_time_seconds"), "simulated")], "s", span=24)))


def dashboards() -> list[dict[str, Any]]:
    """Both dashboards as JSON-able dicts, through the SDK's JSON encoder."""
    return [json.loads(json.dumps(d.build(), cls=JSONEncoder)) for d in (_overview(), _drill_down())]


def render(board: dict[str, Any]) -> str:
    """A dashboard file's text: what `write_dashboards` writes and the committed files hold."""
    return json.dumps(board, indent=2, ensure_ascii=False) + "\n"


def write_dashboards(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for board in dashboards():
        path = folder / f"{board['uid']}.json"
        path.write_text(render(board), encoding="utf-8")
        paths.append(path)
    return paths


# -- annotations (pure) ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Annotation:
    time_ms: int
    text: str
    tags: tuple[str, ...]
    time_end_ms: int | None = None  # a region (a fault) ends here


def run_annotations(fold: RunFold) -> list[Annotation]:
    """Start, faults, decisions, end and verdict of one run, at the real times they were played."""
    started = fold.started
    if started is None:
        raise RunLogError("the run log has no run_started event: nothing to annotate")
    clock = fold_clock(fold)

    def ms(sim: float) -> int:
        return round((started.real_time + clock.real_at(sim)) * 1000)

    def tags(*extra: str) -> tuple[str, ...]:
        return (TAG, f"run_id:{started.run_id}", *extra)

    name = started.scenario.get("name", "?")
    out = [Annotation(ms(0.0), f"run {started.run_id} started: scenario {name!r} against {started.target}, "
                               f"warp {started.time_warp:g}", tags("esr:start"))]
    for w in fold.faults.values():
        how = "" if w.ok else f"; could not be applied: {w.detail}"
        end = "" if w.end_reason in ("", "scheduled") else f"; ended: {w.end_reason}"
        out.append(Annotation(ms(w.start_sim), f"fault {w.fault} ({w.kind}){how}{end}",
                              tags("esr:fault", f"fault:{w.name}"), ms(w.until(fold.last_sim_time))))
    for d in fold.decisions:
        outcome = {True: f" (applied: {d.action})", False: f" (not applied: {d.detail})", None: ""}[d.applied]
        out.append(Annotation(ms(d.sim_time), f"decision by {d.author}: {d.decision}{outcome}", tags("esr:decision")))
    if fold.finished is not None:
        out.append(Annotation(ms(fold.finished.sim_time), f"run {started.run_id} finished", tags("esr:end")))
    elif fold.aborted is not None:
        out.append(Annotation(ms(fold.aborted.sim_time), f"run {started.run_id} aborted: {fold.aborted.reason}",
                              tags("esr:end")))
    if fold.verdict is not None:
        verdict = fold.verdict.verdict
        out.append(Annotation(ms(fold.verdict.sim_time),
                              f"verdict {verdict.get('verdict')}: {verdict.get('reason', '')}",
                              tags("esr:verdict", f"verdict:{verdict.get('verdict')}")))
    return out


def read_runs(home: Path, run_ids: Iterable[str] = ()) -> tuple[list[RunFold], list[Path]]:
    """The named runs' folds, or every run's under $ESR_HOME/runs; and the logs skipped for lack of a
    run_started event (a named run without one is an error)."""
    named = list(run_ids)
    ids = named or sorted(p.parent.name for p in (home / "runs").glob(f"*/{LOG_NAME}"))
    folds, skipped = [], []
    for run_id in ids:
        path = run_log_path(home, run_id)
        fold = RunFold().apply_all(read_events(path))
        if fold.started is not None:
            folds.append(fold)
        elif named:
            raise RunLogError(f"{path}: the log has no run_started event, so the run has no times to annotate")
        else:
            skipped.append(path)
    return folds, skipped


# -- push (the adapter) ------------------------------------------------------------------------
_LOOPBACK_NAMES = ("localhost",)


def check_url(url: str, *, source: str, explicit: bool) -> str:
    """Grafana's root URL, without a trailing '/'. Only an explicit --url may leave loopback."""
    example = f"e.g. {DEFAULT_URL}"
    parts = urlsplit(url.strip())
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise GrafanaError(f"{source}={url!r}: the port is not a number from 1 to 65535 ({example})") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise GrafanaError(f"{source}={url!r}: expected http:// or https:// and a host ({example})")
    if parts.username or parts.password:
        raise GrafanaError(f"{source}: put no credentials in the URL; pass the token as --token or ESR_GRAFANA_TOKEN")
    if parts.query or parts.fragment:
        raise GrafanaError(f"{source}={url!r}: expected Grafana's root URL, without '?' or '#' ({example})")
    if not explicit and not _is_loopback(parts.hostname):
        raise GrafanaError(f"{source}={url!r} is not on loopback (127.0.0.0/8, ::1, localhost); ESR pushes to "
                           f"another host only when told so on the command line: pass --url {url}")
    return url.strip().rstrip("/")


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_token(token: str | None, *, source: str) -> str:
    fix = ("a Grafana service account token with the Editor role (Administration > Users and access > "
           "Service accounts)")
    if not token:
        raise GrafanaError(f"no Grafana token: pass --token TOKEN or set ESR_GRAFANA_TOKEN to {fix}")
    bad = next((i for i, ch in enumerate(token) if ch.isspace() or not ch.isprintable()), None)
    if bad is not None:
        raise GrafanaError(f"{source} has a space or control character at position {bad + 1}: expected {fix}, "
                           "pasted alone")
    return token


@dataclass(slots=True)
class PushReport:
    version: str = ""
    dashboards: dict[str, str] = field(default_factory=dict)  # uid -> URL path Grafana gave
    provisioned: list[str] = field(default_factory=list)  # uids provisioned from files: left as they are
    annotations: dict[str, tuple[int, int]] = field(default_factory=dict)  # run id -> (posted, replaced)


def _call(url: str, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """One grafana-client call; every failure becomes a GrafanaError naming the call and the fix."""
    from grafana_client.client import GrafanaClientError, GrafanaException

    try:
        return fn(*args, **kwargs)
    except GrafanaClientError as exc:
        fixes = {401: "the token was refused: pass a valid service account token as --token or ESR_GRAFANA_TOKEN",
                 403: "the token may not do this: give its service account the Editor role",
                 404: f"check --url: it must be Grafana's root URL, e.g. {DEFAULT_URL}"}
        detail = exc.response.get("message") if isinstance(exc.response, dict) else exc.message
        fix = fixes.get(exc.status_code, "see Grafana's message")
        raise GrafanaError(f"Grafana at {url} answered {exc.status_code} to {what} ({detail}): {fix}") from exc
    except GrafanaException as exc:
        raise GrafanaError(f"Grafana at {url} failed {what}: {exc.message}") from exc
    except ValueError as exc:  # includes an answer that is not JSON
        raise GrafanaError(f"{url} answered {what} with something other than Grafana's JSON: is --url "
                           f"Grafana's root URL? ({exc})") from exc
    except OSError as exc:  # requests' connection errors and time-outs
        errno = re.search(r"\[Errno \d+\] [^'\")]+", str(exc))
        why = errno.group(0) if errno else f"{type(exc).__name__}: {str(exc)[:200]}"
        raise GrafanaError(f"cannot reach Grafana at {url} for {what} ({why}): is it running? "
                           f"`docker compose up grafana` serves it on {DEFAULT_URL}") from exc


def _dashboard_or_none(api: Any, uid: str) -> dict[str, Any] | None:
    from grafana_client.client import GrafanaClientError

    try:
        return api.dashboard.get_dashboard(uid)
    except GrafanaClientError as exc:
        if exc.status_code == 404:
            return None
        raise


def push(url: str, token: str, folds: Sequence[RunFold], *, timeout_s: float = 10.0) -> PushReport:
    """Upsert both dashboards into the folder "ESR (simulated)" and replace each run's annotations."""
    from grafana_client import GrafanaApi

    api = GrafanaApi.from_url(url, credential=token, timeout=timeout_s)
    report = PushReport()
    health = _call(url, "GET /api/health", api.client.GET, "/health")
    if not isinstance(health, dict) or "database" not in health:
        raise GrafanaError(f"{url}/api/health did not answer like Grafana ({str(health)[:80]!r}): check --url")
    report.version = str(health.get("version", "?"))
    folders = _call(url, "GET /api/folders", api.folder.get_all_folders)
    if not any(f.get("uid") == FOLDER_UID for f in folders):
        _call(url, "POST /api/folders", api.folder.create_folder, FOLDER_TITLE, uid=FOLDER_UID)
    for board in dashboards():
        uid = board["uid"]
        existing = _call(url, f"GET /api/dashboards/uid/{uid}", _dashboard_or_none, api, uid)
        if existing is not None and existing.get("meta", {}).get("provisioned"):
            report.provisioned.append(uid)  # Grafana refuses to overwrite it; the files are the same code's
            continue
        body = {"dashboard": board, "folderUid": FOLDER_UID, "overwrite": True, "message": "esr grafana push"}
        saved = _call(url, f"POST /api/dashboards/db ({uid})", api.dashboard.update_dashboard, body)
        report.dashboards[uid] = str(saved.get("url", ""))
    for fold in folds:
        notes = run_annotations(fold)
        run_id = fold.started.run_id  # type: ignore[union-attr]  # run_annotations checked it
        old = _call(url, "GET /api/annotations", api.annotations.get_annotation,
                    tags=list(notes[0].tags[:2]), ann_type="annotation", limit=10_000)
        for note in old:
            _call(url, f"DELETE /api/annotations/{note['id']}", api.annotations.delete_annotations_by_id, note["id"])
        for note in notes:
            _call(url, "POST /api/annotations", api.annotations.add_annotation, time_from=note.time_ms,
                  time_to=note.time_end_ms, tags=list(note.tags), text=note.text)
        report.annotations[run_id] = (len(notes), len(old))
    return report
