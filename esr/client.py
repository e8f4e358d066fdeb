"""A small client for the ESR server, with the walk-through scripts' surface:

    from esr.client import Scenario, launch, report
    run_id = launch(scenario, target="prod-like-staging.dol.gov")
    print(report(run_id, wait=True)["verdict"])

`ESR_URL` selects the server (default http://localhost:9700); the token comes from
`ESR_TOKEN` or the file the local server wrote under `ESR_HOME`. Standard library only.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from typing import Any

from .api.auth import read_token
from .errors import EsrError
from .runlog import esr_home
from .scenario import Scenario

__all__ = ["EsrServerError", "Scenario", "launch", "report"]

DEFAULT_URL = "http://localhost:9700"
_TERMINAL = ("FINISHED", "ABORTED")


class EsrServerError(EsrError):
    """The server refused a request; `status` is the HTTP status, `body` its JSON answer."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.body = body
        details = "".join(f"\n  - {e.get('path') or '<scenario>'}: {e.get('message')}" for e in body.get("errors", []))
        super().__init__(f"ESR server answered {status}: {body.get('error', body)}{details}")


def _call(method: str, path: str, body: dict[str, Any] | None = None, url: str | None = None) -> dict[str, Any]:
    base = (url or os.environ.get("ESR_URL") or DEFAULT_URL).rstrip("/")
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    token = read_token(esr_home())
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
    return str(_call("POST", "/run", body | {"target": target}, url)["run_id"])


def report(run_id: str, wait: bool = False, *, url: str | None = None, poll_s: float = 1.0,
           timeout_s: float | None = None) -> dict[str, Any]:
    """The run's summary (`state`, `verdict`, assertions, metrics); with `wait`, once it ended."""
    started = time.monotonic()
    while True:
        summary = _call("GET", f"/run/{run_id}/summary", url=url)
        if not wait or summary["state"] in _TERMINAL:
            return summary
        if timeout_s is not None and time.monotonic() - started > timeout_s:
            raise EsrError(f"run {run_id} still {summary['state']} after {timeout_s:g} s")
        time.sleep(poll_s)
