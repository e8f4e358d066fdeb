"""`perform`: one start or recovery action of a fault, run to completion.

A command runs with a timeout; an HTTP call goes only to loopback or the target's own origin
and never follows a redirect. The injector and the guard process both perform actions here.
"""

from __future__ import annotations

import subprocess
import urllib.error
import urllib.request

import orjson

from esr.core.fault_actions import ActionCall, allowed_url

__all__ = ["DETAIL_LIMIT", "perform"]

DETAIL_LIMIT = 300


class _Refuse(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer, not a place to go: it could leave the allowed origins."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_NO_REDIRECTS = urllib.request.build_opener(_Refuse)


def perform(call: ActionCall, target_url: str = "") -> tuple[bool, str]:
    """Run one action to completion (blocking); ok and a line saying what happened.

    HTTP actions may only go to loopback or to the target's own origin (ESR's traffic rule)."""
    if call.kind == "command":
        try:
            done = subprocess.run(call.argv, capture_output=True, timeout=call.timeout, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return False, f"{call.describe()}: {exc}"[:DETAIL_LIMIT]
        tail = (done.stderr or done.stdout).decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
        return done.returncode == 0, f"{call.describe()}: exit {done.returncode} {tail[0]}".strip()[:DETAIL_LIMIT]
    if not allowed_url(call.url, target_url):
        return False, f"refusing {call.describe()}: fault actions call loopback or the target's own origin only"
    body = orjson.dumps(call.body) if call.body is not None else None
    headers = {"Content-Type": "application/json", "X-ESR-Sim": "true", **dict(call.headers)}
    request = urllib.request.Request(call.url, data=body, method=call.method, headers=headers)
    try:
        with _NO_REDIRECTS.open(request, timeout=call.timeout) as response:  # URL checked above
            return True, f"{call.describe()}: {response.status}"
    except urllib.error.HTTPError as exc:
        text = exc.read()[:200].decode("utf-8", "replace")
        return False, f"{call.describe()}: {exc.code} {text}".strip()[:DETAIL_LIMIT]
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return False, f"{call.describe()}: {reason}"[:DETAIL_LIMIT]
