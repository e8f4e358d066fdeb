"""The known format closest to a file no reader recognises, and where the file first departs from it.

Each format's lines are described as steps (a pattern and what it stands for); a line is walked
step by step until a step does not match, which gives the column and what was expected there. A
format scores by how many leading (non-blank) lines of the head match it fully, then by how many
characters of the first other line its specific steps matched, then by how far into that line it
got: steps that take any word or digit, such as the client, ident and user at the start of a
combined line, and the spaces between fields are not specific, so that three words and two spaces
do not make every file "closest to combined". Ties go to the later format in
detection order: the general ones, JSON lines and combined, come last.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from esr.core.errors import UnknownLogFormat
from esr.replay.formats._common import TOKEN
from esr.replay.formats.w3c import FIELDS_EXAMPLE

__all__ = ["LABELS", "Miss", "closest"]

LABELS = {"har": "HTTP Archive", "gor": "GoReplay", "cloudfront": "AWS CloudFront", "w3c": "W3C extended",
          "alb": "AWS Application Load Balancer", "elb": "AWS Classic Load Balancer", "json": "JSON lines",
          "clf": "combined"}


@dataclass(frozen=True, slots=True)
class Miss:
    """Where a file's head departs from a format: 1-based `line` and `column`, what was `expected`."""

    line: int
    column: int
    expected: str
    score: tuple[int, int, int]  # lines matched before it; specific characters, then all, matched on it


Step = tuple[re.Pattern[str], str, bool]  # pattern, what it stands for, whether its characters count


def _steps(*pairs: tuple[str, str] | tuple[str, str, bool]) -> tuple[Step, ...]:
    return tuple((re.compile(p[0]), p[1], p[2] if len(p) == 3 else True) for p in pairs)  # type: ignore[misc]


def _walk(steps: tuple[Step, ...], text: str) -> tuple[int, int, str | None]:
    """(where the walk stopped, specific characters matched, what was expected there or None)."""
    pos = credit = 0
    for pattern, expected, counts in steps:
        m = pattern.match(text, pos)
        if m is None:
            return pos, credit, expected
        credit += (m.end() - pos) if counts else 0
        pos = m.end()
    return pos, credit, None


_SP = (" ", "' '", False)  # a separator: matched by almost any text, so it counts nothing
_END = (r"(?: .*)?\Z", "the end of the line, or ' ' and more fields")
_ISO_Z = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z"
_COMBINED = _steps(
    (r'[^\s"]+', "a client address", False), _SP, (r"\S+", "the ident ('-')", False), _SP,
    (r"\S+", "the user ('-')", False), _SP, (r"\[", "'[' (the time, as [day/Mon/year:hh:mm:ss zone])"),
    (r"\d{1,2}/[A-Za-z]{3}/\d{4}:\d{1,2}:\d{2}:\d{2}(?:\.\d+)?\s+[+-]\d{2}:?\d{2}",
     "a time such as 04/Mar/2024:09:00:01 +0000"), (r"\]", "']' after the time"), _SP,
    (r'"', "'\"' before the request line"), (r'[^"\\]*(?:\\.[^"\\]*)*', "the request line", False),
    (r'"', "'\"' after the request line"), (" ", "' ' before the status"), (r"\d{3}|-", "a status such as 200"),
    (" ", "' ' before the byte count"), (r"\d+|-", "a byte count or '-'"), _END)
_ALB = _steps(
    (r"(?:https?|h2|grpcs|wss?)(?= )", "the request type (http, https, h2, grpcs, ws or wss)"), _SP,
    (_ISO_Z, "a time such as 2024-03-04T09:00:01.123456Z"), _SP, (r"\S+", "the load balancer's name", False), _SP,
    (r"\S+:\d+", "the client as address:port"), _SP, (r"\S+:\d+|-", "the target as address:port or '-'"), _SP,
    (r"-?\d+(?:\.\d+)?", "the request processing time in seconds"), _END)
_ELB = _steps(
    (_ISO_Z, "a time such as 2015-05-13T23:39:43.945958Z"), _SP, (r"\S+", "the load balancer's name", False), _SP,
    (r"\S+:\d+", "the client as address:port"), _SP, (r"\S+:\d+|-", "the backend as address:port or '-'"), _SP,
    (r"-?\d+(?:\.\d+)?", "the request processing time in seconds"), _END)
_CLOUDFRONT = _steps(
    (r"\d{4}-\d\d-\d\d", "a date such as 2024-03-04"), (r"\t", "a tab"), (r"\d\d:\d\d:\d\d", "a time hh:mm:ss"),
    (r"\t", "a tab"), (r"[^\t]+", "the edge location", False), (r"\t", "a tab"), (r".*\Z", "more fields", False))
_GOR_META = _steps((r"[123]", "a payload type (1, 2 or 3)", False), _SP, (r"\S+", "a request id", False), _SP,
                   (r"\d+", "a time in nanoseconds"), (r"(?: -?\d+)?\Z", "the end of the meta line"))
_GOR_REQUEST = _steps((TOKEN.pattern, "a method"), _SP, (r"\S+", "a request target", False), _SP,
                      (r"HTTP/\d\.\d\Z", "HTTP/x.y"))
_DIRECTIVE = _steps((r"#", "'#'"), (r"[A-Za-z][A-Za-z-]*:", "a W3C directive such as '#Fields:'"))
_W3C_ROW = re.compile(r"\"?(?:\d{4}-\d{1,2}-\d{1,2}\"?[ \t]+\"?)?\d{1,2}:\d{2}(?::\d{2})?(?:\.\d*)?\"?(?:[ \t]|\Z)")
_NO_FIELDS = (f"a '#Fields:' directive before the first row (or --fields, e.g. --fields \"{FIELDS_EXAMPLE}\")")

Check = Callable[[list[tuple[int, str]]], "Miss | None"]


def _lines(steps: tuple[Step, ...], skip_directives: bool = False) -> Check:
    def check(lines: list[tuple[int, str]]) -> Miss | None:
        for done, (number, text) in enumerate(lines):
            if skip_directives and text[:1] == "#":
                continue
            pos, credit, expected = _walk(steps, text)
            if expected is not None:
                return Miss(number, pos + 1, expected, (done, credit, pos))
        return None
    return check


def _w3c(lines: list[tuple[int, str]]) -> Miss | None:
    for done, (number, text) in enumerate(lines):
        if text[:1] == "#":
            pos, credit, expected = _walk(_DIRECTIVE, text)
            if expected is not None:
                return Miss(number, pos + 1, expected, (done, credit, pos))
            if text[1:8].lower() == "fields:":
                return None
            continue
        # a row that starts as W3C rows do lacks only the header: it counts as matching to its end
        return Miss(number, 1, _NO_FIELDS, (done, len(text) if _W3C_ROW.match(text) else 0, 0))
    return None


def _json(lines: list[tuple[int, str]]) -> Miss | None:
    for done, (number, text) in enumerate(lines):
        if not text.lstrip().startswith("{"):
            return Miss(number, len(text) - len(text.lstrip()) + 1, "'{' (a JSON object)", (done, 0, 0))
        try:
            orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            said = re.search(r"(?<!un)expected (.+)", exc.msg)
            expected = said[1] if said else f"valid JSON ({exc.msg})"
            return Miss(number, exc.pos + 1, expected, (done, exc.pos, exc.pos))
    return None


def _har(lines: list[tuple[int, str]]) -> Miss | None:
    number, text = lines[0]
    if not text.lstrip().startswith("{"):
        return Miss(number, len(text) - len(text.lstrip()) + 1, "'{' (a HAR file is a JSON object)", (0, 0, 0))
    if any('"log"' in line for _, line in lines):
        return None
    return Miss(number, len(text) - len(text.lstrip()) + 2, "'\"log\"' (a HAR file is {\"log\": {...}})", (0, 0, 1))


def _gor(lines: list[tuple[int, str]]) -> Miss | None:
    for done, ((number, text), steps) in enumerate(zip(lines, (_GOR_META, _GOR_REQUEST), strict=False)):
        pos, credit, expected = _walk(steps, text)
        if expected is not None:
            return Miss(number, pos + 1, expected, (done, credit, pos))
    return None


CHECKS: dict[str, Check] = {"har": _har, "gor": _gor, "cloudfront": _lines(_CLOUDFRONT, skip_directives=True),
                            "w3c": _w3c, "alb": _lines(_ALB), "elb": _lines(_ELB), "json": _json,
                            "clf": _lines(_COMBINED)}


def _found(text: str, column: int) -> str:
    rest = text[column - 1:]
    if not rest:
        return "the end of the line"
    return repr(rest if len(rest) <= 20 else rest[:20] + "...")


def closest(path: str, head: list[str], formats: list[str]) -> UnknownLogFormat:
    """The error for a file whose head no reader recognised: the closest of `formats` (in detection
    order), the first line that does not match it and the column."""
    lines = [(number, text.lstrip("\ufeff")) for number, text in enumerate(head, 1) if text.strip()]
    if not lines:
        return UnknownLogFormat(path, "clf", LABELS["clf"], 1, 1, "a log line", "an empty file")
    best: tuple[str, Miss] | None = None
    for name in formats:
        check = CHECKS.get(name)
        miss = check(lines) if check is not None else None
        if miss is None:  # its lines match, yet its reader said no: say so at the first line
            miss = Miss(lines[0][0], 1, f"lines the {name} reader recognises", (len(lines), 0, 0))
        if best is None or miss.score >= best[1].score:
            best = (name, miss)
    assert best is not None
    name, miss = best
    text = dict(lines)[miss.line]
    return UnknownLogFormat(path, name, LABELS.get(name, name), miss.line, miss.column, miss.expected,
                            _found(text, miss.column))
