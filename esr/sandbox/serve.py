"""`esr sandbox` / `python -m esr.mock_server`: the ESR server, and the sample claims system in
a process of its own (`ClaimsProcess`), registered as `prod-like-staging.dol.gov`."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import replace
from pathlib import Path

from aiohttp import web

from esr.api.auth import Tokens
from esr.api.server import make_app, serve_app
from esr.core.fault_actions import ActionStep, FaultAction
from esr.core.journey_spec import JourneySpec
from esr.core.loopback import is_loopback_host, is_loopback_url
from esr.core.run_limits import RunLimits
from esr.core.targets import Target, TargetRegistry
from esr.sandbox.app import CLAIM_JOURNEY
from esr.sandbox.claims import OfficeConfig
from esr.sandbox.sut_process import ClaimsProcess
from esr.settings import Settings

__all__ = ["SANDBOX_NAMES", "register_running_sandbox", "sandbox_target", "sandbox_tokens", "serve_sandbox",
           "write_registration"]

SANDBOX_NAMES = ("prod-like-staging.dol.gov", "sandbox")
_BANNER: web.AppKey[str] = web.AppKey("banner", str)
_REGISTERED: web.AppKey[Path] = web.AppKey("registered", Path)
_SUT: web.AppKey[ClaimsProcess] = web.AppKey("sut", ClaimsProcess)
SANDBOX_METRICS = {"cost_per_claim": "cloud_cost / claims_processed"}


def _admin_action(fault: str, description: str) -> FaultAction:
    """Start with POST, recover with DELETE on the run's own fault switch (docs/sandbox.md)."""
    url = "{{ target.url }}/_esr/runs/{{ run.id }}/faults/" + fault
    return FaultAction.model_validate({"description": description, "start": {"http": {"method": "POST", "url": url}},
                                       "recover": {"http": {"method": "DELETE", "url": url}}})


def sandbox_target(name: str, url: str) -> Target:
    faults = {
        "db_down": _admin_action("db_down", "the claims database is down: filings fail (mode=queue: are held)"),
        "caseworkers_out": _admin_action("caseworkers_out", "n caseworkers take no new reviews"),
    }
    decisions = {action: ActionStep.model_validate({"http": {
        "method": "POST", "url": "{{ target.url }}/_esr/runs/{{ run.id }}/actions/" + action}})
        for action in ("add_caseworkers", "pause_intake", "resume_intake")}
    return Target(name, url, JourneySpec.model_validate(CLAIM_JOURNEY), dict(SANDBOX_METRICS), faults, decisions)


REGISTRATION = "sandbox.json"  # under ESR_HOME while a sandbox runs: where its claims system listens


def write_registration(home: Path, url: str) -> Path:
    """Say where this sandbox's claims system listens, so `esr run` and `esr plan` in another
    shell resolve its names (`register_running_sandbox`). Written whole or not at all."""
    path = home / REGISTRATION
    home.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps({"url": url, "pid": os.getpid(), "names": list(SANDBOX_NAMES)}))
    partial.replace(path)
    return path


def register_running_sandbox(registry: TargetRegistry, home: Path) -> None:
    """Add the names of a sandbox that runs on this machine (its process is alive) to `registry`;
    names the registry file already defines keep their definition."""
    try:
        found = json.loads((home / REGISTRATION).read_text())
        pid, url = int(found["pid"]), str(found["url"])
    except (OSError, ValueError, KeyError, TypeError):
        return
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return  # a sandbox that stopped without removing it (kill -9)
    except PermissionError:
        pass  # alive, another user's
    if not is_loopback_url(url):
        return
    for name in SANDBOX_NAMES:
        if name not in registry.targets:
            registry.register(sandbox_target(name, url))


def sandbox_tokens(tokens: Tokens, host: str, auth: bool) -> tuple[Tokens, bool]:
    """Open (no token needed) on loopback unless `auth`; on any other address tokens are on by
    force (the second value says so): anyone who reaches it could launch traffic from here."""
    forced = not auth and not is_loopback_host(host)
    return replace(tokens, open=not auth and not forced), forced


def serve_sandbox(settings: Settings, host: str = "127.0.0.1", port: int = 9700, sut_port: int = 9701,
                  max_concurrent: int = 1, config: OfficeConfig | None = None,
                  auth: bool = False, public_url: str | None = None, limits: RunLimits | None = None) -> None:
    """Run both until interrupted; prints the addresses (and the tokens when they are on).

    On loopback, without `auth`, the sandbox is a single-user playground: requests need no
    token, as the chapter's client sends none. Bound to any other address it always asks for
    tokens: anyone who can reach it could otherwise launch traffic from this machine."""
    home = settings.home
    tokens, forced = sandbox_tokens(Tokens.load(home, admin=settings.token, observer=settings.observer_token), host,
                                    auth)
    registry = TargetRegistry.load(settings.registry_file)
    public = public_url or f"http://{host}:{port}"

    async def start_sut(app: web.Application) -> None:
        sut = app[_SUT] = await ClaimsProcess.start(config or OfficeConfig(), sut_port)
        url = sut.url
        for name in SANDBOX_NAMES:
            registry.register(sandbox_target(name, url))
        app[_REGISTERED] = write_registration(home, url)
        access = ("  tokens:         off (a loopback playground; --auth turns them on)\n" if tokens.open else
                  (f"  tokens:         on{' (forced: listening beyond loopback)' if forced else ''}\n"
                   f"  launch token:   {tokens.admin}\n  observer token: {tokens.observer}\n"))
        app[_BANNER] = (f"ESR sandbox\n  ESR server:     {public}   (API: /openapi.json)\n"
                        f"  claims system:  {url}   registered as {', '.join(SANDBOX_NAMES)}\n{access}"
                        f"  run logs:       {home / 'runs'}\n"
                        f"  try: ESR_URL={public} python examples/run_simulation.py")

    def ready() -> None:  # once both listen
        print(app[_BANNER], file=sys.stderr, flush=True)

    async def stop_sut(app: web.Application) -> None:
        if _REGISTERED in app:
            app[_REGISTERED].unlink(missing_ok=True)
        if _SUT in app:
            await app[_SUT].stop()

    app = make_app(home, registry=registry, tokens=tokens, max_concurrent=max_concurrent,
                   on_end=lambda run_id: app[_SUT].purge_soon(run_id), public_url=public, limits=limits,
                   assets=settings.assets)
    app.on_startup.append(start_sut)
    app.on_cleanup.append(stop_sut)
    serve_app(app, host, port, ready)
