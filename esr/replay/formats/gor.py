"""GoReplay `.gor` files, as written by `gor --output-file`: raw HTTP messages with meta lines.

The file is a series of payloads, each followed by the line `🐵🙈🙉` (GoReplay writes
"\\n🐵🙈🙉\\n" after every payload). A payload is a meta line, then a raw HTTP/1.x message:

    <type> <id> <timestamp_ns> [<latency_ns>]
    POST /claims?x=1 HTTP/1.1          type 1: a request, 2: its original response,
    Host: api.example                  3: a response to a replayed request
    Content-Length: 9

    {"a": 1}

One `LogRecord` per request payload, at its timestamp; a response payload with the same id,
before or after it within `window` payloads, gives it its status and its latency (the
response's fourth meta field) as `duration_ms`. Requests come out in file order, each once
its response is found or `window` payloads have passed, so memory stays bounded. Responses
of replays (type 3) and responses whose request is not in the window are `Skipped`; a payload
that cannot be read is a `BadLine`. Every source is "file:line" of the payload's meta line.

Headers are kept in order, without hop-by-hop headers (Connection and the headers it names,
Keep-Alive, Transfer-Encoding, ...): the sender frames the request itself, so a chunked body
is given decoded.

Line endings. The lines come without their endings and HTTP puts CRLF after the request
line and every header, so the body is rebuilt from its lines:
- when the request line still ends in "\\r" (the caller removed only "\\n"), the body is the
  lines joined with "\\n": byte for byte what was captured, binary bodies included;
- otherwise (the caller removed "\\r\\n" and "\\n" alike), the body's line breaks are
  restored as all LF or all CRLF, whichever matches its Content-Length or its chunked
  framing. Text bodies with one kind of line break round-trip exactly; a body that mixes
  them (a multipart upload of an LF text file, most binary bodies) cannot be restored and
  is a `BadLine`.
Text is bytes decoded as UTF-8 with surrogate escapes; lines are split at "\\n" only.
"""

from __future__ import annotations

import re
from collections import OrderedDict, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from esr.replay.formats._common import HOP_BY_HOP, TOKEN, bad_line, end_to_end
from esr.replay.record import BadLine, LogRecord, Parsed, Skipped

__all__ = ["NAME", "SEPARATOR", "WINDOW", "parse", "sniff"]

NAME = "gor"
SAMPLE = (  # a line (or file) of this format, for `esr replay --list-formats`
    '1 a1b2c3 1709539201123456789 0',
    'GET /api/claims?id=3 HTTP/1.1',
    'Host: claims.example',
    'User-Agent: curl/8.5.0',
    '',
    '🐵🙈🙉',
)
KEEP_CR = True  # the file reader keeps CR before LF, so bodies come back byte for byte
SEPARATOR = "\U0001F435\U0001F648\U0001F649"  # 🐵🙈🙉
WINDOW = 10_000  # payloads a request waits for its response

MIN_TIMESTAMP_NS = 10**17  # 1973-03-03: anything smaller is not nanoseconds since 1970

REPLAYED = "replayed response (payload type 3)"
ORPHAN = "response without its request"
CONNECT = "CONNECT tunnel"
ASTERISK = "request for '*' (whole server)"

_META = re.compile(r"[123] \S+ \d+(?: -?\d+)?")
_REQUEST_LINE = re.compile(rf"({TOKEN.pattern}) (\S+) (HTTP/\d\.\d)")
_STATUS_LINE = re.compile(r"HTTP/\d(?:\.\d)? (\d{3})(?: .*)?")
_HEX = re.compile(rb"[0-9A-Fa-f]+")


def sniff(head: list[str]) -> bool:
    """The payload separator, or a meta line followed by a request or status line."""
    lines = [line.rstrip("\r") for line in head]
    if SEPARATOR in lines:
        return True
    return (len(lines) >= 2 and _META.fullmatch(lines[0]) is not None
            and (_REQUEST_LINE.fullmatch(lines[1]) is not None or _STATUS_LINE.fullmatch(lines[1]) is not None))


def parse(lines: Iterable[tuple[int, str]], source: str, *, window: int = WINDOW) -> Iterator[Parsed]:
    """One `LogRecord` per request payload, in file order; see the module's docstring."""
    if isinstance(window, bool) or not isinstance(window, int) or window < 0:
        raise ValueError(f"gor option window={window!r}: expected a whole number of payloads, 0 or more")
    pairing = _Pairing(window)
    for index, (start, payload) in enumerate(_payloads(lines)):
        yield from pairing.add(index, _read(payload, f"{source}:{start}"))
    yield from pairing.finish()


def _payloads(lines: Iterable[tuple[int, str]]) -> Iterator[tuple[int, list[str]]]:
    """(line number of the meta line, the payload's lines). Blank lines before a meta line are
    ignored; after a line that is not a meta line nothing is kept up to the next separator, so a
    file that is not a GoReplay file is not held in memory."""
    payload: list[str] = []
    start = 0
    keep = True
    for number, text in lines:
        if text == SEPARATOR or text == SEPARATOR + "\r":
            if payload:
                yield start, payload
            payload = []
        elif payload:
            if keep:
                payload.append(text)
        elif text.strip():
            start, payload = number, [text]
            keep = _META.fullmatch(text.rstrip("\r")) is not None
    if payload:
        yield start, payload


@dataclass(frozen=True, slots=True)
class _Request:
    pid: str
    record: LogRecord


@dataclass(frozen=True, slots=True)
class _Response:
    pid: str
    status: int
    duration_ms: float | None
    source: str


def _read(payload: list[str], where: str) -> _Request | _Response | Skipped | BadLine:
    meta = payload[0].rstrip("\r")
    fields = meta.split(" ")
    if len(fields) not in (3, 4) or "" in fields:
        return bad_line(f"bad meta line: expected '<type> <id> <timestamp_ns> [<latency_ns>]' separated by "
                        f"single spaces, found {meta[:60]!r}", where, meta)
    kind, pid, stamp = fields[:3]
    if kind not in ("1", "2", "3"):
        return bad_line(f"bad payload type: {kind!r} is not 1 (request), 2 (response) or 3 (replayed response)",
                        where, meta)
    if not stamp.isascii() or not stamp.isdigit():
        return bad_line(f"bad timestamp: {stamp!r} is not a whole number of nanoseconds since 1970", where, meta)
    if int(stamp) < MIN_TIMESTAMP_NS:
        return bad_line(f"bad timestamp: {stamp} is too small for nanoseconds since 1970 "
                        f"(expected 19 digits, e.g. 1709539201123456789)", where, meta)
    latency = fields[3] if len(fields) == 4 else None
    if latency is not None and re.fullmatch(r"-?\d+", latency) is None:
        return bad_line(f"bad latency: {latency!r} is not a whole number of nanoseconds", where, meta)
    if kind == "3":
        return Skipped(REPLAYED, where)
    if kind == "2":
        first = payload[1].rstrip("\r") if len(payload) > 1 else ""
        match = _STATUS_LINE.fullmatch(first)
        if match is None:
            return bad_line(f"no status line: expected 'HTTP/1.1 200 OK' after the meta line, found {first[:60]!r}",
                            where, first)
        nanoseconds = int(latency) if latency is not None else -1
        return _Response(pid, int(match[1]), nanoseconds / 1_000_000 if nanoseconds >= 0 else None, where)
    try:
        record = _request(payload, int(stamp) / 1_000_000_000, where)
    except _BadPayload as exc:
        return bad_line(str(exc), where, exc.text)
    return record if isinstance(record, Skipped) else _Request(pid, record)


class _BadPayload(Exception):
    def __init__(self, reason: str, text: str) -> None:
        super().__init__(reason)
        self.text = text


def _request(payload: list[str], time: float, where: str) -> LogRecord | Skipped:
    if len(payload) < 2 or not payload[1].strip():
        raise _BadPayload("no request line: expected 'METHOD /path HTTP/1.1' after the meta line", payload[0])
    line = payload[1]
    raw = line.endswith("\r")
    match = _REQUEST_LINE.fullmatch(line.rstrip("\r"))
    if match is None:
        raise _BadPayload(f"no request line: expected 'METHOD /path HTTP/1.1', found {line[:60]!r}", line)
    method, target, _ = match.groups()
    method = method.upper()
    headers, rest = _headers(payload, line)
    host = next((value for name, value in headers if name.lower() == "host"), None)
    if method == "CONNECT":
        return Skipped(CONNECT, where)
    if target == "*":
        return Skipped(ASTERISK, where)
    if not target.startswith("/"):
        target, host = _absolute(target, line)
    body = _body(headers, rest, raw, line)
    return LogRecord(time=time, method=method, target=target, source=where, host=host or None,
                     headers=end_to_end(headers, HOP_BY_HOP), body=body)


def _headers(payload: list[str], line: str) -> tuple[list[tuple[str, str]], list[str]]:
    """The header fields in order, and the lines after the blank line that ends them."""
    headers: list[tuple[str, str]] = []
    for position in range(2, len(payload)):
        text = payload[position].rstrip("\r")
        if not text:
            return headers, payload[position + 1:]
        if text[0] in " \t" and headers:
            name, value = headers[-1]
            headers[-1] = (name, (value + " " + text.strip(" \t")).strip())
            continue
        name, colon, value = text.partition(":")
        if not colon or TOKEN.fullmatch(name.strip()) is None:
            raise _BadPayload(f"bad header: {text[:60]!r} is not 'Name: value'", text)
        headers.append((name.strip(), value.strip(" \t")))
    raise _BadPayload("no end of headers: the payload ends before the blank line after the headers "
                      "(a truncated capture?)", line)


def _absolute(target: str, line: str) -> tuple[str, str | None]:
    """An absolute-form target (a request to a proxy): path?query, and the host it names."""
    try:
        parts = urlsplit(target)
    except ValueError:
        parts = None
    if parts is None or parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise _BadPayload(f"bad request target: {target[:60]!r} is neither '/path' nor an http(s) URL", line)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return path, parts.netloc.rpartition("@")[2]


def _body(headers: list[tuple[str, str]], rest: list[str], raw: bool, line: str) -> bytes | None:
    """The request body, framed by Transfer-Encoding or Content-Length as HTTP/1.1 says."""
    codings = [token.strip().lower() for name, value in headers if name.lower() == "transfer-encoding"
               for token in value.split(",") if token.strip()]
    lengths = {token.strip() for name, value in headers if name.lower() == "content-length"
               for token in value.split(",")}
    if codings:
        if codings[-1] != "chunked":
            raise _BadPayload(f"bad Transfer-Encoding: {', '.join(codings)!r} does not end in chunked, "
                              f"so the body has no length", line)
        for candidate in _candidates(rest, raw, tail=False):
            body = _dechunk(candidate)
            if body is not None:
                return body
        raise _BadPayload("bad chunked body: the chunk sizes do not match the data (a truncated "
                          "capture, or line breaks that cannot be restored)", line)
    if not lengths:
        return None
    if len(lengths) > 1 or not all(value.isascii() and value.isdigit() for value in lengths):
        raise _BadPayload(f"bad Content-Length: {', '.join(sorted(lengths))!r} is not one whole number", line)
    expected = int(lengths.pop())
    candidates = _candidates(rest, raw, tail=True)
    for candidate in candidates:
        if len(candidate) == expected:
            return candidate
    with_lf, with_crlf = len(candidates[0]), len(candidates[-1 if raw else 1])
    if with_lf > expected:
        return candidates[0][:expected]
    if max(map(len, candidates)) < expected:
        raise _BadPayload(f"body cut short: Content-Length is {expected} but the capture holds {with_crlf} "
                          f"bytes (GoReplay's capture size limit?)", line)
    raise _BadPayload(f"body line breaks lost: Content-Length is {expected} but the body is {with_lf} bytes "
                      f"with LF and {with_crlf} with CRLF line breaks; it mixes both, which lines without "
                      f"their endings cannot restore", line)


def _candidates(rest: list[str], raw: bool, *, tail: bool) -> list[bytes]:
    """The bodies the lines can stand for: exact when "\\r" was kept, else all-LF or all-CRLF
    line breaks (and, for a Content-Length, a final "\\r" that went with the separator's "\\n")."""
    if raw:
        return [_bytes("\n".join(rest))]
    joined = [_bytes("\n".join(rest)), _bytes("\r\n".join(rest))]
    return joined + [body + b"\r" for body in joined] if tail else joined


def _bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _dechunk(data: bytes) -> bytes | None:
    """A chunked body's content (trailers dropped), or None when the framing does not fit.
    Framing lines may end in LF or CRLF."""
    out = bytearray()
    position = 0
    while True:
        end = data.find(b"\n", position)
        if end < 0:
            return None
        size_text = data[position:end].rstrip(b"\r").split(b";", 1)[0].strip(b" \t")
        if _HEX.fullmatch(size_text) is None:
            return None
        size = int(size_text, 16)
        position = end + 1
        if size == 0:
            return bytes(out)
        chunk = data[position:position + size]
        if len(chunk) < size:
            return None
        out += chunk
        position += size
        if data.startswith(b"\r\n", position):
            position += 2
        elif data.startswith(b"\n", position):
            position += 1
        else:
            return None


@dataclass(slots=True)
class _Slot:
    index: int
    item: Parsed
    pid: str | None = None  # a request still waiting for its response
    status: int | None = None
    duration_ms: float | None = None

    def result(self) -> Parsed:
        if isinstance(self.item, LogRecord) and self.status is not None:
            return replace(self.item, status=self.status, duration_ms=self.duration_ms)
        return self.item


class _Pairing:
    """Requests matched with their responses by id, within `window` payloads either way."""

    def __init__(self, window: int) -> None:
        self.window = window
        self.queue: deque[_Slot] = deque()  # everything not yet yielded, in file order
        self.waiting: dict[str, _Slot] = {}  # request id -> its slot, until its response comes
        self.responses: OrderedDict[str, tuple[int, _Response]] = OrderedDict()  # before their request

    def add(self, index: int, item: _Request | _Response | Skipped | BadLine) -> Iterator[Parsed]:
        if isinstance(item, _Request):
            slot = _Slot(index, item.record)
            early = self.responses.pop(item.pid, None)
            if early is not None:
                slot.status, slot.duration_ms = early[1].status, early[1].duration_ms
            else:
                slot.pid = item.pid
                self.waiting[item.pid] = slot
            self.queue.append(slot)
        elif isinstance(item, _Response):
            waiting = self.waiting.pop(item.pid, None)
            if waiting is not None:
                waiting.pid, waiting.status, waiting.duration_ms = None, item.status, item.duration_ms
            else:
                displaced = self.responses.pop(item.pid, None)
                if displaced is not None:
                    yield Skipped(ORPHAN, displaced[1].source)
                self.responses[item.pid] = (index, item)
        else:
            self.queue.append(_Slot(index, item))
        yield from self._release(index)

    def finish(self) -> Iterator[Parsed]:
        yield from self._release(None)

    def _release(self, index: int | None) -> Iterator[Parsed]:
        """Yield the queue's head while it is complete or out of the window (all, at the end)."""
        while self.queue:
            head = self.queue[0]
            if head.pid is not None and index is not None and index - head.index < self.window:
                break
            self.queue.popleft()
            if head.pid is not None and self.waiting.get(head.pid) is head:
                del self.waiting[head.pid]
            yield head.result()
        while self.responses:
            first_index, response = next(iter(self.responses.values()))
            if index is not None and index - first_index < self.window:
                break
            self.responses.popitem(last=False)
            yield Skipped(ORPHAN, response.source)
