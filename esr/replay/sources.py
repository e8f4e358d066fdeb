"""Log files as one stream of records in time order, with memory that does not grow with the logs.

- `find_files(paths)`: files and folders (recursively, in name order), skipping hidden files.
- `read_lines(path)`: (line number, text) from a plain or gzip file (detected by its magic
  bytes, not its name), LF or CRLF, with or without a final newline; bytes that are not UTF-8
  are kept (surrogate escapes) rather than failing the file.
- `detect(path, forced, fallback)`: the reader whose `sniff` accepts the file's first lines, or
  `--format`, or `fallback` when none does; else `UnknownLogFormat` naming the closest format, the
  first line that does not match it and the column (`esr.replay.closest`).
- `reorder(parsed, window_s)`: re-sorts records that are out of order within `window_s` of log
  time (logs written when a request completes, lines shuffled within a second), holding only
  the records within that window; a record older than the window is reported as late, never dropped
  silently.
- `LogStream`: all files merged by time (`heapq.merge` over the per-file reordered streams),
  tallying what was parsed, skipped and malformed, by reason, with the first few bad lines.
"""

from __future__ import annotations

import bisect
import gzip
import heapq
import itertools
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from esr.core.errors import EsrError, UnknownLogFormat
from esr.replay.record import BadLine, LogRecord, Parsed, Skipped

__all__ = ["LogStream", "ReplayInputError", "detect", "find_files", "read_lines", "readers", "reorder"]

HEAD_LINES = 20
EXAMPLES_KEPT = 5


class ReplayInputError(EsrError):
    """No log to replay: a path that does not exist, an unknown format, nothing readable."""


def readers() -> dict[str, ModuleType]:
    """Format name -> reader module, in the order formats are tried by detection."""
    from importlib import import_module

    found: dict[str, ModuleType] = {}
    # CloudFront before W3C: it is a W3C dialect
    for name in ("har", "gor", "cloudfront", "w3c", "aws_alb", "aws_elb", "jsonl", "clf"):
        try:
            module = import_module(f"{__package__}.formats.{name}")
        except ImportError:
            continue
        found[module.NAME] = module
    return found


def find_files(paths: Sequence[str | Path]) -> list[Path]:
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and not any(
                part.startswith(".") for part in p.relative_to(path).parts))
        elif path.is_file():
            files.append(path)
        else:
            raise ReplayInputError(f"no such file or folder: {path}")
    if not files:
        raise ReplayInputError(f"no files to replay in {', '.join(map(str, paths))}")
    return files


def _open(path: Path):  # noqa: ANN202 - a binary file object
    with open(path, "rb") as probe:
        magic = probe.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


def read_lines(path: Path, *, keep_cr: bool = False) -> Iterator[tuple[int, str]]:
    """Lines split at LF only; CR before it is dropped unless `keep_cr` (a reader of raw HTTP
    messages, such as GoReplay's, needs it to restore bodies byte for byte)."""
    with _open(path) as handle:
        for number, raw in enumerate(handle, 1):
            if raw.endswith(b"\n"):
                raw = raw[:-2] if raw.endswith(b"\r\n") and not keep_cr else raw[:-1]
            yield number, raw.decode("utf-8", "surrogateescape")


def detect(path: Path, forced: str | None = None, fallback: str | None = None) -> ModuleType:
    known = readers()
    if forced is not None:
        if forced not in known:
            raise ReplayInputError(f"unknown --format {forced!r}; known formats: {', '.join(sorted(known))}")
        return known[forced]
    head = [text for _, text in itertools.islice(read_lines(path), HEAD_LINES)]
    for module in known.values():
        if module.sniff(head):
            return module
    if fallback is not None:
        return known[fallback]
    from esr.replay.closest import closest

    raise closest(str(path), head, list(known))


@dataclass
class Tally:
    """What the stream read: counts by outcome and reason, and the first bad lines."""

    parsed: int = 0
    skipped: Counter = field(default_factory=Counter)
    bad: Counter = field(default_factory=Counter)
    late: int = 0  # older than the reorder window when they arrived
    examples: list[BadLine] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)  # "file: why"
    files: dict[str, str] = field(default_factory=dict)  # file -> format

    def bad_line(self, line: BadLine) -> None:
        self.bad[line.reason.split(":", 1)[0]] += 1
        if len(self.examples) < EXAMPLES_KEPT:
            self.examples.append(line)


def reorder(parsed: Iterable[Parsed], window_s: float, tally: Tally) -> Iterator[LogRecord]:
    """Records in time order, given records at most `window_s` out of order. A record older
    than what was already released is counted late and released at once (never lost).

    Pending records are kept sorted by time, ties in arrival order: a record in order (the
    usual case) is appended, one out of order is inserted after those of its time; released
    ones are skipped by an index and cut off in bulk."""
    times: list[float] = []  # pending records' times, sorted; times[head:] are not released yet
    pending: list[LogRecord] = []
    head = 0
    released = float("-inf")
    for item in parsed:
        if type(item) is not LogRecord:
            if type(item) is Skipped:
                tally.skipped[item.reason] += 1
            else:
                tally.bad_line(item)  # type: ignore[arg-type]
            continue
        tally.parsed += 1
        t = item.time
        if t < released:
            tally.late += 1
            yield item
            continue
        if head == len(times) or t >= times[-1]:
            times.append(t)
            pending.append(item)
        else:
            at = bisect.bisect_right(times, t, head)
            times.insert(at, t)
            pending.insert(at, item)
        limit = t - window_s
        while head < len(times) and times[head] <= limit:
            released = times[head]
            yield pending[head]
            head += 1
        if head >= 1024 and head * 2 >= len(times):
            del times[:head], pending[:head]
            head = 0
    yield from pending[head:]


class LogStream:
    """Every file's records merged in time order (ties: file order, then line order)."""

    def __init__(self, paths: Sequence[str | Path], *, fmt: str | None = None, reorder_window_s: float = 60.0,
                 options: dict | None = None, fallback: str | None = None) -> None:
        self.files = find_files(paths)
        self.fmt = fmt
        self.fallback = fallback  # the format of files no reader recognises
        self.window = reorder_window_s
        self.options = options or {}
        self.tally = Tally()

    def _file_records(self, path: Path) -> Iterator[LogRecord]:
        try:
            module = detect(path, self.fmt, self.fallback)
            self.tally.files[str(path)] = module.NAME
            lines = read_lines(path, keep_cr=getattr(module, "KEEP_CR", False))
            yield from reorder(module.parse(lines, str(path), **self.options.get(module.NAME, {})),
                               self.window, self.tally)
        except UnknownLogFormat as exc:  # its message names the file
            self.tally.unreadable.append(str(exc))
        except (OSError, EOFError, gzip.BadGzipFile, ReplayInputError) as exc:
            self.tally.unreadable.append(f"{path}: {exc}")

    def __iter__(self) -> Iterator[LogRecord]:
        if len(self.files) == 1:  # nothing to merge
            yield from self._file_records(self.files[0])
            return
        streams = [((r.time, index, r) for r in self._file_records(path)) for index, path in enumerate(self.files)]
        for _, _, record in heapq.merge(*streams, key=lambda item: (item[0], item[1])):
            yield record
