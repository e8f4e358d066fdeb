"""`User`: what a Python journey's `run(user)` can do; the same scheduler paths as declarative steps."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

from esr.core.journey import PreparedRequest, Reply
from esr.core.units import parse_duration
from esr.core.userdata import generate_user_data

if TYPE_CHECKING:
    from esr.core.scheduler import Active
    from esr.engine.pacer import Pacer

__all__ = ["User"]


class User:
    """One synthetic user: its index, seeded random source and data, and its actions."""

    def __init__(self, pacer: Pacer, active: Active, rng: random.Random, intended: float,
                 data: dict[str, Any] | None = None) -> None:
        self._pacer = pacer
        self._active = active
        self.index = active.index
        self.rng = rng
        self.run_id = pacer.scheduler.run_id
        self._intended: float | None = intended  # the first request is due at the arrival time
        self.data: dict[str, Any] = generate_user_data(data, rng) if data else {}

    def generate(self, specs: dict[str, Any]) -> dict[str, Any]:
        """Seeded data for this user, e.g. `user.generate({"ssn": "ssn"})`."""
        self.data.update(generate_user_data(specs, self.rng))
        return self.data

    @property
    def now_sim(self) -> float:
        """Simulated seconds since the run's sim_start."""
        return self._pacer.sim_now()

    async def request(self, method: str, path: str, *, json: Any = None, body: str | None = None,
                      headers: dict[str, str] | None = None, query: dict[str, str] | None = None,
                      label: str | None = None, step: str = "") -> Reply:
        request = PreparedRequest(
            method=method.upper(), path=path, endpoint=label or f"{method.upper()} {path}",
            step=step or label or path, headers=headers or {}, query=query or {}, json=json, body=body)
        intended, self._intended = self._intended, None
        return await self._pacer.send(request, intended, self.index, self._active.journey)

    async def wait(self, duration: str | float = 0, *, hours: float = 0, minutes: float = 0) -> None:
        """Wait in simulated time: `await user.wait("1h")` or `await user.wait(hours=1)`."""
        target = self.now_sim + parse_duration(duration) + hours * 3600 + minutes * 60
        self._intended = None  # the next request is due when the wait ends, not at the arrival
        await self._pacer.wait_until_sim(target)

    def count(self, name: str, value: float = 1.0) -> None:
        self._pacer.scheduler.count(self._active, name, value, self.now_sim)

    def sla_open(self, key: str, *, within: str | float) -> None:
        """Start deadline `key` (e.g. "48h": counted in sla_48h_success_rate) now."""
        self._pacer.open_deadline(self._active, key, parse_duration(within), self.now_sim)

    def sla_close(self, key: str) -> None:
        """The journey reached the end of deadline `key`: met if still in time."""
        self._pacer.close_deadline(self._active, key, self.now_sim)
