"""Which logged requests a replay sends, and under which endpoint label they are counted.

`Selection` applies `--from`/`--to` or `--slice` (log time), `--method`, `--path` (shell-style
patterns such as `/claims/*`) and `--status` (`200`, `5xx`), and the safety rule: only GET and
HEAD are replayed unless writes are allowed. Endpoint labels come from `esr.core.endpoints`.

A slice bound with a zone (`2025-03-14T14:00Z`, `...+01:00`) is an instant; one without
(`2025-03-14T14:00`) is read on the log's own clock: the zone each line was written in when the
log says (CLF's `-0700`), else UTC. `parse_when` and `parse_slice` read them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from fnmatch import fnmatchcase

from esr.core.errors import EsrError
from esr.replay.record import LogRecord

__all__ = ["SAFE_METHODS", "WRITE_METHOD", "Selection", "SelectionError", "When", "parse_slice", "parse_when"]

SAFE_METHODS = frozenset({"GET", "HEAD"})
WRITE_METHOD = "write method (replay with --allow-writes to send it)"
EXAMPLE_SLICE = "2025-03-14T14:00/2025-03-14T16:30"


class SelectionError(EsrError):
    """A --status, --method, --from, --to or --slice value that cannot be understood."""


@dataclass(frozen=True, slots=True)
class When:
    """A slice bound: Unix seconds if `zoned`, else the wall-clock seconds of a time without a zone
    (as if it were UTC), compared with each record's time on the clock the log wrote it in."""

    seconds: float
    zoned: bool

    def key(self, record: LogRecord) -> float:
        return record.time if self.zoned else record.time + (record.utc_offset or 0)


def parse_when(value: str, flag: str) -> When:
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise SelectionError(f"{flag} {value!r}: expected an ISO 8601 time such as 2025-03-14T14:00 (on the "
                             "log's clock: UTC unless the log says otherwise) or 2025-03-14T14:00+01:00") from None
    return When((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp(), moment.tzinfo is not None)


def parse_slice(value: str) -> tuple[When | None, When | None]:
    """`START/END`, either side may be left empty (`START/`, `/END`): from START, before END."""
    if value.count("/") != 1:
        raise SelectionError(f"--slice {value!r}: expected START/END, e.g. --slice {EXAMPLE_SLICE} "
                             "(either side may be empty)")
    start, end = (part.strip() for part in value.split("/"))
    bounds = (parse_when(start, "--slice") if start else None, parse_when(end, "--slice") if end else None)
    check_order(*bounds, f"--slice {value}")
    return bounds


def check_order(start: When | None, end: When | None, shown: str) -> None:
    if start is not None and end is not None and start.zoned == end.zoned and start.seconds >= end.seconds:
        raise SelectionError(f"{shown}: the slice's start must be before its end")


@dataclass(frozen=True, slots=True)
class Selection:
    start: When | None = None  # --from (inclusive); a number is Unix seconds
    end: When | None = None  # --to (exclusive)
    methods: frozenset[str] = frozenset()  # empty: any
    paths: tuple[str, ...] = ()  # shell-style patterns; empty: any
    statuses: tuple[str, ...] = ()  # "200", "5xx"; empty: any
    allow_writes: bool = False

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            if isinstance(value := getattr(self, name), (int, float)):
                object.__setattr__(self, name, When(float(value), zoned=True))
        for status in self.statuses:
            if not re.fullmatch(r"[1-5](?:\d\d|xx)", status):
                raise SelectionError(f"--status {status!r}: expected a status such as 200 or a class such as 5xx")

    def checker(self) -> Callable[[LogRecord], str | None]:
        """`why_not`, or a quicker function giving the same answers when only the write rule can
        refuse a record (no slice, method, path or status selected: the usual replay)."""
        if self.start is not None or self.end is not None or self.methods or self.paths or self.statuses:
            return self.why_not
        if self.allow_writes:
            return lambda record: None
        return lambda record: None if record.method in SAFE_METHODS else WRITE_METHOD

    def why_not(self, record: LogRecord) -> str | None:
        """None if the record is replayed, else the reason it is skipped (for the tally)."""
        if self.start is not None and self.start.key(record) < self.start.seconds:
            return "before --from"
        if self.end is not None and self.end.key(record) >= self.end.seconds:
            return "after --to"
        if self.methods and record.method not in self.methods:
            return "method not selected"
        if record.method not in SAFE_METHODS and not self.allow_writes:
            return WRITE_METHOD
        if self.paths and not any(fnmatchcase(record.target.split("?", 1)[0], p) for p in self.paths):
            return "path not selected"
        if self.statuses:
            status = "" if record.status is None else str(record.status)
            if not any(status == s or (s.endswith("xx") and status[:1] == s[0]) for s in self.statuses):
                return "status not selected"
        return None
