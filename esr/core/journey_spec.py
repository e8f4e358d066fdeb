"""The declarative journey: HTTP steps, waiting steps, extracted values, counters and SLAs.

    {"name": "claim", "data": {"ssn": "ssn", "wages": {"int": [1000, 9000]}},
     "steps": [
       {"name": "file", "request": {"method": "POST", "path": "/claims",
                                    "json": {"ssn": "{{ data.ssn }}"}},
        "expect": {"status": [201]}, "extract": {"claim_id": "$.id"},
        "counters": {"cloud_cost": "header:X-Cost"}},
       {"name": "decided", "request": {"path": "/claims/{{ vars.claim_id }}"},
        "poll": {"every": "1h", "until": "$.status in ['paid', 'denied']", "give_up_after": "72h"}}],
     "sla": [{"from": "file", "to": "decided", "within": "48h"}]}

Durations of `wait` and `poll` are simulated time; `request.timeout` is real time.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from esr.core.templating import Condition, JsonPath, Template, template_names
from esr.core.units import parse_duration
from esr.core.userdata import check_data_spec

__all__ = ["CounterSpec", "JourneySpec", "PollSpec", "RequestSpec", "SlaSpec", "StepSpec"]

MAX_POLLS = 10_000


def _duration(value: Any) -> float:
    return parse_duration(value)


DURATION_PATTERN = r"^\s*(\d+(\.\d+)?(ms|min|s|m|h|d)\s*)+$"
Duration = Annotated[
    float,
    BeforeValidator(_duration, json_schema_input_type=float | Annotated[str, Field(pattern=DURATION_PATTERN)]),
    Field(json_schema_extra={"examples": ["1h", "30m", 90]}),
]
Name = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=64)]


class Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class RequestSpec(Model):
    """One HTTP request; path, headers, query and JSON body may hold `{{ ... }}` placeholders."""

    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] = "GET"
    path: str = Field(description="path on the target, e.g. /claims/{{ vars.claim_id }}",
                      json_schema_extra={"pattern": "^(/|\\{\\{)"})  # the validator below says why
    headers: dict[str, str] = Field(default_factory=dict)
    query: dict[str, str] = Field(default_factory=dict)
    json_body: Any = Field(default=None, alias="json")
    body: str | None = None
    timeout: Duration | None = Field(default=None, description="real-time timeout; default: the scenario's")
    label: str | None = Field(default=None, description="endpoint label in metrics; default 'METHOD /path/{name}'")

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        Template.compile(value)
        if not value.startswith("/") and not value.startswith("{{"):
            raise ValueError(f"a path starts with '/', got {value!r}")
        return value

    @property
    def endpoint(self) -> str:
        return self.label or f"{self.method} {Template.compile(self.path).label()}"

    def placeholders(self) -> list[str]:
        return template_names([self.path, self.headers, self.query, self.json_body, self.body])


class PollSpec(Model):
    """Repeat the step's request every `every` (simulated) until `until` holds."""

    every: Duration
    until: str = Field(description="a condition on the JSON response, e.g. $.status == 'paid'",
                       json_schema_extra={"minLength": 1})
    give_up_after: Duration

    @field_validator("until")
    @classmethod
    def _until(cls, value: str) -> str:
        Condition.compile(value)
        return value

    @model_validator(mode="after")
    def _bounded(self) -> PollSpec:
        if self.every <= 0:
            raise ValueError("poll.every must be > 0")
        if self.give_up_after < self.every:
            raise ValueError("poll.give_up_after must be at least poll.every")
        if self.give_up_after / self.every > MAX_POLLS:
            raise ValueError(
                f"this poll could send {self.give_up_after / self.every:.0f} requests per journey;"
                f" at most {MAX_POLLS}: poll less often or give up sooner")
        return self

    @property
    def max_polls(self) -> int:
        return int(self.give_up_after // self.every) + 1


class CounterSpec(Model):
    """Add to a named counter on each response of the step (when `when` holds, if given)."""

    value: float | None = None
    header: str | None = None
    json_path: str | None = Field(default=None, alias="json")
    when: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, bool):
            raise ValueError("a counter is a number, 'header:Name', '$.path' or an object")
        if isinstance(data, (int, float)):
            return {"value": data}
        if isinstance(data, str):
            if data.startswith("header:"):
                return {"header": data[7:]}
            if data.startswith("$"):
                return {"json": data}
            raise ValueError(f"a counter is a number, 'header:X-Cost' or a JSON path '$.cost', got {data!r}")
        return data

    @model_validator(mode="after")
    def _one_source(self) -> CounterSpec:
        sources = [s for s in (self.value, self.header, self.json_path) if s is not None]
        if len(sources) != 1:
            raise ValueError("a counter takes exactly one of value, header, json")
        if self.json_path:
            JsonPath.compile(self.json_path)
        if self.when:
            Condition.compile(self.when)
        return self


class StepSpec(Model):
    name: Name
    request: RequestSpec | None = None
    wait: Duration | None = Field(default=None, description="pause in simulated time, e.g. '2h'")
    poll: PollSpec | None = None
    expect_status: list[int] | None = Field(
        default=None, alias="expect",
        description="accepted status codes; default any 2xx/3xx. Written {'status': [201]} or [201]")
    extract: dict[Name, str] = Field(default_factory=dict, description="var name -> '$.json.path' or 'header:Name'")
    counters: dict[Name, CounterSpec] = Field(default_factory=dict)

    @field_validator("expect_status", mode="before")
    @classmethod
    def _expect(cls, value: Any) -> Any:
        if isinstance(value, dict):
            if set(value) != {"status"}:
                extra = ", ".join(sorted(set(value) - {"status"})) or "none"
                raise ValueError(f"expect takes {{'status': [codes]}}; unknown keys: {extra}")
            value = value["status"]
        if isinstance(value, int):
            value = [value]
        return value

    @field_validator("extract")
    @classmethod
    def _extract(cls, value: dict[str, str]) -> dict[str, str]:
        for name, source in value.items():
            if not source.startswith("header:"):
                try:
                    JsonPath.compile(source)
                except ValueError as exc:
                    raise ValueError(f"extract.{name}: {exc}") from None
        return value

    @model_validator(mode="after")
    def _kind(self) -> StepSpec:
        if (self.request is None) == (self.wait is None):
            raise ValueError("a step has either 'request' or 'wait'")
        if self.poll and not self.request:
            raise ValueError("'poll' repeats a request: add 'request'")
        return self


class SlaSpec(Model):
    """A deadline in simulated time between the end of step `from` and the end of step `to`."""

    from_step: Name = Field(alias="from")
    to_step: Name = Field(alias="to")
    within: Duration

    @property
    def key(self) -> str:
        """The name used in metrics: within 48h -> '48h' (sla_48h_success_rate)."""
        return f"{self.within / 3600:g}h"


class JourneySpec(Model):
    name: Name
    weight: float = Field(default=1.0, gt=0)
    data: dict[Name, Any] = Field(default_factory=dict)
    steps: list[StepSpec] = Field(min_length=1)
    sla: list[SlaSpec] = Field(default_factory=list)

    @field_validator("data")
    @classmethod
    def _data(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name, spec in value.items():
            try:
                check_data_spec(spec)
            except ValueError as exc:
                raise ValueError(f"data.{name}: {exc}") from None
        return value

    @model_validator(mode="after")
    def _references(self) -> JourneySpec:
        names = [s.name for s in self.steps]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"step names must be unique; repeated: {', '.join(dupes)}")
        known_vars: set[str] = set()
        for i, step in enumerate(self.steps):
            for name in step.request.placeholders() if step.request else []:
                space, _, rest = name.partition(".")
                key = rest.split(".")[0]
                if space == "vars" and key not in known_vars:
                    raise ValueError(
                        f"steps[{i}] ({step.name}) uses {{{{ {name} }}}} but no earlier step extracts"
                        f" {key!r}; known: {', '.join(sorted(known_vars)) or 'none'}")
                if space == "user" and key not in ("index", "id"):
                    raise ValueError(f"steps[{i}] ({step.name}) uses {{{{ {name} }}}}; a user has only "
                                     "user.index and user.id (put generated values in the journey's data)")
                if space == "run" and key != "id":
                    raise ValueError(f"steps[{i}] ({step.name}) uses {{{{ {name} }}}}; the run has only run.id")
                if space == "data" and key not in self.data:
                    raise ValueError(f"steps[{i}] ({step.name}) uses {{{{ {name} }}}} but the journey's data "
                                     f"has no {key!r}")
            known_vars |= set(step.extract)
        for sla in self.sla:
            for end in (sla.from_step, sla.to_step):
                if end not in names:
                    raise ValueError(f"sla refers to step {end!r}; steps are: {', '.join(names)}")
            if names.index(sla.from_step) >= names.index(sla.to_step):
                raise ValueError(f"sla 'from' ({sla.from_step}) must come before 'to' ({sla.to_step})")
        return self

    @property
    def counter_names(self) -> set[str]:
        return {name for step in self.steps for name in step.counters}

    @property
    def reads_headers(self) -> bool:
        """Does any step take a value from a response header?"""
        return any(
            any(v.startswith("header:") for v in step.extract.values())
            or any(c.header is not None for c in step.counters.values())
            for step in self.steps)

    def wait_before(self, step_name: str) -> float:
        """Upper bound of simulated waiting before step `step_name` starts."""
        total = 0.0
        for step in self.steps:
            if step.name == step_name:
                break
            total += (step.wait or 0) + (step.poll.give_up_after if step.poll else 0)
        return total

    def longest_wait(self) -> float:
        """Upper bound of simulated time this journey can spend waiting (polls and waits)."""
        return sum((s.wait or 0) + (s.poll.give_up_after if s.poll else 0) for s in self.steps)


DEFAULT_JOURNEY = JourneySpec(name="default", steps=[StepSpec(name="get", request=RequestSpec(path="/"))])
