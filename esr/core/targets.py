"""The target registry: ESR only sends traffic to loopback URLs and registered targets.

A registry file (`$ESR_HOME/targets.json`, or the path in `ESR_TARGETS`) maps names to base
URLs and, optionally, the target's default journey:

    {"targets": {"staging": {"url": "http://127.0.0.1:8080",
                             "default_journey": {"name": "home", "steps": [...]},
                             "faults": {"db_down": {"start": ..., "recover": ...}}}}}

(`faults`: the target's own named faults, see `esr.core.fault_actions`; `decisions`: actions a
trainee may take from the dashboard, e.g. `{"add_caseworkers": {"http": {"url": ...}}}`.)

A URL on 127.0.0.0/8 or ::1 (or `localhost`) is always allowed; anything else must be listed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from esr.core.errors import EsrError, TargetRefused
from esr.core.fault_actions import ActionStep, FaultAction
from esr.core.journey_spec import DEFAULT_JOURNEY, JourneySpec
from esr.core.loopback import is_loopback_url

__all__ = ["Target", "TargetRegistry"]


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    url: str
    default_journey: JourneySpec = field(default=DEFAULT_JOURNEY)
    metrics: dict[str, str] = field(default_factory=dict)  # name -> expression over other metrics
    faults: dict[str, FaultAction] = field(default_factory=dict)  # its own named faults, e.g. db_down
    decisions: dict[str, ActionStep] = field(default_factory=dict)  # what trainees may do, e.g. add_caseworkers

    def fill_in(self, data: dict[str, Any]) -> dict[str, Any]:
        """A scenario's JSON form with what this target supplies: its derived metrics (recorded
        with the scenario, so `esr judge` finds them) and, when the scenario names no journeys,
        the counters of the target's default journey."""
        data = dict(data)
        derived = found if isinstance(found := data.get("derived_metrics"), dict) else {}
        data["derived_metrics"] = {**self.metrics, **derived}  # the scenario's own definition wins
        origins = found if isinstance(found := data.get("metric_origins"), dict) else {}
        data["metric_origins"] = {**{name: f"target {self.name}" for name in self.metrics if name not in derived},
                                  **origins}
        if not data.get("journeys") and not data.get("python_journeys"):
            counters = found if isinstance(found := data.get("counters"), list) else []
            data["counters"] = sorted(set(counters) | self.default_journey.counter_names)
        return data

    @property
    def shown_url(self) -> str:
        """The URL as it may be shown or stored: without the credentials it may carry."""
        return shown_url(self.url)

    def metric_functions(self) -> dict[str, Any]:
        """The target's derived metrics as functions scenarios can assert on (e.g. cost_per_claim)."""
        from esr.core.assertions import expression_metric

        return {name: expression_metric(text, None) for name, text in self.metrics.items()}


def shown_url(url: str) -> str:
    """`url` without its user and password (`http://u:p@host/` -> `http://host/`): what summaries,
    run logs, metrics and reports may show. Sending still uses the target's own URL."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def _check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetRefused(f"target URL {url!r} must look like http://127.0.0.1:8080")
    return url.rstrip("/")


class TargetRegistry:
    def __init__(self, targets: dict[str, Target] | None = None, source: Path | None = None,
                 allow_loopback: bool = True) -> None:
        self.targets = dict(targets or {})
        self.source = source  # the registry file, named in messages
        self.allow_loopback = allow_loopback

    @classmethod
    def load(cls, path: Path | None) -> TargetRegistry:
        """The registry in `path` (a missing file is an empty registry)."""
        if path is None or not path.exists():
            return cls(source=path)
        try:
            data: Any = json.loads(path.read_text(encoding="utf-8"))
            entries = data["targets"]
            targets = {}
            for name, entry in entries.items():
                journey = entry.get("default_journey")
                metrics = entry.get("metrics", {})
                if not isinstance(metrics, dict) or not all(isinstance(v, str) for v in metrics.values()):
                    raise ValueError(f"{name}.metrics must map names to expressions such as \"a / b\"")
                faults = entry.get("faults", {})
                if not isinstance(faults, dict):
                    raise ValueError(f"{name}.faults must map fault names to {{\"start\": ..., \"recover\": ...}}")
                targets[name] = Target(
                    name, _check_url(entry["url"]),
                    JourneySpec.model_validate(journey) if journey else DEFAULT_JOURNEY, dict(metrics),
                    {fault: FaultAction.model_validate(action) for fault, action in faults.items()},
                    {name: ActionStep.model_validate(action) for name, action in entry.get("decisions", {}).items()})
                targets[name].metric_functions()  # a bad expression is an error now, not at judging
        except (ValueError, KeyError, TypeError, AttributeError, EsrError) as exc:
            raise TargetRefused(f"cannot read the target registry {path}: {exc}") from None
        allow = data.get("loopback", True)
        if not isinstance(allow, bool):
            raise TargetRefused(f"cannot read the target registry {path}: \"loopback\" must be true or false")
        return cls(targets, path, allow)

    def register(self, target: Target) -> None:
        self.targets[target.name] = target

    def resolve(self, name_or_url: str) -> Target:
        """The registered target of that name, or a loopback URL; anything else is refused."""
        if name_or_url in self.targets:
            return self.targets[name_or_url]
        for target in self.targets.values():  # by URL too, as shown (a run's log keeps it without credentials)
            if shown_url(target.url) == shown_url(name_or_url.rstrip("/")):
                return target
        registry = str(self.source or "$ESR_HOME/targets.json")
        if "://" not in name_or_url:
            known = ", ".join(sorted(self.targets)) or "none"
            hint = f" (did you mean http://{name_or_url}?)" if ":" in name_or_url or "." in name_or_url else ""
            raise TargetRefused(
                f"unknown target {name_or_url!r}{hint}; registered targets: {known}. Give a loopback URL "
                f"such as http://127.0.0.1:8080 or register the name in {registry}")
        url = _check_url(name_or_url)
        if not self.allow_loopback:
            raise TargetRefused(f"refusing {url}: this registry ({registry}) allows registered targets only "
                                "(\"loopback\": false)")
        if not is_loopback_url(url):
            raise TargetRefused(
                f"refusing to send traffic to {url}: it is not a loopback address and not in the "
                f"target registry. ESR only targets systems you register: add it to {registry} "
                "as {\"targets\": {\"NAME\": {\"url\": \"...\"}}}")
        return Target(shown_url(url), url)
