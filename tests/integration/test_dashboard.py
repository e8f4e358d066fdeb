"""The dashboard over real HTTP on loopback, and in Debian's headless Chromium (Playwright):
signed links, read-only observers, server-sent timelines, a finished run after a restart, and
a live sandbox run with a fault drawn as it plays."""

from __future__ import annotations

import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from busy import PUNCTUALITY_NOT_JUDGED
from loopback import serve, wait_until
from real_parts import missing

from esr.api.auth import Tokens
from esr.api.server import make_app
from esr.core.targets import TargetRegistry
from esr.sandbox.app import ClaimsService, make_claims_app
from esr.sandbox.serve import sandbox_target

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TOKENS = Tokens(admin="launch-token-for-tests", observer="observer-token-for-tests")
ADMIN = {"Authorization": "Bearer launch-token-for-tests"}
CHROMIUM = "/usr/bin/chromium"
# 8 simulated hours at 1,800: 16 real seconds of load; the database is down from hour 3 to 4
DAY = {"name": "dashboard_day", "duration_hours": 8, "time_warp": 1800, "drain_warp": 86400, "seed": 4,
       "load_profile": [[0, 10]], "failure_injection": ["db_down@hour3+1h"],
       "assertions": ["error_rate < 0.5", "errors_5xx > 10 during db_down"], "target": "dol", **PUNCTUALITY_NOT_JUDGED}


@pytest.fixture
async def sandbox(esr_home: Path) -> AsyncIterator[Any]:
    """The claims system and an ESR server with it registered as `dol`; `restart()` gives a
    second server on the same home, as after a restart."""
    runners = []
    service = ClaimsService()
    claims_runner, sut = await serve(make_claims_app(service))
    runners.append(claims_runner)

    async def server() -> str:
        registry = TargetRegistry()
        registry.register(sandbox_target("dol", sut))
        runner, url = await serve(make_app(esr_home, registry=registry, tokens=TOKENS))
        runners.append(runner)
        return url

    server.service = service  # type: ignore[attr-defined]
    yield server
    for runner in reversed(runners):
        await runner.cleanup()


async def call(method: str, url: str, headers: dict[str, str] | None = None, body: Any = None) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as session:
        async with session.request(method, url, headers=headers, json=body) as response:
            return response.status, await response.read()


async def launch(url: str, scenario: dict[str, Any]) -> str:
    status, body = await call("POST", f"{url}/run", ADMIN, scenario)
    assert status == 202, body
    return orjson.loads(body)["run_id"]


async def links(url: str, run_id: str) -> dict[str, str]:
    status, body = await call("GET", f"{url}/run/{run_id}/links", ADMIN)
    assert status == 200, body
    return {role: link.split("token=")[1] for role, link in orjson.loads(body).items() if role != "expires_in_s"}


async def ended(url: str, run_id: str, limit_s: float = 120) -> dict[str, Any]:
    """The summary once the run ended and its verdict is in."""
    async def summary_if_ended() -> dict[str, Any] | None:
        _, body = await call("GET", f"{url}/run/{run_id}/summary", ADMIN)
        summary = orjson.loads(body)
        return summary if summary["state"] in ("FINISHED", "ABORTED") and summary["verdict"] else None

    return await wait_until(summary_if_ended, limit_s, f"run {run_id} ended")


SHORT = DAY | {"duration_hours": 2, "time_warp": 3600, "failure_injection": [], "assertions": ["error_rate < 0.5"]}


async def test_links_open_one_run_read_only(sandbox: Any) -> None:
    url = await sandbox()
    run_id = await launch(url, SHORT)
    other = await launch(url, SHORT)
    token = (await links(url, run_id))["observer"]
    assert token.startswith(f"esr1.{run_id}.") and token.split(".")[3] == "observer"
    status, page = await call("GET", f"{url}/dashboard/{run_id}?token={token}")
    assert status == 200 and b"/assets/uPlot.iife.min.js" in page and b'"events_url":"/run/' in page
    assert (await call("GET", f"{url}/run/{run_id}/timeline?token={token}"))[0] == 200
    assert (await call("GET", f"{url}/dashboard/{other}?token={token}"))[0] == 403  # another run
    assert (await call("GET", f"{url}/?token={token}"))[0] == 403  # the list of all runs
    assert (await call("GET", f"{url}/dashboard/{run_id}?token={token[:-2]}xx"))[0] == 401  # tampered
    expired = TOKENS.link(run_id, "observer", ttl_s=60, now=time.time() - 120)  # minted 2 min ago for 1 min
    assert (await call("GET", f"{url}/dashboard/{run_id}?token={expired}"))[0] == 401
    assert (await call("GET", f"{url}/dashboard/{run_id}"))[0] == 401
    # anything that changes state, with a link token: 403
    for role_token in (await links(url, run_id)).values():
        bearer = {"Authorization": f"Bearer {role_token}"}
        assert (await call("POST", f"{url}/run/{run_id}/abort", bearer))[0] == 403
        assert (await call("POST", f"{url}/run", bearer, SHORT))[0] == 403
        assert (await call("GET", f"{url}/run/{run_id}/links", bearer))[0] == 403
    status, listing = await call("GET", f"{url}/?token=observer-token-for-tests")
    assert status == 200 and run_id.encode() in listing and other.encode() in listing
    assert (await call("GET", f"{url}/assets/uPlot.iife.min.js"))[0] == 200
    assert (await call("GET", f"{url}/assets/nothing.js"))[0] == 404
    await ended(url, run_id)
    await ended(url, other)


async def test_events_push_the_timeline_until_the_run_ends_and_a_restart_rebuilds_it(sandbox: Any) -> None:
    url = await sandbox()
    run_id = await launch(url, SHORT | {"duration_hours": 4})
    seen: list[dict[str, Any]] = []
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{url}/run/{run_id}/events?token=observer-token-for-tests") as response:
            assert response.headers["Content-Type"] == "text/event-stream"
            event = ""
            async for line in response.content:
                if line.startswith(b"event: "):
                    event = line[7:].strip().decode()
                elif line.startswith(b"data: ") and event == "timeline":
                    seen.append(orjson.loads(line[6:]))
                elif event == "end":
                    break
                assert len(seen) < 200, "the stream must end with the run"
    assert len(seen) >= 3
    requests = [sum(t["requests"]) for t in seen]
    assert requests == sorted(requests) and requests[-1] > requests[0]
    final = seen[-1]
    assert final["verdict"]["verdict"] == "PASS"
    summary = await ended(url, run_id)
    assert sum(final["requests"]) == summary["summary"]["requests"]
    # a server restarted on the same home rebuilds the finished run's page from its log
    restarted = await sandbox()
    status, body = await call("GET", f"{restarted}/run/{run_id}/timeline?token=observer-token-for-tests")
    assert status == 200
    again = orjson.loads(body)
    for key in ("t", "requests", "p95", "error_rate", "sla_met", "faults", "verdict", "completeness"):
        assert again[key] == final[key], key


async def wait_in_page(page: Any, expression: str, timeout_s: float, what: str) -> Any:
    """Until `expression` is truthy in the page. Playwright's wait_for_function evaluates its
    predicate with eval, which the pages' Content-Security-Policy (rightly) forbids."""
    return await wait_until(lambda: page.evaluate(expression), timeout_s, what)


def _chromium() -> None:
    if shutil.which(CHROMIUM) is None:
        missing("no headless browser: `apt-get install chromium` (make system-deps does)")


async def test_a_live_run_in_the_browser(sandbox: Any) -> None:
    _chromium()
    from playwright.async_api import async_playwright

    url = await sandbox()
    errors: list[str] = []
    async with async_playwright() as p:
        # the browser starts before the run: its start-up (seconds on a busy machine) must not eat
        # into the 16 s the page has to follow the run
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            page = await browser.new_page(viewport={"width": 1200, "height": 1500})
            page.on("pageerror", lambda e: errors.append(str(e)))
            requests: list[str] = []
            page.on("request", lambda r: requests.append(r.url))
            run_id = await launch(url, DAY)
            token = (await links(url, run_id))["observer"]
            await page.goto(f"{url}/dashboard/{run_id}?token={token}")
            await page.wait_for_selector("#chart-rate canvas")
            points = []
            for _ in range(3):  # the charts gain points while the run plays, the page never reloads
                before = int(await page.get_attribute("#chart-latency", "data-points") or 0)
                await wait_in_page(page, f"Number(document.querySelector('#chart-latency').dataset.points) > {before}",
                                   20, "more points on the latency chart")
                points.append(int(await page.get_attribute("#chart-latency", "data-points") or 0))
            assert points == sorted(points) and points[0] < points[-1]
            await wait_in_page(page, "document.querySelector('#chart-errors').dataset.bands === '1'", 30,
                               "the fault band")
            assert "db_down@hour3+1h" in (await page.text_content("#esr-faults") or "")
            await page.wait_for_selector("#esr-verdict:not([hidden])", timeout=60_000)
            banner = await page.text_content("#esr-verdict") or ""
            assert banner.startswith("VERDICT PASS"), banner
            # nothing an observer could use to change the run
            assert await page.locator("button, form, input, select, textarea").count() == 0
            out = ROOT / "test-output"
            out.mkdir(exist_ok=True)
            shot = out / "dashboard.png"
            await page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 20_000
            navigations = [r for r in requests if r.startswith(f"{url}/dashboard/")]
            assert len(navigations) == 1, navigations  # pushed, never reloaded
            assert all(r.startswith(url) for r in requests), "everything comes from the ESR server"
        finally:
            await browser.close()
    assert errors == []
    summary = await ended(url, run_id)
    assert summary["verdict"] == "PASS"


async def test_trainee_decisions_are_applied_and_drawn(sandbox: Any, esr_home: Path) -> None:
    url = await sandbox()
    run_id = await launch(url, DAY | {"failure_injection": [], "assertions": []})
    tokens = await links(url, run_id)
    decide = f"{url}/run/{run_id}/decisions"
    await wait_until(lambda: run_id in sandbox.service.offices, 60, "the office (it opens with the first claim)")
    office = sandbox.service.offices[run_id]
    before = office.config.caseworkers
    status, body = await call("POST", f"{decide}?token={tokens['trainee']}", None,
                              {"decision": "add_caseworkers(5)", "author": "Jane"})
    assert status == 201, body
    made = orjson.loads(body)
    assert (made["action"], made["applied"], made["author"]) == ("add_caseworkers", True, "Jane")
    assert office.config.caseworkers == before + 5
    status, body = await call("POST", f"{decide}?token={tokens['trainee']}", None, {"decision": "page on-call"})
    assert status == 201 and orjson.loads(body)["applied"] is None  # a note
    status, body = await call("POST", f"{decide}?token={tokens['trainee']}", None, {"decision": "pause_intake"})
    assert status == 201 and orjson.loads(body)["applied"] is True and office._intake_paused  # noqa: SLF001
    # observers and other runs may not decide; bad bodies are refused with what to send
    assert (await call("POST", f"{decide}?token={tokens['observer']}", None, {"decision": "x"}))[0] == 403
    assert (await call("POST", decide, None, {"decision": "x"}))[0] == 401
    status, body = await call("POST", f"{decide}?token={tokens['trainee']}", None, {"nope": 1})
    assert status == 400 and 'send JSON {"decision"' in orjson.loads(body)["error"]
    summary = await ended(url, run_id)
    assert summary["summary"]["errors"] > 0  # filings were refused while intake was paused
    assert (await call("POST", f"{decide}?token={tokens['trainee']}", None, {"decision": "x"}))[0] == 409
    status, body = await call("GET", f"{url}/run/{run_id}/timeline?token=observer-token-for-tests")
    decisions = orjson.loads(body)["decisions"]
    assert [(d["author"], d["decision"], d["applied"]) for d in decisions] == [
        ("Jane", "add_caseworkers(5)", True), ("trainee", "page on-call", None), ("trainee", "pause_intake", True)]
    assert decisions[0]["hour_after"]["requests"] > 0 and "error_rate" in decisions[0]["hour_after"]
    assert decisions[0]["sim_time"] <= decisions[1]["sim_time"] <= decisions[2]["sim_time"]


async def test_a_trainee_records_a_decision_from_the_page(sandbox: Any) -> None:
    _chromium()
    from playwright.async_api import async_playwright

    url = await sandbox()
    async with async_playwright() as p:
        # the browser starts before the run: decisions are taken only while it plays (16 s)
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            page = await browser.new_page()
            run_id = await launch(url, DAY | {"failure_injection": [], "assertions": []})
            tokens = await links(url, run_id)
            await page.goto(f"{url}/dashboard/{run_id}?token={tokens['trainee']}")
            await page.fill("#esr-author", "Sam")
            await page.fill("#esr-decision", "page on-call")
            await page.click("#esr-decide-submit")
            await page.click("button[data-action=add_caseworkers]")  # no parameter: refused, and says so
            await wait_in_page(page, "document.querySelector('#chart-rate').dataset.decisions === '2'", 20,
                               "both decisions drawn")
            listed = await page.text_content("#esr-decisions") or ""
            assert "Sam: page on-call" in listed and "add_caseworkers (NOT applied" in listed
            observer = await browser.new_page()
            await observer.goto(f"{url}/dashboard/{run_id}?token={tokens['observer']}")
            await observer.wait_for_selector("#chart-rate canvas")
            assert await observer.locator("button, form, input, select, textarea").count() == 0
        finally:
            await browser.close()
    await ended(url, run_id)
