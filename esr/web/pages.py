"""The HTML around the charts: the self-contained report and the live dashboard page."""

from __future__ import annotations

import html
from typing import Any

import orjson

from .assets import asset, charts_script

__all__ = ["dashboard_html", "report_html"]

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


def report_html(timeline: dict[str, Any]) -> str:
    """One page that opens with no network: the library, our script and the data inline."""
    title = html.escape(f"ESR report: {timeline['run'].get('scenario') or ''} {timeline['run'].get('run_id') or ''}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
            f"<style>{asset('uPlot.min.css').decode()}{_STYLE}</style></head><body><div id='esr'></div>"
            f"<script>{asset('uPlot.iife.min.js').decode()}</script><script>{charts_script().decode()}</script>"
            f"<script id='esr-data' type='application/json'>{_json(timeline)}</script>"
            "<script>ESR.render(document.getElementById('esr'),"
            "JSON.parse(document.getElementById('esr-data').textContent));</script></body></html>")


def dashboard_html(timeline: dict[str, Any], *, events_url: str, report_url: str, token: str = "",
                   decide_url: str | None = None, actions: list[str] | None = None) -> str:
    """The live page: the library and our script from the server's /assets, the timeline so far
    inline, then server-sent events. With `decide_url` (a trainee's page) a form records
    decisions; an observer's page has no control that changes anything."""
    run_id = html.escape(str(timeline["run"].get("run_id") or ""))
    query = f"?token={html.escape(token)}" if token else ""
    decide = "" if decide_url is None else (
        f"<h2>your decision</h2><div id='esr-decide'></div><script>ESR.decide({_json(decide_url)},{_json(actions or [])});"
        "</script>")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>ESR dashboard {run_id}</title>"
            f"<link rel='stylesheet' href='/assets/uPlot.min.css'><style>{_STYLE}</style></head><body>"
            f"<nav><a href='/{query}'>all runs</a><a id='esr-report' href='{html.escape(report_url)}'>report</a></nav>"
            "<div id='esr'></div><script src='/assets/uPlot.iife.min.js'></script><script src='/assets/charts.js'></script>"
            f"<script id='esr-data' type='application/json'>{_json(timeline)}</script>"
            "<script>ESR.render(document.getElementById('esr'),JSON.parse(document.getElementById('esr-data').textContent));"
            f"ESR.follow({_json(events_url)});</script>{decide}</body></html>")
