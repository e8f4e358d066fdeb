"""The sim tag on every request ESR sends, and how a system under test reads it.

    X-ESR-Sim: true              the request is simulated traffic
    X-ESR-Run-Id: <run id>       which run sent it
    X-ESR-Sim-Time: <ISO 8601>   the simulated time the request was sent for
    X-ESR-Time-Warp: <number>    the run's time_warp: simulated seconds per real second while
                                 the load plays (a system that models its own capacity in
                                 simulated time can scale it, as the sandbox's claims office does)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime

__all__ = ["RUN_ID", "SIM", "SIM_TIME", "TIME_WARP", "sim_time", "time_warp"]

SIM = "X-ESR-Sim"
RUN_ID = "X-ESR-Run-Id"
SIM_TIME = "X-ESR-Sim-Time"
TIME_WARP = "X-ESR-Time-Warp"


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
