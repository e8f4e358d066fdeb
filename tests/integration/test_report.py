"""`esr report`: a finished run's page, self-contained (opened in headless Chromium with no
network), and its JSON form."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from loopback import wait_until
from test_dashboard import CHROMIUM, _chromium

from esr.core.scenario import Scenario
from esr.core.targets import TargetRegistry
from esr.engine.runner import Run

pytestmark = pytest.mark.integration



async def esr(*args: str, home: Path) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "esr.cli", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=os.environ | {"ESR_HOME": str(home)})
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    return proc.returncode or 0, out.decode(), err.decode()


async def finished_run(demo_target: Any, home: Path) -> Run:
    url, _ = await demo_target(error_rate=0.2)
    scenario = Scenario(name="report_me", duration_hours=3, time_warp=3600, load_profile=[(0, 30)], seed=6,
                        assertions=["error_rate < 0.5"], failure_injection=["latency(40ms)@hour1+1h"])
    run = Run(scenario, TargetRegistry().resolve(url), home=home)
    task = asyncio.get_running_loop().create_task(run.execute())
    # a decision while it plays (3 s of load), once it has results
    await wait_until(lambda: run.status.value in ("RUNNING", "DRAINING") and run.live.requests > 0, 60,
                     "the run playing")
    await run.record_decision("paged on-call", "Ana")
    await task
    return run


async def test_the_report_page_and_its_json(demo_target: Any, tmp_path: Path) -> None:
    run = await finished_run(demo_target, tmp_path)
    page = tmp_path / "out" / "report.html"
    page.parent.mkdir()
    code, _, err = await esr("report", run.run_id, "--html", str(page), home=tmp_path)
    assert code == 0, err
    assert f"{page}: report of run {run.run_id}" in err
    text = page.read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]+src=|<link[^>]+href=", text), "nothing is loaded from elsewhere"
    scripts = sum(len(s) for s in re.findall(r"<script>(.*?)</script>", text, re.S))
    assert 50_000 < scripts < 300_000
    assert list(page.parent.iterdir()) == [page]  # no partial file left behind

    code, out, err = await esr("report", run.run_id, "--json", home=tmp_path)
    assert code == 0, err
    data = json.loads(out)
    assert data["run"]["run_id"] == run.run_id and data["verdict"]["verdict"] == run.verdict.status
    assert sum(data["requests"]) == run.verdict.summary["requests"]
    assert [f["fault"] for f in data["faults"]] == ["latency(40ms)@hour1+1h"]
    assert [(d["author"], d["decision"], d["applied"]) for d in data["decisions"]] == [("Ana", "paged on-call", None)]

    code, _, err = await esr("report", run.run_id, home=tmp_path)
    assert code == 2 and "--html FILE (a page) or --json" in err
    code, _, err = await esr("report", "20990101-000000-nosuch", "--json", home=tmp_path)
    assert code == 2 and "20990101-000000-nosuch" in err

    _chromium()  # fails on CI, skips elsewhere, when Debian's chromium is missing
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            context = await browser.new_context(offline=True)  # it must open with no network
            view = await context.new_page()
            errors: list[str] = []
            view.on("pageerror", lambda e: errors.append(str(e)))
            await view.goto(page.as_uri())
            await view.wait_for_selector("#chart-latency canvas")
            assert await view.get_attribute("#chart-latency", "data-points") == str(len(data["t"]))
            assert await view.get_attribute("#chart-errors", "data-bands") == "1"
            assert await view.get_attribute("#chart-sla", "data-decisions") == "1"
            banner = await view.text_content("#esr-verdict") or ""
            assert banner.startswith(f"VERDICT {run.verdict.status}")
            assert "Ana: paged on-call" in (await view.text_content("#esr-decisions") or "")
            assert errors == []
        finally:
            await browser.close()
