"""A small client for the ESR server, with the walk-through scripts' surface:

    from esr.client import Scenario, launch, report
    run_id = launch(scenario, target="prod-like-staging.dol.gov")
    print(report(run_id, wait=True)["verdict"])

`ESR_URL` selects the server (default http://localhost:9700); the token comes from
`ESR_TOKEN` or the file the local server wrote under `ESR_HOME` (the local sandbox needs
none). `ESR_TIME_WARP` plays a scenario at another warp than it says, and `launch` prints
that it does so. Standard library only.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from typing import Any

from esr.api.auth import read_token
from esr.core.errors import EsrError
from esr.core.metric_expression import metric_expression
from esr.core.scenario import Scenario
from esr.observe.display import printable
from esr.settings import Settings

__all__ = ["EsrServerError", "Scenario", "launch", "report"]

DEFAULT_URL = "http://localhost:9700"
_TERMINAL = ("FINISHED", "ABORTED")
PROGRESS_EVERY_S = 10.0  # a progress line this often when stderr is not a terminal (each poll when it is)


class EsrServerError(EsrError):
    """The server refused a request; `status` is the HTTP status, `body` its JSON answer."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.body = body
        details = "".join(f"\n  - {e.get('path') or '<scenario>'}: {e.get('message')}" for e in body.get("errors", []))
        super().__init__(f"ESR server answered {status}: {body.get('error', body)}{details}")


def _call(method: str, path: str, body: dict[str, Any] | None = None, url: str | None = None) -> dict[str, Any]:
    settings = Settings.current()
    base = _base(url, settings)
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    token = read_token(settings.home, settings.token)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - http(s) URL from config
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            answer = json.loads(exc.read())
        except ValueError:
            answer = {"error": exc.reason}
        raise EsrServerError(exc.code, answer) from None
    except urllib.error.URLError as exc:
        raise EsrError(f"cannot reach the ESR server at {base} ({exc.reason}); start it with `esr serve` "
                       "or set ESR_URL") from None


def launch(scenario: Scenario | dict[str, Any], target: str, *, url: str | None = None) -> str:
    """Queue a run of `scenario` against `target` (a registered name or loopback URL); its id."""
    body = scenario.to_dict() if isinstance(scenario, Scenario) else dict(scenario)
    if isinstance(scenario, Scenario) and scenario.metrics:  # as expressions; refused here when they cannot be
        body.pop("python_metrics", None)
        translated = {name: metric_expression(name, function) for name, function in scenario.metrics.items()}
        body["derived_metrics"] = {**body.get("derived_metrics", {}), **translated}
    body |= _warp_override(body, Settings.current().time_warp)
    return str(_call("POST", "/run", body | {"target": target}, url)["run_id"])


def _warp_override(body: dict[str, Any], warp: float | None) -> dict[str, Any]:
    """`ESR_TIME_WARP`: the warp to play at instead of the scenario's, said out loud on stderr."""
    if warp is None:
        return {}
    hours = float(body.get("duration_hours") or 0)
    minutes = hours * 60 / warp
    print(f"playing at warp {warp:g} instead of {body.get('time_warp', 1):g} to finish {hours:g} simulated hours "
          f"in {minutes:.3g} real minute{'' if minutes == 1 else 's'} (ESR_TIME_WARP; the scenario is unchanged)",
          file=sys.stderr, flush=True)
    return {"time_warp": warp}


def report(run_id: str, wait: bool = False, *, url: str | None = None, poll_s: float = 1.0,
           timeout_s: float | None = None) -> dict[str, Any]:
    """The run's summary (`state`, `verdict`, assertions, metrics). With `wait`, once it ended;
    meanwhile it prints the run's dashboard URL once and a progress line as the run plays, then
    the verdict (green or red on a terminal), all on stderr."""
    started = time.monotonic()
    shown = ""
    said_at = -PROGRESS_EVERY_S
    while True:
        summary = _call("GET", f"/run/{run_id}/summary", url=url)
        if not wait:
            return summary
        if not shown:
            shown = summary.get("dashboard_url") or f"{_base(url, Settings.current())}/dashboard/{run_id}"
            _say(f"dashboard: {shown}")
        if summary["state"] in _TERMINAL:
            _say(_verdict_line(summary), color={"PASS": 32}.get(str(summary.get("verdict")), 31))
            return summary
        if time.monotonic() - said_at >= (poll_s if sys.stderr.isatty() else PROGRESS_EVERY_S):
            said_at = time.monotonic()
            _say(_progress_line(summary))
        if timeout_s is not None and time.monotonic() - started > timeout_s:
            raise EsrError(f"run {run_id} still {summary['state']} after {timeout_s:g} s")
        time.sleep(poll_s)


def _base(url: str | None, settings: Settings) -> str:
    return (url or settings.url or DEFAULT_URL).rstrip("/")


def _say(line: str, color: int | None = None) -> None:
    """A line on stderr; what the server sent (reasons, names) is escaped for the terminal."""
    line = printable(line, lines=True)
    if color is not None and sys.stderr.isatty():
        line = f"\x1b[1;{color}m{line}\x1b[0m"
    print(line, file=sys.stderr, flush=True)


def _progress_line(summary: dict[str, Any]) -> str:
    p = summary.get("progress") or {}
    if not p:
        return f"{summary['state']}"
    parts = [str(p.get("status", summary["state"])),
             f"sim {p.get('sim_hours', 0):.1f}/{p.get('duration_hours') or 0:g} h"]
    if "requests" in p:
        parts += [f"{p['requests']:,} requests", f"{p.get('errors', 0):,} errors",
                  f"SLA met {p.get('sla_met', 0):,} missed {p.get('sla_missed', 0):,} open {p.get('sla_open', 0):,}"]
    return "  ".join(parts)


def _verdict_line(summary: dict[str, Any]) -> str:
    lines = [f"VERDICT {summary.get('verdict')}  {summary.get('reason', '')}".rstrip()]
    for a in summary.get("assertions") or []:
        observed = a.get("observed")
        shown = "-" if observed is None else f"{observed:.4g}"
        lines.append(f"  {'ok  ' if a.get('holds') else 'FAIL'} {a.get('assertion')}  (observed {shown})")
    return "\n".join(lines)
