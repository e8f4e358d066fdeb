"""The dashboard routes: pages people open in a browser, and the data they follow.

    GET /                        every run with its state, verdict and dashboard link
    GET /dashboard/{id}          the run's live dashboard (server-sent events; never reloads)
    GET /run/{id}/timeline       the timeline the dashboard draws (JSON)
    GET /run/{id}/events         server-sent events: `timeline` once a second, `end` when it ended
    GET /run/{id}/report.html    the self-contained report page
    GET /run/{id}/links          signed observer and trainee URLs for the run    (launch token)
    POST /run/{id}/decisions     a trainee's decision on the run's timeline      (trainee link or launch token)
    GET /assets/{name}           the charting library and our chart script

A browser cannot send an Authorization header when following a link, so these pages also
take the token as `?token=`: the launch or observer token, or a signed link token for that run.
Timelines are computed at most once per interval per run and shared by every viewer.
"""

from __future__ import annotations

import asyncio
import html
import math
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from esr.api.auth import LinkToken, Tokens, check_link_ttl
from esr.api.runs import ManagedRun, RunManager, UnknownRun, timeline_path
from esr.bus.runlog import read_events, run_log_path
from esr.core.buckets import RunFold
from esr.core.errors import EsrError
from esr.observe.timeline import finished_timeline, run_timeline
from esr.observe.web.assets import ASSET_FILES, asset, charts_script
from esr.observe.web.pages import DASHBOARD_CSP, PLAIN_CSP, dashboard_html, report_csp, report_html

__all__ = ["add_dashboard_routes"]

PUSH_EVERY_S = 1.0
_CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css"}


class Timelines:
    """One timeline per run, recomputed at most every `PUSH_EVERY_S / 2` while it plays and
    kept once it ended (a finished run's timeline never changes)."""

    def __init__(self, manager: RunManager, home: Path) -> None:
        self.manager = manager
        self.home = home
        # run id -> (made at, JSON, final, version): the version changes with each timeline the
        # metrics worker sends for a Kafka run, and when the run's verdict comes
        self._cache: dict[str, tuple[float, bytes, bool, tuple[int, bool]]] = {}
        self._rows: dict[str, dict[int, Any]] = {}  # run id -> its windows' rows, redone when they change

    def get(self, run_id: str) -> tuple[bytes, bool]:
        """The timeline as JSON, and whether the run has ended."""
        managed = self.manager.get(run_id)  # UnknownRun for a run this server does not know
        version = (managed.extra.get("timeline_seq", 0), managed.verdict is not None)
        cached = self._cache.get(run_id)
        now = time.monotonic()
        if cached is not None and cached[3] == version and (cached[2] or now - cached[0] < PUSH_EVERY_S / 2):
            return cached[1], cached[2]
        data, final = self._build(managed)
        body = orjson.dumps(data)
        self._cache[run_id] = (now, body, final, version)
        return body, final

    def _build(self, managed: ManagedRun) -> tuple[dict[str, Any], bool]:
        if managed.run is None:
            kafka = self._kafka(managed)
            if kafka is not None:
                return kafka
        run = managed.run
        if run is not None and managed.verdict is None:
            live: dict[str, Any] = (run.snapshot() if run.status.value in ("RUNNING", "DRAINING")
                                    else {"status": run.status.value})
            live["assertions"] = _assertions_so_far(run)
            return run_timeline(run.fold, live=live, cache=self._rows.setdefault(managed.run_id, {})), False
        if run is not None:
            self._rows.pop(managed.run_id, None)
            return run_timeline(run.fold, verdict=managed.verdict), True
        path = run_log_path(self.home, managed.run_id)
        if not path.exists():  # queued on the Kafka runtime: nothing logged yet
            return run_timeline(RunFold(), verdict=managed.verdict), managed.verdict is not None
        fold = RunFold().apply_all(read_events(path))
        if managed.verdict is None:  # playing on the Kafka runtime: its figures are the workers'
            return run_timeline(fold, live=managed.summary().get("progress")), False
        return finished_timeline(fold), True


    def _kafka(self, managed: ManagedRun) -> tuple[dict[str, Any], bool] | None:
        """A Kafka run's timeline as the metrics worker drew it: live from its progress
        messages, final from the copy kept beside the log."""
        timeline = managed.extra.get("timeline")
        if timeline is None:
            path = timeline_path(self.home, managed.run_id)
            if not path.exists():
                return None
            timeline = managed.extra["timeline"] = orjson.loads(path.read_bytes())
        # the verdict shown is the one the run's summary has: the metrics worker's final
        # timeline can arrive before its verdict does (another topic), and the page must not
        # show a verdict while the summary still says RUNNING
        ended = managed.verdict
        verdict = None if ended is None else {"verdict": ended.get("verdict"), "reason": ended.get("reason")}
        return {**timeline, "verdict": verdict}, ended is not None


def _assertions_so_far(run: Any) -> list[dict[str, Any]]:
    from esr.core.assertions import evaluate
    from esr.core.verdict import fold_clock

    if run.fold.started is None:
        return []
    clock = fold_clock(run.fold)
    scenario = run.scenario
    try:
        return [evaluate(a, run.fold, clock, scenario.custom_metrics, scenario.counter_names).to_dict()
                for a in scenario.parsed_assertions()]
    except EsrError:
        return []


_TIMELINES: web.AppKey[Timelines] = web.AppKey("timelines", Timelines)


_LAUNCH_TOKEN_IN_URL = (
    "the launch token is never accepted in a URL (URLs end up in browser history, proxy logs and "
    "Referer headers): open pages with a signed link (GET /run/{id}/links with the launch token in an "
    "Authorization header) or with the observer token")


def _headers(csp: str) -> dict[str, str]:
    """Pages: run no script but ours, are not sniffed into something else, and leak no link."""
    return {"Content-Security-Policy": csp, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


def _token(request: web.Request, tokens: Tokens) -> LinkToken | None:
    """A page's credential: `?token=` (a link or the observer token), else the Authorization
    header. The launch token in a URL is refused outright (HTTP 401)."""
    if "token" not in request.query:
        return tokens.from_header(request.headers.get("Authorization"))
    token = tokens.check(request.query["token"])
    if token is not None and token.role == "admin":
        raise web.HTTPUnauthorized(text=_LAUNCH_TOKEN_IN_URL)
    return token


def _denied(request: web.Request, run_id: str | None, tokens: Tokens) -> web.Response | None:
    token = _token(request, tokens)
    if token is None:
        return web.Response(status=401, content_type="text/html", headers=_headers(PLAIN_CSP), text=(
            "<!doctype html><title>ESR: token needed</title><p>Open this page with the link you were given "
            "(it carries <code>?token=...</code>), or add <code>?token=</code> with the observer token from "
            "<code>$ESR_HOME/observer-token</code>.</p>"))
    if run_id is not None and not token.allows(run_id):
        return web.Response(status=403, text=f"this link is for run {token.run_id}, not {run_id}")
    if run_id is None and token.run_id != "*":
        return web.Response(status=403, text=f"this link is for run {token.run_id} only")
    return None


def add_dashboard_routes(app: web.Application, manager: RunManager, tokens: Tokens, home: Path,
                         public_url: str, assets: Path | None = None) -> None:
    """The pages and their data; `public_url` starts every link minted (never the caller's Host);
    `assets` (ESR_ASSETS) holds uPlot's files."""
    app[_TIMELINES] = Timelines(manager, home)

    def run_or_404(request: web.Request) -> str:
        run_id = request.match_info["run_id"]
        try:
            manager.get(run_id)
        except UnknownRun:
            raise web.HTTPNotFound(text=f"no run {run_id!r}; / lists them") from None
        return run_id

    async def index(request: web.Request) -> web.Response:
        denied = _denied(request, None, tokens)
        if denied is not None:
            return denied
        query = f"?token={html.escape(request.query.get('token', ''))}" if request.query.get("token") else ""
        rows = "".join(
            f"<tr data-run='{html.escape(r['run_id'])}'><td><a href='/dashboard/{html.escape(r['run_id'])}{query}'>"
            f"{html.escape(r['run_id'])}</a></td><td>{html.escape(r['scenario'])}</td><td>{html.escape(r['state'])}</td>"
            f"<td>{html.escape(r['verdict'] or '-')}</td></tr>" for r in manager.listing())
        return web.Response(content_type="text/html", headers=_headers(PLAIN_CSP), text=(
            "<!doctype html><html><head><meta charset='utf-8'><title>ESR runs</title></head><body><h1>ESR runs</h1>"
            "<table><tr><th>run</th><th>scenario</th><th>state</th><th>verdict</th></tr>"
            f"{rows}</table></body></html>"))

    def viewer(handler: Callable[[web.Request, str, LinkToken], Awaitable[web.StreamResponse]]) -> Any:
        """A page or data of one run: the run must exist and the token must open it."""
        async def checked(request: web.Request) -> web.StreamResponse:
            run_id = run_or_404(request)
            denied = _denied(request, run_id, tokens)
            if denied is not None:
                return denied
            return await handler(request, run_id, _token(request, tokens))  # type: ignore[arg-type]
        return checked

    @viewer
    async def dashboard(request: web.Request, run_id: str, token_: LinkToken) -> web.Response:
        body, final = app[_TIMELINES].get(run_id)
        token = request.query.get("token", "")
        query = f"?token={token}" if token else ""
        role = token_.role
        run = manager.get(run_id).run
        trains = role in ("trainee", "admin") and run is not None and not final
        page = dashboard_html(orjson.loads(body), events_url=f"/run/{run_id}/events{query}",
                              report_url=f"/run/{run_id}/report.html{query}", token=token,
                              decide_url=f"/run/{run_id}/decisions{query}" if trains else None,
                              actions=sorted(run.target.decisions) if trains and run is not None else None)
        return web.Response(content_type="text/html", text=page, headers=_headers(DASHBOARD_CSP))

    @viewer
    async def timeline(request: web.Request, run_id: str, _: LinkToken) -> web.Response:
        body, _final = app[_TIMELINES].get(run_id)
        return web.Response(body=body, content_type="application/json")

    @viewer
    async def events(request: web.Request, run_id: str, _: LinkToken) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                               "X-Accel-Buffering": "no"})
        await response.prepare(request)
        try:
            while True:  # ends with the run (or when the viewer goes away)
                body, final = app[_TIMELINES].get(run_id)
                await response.write(b"event: timeline\ndata: " + body + b"\n\n")
                if final:
                    await response.write(b"event: end\ndata: {}\n\n")
                    break
                await asyncio.sleep(PUSH_EVERY_S)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        return response

    @viewer
    async def report(request: web.Request, run_id: str, _: LinkToken) -> web.Response:
        body, _final = app[_TIMELINES].get(run_id)
        page = report_html(orjson.loads(body), assets)
        return web.Response(content_type="text/html", text=page, headers=_headers(report_csp(page)))

    async def links(request: web.Request) -> web.Response:
        run_id = run_or_404(request)
        token = _token(request, tokens)
        if token is None or token.role != "admin":
            return web.json_response({"error": "minting links needs the launch token (Authorization: Bearer TOKEN)"},
                                     status=403 if token else 401)
        raw = request.query.get("ttl_s", str(7 * 86400))
        try:
            ttl = float(raw)
        except ValueError:
            ttl = math.nan
        try:
            check_link_ttl(ttl)
        except ValueError as exc:
            return web.json_response({"error": f"{exc}; got {raw!r}"}, status=400)
        return web.json_response({role: f"{public_url}/dashboard/{run_id}?token={tokens.link(run_id, role, ttl)}"
                                  for role in ("observer", "trainee")} | {"expires_in_s": ttl})

    async def decide(request: web.Request) -> web.Response:
        run_id = run_or_404(request)
        token = _token(request, tokens)
        if token is None:
            return web.json_response({"error": "a trainee link or the launch token is needed"}, status=401)
        if token.role not in ("trainee", "admin") or not token.allows(run_id):
            return web.json_response({"error": "an observer link is read-only; decisions need the trainee link "
                                               "of this run"}, status=403)
        run = manager.get(run_id).run
        if run is None or run.status.value not in ("RUNNING", "DRAINING"):
            return web.json_response({"error": f"run {run_id} is not playing here; decisions go on a live "
                                               "run's timeline"}, status=409)
        try:
            body = orjson.loads(await request.read())
            decision, author = body["decision"], body.get("author") or "trainee"
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            return web.json_response({"error": 'send JSON {"decision": "...", "author": "..."}'}, status=400)
        if not isinstance(decision, str) or not isinstance(author, str):
            return web.json_response({"error": "decision and author are strings, e.g. "
                                               '{"decision": "add_caseworkers(5)", "author": "Ana"}'}, status=400)
        decision, author = decision.strip(), author.strip()[:80]
        if not 0 < len(decision) <= 200:
            return web.json_response({"error": "a decision is 1 to 200 characters"}, status=400)
        event = await run.record_decision(decision, author)
        return web.json_response({"sim_time": event.sim_time, "author": event.author, "decision": event.decision,
                                  "action": event.action, "applied": event.applied, "detail": event.detail},
                                 status=201)

    async def static(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name == "charts.js":
            return web.Response(body=charts_script(), content_type="text/javascript")
        if name not in ASSET_FILES:
            raise web.HTTPNotFound(text=f"no asset {name!r}")
        try:
            body = asset(name, assets)
        except EsrError as exc:
            return web.Response(status=500, text=str(exc))
        return web.Response(body=body, content_type=_CONTENT_TYPES[Path(name).suffix],
                            headers={"Cache-Control": "max-age=3600"})

    app.router.add_get("/", index)
    app.router.add_get("/dashboard/{run_id}", dashboard)
    app.router.add_get("/run/{run_id}/timeline", timeline)
    app.router.add_get("/run/{run_id}/events", events)
    app.router.add_get("/run/{run_id}/report.html", report)
    app.router.add_get("/run/{run_id}/links", links)
    app.router.add_post("/run/{run_id}/decisions", decide)
    app.router.add_get("/assets/{name}", static)
