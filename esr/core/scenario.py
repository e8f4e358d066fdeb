"""`Scenario`: who does what and when, as JSON or as an equal Python object.

    Scenario(name="DOL_48h_SLA_Stress", duration_hours=24, time_warp=60,
             load_profile=[(0, 5), (8, 20), (18, 40), (22, 10)],
             assertions=["latency_p95_ms < 2000", "error_rate < 0.01"],
             failure_injection=["db_down@hour12"], seed=42)

Every problem is reported at once, each with its field path (`journeys[0].steps[1].poll.every`)
and what was expected, as a `ScenarioError`, before anything runs.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from esr.core.assertions import Assertion, expression_metric, parse_assertion
from esr.core.buckets import LATE_START_SHARE
from esr.core.errors import AssertionSyntaxError, EsrError, FaultSyntaxError, FieldError, ScenarioError
from esr.core.fault_actions import FaultAction
from esr.core.fault_spec import FaultSpec, parse_fault
from esr.core.input_limits import nesting_error, text_nesting_error
from esr.core.journey_spec import Duration, JourneySpec, Model
from esr.core.load_profile import LoadPoint, LoadProfile
from esr.core.metrics import MetricFunction
from esr.core.toxics import toxic_for
from esr.core.units import parse_rate
from esr.core.userdata import check_data_spec

__all__ = ["LoadStep", "Recovery", "Scenario", "load_scenario", "scenario_json_schema"]

MAX_HOURS = 24 * 366  # a scenario's simulated span
MAX_WARP = 1_000_000
REPLAY_MAX_HOURS = 24 * 366 * 1000  # a replay's: its log's span (a millennium is past any log)
REPLAY_MAX_WARP = 1e9  # a replay's --warp


def _rate(value: Any) -> float:
    return parse_rate(value)


RATE_PATTERN = r"^\s*\d+(\.\d+)?\s*(/\s*(ms|s|sec|min|m|h|hour))?\s*$"
Rate = Annotated[float, BeforeValidator(
    _rate, json_schema_input_type=float | Annotated[str, Field(pattern=RATE_PATTERN)]), Field(
    description="journey starts per real second while this simulated hour plays; a number or '2400/min'")]


class LoadStep(Model):
    hour: float = Field(ge=0, description="simulated hour from the start")
    rate: Rate
    ramp: bool = Field(default=False, description="reach this rate linearly from the previous entry")

    @model_validator(mode="before")
    @classmethod
    def _pair(cls, data: Any) -> Any:
        if isinstance(data, (list, tuple)):
            if len(data) not in (2, 3):
                raise ValueError(f"expected [hour, rate] or {{'hour': h, 'rate': r}}, got {list(data)!r}")
            return {"hour": data[0], "rate": data[1], **({"ramp": data[2] == "ramp"} if len(data) == 3 else {})}
        return data


class Recovery(Model):
    """When the system counts as recovered after a fault (see docs/faults.md)."""

    error_rate_margin: float = Field(default=0.01, ge=0, description="steady when a window's error rate is at most "
                                                                      "the steady-state rate plus this")
    latency_factor: float = Field(default=1.5, ge=1, description="steady when a window's p95 is at most the "
                                                                 "steady-state p95 times this")
    hold: Duration = Field(default=300.0, description="simulated time the steady state must hold to count")


class Scenario(Model):
    """A simulation scenario. Create it from keywords, `Scenario.from_dict` or `load_scenario`."""

    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    derived_from: SkipJsonSchema[Literal["log"] | None] = Field(
        default=None, description="set by `esr replay` only: the scenario describes a replayed log, whose span "
                                  "and warp are the log's and the replay's (scenario files cannot set it)")
    duration_hours: float = Field(gt=0, description="simulated hours of load",
                                  json_schema_extra={"maximum": MAX_HOURS})
    time_warp: float = Field(gt=0, description="simulated seconds per real second",
                             json_schema_extra={"maximum": MAX_WARP})
    drain_warp: float | None = Field(
        default=None, gt=0, json_schema_extra={"maximum": MAX_WARP},
        description="warp after the load ends, while journeys wait for their deadlines; default time_warp")
    load_profile: list[LoadStep] = Field(min_length=1)
    journeys: list[JourneySpec] = Field(
        default_factory=list, description="declarative journeys; none: the target's default journey")
    counters: list[str] = Field(default_factory=list, description="user counters that Python journeys add to")
    assertions: list[str] = Field(default_factory=list)
    failure_injection: list[str] = Field(
        default_factory=list, description="faults in simulated time, e.g. 'db_down@hour12+2h', "
                                          "'latency(500ms)@hour3+1h' (see docs/faults.md)")
    fault_actions: dict[str, FaultAction] = Field(
        default_factory=dict, description="named faults of the system's own parts: HTTP calls that start and "
                                          "recover them (commands only in the target registry)")
    recovery: Recovery = Field(default_factory=Recovery)
    seed: int = 0
    sim_start: datetime | None = Field(default=None, description="simulated start; default midnight UTC today")
    window: Duration = Field(default=60.0, description="metric bucket width in simulated time; divides 1h")
    max_in_flight: int = Field(default=10_000, ge=1, le=1_000_000,
                               description="cap on requests in flight; waiting journeys hold no slot")
    request_timeout: Duration = Field(default=30.0, description="real-time timeout of one request")
    late_threshold_ms: float = Field(default=10.0, ge=0,
                                     description="a journey starting later than this is a late start")
    max_late_start_share: float = Field(
        default=LATE_START_SHARE, ge=0, le=1,
        description="a run with a larger share of journeys started late (late_threshold_ms) is ERROR, never PASS: "
                    "the load it claims was not delivered")
    target: str | None = Field(default=None, description="default target: a registered name or a loopback URL")
    derived_metrics: dict[str, str] = Field(
        default_factory=dict, description="metrics defined by an expression, e.g. {\"cost_per_claim\": "
                                          "\"cloud_cost / claims_processed\"}")
    metric_origins: dict[str, str] = Field(
        default_factory=dict, description="who defined a derived metric the scenario itself did not, e.g. "
                                          "{\"cost_per_claim\": \"target prod-like-staging.dol.gov\"} (filled in "
                                          "from the target registry)")
    top_endpoints: SkipJsonSchema[int | None] = Field(
        default=None, ge=1, description="set by `esr replay` only (--top-endpoints): at most this many endpoint "
                                        "labels keep rows of their own, the rest are counted under 'other'")
    windowed_endpoints: SkipJsonSchema[list[str] | None] = Field(
        default=None, description="set by `esr replay` only: endpoints whose figures are kept per window "
                                          "(those its assertions judge over a time scope); the others per run")
    python_journeys: SkipJsonSchema[tuple[Any, ...]] = Field(default=(), exclude=True)
    metrics: SkipJsonSchema[dict[str, Any]] = Field(default_factory=dict, exclude=True)

    def __init__(self, **data: Any) -> None:
        data = dict(data)
        too_deep = nesting_error(data)  # before anything walks it recursively
        if too_deep is not None:
            raise ScenarioError([FieldError(*too_deep)])
        journeys = data.get("journeys")
        if isinstance(journeys, (list, tuple)):
            data["python_journeys"] = tuple(j for j in journeys if inspect.isclass(j))
            data["journeys"] = [j for j in journeys if not inspect.isclass(j)]
        if isinstance(data.get("metrics"), (list, tuple)):
            data["metrics"] = {getattr(f, "__name__", str(f)): f for f in data["metrics"]}
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise ScenarioError(_field_errors(exc) + _semantic_errors_raw(data)) from None
        errors = _derived_errors(self.derived_metrics, self.counter_names, self.metrics)
        errors += _semantic_errors(self.assertions, self.failure_injection, self.counter_names,
                                   self.custom_metrics, self.window, self.duration_hours)
        errors += [FieldError(f"fault_actions.{name}", "commands run only from the target registry, never from a "
                                                      "scenario (which may arrive over the API); use an HTTP action")
                   for name, action in self.fault_actions.items() if action.runs_commands]
        if self.journeys and not self.python_journeys:  # every SLA and endpoint is known here
            errors += _reference_errors(self)
        if errors:
            raise ScenarioError(errors)

    @field_validator("duration_hours", "time_warp", "drain_warp")
    @classmethod
    def _bounds(cls, value: float | None, info: ValidationInfo) -> float | None:
        """A scenario's span and warps are bounded; a replay's (derived from a log) only by what a
        replay plays, which `esr replay` checks and words in its own terms (--warp, the log's span)."""
        derived = info.data.get("derived_from") == "log"
        limit = (REPLAY_MAX_HOURS if derived else MAX_HOURS) if info.field_name == "duration_hours" else (
            REPLAY_MAX_WARP if derived else MAX_WARP)
        if value is not None and value > limit:
            raise ValueError(f"Input should be less than or equal to {limit:g}")
        return value

    @field_validator("window")
    @classmethod
    def _window(cls, value: float, info: ValidationInfo) -> float:
        """A window divides an hour; a replay's may also be whole hours dividing a day, or whole
        days (a long log's, so that it keeps a bounded number of windows)."""
        if info.data.get("derived_from") == "log" and value > 3600 and (
                (value % 3600 == 0 and 86400 % value == 0) or value % 86400 == 0):
            return value
        if value <= 0 or 3600 % value:
            raise ValueError(f"window must divide one hour evenly (e.g. '1m', '5m', '15m'), got {value:g}s")
        return value

    @field_validator("metrics")
    @classmethod
    def _metrics(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name, fn in value.items():
            if not callable(fn):
                raise ValueError(f"metric {name!r} must be a function taking the metrics mapping")
        return value

    @field_validator("python_journeys")
    @classmethod
    def _python_journeys(cls, value: tuple[Any, ...]) -> tuple[Any, ...]:
        from esr.core.journey import Journey  # the runtime base class

        for cls_ in value:
            if not issubclass(cls_, Journey):
                raise ValueError(f"{cls_.__name__} is a class but not a subclass of esr.Journey")
            for name, spec in cls_.data.items():
                try:
                    check_data_spec(spec)
                except ValueError as exc:
                    raise ValueError(f"{cls_.__name__}.data.{name}: {exc}") from None
        return value

    @model_validator(mode="after")
    def _profile(self) -> Scenario:
        hours = [p.hour for p in self.load_profile]
        for i, hour in enumerate(hours):
            if i and hour <= hours[i - 1]:
                raise ValueError(f"load_profile[{i}]: hours must increase; {hour:g} follows {hours[i - 1]:g}")
            if hour >= self.duration_hours:
                raise ValueError(f"load_profile[{i}]: hour {hour:g} is not before the end "
                                 f"(duration_hours={self.duration_hours:g})")
        if self.load_profile[0].ramp:
            raise ValueError("load_profile[0]: the first entry cannot ramp (there is nothing to ramp from)")
        names = [j.name for j in self.journeys] + [getattr(c, "name", c.__name__) for c in self.python_journeys]
        if len(set(names)) != len(names):
            raise ValueError(f"journey names must be unique: {', '.join(names)}")
        return self

    # -- derived views -------------------------------------------------------------------
    @property
    def effective_drain_warp(self) -> float:
        return self.drain_warp or self.time_warp

    @property
    def profile(self) -> LoadProfile:
        points = tuple(LoadPoint(p.hour, p.rate, p.ramp) for p in self.load_profile)
        return LoadProfile(points, self.duration_hours)

    @property
    def counter_names(self) -> frozenset[str]:
        names = set(self.counters)
        for journey in self.journeys:
            names |= journey.counter_names
        return frozenset(names)

    @property
    def custom_metrics(self) -> dict[str, MetricFunction]:
        """Metric functions: the derived expressions, then the Python functions."""
        derived = {}
        for name, text in self.derived_metrics.items():
            try:
                derived[name] = expression_metric(text, None)
            except EsrError:
                continue  # reported by validation
        return derived | dict(self.metrics)

    @property
    def metric_definitions(self) -> dict[str, dict[str, str]]:
        """Each derived or Python metric, its definition and who gave it (the verdict shows them)."""
        defined = {name: {"expression": text, "defined_by": self.metric_origins.get(name, "scenario")}
                   for name, text in self.derived_metrics.items()}
        return defined | {name: {"python": name, "defined_by": "scenario"} for name in self.metrics}

    def parsed_assertions(self) -> list[Assertion]:
        return [parse_assertion(a, self.counter_names, self.custom_metrics, self.window, self.fault_names)
                for a in self.assertions]

    def faults(self) -> list[FaultSpec]:
        return [parse_fault(f) for f in self.failure_injection]

    @property
    def fault_names(self) -> frozenset[str]:
        return frozenset(_fault_names(self.failure_injection))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (Python journeys and metric functions are referred to by name)."""
        data = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        if self.python_journeys:
            data["python_journeys"] = [f"{c.__module__}:{c.__qualname__}" for c in self.python_journeys]
        if self.metrics:
            data["python_metrics"] = sorted(self.metrics)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, metrics: Mapping[str, MetricFunction] | None = None) -> Scenario:
        if not isinstance(data, Mapping):
            raise ScenarioError([FieldError("", f"expected a JSON object, got {type(data).__name__}")])
        clean = {k: v for k, v in data.items() if k not in ("python_journeys", "python_metrics")}
        if metrics:
            clean["metrics"] = dict(metrics)
        return cls(**clean)


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("function-before", "function-after", "function-plain") or "[" in str(part):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out


def _field_errors(exc: ValidationError) -> list[FieldError]:
    errors = []
    for err in exc.errors(include_url=False):
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown field (check the spelling; `esr schema` lists the fields)"
        elif err["type"] == "missing":
            message = "required field is missing"
        errors.append(FieldError(_path(tuple(err["loc"])), message))
    return errors


def _reference_errors(scenario: Scenario) -> list[FieldError]:
    """Assertions naming an SLA or an endpoint that no journey of the scenario has."""
    slas = {sla.key for j in scenario.journeys for sla in j.sla}
    endpoints = {s.request.endpoint for j in scenario.journeys for s in j.steps if s.request}
    errors = []
    for i, text in enumerate(scenario.assertions):
        try:
            assertion = parse_assertion(text, scenario.counter_names, scenario.custom_metrics, scenario.window,
                                        scenario.fault_names)
        except AssertionSyntaxError:
            continue  # reported already
        for name in assertion.metrics:
            match = re.match(r"^sla_(\d+(?:\.\d+)?h)_", name)
            if match and match.group(1) not in slas:
                known = ", ".join(sorted(slas)) or "none"
                errors.append(FieldError(f"assertions[{i}]", f"{name}: no journey has a {match.group(1)} SLA "
                                                             f"(SLAs in this scenario: {known})"))
        if assertion.endpoint is not None and assertion.endpoint not in endpoints:
            errors.append(FieldError(f"assertions[{i}]", f"no endpoint is labelled {assertion.endpoint!r}; "
                                                         f"labels: {', '.join(sorted(endpoints))}"))
    return errors


def _derived_errors(derived: Mapping[str, str], counters: frozenset[str],
                    functions: Mapping[str, Any]) -> list[FieldError]:
    errors = []
    for name, text in derived.items():
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
            errors.append(FieldError(f"derived_metrics.{name}", "a metric name is letters, digits and _"))
            continue
        try:
            expression_metric(text, counters, {**derived, **functions})
        except AssertionSyntaxError as exc:
            errors.append(FieldError(f"derived_metrics.{name}", str(exc)))
    return errors


def _semantic_errors(
    assertions: list[str], faults: list[str], counters: frozenset[str],
    metrics: Mapping[str, Any], window: float, duration_hours: float | None = None,
) -> list[FieldError]:
    errors = []
    names = _fault_names(faults)
    for i, text in enumerate(assertions):
        try:
            parse_assertion(text, counters, metrics, window, names)
        except AssertionSyntaxError as exc:
            errors.append(FieldError(f"assertions[{i}]", str(exc)))
    for i, text in enumerate(faults):
        try:
            fault = parse_fault(text)
            toxic_for(fault)  # a built-in fault's parameters
        except FaultSyntaxError as exc:
            errors.append(FieldError(f"failure_injection[{i}]", str(exc)))
            continue
        if duration_hours is not None and fault.start_sim >= duration_hours * 3600:
            errors.append(FieldError(f"failure_injection[{i}]", f"{text!r} starts at simulated hour "
                                     f"{fault.start_sim / 3600:g}, after the load ends "
                                     f"(duration_hours={duration_hours:g})"))
    return errors


def _fault_names(faults: list[str]) -> set[str]:
    names = set()
    for text in faults:
        try:
            names.add(parse_fault(text).name)
        except FaultSyntaxError:
            continue  # reported by validation
    return names


def _semantic_errors_raw(data: Mapping[str, Any]) -> list[FieldError]:
    """Assertion and fault errors from data that did not validate, so all errors show at once."""

    def items(value: Any) -> list[Any]:
        return list(value) if isinstance(value, list) else []

    counters: set[str] = {c for c in items(data.get("counters")) if isinstance(c, str)}
    for journey in items(data.get("journeys")):
        steps = journey.get("steps") if isinstance(journey, dict) else None
        for step in items(steps):
            if isinstance(step, dict) and isinstance(step.get("counters"), dict):
                counters |= {k for k in step["counters"] if isinstance(k, str)}
    metrics = found if isinstance(found := data.get("metrics"), dict) else {}
    if isinstance(data.get("derived_metrics"), dict):
        metrics = {**data["derived_metrics"], **metrics}
    assertions = [a for a in items(data.get("assertions")) if isinstance(a, str)]
    faults = [f for f in items(data.get("failure_injection")) if isinstance(f, str)]
    return _semantic_errors(assertions, faults, frozenset(counters), metrics or {}, 60.0)


def load_scenario(path: str | Path, fill_in: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> Scenario:
    """A scenario from a JSON file, or from a Python file that defines `scenario`.

    `fill_in` may complete the JSON form before it is validated (a target adds its derived
    metrics and default-journey counters); Python scenarios get it unless they have Python
    journeys, which have no JSON form."""
    path = Path(path)
    if not path.is_file():
        raise ScenarioError([FieldError("", f"no such file: {path}")], source=str(path))
    if path.suffix == ".py":
        scenario = _load_python(path)
        if scenario.derived_from is not None:
            raise ScenarioError(_derived_claim(scenario.to_dict()), source=str(path))
        if fill_in is None or scenario.python_journeys:
            return scenario
        data, metrics = scenario.to_dict(), scenario.metrics
    else:
        data, metrics = read_scenario_json(path), {}
    try:
        scenario = Scenario.from_dict(fill_in(data) if fill_in else data, metrics=metrics)
    except ScenarioError as exc:
        raise ScenarioError(exc.errors + _derived_claim(data), source=str(path)) from None
    if scenario.derived_from is not None:
        raise ScenarioError(_derived_claim(data), source=str(path))
    return scenario


def _derived_claim(data: Any) -> list[FieldError]:
    """A scenario written by hand cannot say it was derived from a log (and so take a replay's limits)."""
    if isinstance(data, Mapping) and data.get("derived_from") is not None:
        return [FieldError("derived_from", "set by `esr replay` only, for the scenario of a replayed log; "
                                           "remove it from the file")]
    return []


def read_scenario_json(path: Path) -> Any:
    """The parsed JSON of a scenario file, before validation."""
    text = path.read_text(encoding="utf-8")
    too_deep = text_nesting_error(text)  # before the parser recurses into it
    if too_deep is not None:
        raise ScenarioError([FieldError("", too_deep)], source=str(path))
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ScenarioError([FieldError("", f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}")],
                            source=str(path)) from None


def _load_python(path: Path) -> Scenario:
    import importlib.util
    import sys
    import traceback

    path = path.resolve()
    spec = importlib.util.spec_from_file_location(f"esr_scenario_{path.stem}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent.resolve()))
    try:
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    except EsrError:
        raise
    except SyntaxError as exc:
        raise ScenarioError([FieldError("", f"line {exc.lineno}: Python syntax error: {exc.msg}")],
                            source=str(path)) from None
    except Exception as exc:  # noqa: BLE001 - the user's module failed while loading: say where, no traceback
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename) == path.resolve()]
        where = f"line {frames[-1].lineno}: " if frames else ""
        raise ScenarioError([FieldError("", f"{where}loading the file raised {type(exc).__name__}: {exc}")],
                            source=str(path)) from None
    finally:
        sys.path.pop(0)
    scenario = getattr(module, "scenario", None)
    if not isinstance(scenario, Scenario):
        raise ScenarioError([FieldError("", "the Python file must define `scenario = Scenario(...)`")],
                            source=str(path))
    return scenario


def scenario_json_schema() -> dict[str, Any]:
    """The JSON Schema of scenario files, for editors and CI checks."""
    schema = Scenario.model_json_schema(by_alias=True)
    defs = schema["$defs"]
    # shorthand forms accepted by the models' "before" validators
    defs["LoadStep"] = {"anyOf": [defs["LoadStep"], {
        "type": "array", "description": "[hour, rate] or [hour, rate, \"ramp\"]", "minItems": 2, "maxItems": 3,
        "prefixItems": [{"type": "number", "minimum": 0}, defs["LoadStep"]["properties"]["rate"],
                        {"const": "ramp"}]}]}
    defs["CounterSpec"] = {"anyOf": [defs["CounterSpec"], {"type": "number"},
                                     {"type": "string", "pattern": r"^(header:.+|\$.*)$"}]}
    expect = defs["StepSpec"]["properties"]["expect"]
    expect["anyOf"] = [{"type": "integer"}, {"type": "array", "items": {"type": "integer"}},
                       {"type": "object", "properties": {"status": {"type": "array", "items": {"type": "integer"}}},
                        "required": ["status"], "additionalProperties": False}, {"type": "null"}]
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://hms-esr.example/scenario.schema.json"
    return schema
