"""Who may do what, over real HTTP on loopback: a link token opens its run and nothing else, a
malformed credential is a 401 (never a 500), the launch token never travels in a URL, links
are minted for bounded lifetimes at the server's public URL whatever Host the caller sent."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from esr.api.auth import TokenError, Tokens
from esr.api.server import make_app
from esr.core.targets import TargetRegistry

pytestmark = pytest.mark.integration

ADMIN_TOKEN = "launch-token-0123456789"
OBSERVER_TOKEN = "observer-token-0123456789"
TOKENS = Tokens(admin=ADMIN_TOKEN, observer=OBSERVER_TOKEN)
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
PUBLIC = "http://esr.agency.example:9700"
# one simulated hour at warp 60: the runs stay QUEUED or RUNNING for the whole test
LONG = {"name": "long", "duration_hours": 1, "time_warp": 60, "load_profile": [[0, 1]], "seed": 2}


@pytest.fixture
async def server(esr_home: Path, demo_target: Any) -> AsyncIterator[tuple[str, str, str]]:
    """The server (public URL configured) with two runs launched: (url, run A, run B)."""
    target_url, _ = await demo_target()
    app = make_app(esr_home, registry=TargetRegistry(), tokens=TOKENS, max_concurrent=2, public_url=PUBLIC)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    runs = []
    for _ in range(2):
        status, body = await call("POST", f"{url}/run", ADMIN, LONG | {"target": target_url})
        assert status == 202, body
        runs.append(body["run_id"])
    yield url, runs[0], runs[1]
    for run_id in runs:
        await call("POST", f"{url}/run/{run_id}/abort", ADMIN)
    await runner.cleanup()


async def call(method: str, url: str, headers: dict[str, str] | None = None, body: Any = None) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session:
        async with session.request(method, url, headers=headers, json=body, allow_redirects=False) as response:
            raw = await response.read()
            try:
                return response.status, orjson.loads(raw)
            except orjson.JSONDecodeError:
                return response.status, raw.decode(errors="replace")


async def link_tokens(url: str, run_id: str) -> dict[str, str]:
    status, body = await call("GET", f"{url}/run/{run_id}/links", ADMIN)
    assert status == 200, body
    return {role: body[role].split("token=")[1] for role in ("observer", "trainee")}


async def test_a_link_token_opens_its_run_and_nothing_else(server: tuple[str, str, str]) -> None:
    url, run_a, run_b = server
    for token in (await link_tokens(url, run_a)).values():
        bearer = {"Authorization": f"Bearer {token}"}
        assert (await call("GET", f"{url}/run/{run_a}/summary", bearer))[0] == 200
        assert (await call("GET", f"{url}/runs", bearer))[0] == 403  # the list of every run
        assert (await call("GET", f"{url}/run/{run_b}/summary", bearer))[0] == 403
        assert (await call("GET", f"{url}/dashboard/{run_b}?token={token}"))[0] == 403
        assert (await call("POST", f"{url}/run/{run_a}/abort", bearer))[0] == 403
        assert (await call("POST", f"{url}/run", bearer, LONG | {"target": "http://127.0.0.1:9"}))[0] == 403
        assert (await call("GET", f"{url}/run/{run_a}/links", bearer))[0] == 403
    observer = {"Authorization": f"Bearer {OBSERVER_TOKEN}"}
    assert (await call("GET", f"{url}/runs", observer))[0] == 200
    assert (await call("GET", f"{url}/run/{run_b}/summary", observer))[0] == 200


@pytest.mark.parametrize("header", [
    "Bearer ünïcödé-token", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Token " + ADMIN_TOKEN,
    "Bearer " + ADMIN_TOKEN + "x", "Bearer esr1.a.b.c.d", "Bearer esr1..99999999999.observer.x",
    "Bearer a b c", "Bearer " + "x" * 6000, "Bearer esr1.a.²³.observer.x",
])
async def test_a_malformed_credential_is_401_never_500(server: tuple[str, str, str], header: str) -> None:
    url, run_a, _ = server
    for method, path in (("GET", "/runs"), ("GET", f"/run/{run_a}/summary"), ("POST", f"/run/{run_a}/abort"),
                         ("GET", f"/run/{run_a}/links")):
        status, body = await call(method, url + path, {"Authorization": header})
        assert status == 401, (path, header, body)


async def test_a_malformed_token_in_a_page_url_is_401(server: tuple[str, str, str]) -> None:
    url, run_a, _ = server
    for token in ("%C3%BC%C3%AF", "esr1.x", "esr1.%00.1.observer.x"):
        assert (await call("GET", f"{url}/dashboard/{run_a}?token={token}"))[0] == 401
        assert (await call("GET", f"{url}/run/{run_a}/timeline?token={token}"))[0] == 401


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "BeArEr"])
async def test_the_bearer_scheme_is_case_insensitive(server: tuple[str, str, str], scheme: str) -> None:
    url, run_a, _ = server
    assert (await call("GET", f"{url}/runs", {"Authorization": f"{scheme} {ADMIN_TOKEN}"}))[0] == 200
    assert (await call("GET", f"{url}/run/{run_a}/links", {"Authorization": f"{scheme}  {ADMIN_TOKEN} "}))[0] == 200


async def test_the_launch_token_is_never_accepted_in_a_url(server: tuple[str, str, str]) -> None:
    url, run_a, _ = server
    for path in ("/", f"/dashboard/{run_a}", f"/run/{run_a}/timeline", f"/run/{run_a}/links",
                 f"/run/{run_a}/report.html"):
        status, body = await call("GET", f"{url}{path}?token={ADMIN_TOKEN}")
        assert status == 401, (path, body)
        assert "never" in str(body) and "URL" in str(body)
    status, _ = await call("POST", f"{url}/run/{run_a}/decisions?token={ADMIN_TOKEN}", None, {"decision": "x"})
    assert status == 401
    # the page a link opens hands its own link token on, never anything else
    trainee = (await link_tokens(url, run_a))["trainee"]
    status, page = await call("GET", f"{url}/dashboard/{run_a}?token={trainee}")
    assert status == 200 and ADMIN_TOKEN not in page and OBSERVER_TOKEN not in page


@pytest.mark.parametrize("ttl", ["nan", "inf", "-inf", "1e308", "-5", "0", "0.5", str(30 * 86400 + 1), "x", ""])
async def test_a_link_lifetime_out_of_bounds_is_400(server: tuple[str, str, str], ttl: str) -> None:
    url, run_a, _ = server
    status, body = await call("GET", f"{url}/run/{run_a}/links?ttl_s={ttl}", ADMIN)
    assert status == 400, body
    assert "ttl_s" in body["error"] and "30 days" in body["error"]


@pytest.mark.parametrize("ttl", ["1", "3600", str(30 * 86400)])
async def test_a_link_lifetime_within_bounds_is_honoured(server: tuple[str, str, str], ttl: str) -> None:
    url, run_a, _ = server
    status, body = await call("GET", f"{url}/run/{run_a}/links?ttl_s={ttl}", ADMIN)
    assert status == 200 and body["expires_in_s"] == float(ttl)


async def test_links_use_the_public_url_whatever_host_the_caller_sent(server: tuple[str, str, str]) -> None:
    url, run_a, _ = server
    spoofed = ADMIN | {"Host": "evil.example"}
    status, body = await call("GET", f"{url}/run/{run_a}/links", spoofed)
    assert status == 200
    assert body["observer"].startswith(f"{PUBLIC}/dashboard/{run_a}?token=esr1.")
    assert body["trainee"].startswith(f"{PUBLIC}/dashboard/{run_a}?token=esr1.")
    status, summary = await call("GET", f"{url}/run/{run_a}/summary", spoofed)
    assert summary["dashboard_url"].startswith(f"{PUBLIC}/dashboard/{run_a}?token=")


def test_links_of_run_ids_with_dots_verify() -> None:
    for run_id in ("team.a.1", "2026.12.02-drill", "x"):
        for role in ("observer", "trainee"):
            token = TOKENS.check(TOKENS.link(run_id, role, 60))
            assert token is not None and token.allows(run_id) and token.role == role
            assert not token.allows(run_id + ".other") and not token.allows("team")


@pytest.mark.parametrize(("admin", "observer"), [("short", OBSERVER_TOKEN), (ADMIN_TOKEN, ""),
                                                 ("x" * 15, OBSERVER_TOKEN), (ADMIN_TOKEN, ADMIN_TOKEN)])
def test_weak_tokens_are_refused(admin: str, observer: str) -> None:
    with pytest.raises(TokenError) as refused:
        Tokens(admin=admin, observer=observer)
    assert "16" in str(refused.value) or "differ" in str(refused.value)


def test_a_server_with_an_empty_or_short_token_does_not_start(esr_home: Path, tmp_path: Path) -> None:
    esr_home.mkdir(parents=True, exist_ok=True)
    (esr_home / "token").write_text("\n")  # an empty token file would make every link forgeable
    env = {"ESR_HOME": str(esr_home), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "esr.cli", "serve", "--port", "0"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "token" in done.stderr and "16" in done.stderr and "Traceback" not in done.stderr
    done = subprocess.run([sys.executable, "-m", "esr.cli", "serve", "--port", "0"],
                          env=env | {"ESR_TOKEN": "tooshort"}, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "ESR_TOKEN" in done.stderr and "16" in done.stderr
