"""W3C extended log files (IIS and other servers) as replayable records.

A W3C log describes itself: a `#Fields:` directive names the columns of the rows after it. IIS
writes a new header block (`#Software`, `#Version`, `#Date`, `#Fields`) whenever it restarts or
its field selection changes, so every row is read against the latest `#Fields`; a row whose field
count does not match it but matches an earlier `#Fields` (a row written late, across the change)
is read with that earlier list, and any other row is reported against the line that declared the
latest. A file without a `#Fields` line is read with the `fields` option (`esr replay --fields`).

Values are separated by runs of spaces or tabs; a value may be quoted ("a b", with "" for a quote
inside), and IIS Advanced Logging quotes every value. Blank lines are skipped.

Fields used (names are case-insensitive; all others are ignored):
- `date` and `time` (UTC, as the W3C draft says; `hh:mm`, `hh:mm:ss` or with a fraction), unless a
  `#GMT-Offset: -0800` directive says they are local times that far from UTC: they are then
  converted to UTC. A row without a `date` field takes the date of the latest `#Date` (or
  `#Start-Date`) directive, moving to the next day when the time of day wraps past midnight.
  `#Date` takes `2025-03-14 00:00:00`, `2025-03-14T00:00:00Z`, `14-Mar-2025 00:00:00` and
  `3/14/2025 0:00:00` (month first), each with an optional fraction of a second.
- `cs-method`; `cs-uri-stem` joined to `cs-uri-query` with "?" (unless the query is `-`), or
  `cs-uri`.
- `sc-status`, `sc-bytes`, `time-taken` (IIS writes milliseconds; the draft says seconds): with
  `time_taken_unit="auto"` (the default) an integer is milliseconds and a number with a decimal
  point is seconds; "ms" or "s" force a unit. IIS Advanced Logging's `TimeTakenMS` is milliseconds.
- `c-ip` -> client; `cs-host` or `cs(Host)` -> host; every other `cs(Header)` -> a request
  header. Unquoted header values have "+" for spaces (IIS writes user agents and cookies that
  way), except the Referer, a URL where "+" is itself; a quoted value ("a b", with "" for a
  quote inside) is taken as written.
- `-` is an empty value, and so is `"-"` (IIS Advanced Logging quotes it).

Directives are `Skipped` ("W3C directive"); a row with `-` for the method or the URI is
`Skipped` ("empty request line"). Reasons of bad lines start with a fixed key before a colon
("bad date: ...") so they can be counted by kind.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from esr.replay.formats._common import (
    MONTHS,
    Memo,
    bad_line,
    check_choice,
    check_options,
    duration_ms,
    optional_count,
    show,
    utc_seconds,
    valid_time_of_day,
)
from esr.replay.formats.clf import EMPTY_REQUEST, request_target
from esr.replay.record import LogRecord, Parsed, Skipped

__all__ = ["FIELDS_EXAMPLE", "NAME", "TIME_TAKEN_UNITS", "field_list", "parse", "sniff"]

NAME = "w3c"
SAMPLE = (  # a line (or file) of this format, for `esr replay --list-formats`
    '#Software: Microsoft Internet Information Services 10.0',
    '#Version: 1.0',
    '#Fields: date time cs-method cs-uri-stem cs-uri-query sc-status time-taken',
    '2024-03-04 09:00:01 GET /claims id=3 200 45',
)

TIME_TAKEN_UNITS = ("auto", "ms", "s")
DIRECTIVE = "W3C directive"
BLANK = "blank line"
FIELDS_EXAMPLE = "date time cs-method cs-uri-stem sc-status"
LAYOUTS_KEPT = 16  # earlier #Fields lists a row may still fit

_DATE = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})\Z", re.ASCII)
_TIME = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2})(\.\d*)?)?\Z", re.ASCII)
_NUMBER = re.compile(r"\d+(?:\.\d*)?\Z", re.ASCII)
_DATE_FORMS = (  # -> (year, month, day, time of day) groups
    re.compile(r"(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})[ T]+(?P<t>[\d:.]+)Z?\Z", re.ASCII),
    re.compile(r"(?P<d>\d{1,2})-(?P<mon>[A-Za-z]{3})-(?P<y>\d{4})\s+(?P<t>[\d:.]+)\Z", re.ASCII),
    re.compile(r"(?P<m>\d{1,2})/(?P<d>\d{1,2})/(?P<y>\d{4})\s+(?P<t>[\d:.]+)\Z", re.ASCII),
)
_OFFSET = re.compile(r"([+-])(\d{2}):?(\d{2})\Z", re.ASCII)
_DATE_SHAPES = ("a date and a time such as '#Date: 2025-03-14 00:00:00' "
                "(or 2025-03-14T00:00:00Z, 14-Mar-2025 00:00:00, 3/14/2025 0:00:00)")
_DIRECTIVES = ("#software:", "#version:", "#fields:")
_HALF_DAY = 43200.0


def sniff(head: list[str]) -> bool:
    """True when the first lines hold a `#Fields:`, `#Software:` or `#Version:` directive."""
    return any(line.lstrip("\ufeff")[:10].lower().startswith(_DIRECTIVES) for line in head)


def parse(lines: Iterable[tuple[int, str]], source: str, *, time_taken_unit: str = "auto",
          fields: str | None = None, **options: object) -> Iterator[Parsed]:
    """One `LogRecord`, `Skipped` or `BadLine` per line; see the module docstring for the fields.
    `fields` ("date time cs-method ...") reads the rows before any `#Fields` line."""
    check_options(NAME, options, ("time_taken_unit", "fields"))
    check_choice("time_taken_unit", time_taken_unit, TIME_TAKEN_UNITS)
    layout = None if fields is None else _Layout.of(field_list(fields), 0)
    return _Reader(source, time_taken_unit, layout).read(lines)


def field_list(text: str) -> list[str]:
    """The names of a `--fields` value (separated by spaces or commas); ValueError when it names
    none or lacks what a request needs."""
    names = [name for name in re.split(r"[\s,]+", text) if name]
    if not names:
        raise ValueError(f'--fields lists no fields: expected W3C field names, e.g. --fields "{FIELDS_EXAMPLE}"')
    unusable = _Layout.of(names, 0).unusable
    if unusable is not None:
        raise ValueError(unusable)
    return names


@dataclass(frozen=True, slots=True)
class _Layout:
    """Where the fields of one `#Fields` directive are, by position in a row."""

    line: int  # of its #Fields; 0 for the `fields` option
    count: int
    date: int | None
    time: int | None
    method: int | None
    stem: int | None
    query: int | None
    uri: int | None
    status: int | None
    bytes: int | None
    taken: int | None
    client: int | None
    host: int | None
    headers: tuple[tuple[int, str], ...]
    unusable: str | None  # why no row under it can be replayed
    taken_ms: bool  # time taken is IIS Advanced Logging's TimeTakenMS

    @classmethod
    def of(cls, names: list[str], line: int) -> _Layout:
        at: dict[str, int] = {}
        headers: list[tuple[int, str]] = []
        for index, name in enumerate(names):
            low = name.lower()
            at.setdefault(low, index)
            if low.startswith("cs(") and low.endswith(")") and low != "cs(host)":
                headers.append((index, name[3:-1]))
        host = at.get("cs-host", at.get("cs(host)"))
        missing = [what for what, ok in (("time", "time" in at), ("cs-method", "cs-method" in at),
                                         ("cs-uri-stem or cs-uri", "cs-uri-stem" in at or "cs-uri" in at))
                   if not ok]
        unusable = None
        if missing:
            unusable = (f"unusable #Fields: the #Fields on line {line} lists no {' and no '.join(missing)}" if line
                        else f"unusable --fields: the list names no {' and no '.join(missing)}")
        return cls(line, len(names), at.get("date"), at.get("time"), at.get("cs-method"), at.get("cs-uri-stem"),
                   at.get("cs-uri-query"), at.get("cs-uri"), at.get("sc-status"), at.get("sc-bytes"),
                   at.get("time-taken", at.get("timetakenms")), at.get("c-ip"), host, tuple(headers), unusable,
                   "time-taken" not in at and "timetakenms" in at)

    @property
    def origin(self) -> str:
        return f"the #Fields on line {self.line}" if self.line else "--fields"


class _Reader:
    def __init__(self, source: str, unit: str, layout: _Layout | None = None) -> None:
        self.source = source
        self.unit = unit
        self.layout = layout
        self.earlier: dict[int, _Layout] = {}  # field count -> the latest earlier #Fields with that many
        self.offset = 0  # seconds east of UTC, from #GMT-Offset
        self.day: float | None = None  # midnight of the latest #Date (local), for rows without a date
        self.last = 0.0  # the latest local time given by a row without a date (or by #Date)
        self.days = Memo(_parse_day)
        self.times = Memo(_parse_time_of_day)

    def read(self, lines: Iterable[tuple[int, str]]) -> Iterator[Parsed]:
        for number, text in lines:
            where = f"{self.source}:{number}"
            line = text.lstrip("\ufeff")
            if line[:1] == "#":
                yield self._directive(line, number, where, text)
            elif not line.strip():
                yield Skipped(BLANK, where)
            else:
                yield self._row(line, where, text)

    def _directive(self, line: str, number: int, where: str, text: str) -> Parsed:
        name, _, value = line[1:].partition(":")
        name = name.strip().lower()
        if name == "fields":
            names = value.split()
            if not names:
                return bad_line("bad #Fields: the directive lists no fields (expected e.g. "
                                f"'#Fields: {FIELDS_EXAMPLE}')", where, text)
            if self.layout is not None:
                self.earlier.pop(self.layout.count, None)
                self.earlier[self.layout.count] = self.layout
                if len(self.earlier) > LAYOUTS_KEPT:
                    del self.earlier[next(iter(self.earlier))]
            self.layout = _Layout.of(names, number)
        elif name in ("date", "start-date"):
            stamp = _parse_stamp(value.strip())
            if stamp is None:
                return bad_line(f"bad #Date: expected {_DATE_SHAPES}, found {show(line)}", where, text)
            self.day, self.last = stamp
        elif name == "gmt-offset":
            m = _OFFSET.match(value.strip())
            if m is None or int(m[2]) > 23 or int(m[3]) > 59:
                return bad_line("bad #GMT-Offset: expected '#GMT-Offset: -0800' (sign, hours, minutes), "
                                f"found {show(line)}", where, text)
            self.offset = (-1 if m[1] == "-" else 1) * (int(m[2]) * 3600 + int(m[3]) * 60)
        return Skipped(DIRECTIVE, where)

    def _fit(self, count: int) -> _Layout | str:
        """The layout a row of `count` fields is read with: the latest #Fields, else the latest earlier
        one with as many fields; a reason when none fits."""
        layout = self.layout
        if layout is None:
            return ("no #Fields: expected a #Fields directive before the first data row (or --fields, e.g. "
                    f'--fields "{FIELDS_EXAMPLE}")')
        if count == layout.count:
            return layout
        earlier = self.earlier.get(count)
        if earlier is not None:
            return earlier
        reason = f"wrong field count: expected {layout.count} fields from {layout.origin}, found {count}"
        others = sorted((e for e in self.earlier.values() if e.count != layout.count), key=lambda e: e.line)
        if others:
            listed = ", ".join(f"line {e.line} has {e.count}" if e.line else f"--fields has {e.count}" for e in others)
            reason += f" (no earlier #Fields has {count} either: {listed})"
        return reason

    def _row(self, line: str, where: str, text: str) -> Parsed:
        if '"' in line:
            values = _split_quoted(line)
            if isinstance(values, str):
                return bad_line(values, where, text)
        else:
            values = line.split()
        layout = self._fit(len(values))
        if isinstance(layout, str):
            return bad_line(layout, where, text)
        if layout.unusable is not None:
            return bad_line(layout.unusable, where, text)

        when = self._when(layout, values)
        if isinstance(when, str):
            return bad_line(when, where, text)
        status = _number(values, layout.status, "sc-status", 3)
        if isinstance(status, str):
            return bad_line(status, where, text)
        size = _number(values, layout.bytes, "sc-bytes", 20)
        if isinstance(size, str):
            return bad_line(size, where, text)
        taken = self._taken(values, layout.taken, "ms" if layout.taken_ms else self.unit)
        if isinstance(taken, str):
            return bad_line(taken, where, text)

        method = _value(values, layout.method)
        if layout.uri is not None and layout.stem is None:
            uri = _value(values, layout.uri)
        else:
            uri = _value(values, layout.stem)
            query = _value(values, layout.query)
            if uri is not None and query is not None:
                uri = f"{uri}?{query}"
        if method is None or uri is None:
            return Skipped(EMPTY_REQUEST, where)
        method = method.upper()
        found = request_target(method, uri)
        if isinstance(found, str):
            return Skipped(found, where)
        target, uri_host = found
        headers = []
        for index, name in layout.headers:
            value = _value(values, index, spaces=name.lower() != "referer")
            if value is not None:
                headers.append((name, value))
        return LogRecord(when, method, target, where, status, taken, size, _value(values, layout.client),
                         uri_host or _value(values, layout.host), tuple(headers))

    def _when(self, layout: _Layout, values: list[str]) -> float | str:
        """UTC seconds of a row: its local date and time (UTC unless #GMT-Offset) less the offset."""
        tod = self.times[_bare(values[layout.time])]  # type: ignore[index]
        if isinstance(tod, str):
            return tod
        if layout.date is not None:
            day = self.days[_bare(values[layout.date])]
            return day if isinstance(day, str) else day + tod - self.offset
        if self.day is None:
            return ("no date: the row has a time but the #Fields list no date field and no #Date "
                    "directive came before it")
        when = self.day + tod
        if when < self.last - _HALF_DAY:
            self.day += 86400.0
            when += 86400.0
        self.last = when
        return when - self.offset

    def _taken(self, values: list[str], index: int | None, unit: str) -> float | None | str:
        text = None if index is None else _bare(values[index])
        if text is None or text == "-":
            return None
        if _NUMBER.match(text) is None:
            return f"bad time-taken: {show(text)} is not a number (expected milliseconds or '-')"
        return duration_ms(text, unit, "ms")


def _parse_stamp(text: str) -> tuple[float, float] | None:
    """A #Date value -> (its midnight, itself) in seconds, or None when it is no date and time."""
    for form in _DATE_FORMS:
        m = form.match(text)
        if m is None:
            continue
        parts = m.groupdict()
        month = MONTHS.get(parts["mon"].lower()) if parts.get("mon") else int(parts["m"])
        if month is None:
            return None
        day = _parse_day(f"{parts['y']}-{month:02d}-{int(parts['d']):02d}")
        tod = _parse_time_of_day(parts["t"])
        if isinstance(day, str) or isinstance(tod, str):
            return None
        return day, day + tod
    return None


def _parse_day(text: str) -> float | str:
    m = _DATE.match(text)
    if m is None:
        return f"bad date: {show(text)} is not a yyyy-mm-dd date"
    year, month, day = (int(part) for part in m.groups())
    if year < 1:
        return f"bad date: year {year:04d} is out of range (0001 to 9999) in {show(text)}"
    if not 1 <= month <= 12:
        return f"bad date: month {month} is out of range (01-12) in {show(text)}"
    if not 1 <= day <= calendar.monthrange(year, month)[1]:
        return f"bad date: day {day} is out of range for {year}-{month:02d} in {show(text)}"
    return utc_seconds(year, month, day, 0, 0, 0)


def _parse_time_of_day(text: str) -> float | str:
    m = _TIME.match(text)
    if m is None:
        return f"bad time: {show(text)} is not a hh:mm:ss time"
    hour, minute, second, fraction = m.groups()
    hh, mm, ss = int(hour), int(minute), int(second or 0)
    if not valid_time_of_day(hh, mm, ss):
        return f"bad time: {show(text)} is not a time of day (00:00:00 to 23:59:59)"
    seconds = float(hh * 3600 + mm * 60 + ss)
    return seconds + float(fraction) if fraction and fraction != "." else seconds


def _split_quoted(line: str) -> list[str] | str:
    """Fields separated by whitespace, where a field in quotes may hold spaces ("" is a quote).
    Quoted fields keep their quotes, so `_value` knows to take them as written."""
    out: list[str] = []
    i, n = 0, len(line)
    while True:
        while i < n and line[i] in " \t":
            i += 1
        if i >= n:
            return out
        if line[i] == '"':
            j = i + 1
            while True:
                j = line.find('"', j)
                if j < 0:
                    return (f"unterminated quoted field: the '\"' at column {i + 1} is never closed "
                            f"(expected a closing '\"')")
                if line[j + 1:j + 2] == '"':
                    j += 2
                    continue
                break
            out.append(line[i:j + 1])
            i = j + 1
        else:
            j = i
            while j < n and line[j] not in " \t":
                j += 1
            out.append(line[i:j])
            i = j


def _bare(text: str) -> str:
    """A field without its quotes ("" read as a quote), for fields that are never "+"-encoded."""
    if text[:1] == '"' and len(text) >= 2 and text[-1:] == '"':
        return text[1:-1].replace('""', '"')
    return text


def _value(values: list[str], index: int | None, *, spaces: bool = False) -> str | None:
    """The field at `index`, None for `-` or a missing field; quoted fields unquoted as written,
    "+" read as a space in unquoted ones when `spaces`."""
    if index is None:
        return None
    text = values[index]
    if text[:1] == '"' and len(text) >= 2 and text[-1:] == '"':
        text = text[1:-1].replace('""', '"')
        return None if text in ("-", "") else text
    if text == "-" or not text:
        return None
    return text.replace("+", " ") if spaces else text


def _number(values: list[str], index: int | None, name: str, digits: int) -> int | None | str:
    if index is None:
        return None
    text = _bare(values[index])
    try:
        return optional_count(text, digits)
    except ValueError:
        return f"bad {name}: {show(text)} is not a number"
