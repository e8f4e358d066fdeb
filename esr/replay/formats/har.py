"""HTTP Archive (HAR 1.2) files: browser and proxy captures, one JSON document per file.

A HAR file is a single JSON value, so the whole file is parsed at once (captures are small
enough to hold). Every entry of `log.entries` gives one `LogRecord` or one `BadLine`; its
source is "file#N", N counting entries from 1 in file order. Entries are not always in time
order (browsers write them as responses finish), so records are yielded sorted by start time
(ties keep file order); bad entries come first, in file order.

What is kept of an entry, and why:
- `startedDateTime` (RFC 3339 with an offset) is the time; an entry without one cannot be
  placed on the replay's clock, so it is a bad entry, as is one without a UTC offset.
- `request.url` gives the target (path and query, never the fragment) and the host. Only
  http(s) URLs can be replayed; `data:`, `blob:`, `chrome-extension:`, `ws:` entries are bad.
- request headers without HTTP/2 pseudo-headers (":authority", ...) and hop-by-hop headers
  (Connection and the headers it names, Keep-Alive, Transfer-Encoding, ...): the sender frames
  the request itself.
- `postData.text` is the body (UTF-8, or base64 when `postData.encoding` says so); a form
  given only as `params` is re-encoded when it is `application/x-www-form-urlencoded`.
- `time` (ms, -1 when unknown), `response.status` (0 when there was no response) and
  `response.bodySize` (else `response.content.size`; -1 when unknown) are the original figures.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlencode, urlsplit

from esr.replay.formats._common import HOP_BY_HOP as _HOP_BY_HOP
from esr.replay.formats._common import TEXT_CUT, TOKEN, bad_line, end_to_end, json_kind, show
from esr.replay.record import LogRecord, Parsed

__all__ = ["NAME", "parse", "sniff"]

NAME = "har"
SAMPLE = (  # a line (or file) of this format, for `esr replay --list-formats`
    '{"log": {"version": "1.2", "creator": {"name": "browser", "version": "1"}, "entries": [{'
    '"startedDateTime": "2024-03-04T09:00:01.000Z", "time": 45, "request": {"method": "GET", '
    '"url": "https://claims.example/claims?id=3", "httpVersion": "HTTP/1.1", "headers": [], "queryString": [], '
    '"cookies": [], "headersSize": -1, "bodySize": 0}, "response": {"status": 200, "statusText": "OK", '
    '"httpVersion": "HTTP/1.1", "headers": [], "cookies": [], "content": {"size": 2, "mimeType": "application/json"}, '
    '"redirectURL": "", "headersSize": -1, "bodySize": 2}, "cache": {}, '
    '"timings": {"send": 0, "wait": 45, "receive": 0}}]}}',
)

HOP_BY_HOP = _HOP_BY_HOP | {"trailers"}  # a TE value, dropped too should a capture hold it as a header

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?"
    r"(?:([Zz])|([+-])(\d{2}):?(\d{2}))?")


class _BadEntry(Exception):
    """Why one entry cannot be replayed; becomes a `BadLine`."""


def sniff(head: list[str]) -> bool:
    """A JSON object whose first lines name the HAR `log` and its `entries` or `creator`."""
    text = "\n".join(head).lstrip("\ufeff \t\r\n")
    return text.startswith("{") and '"log"' in text and ('"entries"' in text or '"creator"' in text)


def parse(lines: Iterable[tuple[int, str]], source: str) -> Iterator[Parsed]:
    """One `LogRecord` per entry in start-time order, after a `BadLine` per bad entry; one
    `BadLine` for the file when it is not a HAR document."""
    numbered = list(lines)
    first = numbered[0][0] if numbered else 1
    text = "\n".join(line for _, line in numbered)
    if text.startswith("\ufeff"):
        text = text[1:]
    try:
        document = json.loads(text, strict=False)
    except json.JSONDecodeError as exc:
        at = numbered[exc.lineno - 1] if 0 < exc.lineno <= len(numbered) else (first, "")
        yield bad_line(f"not a HAR file: not JSON ({exc.msg} at line {at[0]} column {exc.colno})",
                       f"{source}:{at[0]}", at[1])
        return
    entries = _entries(document)
    if isinstance(entries, str):
        yield bad_line(f"not a HAR file: {entries}", f"{source}:{first}", text)
        return
    records: list[LogRecord] = []
    for number, entry in enumerate(entries, 1):
        where = f"{source}#{number}"
        try:
            records.append(_record(entry, where))
        except _BadEntry as exc:
            yield bad_line(str(exc), where, _summary(entry))
    records.sort(key=lambda record: record.time)
    yield from records


def _entries(document: Any) -> list[Any] | str:
    """`log.entries`, or what is missing instead."""
    if not isinstance(document, dict):
        return f"the JSON document is {json_kind(document, 'a list')}, expected an object with a \"log\""
    log = document.get("log")
    if not isinstance(log, dict):
        return "no \"log\" object at the top level (is this a HAR export?)"
    entries = log.get("entries")
    if not isinstance(entries, list):
        return "\"log\" has no \"entries\" list"
    return entries


def _record(entry: Any, where: str) -> LogRecord:
    if not isinstance(entry, dict):
        raise _BadEntry(f"bad entry: it is {json_kind(entry, 'a list')}, expected an object")
    request = entry.get("request")
    if not isinstance(request, dict):
        raise _BadEntry("no request: the entry has no \"request\" object")
    url = request.get("url")
    if not isinstance(url, str) or not url:
        raise _BadEntry("no request.url: the entry's request has no URL")
    method = request.get("method")
    if not isinstance(method, str) or not TOKEN.fullmatch(method):
        raise _BadEntry(f"bad request.method: {method!r} is not an HTTP method")
    time = _time(entry.get("startedDateTime"))
    target, host = _target(url)
    response = found if isinstance(found := entry.get("response"), dict) else {}
    status = _known(response.get("status"))
    return LogRecord(
        time=time,
        method=method.upper(),
        target=target,
        source=where,
        status=int(status) if status else None,  # 0: blocked, failed or aborted
        duration_ms=_known(entry.get("time")),
        bytes=_bytes(response),
        host=host,
        headers=_headers(request.get("headers")),
        body=_body(request.get("postData")),
    )


def _time(value: Any) -> float:
    """Unix seconds from an RFC 3339 time: the nearest float to the written decimal, whatever
    the number of fraction digits (datetime keeps only six)."""
    if not isinstance(value, str):
        raise _BadEntry("no startedDateTime: the entry has no start time")
    match = _RFC3339.fullmatch(value.strip())
    if match is None:
        raise _BadEntry(f"bad startedDateTime: {value!r} is not an RFC 3339 time "
                        f"(expected e.g. 2024-03-04T09:00:01.123+01:00)")
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = match.groups()
    if not zulu and not sign:
        raise _BadEntry(f"bad startedDateTime: {value!r} has no UTC offset (expected Z or +hh:mm)")
    if sign and (int(off_h) > 23 or int(off_m) > 59):
        raise _BadEntry(f"bad startedDateTime: {value!r}: the UTC offset is out of range (-23:59 to +23:59)")
    try:
        offset = timedelta(hours=int(off_h), minutes=int(off_m)) if sign else timedelta()
        moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second),
                          tzinfo=timezone(-offset if sign == "-" else offset))
    except ValueError as exc:
        raise _BadEntry(f"bad startedDateTime: {value!r}: {exc}") from None
    seconds = (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(seconds=1)
    if seconds < 0:
        return seconds + float(fraction or 0)
    return float(f"{seconds}{fraction or ''}")


def _target(url: str) -> tuple[str, str | None]:
    """(path?query, host[:port]) of an http(s) URL."""
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme not in ("http", "https"):
        raise _BadEntry(f"not an http(s) URL: {show(url)} ({scheme or 'no'} scheme) cannot be replayed")
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise _BadEntry(f"bad request.url: {url[:60]!r}: {exc}") from None
    host = parts.netloc.rpartition("@")[2] or None
    if host is None:
        raise _BadEntry(f"bad request.url: {url[:60]!r} has no host")
    target = parts.path or "/"
    if not target.startswith("/"):
        target = "/" + target
    if parts.query:
        target += "?" + parts.query
    elif url.split("#", 1)[0].endswith("?"):
        target += "?"
    return target, host


def _headers(value: Any) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _BadEntry("bad request.headers: expected a list of {\"name\", \"value\"} objects")
    pairs: list[tuple[str, str]] = []
    for index, item in enumerate(value):
        if not (isinstance(item, dict) and isinstance(item.get("name"), str)
                and isinstance(item.get("value"), str)):
            raise _BadEntry(f"bad request.headers: item {index} is not a {{\"name\", \"value\"}} "
                            f"object with string fields")
        pairs.append((item["name"], item["value"]))
    return end_to_end([(name, val) for name, val in pairs if not name.startswith(":")], HOP_BY_HOP)


def _body(post: Any) -> bytes | None:
    if post is None:
        return None
    if not isinstance(post, dict):
        raise _BadEntry("bad request.postData: expected an object")
    text = post.get("text")
    if isinstance(text, str):
        if str(post.get("encoding", "")).lower() == "base64":
            try:
                return base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError):
                raise _BadEntry("bad request.postData: \"encoding\" is base64 but \"text\" is not "
                                "valid base64") from None
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:
            raise _BadEntry("bad request.postData: \"text\" holds a lone surrogate escape, "
                            "not text that UTF-8 can encode") from None
    params = post.get("params")
    if not params:
        return None
    mime = str(post.get("mimeType", "")).split(";", 1)[0].strip().lower()
    if mime != "application/x-www-form-urlencoded":
        raise _BadEntry(f"no request.postData.text: the body is given only as params of "
                        f"{mime or 'an unknown type'!r}, which cannot be rebuilt byte for byte")
    if not isinstance(params, list) or not all(isinstance(p, dict) and isinstance(p.get("name"), str)
                                               for p in params):
        raise _BadEntry("bad request.postData: \"params\" must be a list of {\"name\", \"value\"} objects")
    return urlencode([(p["name"], str(p.get("value", ""))) for p in params]).encode("ascii")


def _bytes(response: dict[str, Any]) -> int | None:
    size = _known(response.get("bodySize"))
    if size is None:
        content = response.get("content")
        size = _known(content.get("size")) if isinstance(content, dict) else None
    return int(size) if size is not None else None


def _known(value: Any) -> float | None:
    """A figure HAR may give as -1 (or leave out) when it is unknown."""
    number = _number(value)
    return number if number is not None and number >= 0 else None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _summary(entry: Any) -> str:
    """The entry as one line for the report: method and URL when it has them."""
    request = entry.get("request") if isinstance(entry, dict) else None
    if isinstance(request, dict) and isinstance(request.get("url"), str):
        return f"{request.get('method', '?')} {request['url']}"[:TEXT_CUT]
    return json.dumps(entry, ensure_ascii=False, separators=(",", ":"))[:TEXT_CUT]
