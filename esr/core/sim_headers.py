"""The sim tag on every request ESR sends, and how a system under test reads it.

    X-ESR-Sim: true              the request is simulated traffic
    X-ESR-Run-Id: <run id>       which run sent it
    X-ESR-Sim-Time: <ISO 8601>   the simulated time the request was sent for
    X-ESR-Time-Warp: <number>    the run's time_warp: simulated seconds per real second while
                                 the load plays (a system that models its own capacity in
                                 simulated time can scale it, as the sandbox's claims office does)
    Idempotency-Key: <run id>-u<user>-r<n>
                                 the request's identity in its run: the user (one journey) and the
                                 request's number in that journey, the same when a bot shard taken
                                 over after a crash sends it again, so the target can act on it once
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from esr.core.errors import EsrError

__all__ = ["IDEMPOTENCY_KEY", "RUN_ID", "SIM", "SIM_TIME", "TIME_WARP", "IdempotencyKeyError", "SimTimeFormat",
           "idempotency_key", "sim_time", "time_warp"]

SIM = "X-ESR-Sim"
RUN_ID = "X-ESR-Run-Id"
SIM_TIME = "X-ESR-Sim-Time"
TIME_WARP = "X-ESR-Time-Warp"
IDEMPOTENCY_KEY = "Idempotency-Key"  # as Stripe and draft-ietf-httpapi-idempotency-key-header name it


class IdempotencyKeyError(EsrError, ValueError):
    """An idempotency key asked for a user or request number that no request has."""


def idempotency_key(run_id: str, user: int, n: int) -> str:
    """The `Idempotency-Key` of request `n` of `user`'s journey in run `run_id`.

    A pure function of what a re-run shard repeats exactly (run, user, request number), so a
    request sent again after a takeover carries the key the first send did. Read from the
    right it is unambiguous (`-r<n>` after `-u<user>`), so no two requests of any runs share one."""
    for name, value in (("user", user), ("n", n)):
        if type(value) is not int or value < 0:
            raise IdempotencyKeyError(f"idempotency_key: {name} must be a whole number 0 or more, not {value!r}")
    return f"{run_id}-u{user}-r{n}"


def sim_time(headers: Mapping[str, str]) -> datetime:
    """The simulated time a request carries, or the real time (UTC) for a caller that sends none,
    so a system under test can "live in simulated time"."""
    header = headers.get(SIM_TIME)
    try:
        now = datetime.fromisoformat(header) if header else datetime.now(UTC)
    except ValueError:
        now = datetime.now(UTC)
    return now if now.tzinfo else now.replace(tzinfo=UTC)


def time_warp(headers: Mapping[str, str]) -> float | None:
    """The run's time warp a request carries; None when it carries none (or nonsense)."""
    try:
        warp = float(headers.get(TIME_WARP, ""))
    except ValueError:
        return None
    return warp if math.isfinite(warp) and warp > 0 else None


class SimTimeFormat:
    """ISO 8601 of simulated times, to the millisecond (`2026-11-27T09:00:00.250+00:00`): the
    `X-ESR-Sim-Time` of every request and the `sim_time` of fault actions, on every runtime.
    The part up to the second is cached, since every request formats one."""

    __slots__ = ("sim_start", "_second", "_prefix", "_zone")

    def __init__(self, sim_start: datetime) -> None:
        self.sim_start = sim_start if sim_start.tzinfo else sim_start.replace(tzinfo=UTC)
        self._second: int | None = None
        self._prefix, self._zone = "", ""

    def __call__(self, sim: float) -> str:
        ms = round(sim * 1_000_000) // 1000  # to the microsecond as a timedelta is, then cut to the ms
        second, fraction = divmod(ms, 1000)
        if second != self._second:
            stamp = (self.sim_start + timedelta(seconds=second)).isoformat(timespec="seconds")
            self._second, self._prefix, self._zone = second, stamp[:19], stamp[19:]
        return f"{self._prefix}.{fraction:03d}{self._zone}"
