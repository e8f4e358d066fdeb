"""Output is inert: what a run's author wrote (a scenario name, a decision) is shown as text on
every page, in headless Chromium; pages carry a Content-Security-Policy without inline script."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from loopback import serve
from test_dashboard import CHROMIUM, _chromium
from test_server import ADMIN, TOKENS, call, wait_until_ended

from esr.api.server import make_app
from esr.core.targets import TargetRegistry

pytestmark = pytest.mark.integration

EVIL = "<img src=x onerror=\"window.__pwned=1\"><script>window.__pwned=2</script>"
SHORT = {"name": EVIL, "description": EVIL, "duration_hours": 1, "time_warp": 3600, "load_profile": [[0, 5]],
         "seed": 3, "assertions": ["error_rate < 0.5"]}
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture
async def finished(esr_home: Path, demo_target: Any) -> AsyncIterator[tuple[str, str]]:
    """A server and a finished run whose scenario name is HTML: (url, run id)."""
    target_url, _ = await demo_target()
    runner, url = await serve(make_app(esr_home, registry=TargetRegistry(), tokens=TOKENS))
    status, body = await call("POST", f"{url}/run", ADMIN, SHORT | {"target": target_url})
    assert status == 202, body
    await wait_until_ended(url, body["run_id"])  # observer token: test_server's helper
    yield url, body["run_id"]
    await runner.cleanup()


async def _page(url: str) -> tuple[dict[str, str], str]:
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as response:
            assert response.status == 200
            return dict(response.headers), await response.text()


async def test_pages_send_a_policy_without_inline_script_and_run_none(finished: tuple[str, str]) -> None:
    url, run_id = finished
    observer = (await call("GET", f"{url}/run/{run_id}/links", ADMIN))[1]["observer"].split("token=")[1]
    headers, page = await _page(f"{url}/dashboard/{run_id}?token={observer}")
    csp = headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
    executable = [s for s in re.findall(r"<script([^>]*)>(.*?)</script>", page, re.DOTALL)
                  if "application/json" not in s[0]]
    assert executable and all("src=" in attrs and body == "" for attrs, body in executable)
    assert EVIL not in page  # inside the JSON block it is escaped for a script element
    headers, report = await _page(f"{url}/run/{run_id}/report.html?token={observer}")
    assert "'sha256-" in headers["Content-Security-Policy"] and "unsafe-inline" not in \
        headers["Content-Security-Policy"].split("script-src")[1].split(";")[0]
    headers, listing = await _page(f"{url}/?token={TOKENS.observer}")
    assert headers["Content-Security-Policy"].startswith("default-src 'none'") and "<img src=x" not in listing


async def test_a_scenario_name_with_html_is_text_in_the_browser(finished: tuple[str, str], tmp_path: Path) -> None:
    _chromium()
    from playwright.async_api import async_playwright

    url, run_id = finished
    observer = (await call("GET", f"{url}/run/{run_id}/links", ADMIN))[1]["observer"].split("token=")[1]
    report_file = tmp_path / "report.html"
    done = subprocess.run([sys.executable, "-m", "esr.cli", "report", run_id, "--html", str(report_file)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            for where in (f"{url}/dashboard/{run_id}?token={observer}",
                          f"{url}/run/{run_id}/report.html?token={observer}", report_file.as_uri()):
                page = await browser.new_page()
                violations: list[str] = []
                page.on("console", lambda m, violations=violations: violations.append(m.text)
                        if "Content Security Policy" in m.text else None)
                await page.goto(where)
                await page.wait_for_selector("#esr h1")
                assert await page.evaluate("window.__pwned") is None, where
                assert await page.text_content("#esr h1 small") == run_id
                assert EVIL in (await page.text_content("#esr h1") or "")
                assert await page.evaluate("window.__pwned") is None, where
                assert await page.locator("#esr img, #esr script").count() == 0, where
                await page.wait_for_selector("#esr-verdict:not([hidden])")
                assert violations == [], (where, violations)  # our own scripts run under the policy
                await page.close()
        finally:
            await browser.close()


async def test_credentials_in_a_target_url_are_never_shown_or_stored(esr_home: Path, demo_target: Any) -> None:
    target_url, target = await demo_target()
    with_secret = target_url.replace("http://", "http://ops:s3cret-pw@")
    runner, url = await serve(make_app(esr_home, registry=TargetRegistry(), tokens=TOKENS))
    try:
        status, body = await call("POST", f"{url}/run", ADMIN, SHORT | {"name": "creds", "target": with_secret})
        assert status == 202, body
        run_id = body["run_id"]
        summary = await wait_until_ended(url, run_id)
        assert summary["target"] == target_url and target.requests > 0  # it was sent to, all the same
        observer = (await call("GET", f"{url}/run/{run_id}/links", ADMIN))[1]["observer"].split("token=")[1]
        seen = [str(summary), str((await call("GET", f"{url}/runs", ADMIN))[1])]
        async with aiohttp.ClientSession() as session:
            for path in ("/metrics", f"/run/{run_id}/timeline?token={observer}",
                         f"/run/{run_id}/report.html?token={observer}", f"/dashboard/{run_id}?token={observer}"):
                async with session.get(url + path) as response:
                    seen.append(await response.text())
        seen += [p.read_text(errors="replace") for p in (esr_home / "runs" / run_id).iterdir()]
        assert all("s3cret-pw" not in text for text in seen)
    finally:
        await runner.cleanup()
