"""`PooledHttpSender`: a lean HTTP/1.1 keep-alive client for the bots' hot path.

Each request costs a few microseconds here (an asyncio Protocol per connection and the
httptools parser that uvicorn uses), against some fifty in aiohttp's client, which is the
difference between the generator and the target being the bottleneck. Connections are
pooled per sender and reused in LIFO order; a connection is used by one request at a time
(no pipelining). Failures become error kinds, never exceptions: connect, timeout, protocol.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Iterator, Mapping
from urllib.parse import quote, urlencode, urlsplit

import httptools
import orjson

from esr.core.journey import PreparedRequest
from esr.engine.response import Response, basic_credentials, classify_status, sets_authorization

__all__ = ["PooledHttpSender"]


class _Failed(Exception):
    def __init__(self, kind: str, before_response: bool = False) -> None:
        self.kind = kind
        self.before_response = before_response  # nothing came back: safe to retry elsewhere


class _Connection(asyncio.Protocol):
    """One keep-alive connection; `exchange` sends a request and awaits its response."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.waiter: asyncio.Future | None = None
        self.head = False
        self.received = False
        self.headers_done = False
        self.headers: list[tuple[bytes, bytes]] = _NO_HEADERS
        self.body: list[bytes] = []
        # httptools calls only the callbacks the protocol has: without on_header, no header
        # costs a Python call (see _HeaderConnection)
        self.parser = httptools.HttpResponseParser(self)

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._fail("protocol")

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and self.headers_done and not self.parser.should_keep_alive():
            self.on_message_complete()  # a body without length ends when the server closes
        self._fail("protocol", before_response=not self.received)

    # httptools callbacks
    def on_headers_complete(self) -> None:
        self.headers_done = True
        if self.head:  # a HEAD response announces a body it does not send
            self.on_message_complete()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        status = self.parser.get_status_code()
        keep = self.parser.should_keep_alive() and not self.head
        waiter.set_result((status, self.headers, b"".join(self.body), keep))
        self.waiter = None

    def _fail(self, kind: str, before_response: bool = False) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(_Failed(kind, before_response))

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def exchange(self, data: bytes, head: bool) -> asyncio.Future:
        self.body = []
        self.head = head
        self.received = self.headers_done = False
        self.waiter = self.loop.create_future()
        assert self.transport is not None
        self.transport.write(data)
        return self.waiter


_NO_HEADERS: list[tuple[bytes, bytes]] = []  # shared and never appended to


class _HeaderConnection(_Connection):
    """A connection that keeps response headers, for journeys that read them."""

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def exchange(self, data: bytes, head: bool) -> asyncio.Future:
        self.headers = []
        return super().exchange(data, head)


class PooledHttpSender:
    """Sends to `base_url` over up to `max_connections` keep-alive connections."""

    def __init__(self, base_url: str, *, timeout: float, max_connections: int = 1000,
                 keep_headers: bool = True) -> None:
        base_url, authorization = basic_credentials(base_url)
        parts = urlsplit(base_url)
        self._protocol = _HeaderConnection if keep_headers else _Connection
        self.host = parts.hostname or "127.0.0.1"
        self.tls = parts.scheme == "https"
        self.port = parts.port or (443 if self.tls else 80)
        self.prefix = parts.path.rstrip("/")
        host_header = parts.netloc
        # from the target URL's user and password; a request's own Authorization wins
        self._authorization = "" if authorization is None else f"Authorization: {authorization}\r\n"
        self.timeout = timeout
        self.max_connections = max_connections
        self._idle: list[_Connection] = []
        self._open = 0
        self._waiting: deque[asyncio.Future] = deque()
        self._fixed = f"Host: {host_header}\r\nUser-Agent: hms-esr\r\n"
        self._targets: dict[str, str] = {}  # path -> request target as sent (most runs send a few paths)
        self._ssl: ssl.SSLContext | None = ssl.create_default_context() if self.tls else None

    def _idle_connection(self) -> _Connection | None:
        """The most recently used idle connection still open, if any (no await: the usual case)."""
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed:
                return conn
            self._open -= 1
        return None

    async def _acquire(self) -> tuple[_Connection, bool]:
        """A connection and whether it was used before (an idle one may have been closed by
        the server just now)."""
        conn = self._idle_connection()
        if conn is not None:
            return conn, True
        if self._open >= self.max_connections:
            return await self._wait_for_connection()
        return await self._open_new()

    async def _open_new(self) -> tuple[_Connection, bool]:
        self._open += 1
        try:
            return await self._connect(), False
        except BaseException:
            self._release_slot()
            raise

    async def _wait_for_connection(self) -> tuple[_Connection, bool]:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.timeout):
                while True:
                    waiter = loop.create_future()
                    self._waiting.append(waiter)
                    try:
                        handed = await waiter
                    except asyncio.CancelledError:
                        if waiter.done() and not waiter.cancelled() and waiter.result() is not None:
                            self._release(waiter.result(), True)  # handed over as we gave up
                        raise
                    if handed is not None:
                        return handed, True
                    if self._open < self.max_connections:  # a slot was freed: open our own
                        return await self._open_new()
        except TimeoutError:
            raise _Failed("timeout") from None

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.timeout):
                _, conn = await loop.create_connection(
                    lambda: self._protocol(loop), self.host, self.port, ssl=self._ssl,
                    server_hostname=self.host if self.tls else None)
        except TimeoutError:
            raise _Failed("timeout") from None
        except (OSError, ssl.SSLError):
            raise _Failed("connect") from None
        return conn

    async def warm(self, count: int) -> int:
        """Open up to `count` connections before the run starts, so the first second of load
        does not pay for connection set-up; returns how many opened."""
        count = min(count, self.max_connections - self._open)
        self._open += count
        results = await asyncio.gather(*(self._connect() for _ in range(count)), return_exceptions=True)
        opened = 0
        for result in results:
            if isinstance(result, _Connection):
                self._idle.append(result)
                opened += 1
            else:
                self._open -= 1
        return opened

    def _release_slot(self) -> None:
        self._open -= 1
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _release(self, conn: _Connection, keep: bool) -> None:
        if not keep or conn.closed:
            conn.close()
            self._release_slot()
            return
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        self._idle.append(conn)

    def _encode(self, request: PreparedRequest, headers: dict[str, str]) -> bytes:
        target = self._targets.get(request.path)
        if target is None:
            if len(self._targets) >= _TARGETS_KEPT:  # paths with ids in them: start over rather than grow
                self._targets.clear()
            target = self._targets[request.path] = quote(self.prefix + request.path, safe=_PATH_SAFE)
        if request.query:
            target += ("&" if "?" in target else "?") + urlencode(request.query)
        body = b""
        extra = ""
        if request.json is not None:
            body = orjson.dumps(request.json)
            extra = "Content-Type: application/json\r\n"
        elif request.body is not None:
            body = request.body if isinstance(request.body, bytes) else request.body.encode()
        lines = [f"{request.method} {target} HTTP/1.1\r\n", self._fixed, extra]
        if self._authorization and not sets_authorization(request.headers):
            lines.append(self._authorization)
        for name, value in headers.items():
            lines.append(f"{name}: {value}\r\n")
        for name, value in request.headers.items():
            lines.append(f"{name}: {value}\r\n")
        if body or request.method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body)}\r\n")
        lines.append("\r\n")
        return "".join(lines).encode("latin-1") + body

    async def send(self, request: PreparedRequest, headers: dict[str, str]) -> Response:
        try:
            data = self._encode(request, headers)
        except (UnicodeEncodeError, ValueError):  # e.g. a header value outside Latin-1
            return Response(0, _EMPTY, b"", "protocol")
        timeout = request.timeout or self.timeout
        head = request.method == "HEAD"
        for attempt in (1, 2):
            conn = self._idle_connection()
            reused = True
            if conn is None:
                try:
                    conn, reused = await self._acquire()
                except _Failed as failed:
                    return Response(0, _EMPTY, b"", failed.kind)
            future = conn.exchange(data, head)
            timer = conn.loop.call_later(timeout, conn._fail, "timeout")  # noqa: SLF001
            try:
                status, raw_headers, body, keep = await future
            except _Failed as failed:
                conn.close()
                self._release_slot()
                if failed.before_response and reused and attempt == 1:
                    continue  # the server closed an idle connection as we wrote: once more, fresh
                return Response(0, _EMPTY, b"", failed.kind)
            except BaseException:  # cancelled: the connection is in an unknown state
                conn.close()
                self._release_slot()
                raise
            finally:
                timer.cancel()
            self._release(conn, keep)
            headers_seen = RawHeaders(raw_headers) if raw_headers else _EMPTY
            return Response(status, headers_seen, body, classify_status(status))
        raise AssertionError("unreachable")  # pragma: no cover

    async def close(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()
        for waiter in self._waiting:
            if not waiter.done():
                waiter.cancel()


_EMPTY: Mapping[str, str] = {}
_PATH_SAFE = "/?&=:@!$'()*+,;%-._~"  # already-encoded and reserved characters stay as they are
_TARGETS_KEPT = 4096  # encoded request targets a sender keeps


class RawHeaders(Mapping[str, str]):
    """Response headers as received, decoded only if a journey reads them (most never do)."""

    __slots__ = ("_raw", "_decoded")

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self._raw = raw
        self._decoded: dict[str, str] | None = None

    def _dict(self) -> dict[str, str]:
        if self._decoded is None:
            self._decoded = {n.decode("latin-1"): v.decode("latin-1") for n, v in self._raw}
        return self._decoded

    def __getitem__(self, name: str) -> str:
        return self._dict()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._dict())

    def __len__(self) -> int:
        return len(self._raw)
