"""The built-in faults that the fault proxy applies, and their parameters.

    latency(500ms)                      every response 500 ms later
    latency(500ms, jitter=100ms)        500 ms +/- up to 100 ms (uniform)
    errors(rate=0.2, status=503)        20 % of requests answered 503 by the proxy
    down                                connections refused; open connections closed
    reset(rate=0.5, after=100)          half the responses cut after 100 bytes with a TCP reset
    timeout(rate=0.1)                   10 % of requests never answered
    bandwidth(64)                       responses trickle at 64 KB/s per connection

Names and semantics follow Toxiproxy's toxics (latency, down, reset_peer, timeout, bandwidth);
`errors` is HTTP-aware, which a TCP proxy cannot be. `toxic_for` turns a parsed
`failure_injection` entry into one of these, with a positioned error for a bad parameter.
`plan_request` decides what the active faults do to one request. This module is pure: the
proxy in `esr.faults.proxy` carries the bytes.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from esr.core.fault_spec import FaultSpec, Seconds

__all__ = ["PROXY_FAULTS", "Action", "Bandwidth", "Down", "Errors", "Latency", "Plan", "Reset", "Timeout", "Toxic",
           "plan_request", "reset_cut", "toxic_for"]


@dataclass(frozen=True, slots=True)
class Latency:
    delay_s: float
    jitter_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Errors:
    rate: float = 1.0
    status: int = 503


@dataclass(frozen=True, slots=True)
class Down:
    pass


@dataclass(frozen=True, slots=True)
class Reset:
    rate: float = 1.0
    after_bytes: int | None = None  # bytes of the response sent before the reset; None: half of it


@dataclass(frozen=True, slots=True)
class Timeout:
    rate: float = 1.0


@dataclass(frozen=True, slots=True)
class Bandwidth:
    bytes_per_s: float


Toxic = Latency | Errors | Down | Reset | Timeout | Bandwidth


class _Bad(ValueError):
    pass


def _duration(value: Any) -> float:
    if not isinstance(value, Seconds):
        raise _Bad(f"expected a duration with a unit such as 500ms or 2s, got {value!r}")
    return value


def _number(value: Any) -> bool:
    """A plain number: not a duration (500ms), a word or a flag."""
    return isinstance(value, (int, float)) and not isinstance(value, (bool, Seconds))


def _rate(value: Any) -> float:
    if not _number(value) or not 0 < value <= 1:
        raise _Bad(f"expected a share between 0 (exclusive) and 1, such as 0.2, got {value!r}")
    return float(value)


def _status(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 100 <= value <= 599:
        raise _Bad(f"expected an HTTP status from 100 to 599, such as 503, got {value!r}")
    return value


def _bytes(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _Bad(f"expected a whole number of bytes, such as 100, got {value!r}")
    return value


def _kb_per_s(value: Any) -> float:
    if not _number(value) or value <= 0:
        raise _Bad(f"expected kilobytes (1,000 bytes) per second above 0, such as 64, got {value!r}")
    return float(value) * 1000


@dataclass(frozen=True, slots=True)
class _Kind:
    """One built-in fault: its parameters in positional order, each with a checker."""

    make: Callable[..., Toxic]
    params: tuple[tuple[str, str, Callable[[Any], Any]], ...]  # (name in the text, field, checker)
    required: tuple[str, ...] = ()
    usage: str = ""


PROXY_FAULTS: dict[str, _Kind] = {
    "latency": _Kind(Latency, (("delay", "delay_s", _duration), ("jitter", "jitter_s", _duration)),
                     ("delay",), "latency(500ms) or latency(500ms, jitter=100ms)"),
    "errors": _Kind(Errors, (("rate", "rate", _rate), ("status", "status", _status)),
                    (), "errors(rate=0.2, status=503)"),
    "down": _Kind(Down, (), (), "down"),
    "reset": _Kind(Reset, (("rate", "rate", _rate), ("after", "after_bytes", _bytes)),
                   (), "reset(rate=0.5, after=100)"),
    "timeout": _Kind(Timeout, (("rate", "rate", _rate),), (), "timeout(rate=0.1)"),
    "bandwidth": _Kind(Bandwidth, (("kb_per_s", "bytes_per_s", _kb_per_s),), ("kb_per_s",), "bandwidth(64)"),
}


def toxic_for(spec: FaultSpec) -> Toxic | None:
    """The built-in fault `spec` names, or None for a fault of the system's own parts."""
    kind = PROXY_FAULTS.get(spec.name)
    if kind is None:
        return None
    names = [name for name, _, _ in kind.params]
    if len(spec.args) > len(names):
        extra = len(names)
        raise spec.error(extra, f"{spec.name} takes at most {len(names)} parameter"
                                f"{'s' if len(names) != 1 else ''}; write {kind.usage}")
    given: dict[str, tuple[Any, int | str]] = {names[i]: (v, i) for i, v in enumerate(spec.args)}
    for key, value in spec.kwargs:
        if key not in names:
            known = ", ".join(names) or "none"
            raise spec.error(key, f"{spec.name} has no parameter {key!r} (parameters: {known}); write {kind.usage}")
        if key in given:
            raise spec.error(key, f"parameter {key!r} given twice")
        given[key] = (value, key)
    for name in kind.required:
        if name not in given:
            raise spec.error(None, f"{spec.name} needs its {name}; write {kind.usage}")
    fields = {}
    for name, field_name, check in kind.params:
        if name in given:
            value, where = given[name]
            try:
                fields[field_name] = check(value)
            except _Bad as exc:
                raise spec.error(where, f"{spec.name} {name}: {exc}") from None
    return kind.make(**fields)


class Action(Enum):
    FORWARD = "forward"
    ERROR = "error"  # answered by the proxy with the plan's status
    SWALLOW = "swallow"  # never answered
    DROP = "drop"  # the proxy is going down: close the connection


@dataclass(frozen=True, slots=True)
class Plan:
    """What happens to one request; an answer (forwarded or injected) is then delayed, paced
    and maybe reset."""

    action: Action
    status: int = 0
    delay_s: float = 0.0
    bytes_per_s: float | None = None
    reset: Reset | None = None


def plan_request(toxics: Iterable[Toxic], rng: random.Random) -> Plan:
    """The faults that hit one request. Draws happen in a fixed order (errors, timeout, latency
    jitter, reset; each active toxic in the order it was applied), so a seed replays a run."""
    active = list(toxics)
    if not active:
        return _FORWARD
    if any(isinstance(t, Down) for t in active):
        return Plan(Action.DROP)
    for toxic in active:
        if isinstance(toxic, Errors) and rng.random() < toxic.rate:
            return _shape(Plan(Action.ERROR, toxic.status), active, rng)
    if any(isinstance(t, Timeout) and rng.random() < t.rate for t in active):
        return Plan(Action.SWALLOW)
    return _shape(_FORWARD, active, rng)


_FORWARD = Plan(Action.FORWARD)


def _shape(plan: Plan, active: list[Toxic], rng: random.Random) -> Plan:
    delay = 0.0
    for toxic in active:
        if isinstance(toxic, Latency):
            jitter = rng.uniform(-toxic.jitter_s, toxic.jitter_s) if toxic.jitter_s else 0.0
            delay += max(0.0, toxic.delay_s + jitter)
    rates = [t.bytes_per_s for t in active if isinstance(t, Bandwidth)]
    reset = next((t for t in active if isinstance(t, Reset) and rng.random() < t.rate), None)
    return Plan(plan.action, plan.status, delay, min(rates) if rates else None, reset)


def reset_cut(reset: Reset, size: int) -> int:
    """How many bytes of a `size`-byte response go out before the reset: `after_bytes`, else
    half the response and at least one byte."""
    if reset.after_bytes is not None:
        return min(reset.after_bytes, size)
    return min(size, max(1, size // 2))
