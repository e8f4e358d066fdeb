"""Faults of the system's own parts: what ESR does to start one, and to recover from it.

A named fault such as `db_down` maps to a start action and a recovery action, declared in the
target registry (HTTP calls and commands) or in a scenario's `fault_actions` (HTTP calls only:
a scenario may arrive over the API, and ESR never runs a command it was sent):

    "fault_actions": {
      "db_down": {
        "start":   {"http": {"method": "POST",   "url": "{{ target.url }}/_esr/runs/{{ run.id }}/faults/db_down"}},
        "recover": {"http": {"method": "DELETE", "url": "{{ target.url }}/_esr/runs/{{ run.id }}/faults/db_down"}}
      },
      "worker_down": {"start": {"command": ["systemctl", "stop", "claims-worker"]},
                      "recover": {"command": ["systemctl", "start", "claims-worker"]}}
    }

Placeholders: `{{ run.id }}`, `{{ target.url }}`, `{{ fault.name }}`, `{{ fault.arg0 }}`... and
`{{ fault.<param> }}` for named parameters, `{{ fault.sim_time }}`. An HTTP action without a
body sends `{"fault", "args", "params", "sim_time", "run_id"}` as JSON. This module only
declares and renders; `esr.faults.injector` performs them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from esr.core.fault_spec import FaultSpec
from esr.core.journey_spec import Duration, Model
from esr.core.loopback import is_loopback_url
from esr.core.templating import render_value, template_names

__all__ = ["ActionCall", "ActionStep", "CommandAction", "FaultAction", "HttpAction", "allowed_url", "fault_context",
           "render_action"]

ACTION_NAMESPACES = ("run", "target", "fault")


def _check_placeholders(value: Any) -> Any:
    template_names(value, ACTION_NAMESPACES)  # raises ValueError naming a bad placeholder
    return value


class HttpAction(Model):
    method: str = Field(default="POST", pattern=r"^[A-Z]+$")
    url: str = Field(description="absolute URL; placeholders {{ target.url }}, {{ run.id }}, {{ fault.* }}")
    json_body: Any = Field(default=None, alias="json", description="default: the fault as JSON")
    headers: dict[str, str] = Field(default_factory=dict)
    timeout: Duration = 10.0

    _placeholders = field_validator("url", "json_body", "headers")(_check_placeholders)


class CommandAction(Model):
    command: list[str] = Field(min_length=1, description="argv, run without a shell")
    timeout: Duration = 30.0

    _placeholders = field_validator("command")(_check_placeholders)


class ActionStep(Model):
    """`{"http": {...}}` or `{"command": [...]}`."""

    http: HttpAction | None = None
    command: list[str] | None = None
    timeout: Duration | None = None

    @model_validator(mode="after")
    def _one(self) -> ActionStep:
        if (self.http is None) == (self.command is None):
            raise ValueError('write either {"http": {"url": ...}} or {"command": ["argv", ...]}')
        if self.command is not None:
            CommandAction(command=self.command, timeout=self.timeout or 30.0)
        return self

    def action(self) -> HttpAction | CommandAction:
        if self.http is not None:
            return self.http
        assert self.command is not None
        return CommandAction(command=self.command, timeout=self.timeout or 30.0)


class FaultAction(Model):
    description: str = ""
    start: ActionStep
    recover: ActionStep | None = Field(default=None, description="undoes start; runs at the fault's end, "
                                                                  "on abort and after a crash")

    @property
    def runs_commands(self) -> bool:
        return any(step is not None and step.command is not None for step in (self.start, self.recover))


@dataclass(frozen=True, slots=True)
class ActionCall:
    """A rendered action, ready to perform (and to hand to the guard process as JSON)."""

    kind: str  # http or command
    method: str = ""
    url: str = ""
    body: Any = None
    headers: tuple[tuple[str, str], ...] = ()
    argv: tuple[str, ...] = ()
    timeout: float = 10.0

    def describe(self) -> str:
        return f"{self.method} {self.url}" if self.kind == "http" else " ".join(self.argv)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "method": self.method, "url": self.url, "body": self.body,
                "headers": [list(h) for h in self.headers], "argv": list(self.argv), "timeout": self.timeout}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ActionCall:
        return cls(data["kind"], data["method"], data["url"], data["body"],
                   tuple((k, v) for k, v in data["headers"]), tuple(data["argv"]), float(data["timeout"]))


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    return parts.scheme, parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)


def allowed_url(url: str, target_url: str) -> bool:
    """HTTP fault actions go where all of ESR's traffic may: loopback, or the target's origin."""

    return is_loopback_url(url) or bool(target_url) and _origin(url) == _origin(target_url)


def fault_context(spec: FaultSpec, run_id: str, target_url: str, sim_iso: str) -> dict[str, Any]:
    fault: dict[str, Any] = {"name": spec.name, "text": spec.text, "sim_time": sim_iso}
    fault.update({f"arg{i}": v for i, v in enumerate(spec.args)})
    fault.update(dict(spec.kwargs))
    return {"run": {"id": run_id}, "target": {"url": target_url}, "fault": fault}


def render_action(step: ActionStep, spec: FaultSpec, context: dict[str, Any]) -> ActionCall:
    action = step.action()
    if isinstance(action, CommandAction):
        argv = tuple(str(render_value(a, context, ACTION_NAMESPACES)) for a in action.command)
        return ActionCall("command", argv=argv, timeout=action.timeout)
    body = action.json_body
    if body is None:
        body = {"run_id": context["run"]["id"], "fault": spec.name, "args": list(spec.args),
                "params": dict(spec.kwargs), "sim_time": context["fault"]["sim_time"]}
    else:
        body = render_value(body, context, ACTION_NAMESPACES)
    headers = tuple((k, str(render_value(v, context, ACTION_NAMESPACES))) for k, v in action.headers.items())
    return ActionCall("http", action.method, str(render_value(action.url, context, ACTION_NAMESPACES)), body, headers,
                      timeout=action.timeout)

