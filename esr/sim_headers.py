"""The sim tag on every request ESR sends, and how a system under test reads it.

    X-ESR-Sim: true              the request is simulated traffic
    X-ESR-Run-Id: <run id>       which run sent it
    X-ESR-Sim-Time: <ISO 8601>   the simulated time the request was sent for
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone

__all__ = ["RUN_ID", "SIM", "SIM_TIME", "sim_time"]

SIM = "X-ESR-Sim"
RUN_ID = "X-ESR-Run-Id"
SIM_TIME = "X-ESR-Sim-Time"


def sim_time(headers: Mapping[str, str]) -> datetime:
    """The simulated time a request carries, or the real time (UTC) for a caller that sends none,
    so a system under test can "live in simulated time"."""
    header = headers.get(SIM_TIME)
    try:
        now = datetime.fromisoformat(header) if header else datetime.now(timezone.utc)
    except ValueError:
        now = datetime.now(timezone.utc)
    return now if now.tzinfo else now.replace(tzinfo=timezone.utc)
