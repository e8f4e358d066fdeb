"""Redaction: values that must not leave the archive are replaced before a request is sent
and before anything about it is stored.

`--redact NAME` replaces the value of query parameter NAME (any case) and of the path segment
after a segment NAME (`/email/jane@example.org` -> `/email/REDACTED`); `--redact /citizens/{ssn}`
(a path template) replaces the segments in braces wherever the template matches; header values
of the same names are replaced too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from urllib.parse import parse_qsl, urlencode

from .record import LogRecord

__all__ = ["REDACTED", "Redactor"]

REDACTED = "REDACTED"


@dataclass(frozen=True)
class Redactor:
    names: frozenset[str] = frozenset()  # lower case
    templates: tuple[re.Pattern[str], ...] = field(default=())

    @classmethod
    def from_options(cls, values: list[str]) -> Redactor:
        names, templates = set(), []
        for value in values:
            if "/" in value:
                parts = [("([^/]+)" if re.fullmatch(r"\{[^/{}]+\}", s) else re.escape(s)) for s in value.split("/")]
                templates.append(re.compile("/".join(parts) + r"(?=/|$)"))
            else:
                names.add(value.lower())
        return cls(frozenset(names), tuple(templates))

    def __bool__(self) -> bool:
        return bool(self.names or self.templates)

    def target(self, target: str) -> str:
        path, sep, query = target.partition("?")
        segments = path.split("/")
        for i in range(len(segments) - 1):
            if segments[i].lower() in self.names and segments[i + 1]:
                segments[i + 1] = REDACTED
        path = "/".join(segments)
        for template in self.templates:
            path = template.sub(lambda m: _blank_groups(m), path)
        if sep and self.names:
            pairs = parse_qsl(query, keep_blank_values=True)
            if any(k.lower() in self.names for k, _ in pairs):
                query = urlencode([(k, REDACTED if k.lower() in self.names else v) for k, v in pairs])
        return path + sep + query

    def record(self, record: LogRecord) -> LogRecord:
        if not self:
            return record
        headers = tuple((k, REDACTED if k.lower() in self.names else v) for k, v in record.headers)
        return replace(record, target=self.target(record.target), headers=headers)


def _blank_groups(match: re.Match[str]) -> str:
    text, start = match.group(0), match.start()
    for group in range(len(match.groups()), 0, -1):
        a, b = match.span(group)
        text = text[: a - start] + REDACTED + text[b - start:]
    return text
