"""Endpoint labels: the label that groups requests to the same endpoint (`GET /claims/{id}`).

Replay and the Kafka bot workers count a logged request under this label, as a scenario's
journeys count theirs under their own endpoint labels. `EndpointFolder` folds a path the way
people read it, and says which rule did:

- `template`: the first `--endpoint` template that matches (`/articles/{slug}`,
  `GET /files/{path...}`) wins over every heuristic; the label is the template itself.
- otherwise each segment is tried against the heuristics, in this order:
  `date` (`2025-03-14`, `20250314`, or year/month[/day] as consecutive segments -> `{date}`),
  `id` (numbers, UUIDs -> `{id}`), `hex` (hashes: 16+ hex digits, or 7+ mixing digits and
  letters -> `{id}`), `slug` (lower-case words joined by at least two hyphens or ending in a
  number, a hyphenated name right after a date, any `NAME.html` but `index.html` -> `{slug}`),
  `token` (long random tokens -> `{id}`). A file extension is kept (`{id}.png`); short words,
  versions and names after `api` or `v1` are kept (`/api/v2/password-reset-requests`).

Labels are cached per distinct (method, path) in a bounded cache: a replay labels every request.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from esr.core.errors import EsrError

__all__ = ["EndpointFolder", "EndpointLabel", "EndpointTemplate", "EndpointTemplateError", "Rule", "endpoint_label"]

Rule = Literal["template", "date", "id", "hex", "slug", "token"]
CACHE_SIZE = 16_384  # distinct (method, path) pairs remembered

_YEAR = re.compile(r"(?:19|20)\d\d")
_MONTH = re.compile(r"0[1-9]|1[0-2]")
_DAY = re.compile(r"0[1-9]|[12]\d|3[01]")
_DATE = re.compile(r"(?:19|20)\d\d(?:-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])(?:T[\d:.]+(?:Z|[+-]\d\d:?\d\d)?)?"
                   r"|(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01]))")
_ID = re.compile(r"\d+(?:-\d+)*|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_LONG_HEX = re.compile(r"[0-9a-fA-F]{16,}")
_SHORT_HEX = re.compile(r"(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{7,15}")
_SLUG = re.compile(r"(?=[a-z0-9-]*[a-z])[a-z0-9]+(?:-[a-z0-9]+){2,}|[a-z][a-z0-9]*(?:-[a-z0-9]+)*-\d+")
_WORDS = re.compile(r"(?=[a-z0-9-]*[a-z])[a-z0-9]+(?:-[a-z0-9]+)+")  # after a date: hello-world
_TOKEN = re.compile(r"[A-Za-z0-9_-]{20,}")
_SHORT_TOKEN = re.compile(r"(?=(?:[^0-9]*[0-9]){2})(?=[^A-Z]*[A-Z])(?=[^a-z]*[a-z])[A-Za-z0-9_-]{10,19}")
_WORDY = re.compile(r"[A-Za-z_-]+")
# every segment rule in one pass, in order of precedence: the first alternative that matches names the rule
_SEGMENT = re.compile("|".join(f"(?P<{name}>{rx.pattern})" for name, rx in (
    ("date", _DATE), ("id", _ID), ("hex", _LONG_HEX), ("hex2", _SHORT_HEX), ("slug", _SLUG), ("token", _TOKEN),
    ("token2", _SHORT_TOKEN))))
_PLACEHOLDERS: dict[str, tuple[str, Rule]] = {
    "date": ("{date}", "date"), "id": ("{id}", "id"), "hex": ("{id}", "hex"), "hex2": ("{id}", "hex"),
    "slug": ("{slug}", "slug"), "token": ("{id}", "token"), "token2": ("{id}", "token")}
_EXTENSION = re.compile(r"[A-Za-z][A-Za-z0-9]{0,4}")
_NAME_AFTER = re.compile(r"api|v\d+(?:\.\d+)*")  # a segment after these names an endpoint
_PAGES = frozenset({"html", "htm"})
_INDEX_PAGES = frozenset({"index", "default"})
_METHOD = re.compile(r"[A-Za-z]+")
_PLACEHOLDER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class EndpointTemplateError(EsrError):
    """An endpoint template can never match a path: empty, not starting with `/`, a bad brace."""

    def __init__(self, template: str, reason: str) -> None:
        super().__init__(f"endpoint template {template!r}: {reason}")
        self.template = template
        self.reason = reason


@dataclass(frozen=True, slots=True)
class EndpointLabel:
    """A request's endpoint label, the rules that folded it (in path order; none when empty)
    and the template that matched, if one did."""

    label: str
    rules: tuple[Rule, ...] = ()
    template: str | None = None

    @property
    def rule(self) -> str:
        """`date+slug`, `template`, ... or `none`: what a report row shows."""
        return "+".join(self.rules) or "none"


@dataclass(frozen=True, slots=True)
class EndpointTemplate:
    """`[METHOD] /path` where `{name}` is one segment (or part of one: `{name}.pdf`) and a last
    `{name...}` or `*` is the rest of the path (one segment or more)."""

    text: str
    method: str | None
    path: str
    pattern: re.Pattern[str]

    @classmethod
    def parse(cls, text: str) -> EndpointTemplate:
        parts = text.split()
        if not parts:
            raise EndpointTemplateError(text, "a template is a path such as /articles/{slug}")
        if len(parts) > 2 or (len(parts) == 2 and not _METHOD.fullmatch(parts[0])):
            raise EndpointTemplateError(text, "expected [METHOD] /path, e.g. 'GET /articles/{slug}'")
        method, path = (parts[0].upper(), parts[1]) if len(parts) == 2 else (None, parts[0])
        if not path.startswith("/"):
            raise EndpointTemplateError(text, "a template starts with '/'")
        if "?" in path:
            raise EndpointTemplateError(text, f"a template matches the path only; drop the query "
                                              f"{path[path.index('?'):]!r}")
        offset = text.index(path)
        segments = path[1:].split("/")
        regex, at = [], offset + 1
        for i, segment in enumerate(segments):
            last = i == len(segments) - 1
            if segment == "*" or (segment.startswith("{") and segment.endswith("...}") and "}" not in segment[:-1]):
                if not last:
                    raise EndpointTemplateError(text, f"{segment} takes the rest of the path, so it must be last")
                if segment != "*":
                    _placeholder_name(text, segment[1:-4], at)
                regex.append("/.+")
            else:
                regex.append("/" + _segment_regex(text, segment, at))
            at += len(segment) + 1
        tail = "" if path.endswith("/") else "/?"
        return cls(text, method, path, re.compile("".join(regex) + tail))

    def label(self, method: str) -> str:
        return f"{self.method or method} {self.path}"


def _placeholder_name(text: str, name: str, at: int) -> None:
    if not name:
        raise EndpointTemplateError(text, f"a placeholder needs a name, such as {{id}}, at position {at}")
    if not _PLACEHOLDER.fullmatch(name):
        raise EndpointTemplateError(text, f"placeholder name {name!r} at position {at} is not a word "
                                          "(letters, digits, _)")


def _segment_regex(text: str, segment: str, at: int) -> str:
    """One template segment as a regex: literals escaped, each `{name}` one segment's worth."""
    out, i = [], 0
    while i < len(segment):
        char = segment[i]
        if char == "}":
            raise EndpointTemplateError(text, f"unbalanced brace at position {at + i}")
        if char != "{":
            out.append(re.escape(char))
            i += 1
            continue
        end = segment.find("}", i)
        if end < 0 or "{" in segment[i + 1:end]:
            raise EndpointTemplateError(text, f"unbalanced brace at position {at + i}")
        name = segment[i + 1:end]
        if name.endswith("..."):
            raise EndpointTemplateError(text, f"{{{name}}} takes the rest of the path, so it must be last")
        _placeholder_name(text, name, at + i)
        out.append("[^/]+")
        i = end + 1
    return "".join(out)


def _fold_segment(segment: str, previous: str) -> tuple[str, Rule] | None:
    """What one path segment folds to, and by which rule; None keeps it. A file extension is
    kept: the name before it is folded (`{id}.png`), and any page but an index is `{slug}.html`."""
    if "." in segment:
        stem, _, extension = segment.rpartition(".")
        if stem and _EXTENSION.fullmatch(extension):
            folded = _fold_name(stem, previous)
            if folded is not None:
                return folded[0] + "." + extension, folded[1]
            if extension.lower() in _PAGES and stem.lower() not in _INDEX_PAGES:
                return "{slug}." + extension, "slug"
            return None
    return _fold_name(segment, previous)


def _fold_name(segment: str, previous: str) -> tuple[str, Rule] | None:
    if len(segment) < 7 and "-" not in segment:
        return ("{id}", "id") if segment.isdigit() else None  # short: a number, or a word such as v1, api, en
    if segment.isalpha() and len(segment) < 20:
        return None  # a word: claims, documents, Installation
    match = _SEGMENT.fullmatch(segment)
    if match is None:
        return None
    kind = match.lastgroup
    if kind == "slug" and _NAME_AFTER.fullmatch(previous):
        return None  # /api/v2/password-reset-requests names an endpoint
    if kind == "token" and not any(c.isdigit() for c in segment) and _is_wordy(segment):
        return None
    return _PLACEHOLDERS[kind or ""]


def _is_wordy(segment: str) -> bool:
    """Letters only with few capitals (`getAllActiveUserAccounts`, `list_active_user_accounts`):
    a name, not a random token."""
    return bool(_WORDY.fullmatch(segment)) and sum(c.isupper() for c in segment) * 4 <= len(segment)


def _date_run(segments: list[str], i: int) -> int:
    """How many segments from i are a year/month[/day] date (0, 2 or 3)."""
    if i + 1 >= len(segments) or not _YEAR.fullmatch(segments[i]) or not _MONTH.fullmatch(segments[i + 1]):
        return 0
    return 3 if i + 2 < len(segments) and _DAY.fullmatch(segments[i + 2]) else 2


def fold_path(path: str) -> tuple[str, tuple[Rule, ...]]:
    """A path with what varies folded (`/{date}/{slug}/`), and the rules that folded it."""
    segments = path.split("/")
    out: list[str] = []
    rules: list[Rule] = []
    i, after_date = 0, False
    while i < len(segments):
        segment = segments[i]
        run = _date_run(segments, i) if len(segment) == 4 and segment.isdigit() else 0
        folded: tuple[str, Rule] | None
        if run:
            folded, i = ("{date}", "date"), i + run
        else:
            if not segment:
                folded = None
            elif after_date and _WORDS.fullmatch(segment):
                folded = ("{slug}", "slug")
            else:
                folded = _fold_segment(segment, segments[i - 1] if i else "")
            i += 1
        if folded is None:
            out.append(segment)
        else:
            out.append(folded[0])
            if folded[1] not in rules:
                rules.append(folded[1])
        after_date = folded is not None and folded[1] == "date"
    return "/".join(out) or "/", tuple(rules)


class EndpointFolder:
    """Folds `(method, target)` into an `EndpointLabel`: the first matching template, else the
    heuristics. Pure, and cached per distinct (method, path) in a bounded LRU cache."""

    def __init__(self, templates: Iterable[str] = (), *, cache_size: int = CACHE_SIZE) -> None:
        self.templates = tuple(EndpointTemplate.parse(t) for t in templates)
        # all templates in one regex over "METHOD /path", in the order given: the first that matches wins
        self._any_template = re.compile("|".join(
            f"(?P<t{i}>{re.escape(t.method) if t.method else '[^ ]+'} {t.pattern.pattern})"
            for i, t in enumerate(self.templates))) if self.templates else None
        self._fold = lru_cache(maxsize=cache_size)(self._fold_path)

    def fold(self, method: str, target: str) -> EndpointLabel:
        return self._fold(method, target.partition("?")[0])

    @property
    def cached(self) -> int:
        return self._fold.cache_info().currsize

    def _fold_path(self, method: str, path: str) -> EndpointLabel:
        if self._any_template is not None:
            match = self._any_template.fullmatch(f"{method} {path}")
            if match is not None and match.lastgroup is not None:
                template = self.templates[int(match.lastgroup[1:])]
                return EndpointLabel(template.label(method), ("template",), template.text)
        folded, rules = fold_path(path)
        return EndpointLabel(f"{method} {folded}", rules)


_HEURISTICS = EndpointFolder()


def endpoint_label(method: str, target: str) -> str:
    """`GET /claims/{id}` for `GET /claims/8812?x=1`, by the heuristics alone."""
    return _HEURISTICS.fold(method, target).label
