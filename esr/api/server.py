"""The ESR server (aiohttp): a thin HTTP adapter over `RunManager`.

    POST /run                 scenario fields + "target" in one JSON body -> {"run_id"}   (token)
    GET  /runs                every run with its state and verdict                       (token or observer)
    GET  /run/{id}/summary    state, verdict, assertion results, summary metrics         (token or observer)
    POST /run/{id}/abort      abort a queued or playing run                              (token)
    GET  /openapi.json        this API described
    GET  /, /dashboard/{id}   runs and live dashboards (see esr.api.dashboard)              (token or link)

Errors are JSON with a message a user can act on: 401 without a valid token, 403 for an
observer token on a launch or an unregistered target, 404 for an unknown run, 422 (with
every field error) for an invalid scenario.
"""

from __future__ import annotations

import errno
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from esr.api.auth import Tokens
from esr.api.dashboard import add_dashboard_routes
from esr.api.openapi import openapi_spec
from esr.api.runs import RunManager, UnknownRun
from esr.bus.kafka import KafkaSettings
from esr.core.errors import EsrError, FieldError, ScenarioError, TargetRefused
from esr.core.run_limits import RunLimits
from esr.core.scenario import Scenario
from esr.core.targets import TargetRegistry
from esr.observe.prom import add_metrics_route

__all__ = ["MANAGER", "PortTaken", "dashboard_url", "make_app", "serve_app"]

MANAGER: web.AppKey[RunManager] = web.AppKey("manager", RunManager)
_TOKENS: web.AppKey[Tokens] = web.AppKey("tokens", Tokens)
_REGISTRY: web.AppKey[TargetRegistry] = web.AppKey("registry", TargetRegistry)
_PUBLIC_URL: web.AppKey[str] = web.AppKey("public_url", str)
_LIMITS: web.AppKey[RunLimits] = web.AppKey("limits", RunLimits)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _error(status: int, message: str, **extra: Any) -> web.Response:
    return _json({"error": message, **extra}, status)


def _needs(role: str) -> Callable[[Handler], Handler]:
    """'admin': the launch token. 'observer': any valid token, but a run's link token only on
    that run's routes (never the list of runs)."""
    def wrap(handler: Handler) -> Handler:
        async def checked(request: web.Request) -> web.StreamResponse:
            token = request.app[_TOKENS].from_header(request.headers.get("Authorization"))
            if token is None:
                return _error(401, "missing, malformed or wrong bearer token: send 'Authorization: Bearer TOKEN' "
                                   "(the token is in $ESR_HOME/token, or ESR_TOKEN)")
            if role == "admin" and token.role != "admin":
                return _error(403, "this token is read-only; launching and aborting need the launch token")
            run_id = request.match_info.get("run_id")
            if run_id is None and token.run_id != "*":
                return _error(403, f"this link token opens run {token.run_id} only, not the list of runs")
            if run_id is not None and not token.allows(run_id):
                return _error(403, f"this link token is for run {token.run_id}, not {run_id}")
            return await handler(request)
        return checked
    return wrap


@_needs("admin")
async def post_run(request: web.Request) -> web.Response:
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        return _error(400, f"the body is not JSON: {exc}")
    if not isinstance(body, dict):
        return _error(422, "the body must be a JSON object: the scenario's fields and \"target\"")
    target_name = body.pop("target", None) or body.get("target")
    if not target_name:
        return _error(422, "no target: put \"target\" (a registered name or a loopback URL) in the body",
                      errors=[{"path": "target", "message": "required field is missing"}])
    python = _python_parts(body)
    if python:
        return _error(422, "the scenario refers to Python code, which the server never receives or runs",
                      errors=python)
    try:
        target = request.app[_REGISTRY].resolve(str(target_name))
    except TargetRefused as exc:
        return _error(403, str(exc))
    try:  # the target's metrics (e.g. cost_per_claim) stand in for the client's Python functions
        if body.get("derived_from") is not None:  # a replay's description, never a run request
            raise ScenarioError([FieldError("derived_from", "set by `esr replay` only; remove it")])
        scenario = Scenario.from_dict(target.fill_in(body))
        over = request.app[_LIMITS].errors(scenario, target.default_journey)
        if over:
            return _error(422, "the scenario is over this server's limits (an operator can raise them)",
                          errors=[{"path": e.path, "message": e.message} for e in over])
        managed = request.app[MANAGER].submit(scenario, target)
    except ScenarioError as exc:
        return _error(422, "invalid scenario", errors=[{"path": e.path, "message": e.message} for e in exc.errors])
    return _json({"run_id": managed.run_id, "state": managed.state,
                  "summary_url": f"/run/{managed.run_id}/summary",
                  "dashboard_url": dashboard_url(request.app, managed.run_id)}, 202)


def _python_parts(body: dict[str, Any]) -> list[dict[str, str]]:
    """Field errors for Python journeys or metric functions named in a body: refused, never
    replaced by something else."""
    errors = []
    if body.get("python_journeys"):
        errors.append({"path": "python_journeys", "message": (
            f"Python journeys ({', '.join(map(str, body['python_journeys']))}) run on the embedded runtime only "
            "(`esr run scenario.py`); the server takes declarative journeys (JSON steps)")})
    if body.get("python_metrics"):
        errors.append({"path": "python_metrics", "message": (
            f"metric functions ({', '.join(map(str, body['python_metrics']))}) cannot travel as Python: send each as "
            "an expression in derived_metrics (hms_esr_client.launch does this for a function that is a single "
            "`return` of arithmetic over metrics[\"name\"] values)")})
    return errors


def dashboard_url(app: web.Application, run_id: str) -> str:
    """The run's live dashboard at the server's public address: plain in the open playground,
    else with a signed observer link (read-only, this run only)."""
    tokens = app[_TOKENS]
    page = f"{app[_PUBLIC_URL]}/dashboard/{run_id}"
    return page if tokens.open else f"{page}?token={tokens.link(run_id, 'observer')}"


@_needs("observer")
async def get_summary(request: web.Request) -> web.Response:
    run_id = request.match_info["run_id"]
    try:
        return _json(request.app[MANAGER].get(run_id).summary() | {"dashboard_url": dashboard_url(request.app, run_id)})
    except UnknownRun:
        return _error(404, f"no run {request.match_info['run_id']!r}; GET /runs lists them")


@_needs("admin")
async def post_abort(request: web.Request) -> web.Response:
    try:
        managed = request.app[MANAGER].abort(request.match_info["run_id"])
    except UnknownRun:
        return _error(404, f"no run {request.match_info['run_id']!r}; GET /runs lists them")
    if managed.task is not None:
        await _settle(managed.task)
    return _json(managed.summary())


async def _settle(task: Any) -> None:
    try:
        await task
    except BaseException:  # noqa: BLE001 - the run's own ending is in its summary
        pass


@_needs("observer")
async def get_runs(request: web.Request) -> web.Response:
    return _json({"runs": request.app[MANAGER].listing()})


async def get_openapi(request: web.Request) -> web.Response:
    registry = request.app[_REGISTRY]
    return _json(openapi_spec(tuple(sorted(registry.targets)), registry.allow_loopback))


def make_app(home: Path, *, registry: TargetRegistry, tokens: Tokens, max_concurrent: int = 1,
             http_client: str = "pooled", on_end: Callable[[str], object] | None = None,
             kafka: KafkaSettings | None = None, public_url: str = "http://127.0.0.1:9700",
             limits: RunLimits | None = None, assets: Path | None = None) -> web.Application:
    """The server; with `kafka` settings, runs play on the Kafka runtime's workers. `public_url`
    is where users reach it: the dashboard links it hands out start with it. `limits` bound
    each scenario it accepts (default: RunLimits())."""
    app = web.Application(client_max_size=4 * 1024 * 1024)
    manager = RunManager(home, max_concurrent=max_concurrent, http_client=http_client, on_end=on_end, kafka=kafka)
    manager.recover(registry.resolve)
    app[MANAGER] = manager
    app[_TOKENS] = tokens
    app[_REGISTRY] = registry
    app[_PUBLIC_URL] = public_url.rstrip("/")
    app[_LIMITS] = limits or RunLimits()
    app.router.add_post("/run", post_run)
    app.router.add_get("/runs", get_runs)
    app.router.add_get("/run/{run_id}/summary", get_summary)
    app.router.add_post("/run/{run_id}/abort", post_abort)
    app.router.add_get("/openapi.json", get_openapi)
    add_metrics_route(app, manager)  # GET /metrics for Prometheus (esr/api/prom.py)
    add_dashboard_routes(app, manager, tokens, home, app[_PUBLIC_URL], assets)

    async def start_runs(app: web.Application) -> None:
        await app[MANAGER].start()  # the accepted runs a restart found still queued

    async def stop_runs(app: web.Application) -> None:
        await app[MANAGER].close()

    app.on_startup.append(start_runs)
    app.on_shutdown.append(stop_runs)
    return app


def serve_app(app: web.Application, host: str, port: int, ready: Callable[[], None] | None = None) -> None:
    """Serve until interrupted, on uvloop as `esr run` plays: runs, pages and scrapes share
    this loop, and its cheaper I/O leaves more of it to the runs. `ready` is called once it
    listens. A port that cannot be bound is an EsrError that names the flag to change."""
    loop = None
    try:
        import uvloop

        loop = uvloop.new_event_loop()
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux and macOS
        pass
    try:
        web.run_app(app, host=host, port=port, print=(lambda _: ready()) if ready else None, access_log=None,
                    loop=loop)
    except OSError as exc:
        raise PortTaken.binding(f"{host}:{port}", "--port", exc) from None


class PortTaken(EsrError):
    """A port the server (or the sandbox's claims system) should listen on is taken."""

    @classmethod
    def binding(cls, address: str, flag: str, exc: OSError, what: str = "") -> PortTaken:
        why = "address already in use" if exc.errno == errno.EADDRINUSE else str(exc.strerror or exc)
        return cls(f"{what + ' ' if what else ''}cannot listen on {address} ({why}): choose another port with {flag}")

