"""Redaction: values that must not leave the archive are replaced before a request is sent
and before anything about it is stored or printed.

- Credentials are never replayed: `Authorization`, `Proxy-Authorization`, `Cookie` and API-key
  or token headers are dropped (`--keep-credentials` keeps them).
- `--redact NAME` replaces the value of query parameter NAME (any case), of the path segment
  after a segment NAME (`/email/jane@example.org` -> `/email/REDACTED`), of headers of that
  name, and of fields of that name in JSON and form bodies; `--redact /citizens/{ssn}` (a path
  template) replaces the segments in braces wherever the template matches.
- A line that could not be read is redacted as text (the same names and templates, and any
  bearer, basic or cookie credential) before it is printed or stored.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qsl, urlencode

from esr.replay.record import LogRecord

__all__ = ["CREDENTIAL_HEADERS", "REDACTED", "Redactor"]

REDACTED = "REDACTED"
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key", "api-key", "apikey",
                                "x-auth-token", "x-access-token", "x-csrf-token", "x-amz-security-token"})
# credentials as they appear in free text: "Authorization: Bearer x", "Cookie: a=b; c=d", "Basic x"
_TEXT_CREDENTIALS = re.compile(
    r"(?i)((?:proxy-)?authorization|cookie|x-api-key|api-key|x-auth-token)(\s*[:=]\s*)[^\r\n\"]*"
    r"|\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")


@dataclass(frozen=True)
class Redactor:
    names: frozenset[str] = frozenset()  # lower case
    templates: tuple[re.Pattern[str], ...] = field(default=())
    keep_credentials: bool = False

    @classmethod
    def from_options(cls, values: list[str], keep_credentials: bool = False) -> Redactor:
        names, templates = set(), []
        for value in values:
            if "/" in value:
                parts = [("([^/]+)" if re.fullmatch(r"\{[^/{}]+\}", s) else re.escape(s)) for s in value.split("/")]
                templates.append(re.compile("/".join(parts) + r"(?=/|$|\?|\s|\")"))
            else:
                names.add(value.lower())
        return cls(frozenset(names), tuple(templates), keep_credentials)

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
        headers = record.headers
        if headers and not self.keep_credentials and _has_credentials(headers):
            headers = tuple((k, v) for k, v in headers if k.lower() not in CREDENTIAL_HEADERS)
        if not self:
            return record if headers is record.headers else replace(record, headers=headers)
        headers = tuple((k, REDACTED if k.lower() in self.names else v) for k, v in headers)
        body = record.body
        if body and self.names:
            body = self._body(body, next((v for k, v in headers if k.lower() == "content-type"), ""))
        return replace(record, target=self.target(record.target), headers=headers, body=body)

    def _body(self, body: bytes, content_type: str) -> bytes:
        """JSON (by content type, or a body that starts like JSON) and form bodies by field name."""
        kind = content_type.split(";")[0].strip().lower()
        if kind == "application/x-www-form-urlencoded":
            try:
                pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True)
            except (UnicodeDecodeError, ValueError):
                return body
            return urlencode([(k, REDACTED if k.lower() in self.names else v) for k, v in pairs]).encode()
        if kind.endswith("json") or body.lstrip()[:1] in (b"{", b"["):
            try:
                document = json.loads(body)
            except (UnicodeDecodeError, ValueError, RecursionError):
                return body
            return json.dumps(self._json(document), separators=(",", ":")).encode()
        return body

    def _json(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: REDACTED if k.lower() in self.names else self._json(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._json(v) for v in value]
        return value

    def text(self, line: str) -> str:
        """A line that could not be parsed, redacted as text: names in queries, paths and JSON,
        path templates, and credentials."""
        if not self.keep_credentials:
            line = _TEXT_CREDENTIALS.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}" if m.group(1)
                                         else f"{m.group(3)} {REDACTED}", line)
        for name in self.names:
            escaped = re.escape(name)
            line = re.sub(rf"(?i)([?&;\s]{escaped}=)[^&\s\"]*", rf"\g<1>{REDACTED}", line)
            line = re.sub(rf'(?i)("{escaped}"\s*:\s*)("(?:[^"\\]|\\.)*"|[^,}}\s]+)', rf'\g<1>"{REDACTED}"', line)
            line = re.sub(rf"(?i)(/{escaped}/)[^/\s?\"]+", rf"\g<1>{REDACTED}", line)
        for template in self.templates:
            line = template.sub(lambda m: _blank_groups(m), line)
        return line


_PLAIN_NAMES = frozenset({"Referer", "User-Agent"})  # what access logs carry, as their readers name them


def _has_credentials(headers: tuple[tuple[str, str], ...]) -> bool:
    for name, _ in headers:
        if name not in _PLAIN_NAMES and name.lower() in CREDENTIAL_HEADERS:
            return True
    return False


def _blank_groups(match: re.Match[str]) -> str:
    text, start = match.group(0), match.start()
    for group in range(len(match.groups()), 0, -1):
        a, b = match.span(group)
        text = text[: a - start] + REDACTED + text[b - start:]
    return text
