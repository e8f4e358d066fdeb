"""Which logged requests a replay sends, and under which endpoint label they are counted.

`Selection` applies `--from`/`--to` (log time), `--method`, `--path` (shell-style patterns
such as `/claims/*`) and `--status` (`200`, `5xx`), and the safety rule: only GET and HEAD
are replayed unless writes are allowed. Endpoint labels come from `esr.core.endpoints`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fnmatch import fnmatchcase

from esr.core.errors import EsrError
from esr.replay.record import LogRecord

__all__ = ["SAFE_METHODS", "Selection"]

SAFE_METHODS = frozenset({"GET", "HEAD"})
class SelectionError(EsrError):
    """A --status or --method value that cannot be understood."""


@dataclass(frozen=True, slots=True)
class Selection:
    start: float | None = None  # --from, Unix seconds (inclusive)
    end: float | None = None  # --to, Unix seconds (exclusive)
    methods: frozenset[str] = frozenset()  # empty: any
    paths: tuple[str, ...] = ()  # shell-style patterns; empty: any
    statuses: tuple[str, ...] = ()  # "200", "5xx"; empty: any
    allow_writes: bool = False

    def __post_init__(self) -> None:
        for status in self.statuses:
            if not re.fullmatch(r"[1-5](?:\d\d|xx)", status):
                raise SelectionError(f"--status {status!r}: expected a status such as 200 or a class such as 5xx")

    def why_not(self, record: LogRecord) -> str | None:
        """None if the record is replayed, else the reason it is skipped (for the tally)."""
        if self.start is not None and record.time < self.start:
            return "before --from"
        if self.end is not None and record.time >= self.end:
            return "after --to"
        if self.methods and record.method not in self.methods:
            return "method not selected"
        if record.method not in SAFE_METHODS and not self.allow_writes:
            return "write method (replay with --allow-writes to send it)"
        if self.paths and not any(fnmatchcase(record.target.split("?", 1)[0], p) for p in self.paths):
            return "path not selected"
        if self.statuses:
            status = "" if record.status is None else str(record.status)
            if not any(status == s or (s.endswith("xx") and status[:1] == s[0]) for s in self.statuses):
                return "status not selected"
        return None
