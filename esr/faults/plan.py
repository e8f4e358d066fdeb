"""`plan_faults`: a scenario's `failure_injection` resolved against what can apply each fault.

A name is either a built-in fault of the fault proxy (`esr.core.toxics`) or a named fault of the
system's own parts, declared in the scenario's `fault_actions` or the target registry (the
scenario's declaration wins). Anything else is an error before launch, with the column of the
name and the list of faults this target knows. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from esr.core.errors import FaultSyntaxError, FieldError, ScenarioError
from esr.core.events import FaultKind
from esr.core.fault_actions import FaultAction, allowed_url, fault_context, render_action
from esr.core.fault_spec import FaultSpec, parse_fault
from esr.core.toxics import PROXY_FAULTS, Toxic, toxic_for

__all__ = ["PlannedFault", "fault_moments", "plan_faults"]


@dataclass(frozen=True, slots=True)
class PlannedFault:
    spec: FaultSpec
    toxic: Toxic | None = None  # a built-in fault of the proxy
    action: FaultAction | None = None  # a fault of the system's own parts

    @property
    def key(self) -> str:
        return self.spec.text

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def kind(self) -> FaultKind:
        return "proxy" if self.toxic is not None else "action"


def plan_faults(entries: list[str], actions: Mapping[str, FaultAction], target_name: str = "the target",
                target_url: str = "") -> list[PlannedFault]:
    """Every entry resolved, or a ScenarioError listing every entry that cannot be."""
    planned, errors = [], []
    seen: dict[str, int] = {}
    for i, text in enumerate(entries):
        where = f"failure_injection[{i}]"
        try:
            spec = parse_fault(text)
            if text in seen:
                raise spec.error(None, f"the same fault is listed twice (also failure_injection[{seen[text]}])")
            seen[text] = i
            toxic = toxic_for(spec)
            if toxic is not None:
                if spec.name in actions:
                    raise spec.error(None, f"{spec.name!r} is a built-in fault of the proxy; name your own fault "
                                           "differently in fault_actions")
                if target_url.startswith("https://"):
                    raise spec.error(None, f"the fault proxy speaks plain HTTP and {target_url} is HTTPS; "
                                           "use an http:// target for built-in faults")
                planned.append(PlannedFault(spec, toxic=toxic))
            elif spec.name in actions:
                _check_action(spec, actions[spec.name], target_url)
                clash = next((p for p in planned if p.name == spec.name and _overlap(p.spec, spec)), None)
                if clash is not None:
                    raise spec.error(None, f"overlaps {clash.key!r}: the system's own fault {spec.name!r} can be on "
                                           "only once at a time (its recovery would end both)")
                planned.append(PlannedFault(spec, action=actions[spec.name]))
            else:
                own = ", ".join(sorted(actions)) or "none"
                raise spec.error(None, f"unknown fault {spec.name!r}: built-in faults are "
                                       f"{', '.join(PROXY_FAULTS)}; {target_name} defines: {own} "
                                       "(declare more in the scenario's fault_actions or the target registry)")
        except FaultSyntaxError as exc:
            errors.append(FieldError(where, str(exc)))
    if errors:
        raise ScenarioError(errors)
    return planned


def _overlap(a: FaultSpec, b: FaultSpec) -> bool:
    a_end = a.end_sim if a.end_sim is not None else float("inf")
    b_end = b.end_sim if b.end_sim is not None else float("inf")
    return a.start_sim < b_end and b.start_sim < a_end


def _check_action(spec: FaultSpec, action: FaultAction, target_url: str) -> None:
    """Render the actions now, so a placeholder without a value or a URL ESR may not call is an
    error before launch rather than at the fault's start."""
    context = fault_context(spec, "RUN", target_url or "http://127.0.0.1", "SIM")
    for what, step in (("start", action.start), ("recover", action.recover)):
        if step is None:
            continue
        try:
            call = render_action(step, spec, context)
        except KeyError as exc:
            name = str(exc.args[0]).split("}}")[0].strip("{ ")
            raise spec.error(None, f"{spec.name}'s {what} action uses {{{{ {name} }}}}, which this entry does not "
                                   "give (positional parameters are fault.arg0, fault.arg1..., named ones "
                                   "fault.NAME)") from None
        if call.kind == "http" and target_url and not allowed_url(call.url, target_url):
            raise spec.error(None, f"{spec.name}'s {what} action calls {call.url}: fault actions call loopback or "
                                   f"the target's own origin ({target_url}) only")


def fault_moments(faults: list[PlannedFault]) -> list[tuple[float, bool, PlannedFault]]:
    """(simulated time, starting?, fault) in time order; at equal times a fault ends before
    another starts. Faults without a duration have no end moment: they last until the run ends."""
    moments = [(f.spec.start_sim, True, i) for i, f in enumerate(faults)]
    moments += [(f.spec.end_sim, False, i) for i, f in enumerate(faults) if f.spec.end_sim is not None]
    return [(sim, starting, faults[i]) for sim, starting, i in sorted(moments)]
