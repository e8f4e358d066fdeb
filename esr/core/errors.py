"""One exception tree for everything a user can get wrong.

    EsrError                      root: catch this to handle any ESR error
    ├── ScenarioError             a scenario field is invalid (carries every field error)
    ├── AssertionSyntaxError      an assertion line does not parse or names an unknown metric
    ├── FaultSyntaxError          a failure_injection entry does not parse
    ├── TargetRefused             the target is not in the target registry
    ├── RunLogError               a run log is missing or unreadable
    ├── UnknownLogFormat          a log file is in no format `esr replay` reads (names the closest)
    ├── JudgementError            a metric cannot be computed from the data (e.g. no requests)
    │   and, defined where they arise:
    ├── SettingsError             an ESR_* variable has a value ESR cannot use      (esr.settings)
    ├── InvalidTransition         a run asked to move to a state it cannot reach   (esr.core.run_state)
    ├── MetricNotPortable         a Python metric function the server cannot judge (esr.core.metric_expression)
    ├── EndpointTemplateError     an --endpoint template can never match a path     (esr.core.endpoints)
    ├── IdempotencyKeyError       a request key asked for a negative user or number (esr.core.sim_headers)
    ├── KafkaError                the broker is unreachable or refused an operation (esr.bus.kafka)
    ├── ClientConfigError         ESR_KAFKA_CONFIG's file is missing, or a line or key is bad
    │                             (esr.bus.client_config)
    ├── ReplayInputError, SelectionError, ReplayPlanError   logs, filters or a replay `esr replay`
    │                             cannot use or play (esr.replay)
    ├── TokenError                the server's tokens are too short or the same    (esr.api.auth)
    ├── PortTaken                 the server's port is in use                       (esr.api.server)
    ├── UnknownRun                no run has this id (also a KeyError)              (esr.api.runs)
    ├── GrafanaError              Grafana refused or is unreachable                 (esr.observe.grafana)
    └── EsrServerError            the ESR server answered an error to the client    (esr.client)

Messages name the bad value, where it is (field path, file:line, column) and the fix, so the
CLI prints them without a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "AssertionSyntaxError",
    "EsrError",
    "FaultSyntaxError",
    "FieldError",
    "JudgementError",
    "RunLogError",
    "ScenarioError",
    "TargetRefused",
    "UnknownLogFormat",
]


class EsrError(Exception):
    """Root of every error ESR raises on purpose."""


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem in a scenario: where (`path`, e.g. `journeys[0].steps[1].poll.every`) and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path or '<scenario>'}: {self.message}"


class ScenarioError(EsrError):
    """A scenario is invalid; `errors` lists every problem found, not just the first."""

    def __init__(self, errors: list[FieldError], source: str | None = None) -> None:
        self.errors = list(errors)
        self.source = source
        where = f" in {source}" if source else ""
        lines = "\n".join(f"  - {e}" for e in self.errors)
        noun = "error" if len(self.errors) == 1 else "errors"
        super().__init__(f"invalid scenario{where} ({len(self.errors)} {noun}):\n{lines}")


class _PositionedError(EsrError):
    """An error inside a one-line expression, with a caret under the bad column."""

    kind = "expression"

    def __init__(self, text: str, column: int, message: str) -> None:
        self.text = text
        self.column = column
        self.message = message
        caret = " " * (column - 1) + "^"
        super().__init__(f"{self.kind} {text!r}, column {column}: {message}\n    {text}\n    {caret}")


class AssertionSyntaxError(_PositionedError):
    kind = "assertion"


class FaultSyntaxError(_PositionedError):
    kind = "failure_injection"


class TargetRefused(EsrError):
    """ESR only sends traffic to loopback and registered targets."""


class RunLogError(EsrError):
    """A run log cannot be found or read."""


class JudgementError(EsrError):
    """A metric has no value for this data (no requests, no SLA decided, division by zero)."""


class UnknownLogFormat(EsrError):
    """A log file is in no known format: names the closest format (`closest`, its `label`), the first
    `line` that did not match it, the `column` where matching stopped and what was `expected` there."""

    def __init__(self, path: str, closest: str, label: str, line: int, column: int, expected: str,
                 found: str) -> None:
        self.path, self.closest, self.line, self.column, self.expected = path, closest, line, column, expected
        super().__init__(f"{path}: unknown log format: closest is {label} ({closest}), line {line} does not "
                         f"match it at column {column}: expected {expected}, found {found}; "
                         "pass --format to force one")
