"""The HTML around the charts: the self-contained report and the live dashboard page."""

from __future__ import annotations

import base64
import hashlib
import html
import re
from pathlib import Path
from typing import Any

import orjson

from esr.observe.web.assets import asset, charts_script

__all__ = ["DASHBOARD_CSP", "PLAIN_CSP", "dashboard_html", "report_csp", "report_html"]

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;max-width:1150px}
h1 small{color:#777;font-size:55%} .clock{font-family:monospace;background:#f4f4f4;padding:.4em}
.chart{margin:.6em 0} table{border-collapse:collapse} td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left}
tr[data-holds=false] td{color:#b00} .verdict{font-size:130%;font-weight:bold;padding:.5em;margin:.5em 0}
.verdict.PASS{background:#dfd} .verdict.FAIL{background:#fdd} .verdict.ERROR{background:#ffd}
.verdict.ABORTED{background:#eee} nav a{margin-right:1em}
"""


def _json(data: Any) -> str:
    """JSON safe inside a <script> element."""
    return orjson.dumps(data).decode().replace("</", "<\\/")


# Pages run no script of their own: charts.js starts itself from the JSON blocks.
DASHBOARD_CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                 "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
PLAIN_CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def report_html(timeline: dict[str, Any], assets: Path | None = None) -> str:
    """One page that opens with no network: the library (from `assets`, ESR_ASSETS), our script
    and the data inline."""
    title = html.escape(f"ESR report: {timeline['run'].get('scenario') or ''} {timeline['run'].get('run_id') or ''}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
            f"<style>{asset('uPlot.min.css', assets).decode()}{_STYLE}</style></head><body><div id='esr'></div>"
            f"<script id='esr-data' type='application/json'>{_json(timeline)}</script>"
            f"<script>{asset('uPlot.iife.min.js', assets).decode()}</script><script>{charts_script().decode()}</script>"
            "</body></html>")


def report_csp(page: str) -> str:
    """The report served over HTTP: its two inline scripts (the library and ours) by hash, and
    no other script, inline or not."""
    hashes = " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'"
                      for s in _INLINE_SCRIPT.findall(page))
    return (f"default-src 'none'; script-src {hashes}; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
            "form-action 'none'; frame-ancestors 'none'")


def dashboard_html(timeline: dict[str, Any], *, events_url: str, report_url: str, token: str = "",
                   decide_url: str | None = None, actions: list[str] | None = None) -> str:
    """The live page: the library and our script from the server's /assets, the timeline so far
    inline, then server-sent events. With `decide_url` (a trainee's page) a form records
    decisions; an observer's page has no control that changes anything."""
    run_id = html.escape(str(timeline["run"].get("run_id") or ""))
    query = f"?token={html.escape(token)}" if token else ""
    config: dict[str, Any] = {"events_url": events_url}
    if decide_url is not None:
        config |= {"decide_url": decide_url, "actions": actions or []}
    decide = "" if decide_url is None else "<h2>your decision</h2><div id='esr-decide'></div>"
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>ESR dashboard {run_id}</title>"
            f"<link rel='stylesheet' href='/assets/uPlot.min.css'><style>{_STYLE}</style></head><body>"
            f"<nav><a href='/{query}'>all runs</a><a id='esr-report' href='{html.escape(report_url)}'>report</a></nav>"
            f"<div id='esr'></div>{decide}"
            f"<script id='esr-data' type='application/json'>{_json(timeline)}</script>"
            f"<script id='esr-config' type='application/json'>{_json(config)}</script>"
            "<script src='/assets/uPlot.iife.min.js'></script><script src='/assets/charts.js'></script>"
            "</body></html>")
