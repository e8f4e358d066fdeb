"""`FaultInjector`: applies a run's faults and makes sure each one is undone.

Built-in faults are switched on and off in the run's `FaultProxy`; the system's own faults run
their start and recovery actions (`esr.faults.actions.perform`). While a fault with a recovery action is active,
the `FaultGuard` process holds that recovery, so that it still runs if this process dies
(kill -9, a crash) before it could recover itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from esr.core.fault_actions import ActionCall, fault_context, render_action
from esr.faults.actions import perform
from esr.faults.guard import FaultGuard
from esr.faults.plan import PlannedFault

if TYPE_CHECKING:
    from esr.faults.proxy import FaultProxy

__all__ = ["FaultInjector", "wait_set"]

async def wait_set(event: asyncio.Event, seconds: float) -> bool:
    """Wait up to `seconds` for `event`; whether it is set (a stop, while waiting for a moment)."""
    if not event.is_set() and seconds > 0:
        try:
            await asyncio.wait_for(event.wait(), seconds)
        except TimeoutError:
            pass
    return event.is_set()


class FaultInjector:
    """Starts and ends the faults of one run; `active` names those in effect."""

    def __init__(self, faults: list[PlannedFault], *, run_id: str, target_url: str,
                 proxy: FaultProxy | None = None, guard: FaultGuard | None = None,
                 on_change: Callable[[tuple[str, ...]], None] | None = None) -> None:
        self.faults = faults
        self.run_id = run_id
        self.target_url = target_url
        self.proxy = proxy
        self.guard = guard
        self.on_change = on_change
        self._recoveries: dict[str, ActionCall | None] = {}  # active faults -> their recovery
        self._names: dict[str, str] = {}

    @property
    def active(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self._names.values()))

    def is_active(self, fault: PlannedFault) -> bool:
        return fault.key in self._names

    async def start(self, fault: PlannedFault, sim_iso: str) -> tuple[bool, str]:
        """Apply one fault; (False, why) when it could not be applied."""
        if fault.toxic is not None:
            if self.proxy is None:
                return False, "no fault proxy in this run"
            self.proxy.apply(fault.key, fault.toxic)
            self._on(fault, None)
            return True, f"proxy {self.proxy.url}: {fault.toxic}"
        assert fault.action is not None
        context = fault_context(fault.spec, self.run_id, self.target_url, sim_iso)
        call = render_action(fault.action.start, fault.spec, context)
        recovery = render_action(fault.action.recover, fault.spec, context) if fault.action.recover else None
        if recovery is not None and self.guard is not None:
            self.guard.arm(fault.key, recovery)  # before starting: a crash in between still recovers
        ok, detail = await asyncio.to_thread(perform, call, self.target_url)
        if ok:
            self._on(fault, recovery)
        elif recovery is not None:  # it may have taken effect before failing (a timeout): undo it to be sure
            undone, how = await asyncio.to_thread(perform, recovery, self.target_url)
            detail += f"; recovery run to be sure: {how}"
            if undone and self.guard is not None:
                self.guard.disarm(fault.key)  # else the guard tries again when the run ends
        return ok, detail

    async def end(self, fault: PlannedFault, sim_iso: str) -> tuple[bool, str]:
        """Undo one active fault: its toxic off, or its recovery action run. It counts as on
        until then; a failed recovery stays with the guard, which tries again when the run ends."""
        if fault.key not in self._names:
            return True, "not active"
        recovery = self._recoveries[fault.key]
        if fault.toxic is not None:
            if self.proxy is not None:
                self.proxy.clear(fault.key)
            ok, detail = True, "proxy fault removed"
        elif recovery is None:
            ok, detail = True, "no recovery action declared"
        else:
            assert fault.action is not None and fault.action.recover is not None
            context = fault_context(fault.spec, self.run_id, self.target_url, sim_iso)
            call = render_action(fault.action.recover, fault.spec, context)  # with the sim time of the recovery
            ok, detail = await asyncio.to_thread(perform, call, self.target_url)
            if ok and self.guard is not None:
                self.guard.disarm(fault.key)
        del self._names[fault.key]
        del self._recoveries[fault.key]
        self._changed()
        return ok, detail

    def _on(self, fault: PlannedFault, recovery: ActionCall | None) -> None:
        self._recoveries[fault.key] = recovery
        self._names[fault.key] = fault.name
        self._changed()

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change(self.active)
