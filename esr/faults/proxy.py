"""`FaultProxy`: an HTTP/1.1 proxy on loopback that applies the built-in faults (`esr.core.toxics`).

Toxiproxy works on TCP bytes and so cannot answer `503` by itself; this proxy finds request and
response boundaries with httptools, so every fault acts on whole requests and responses:

    client --request--> [buffer whole request] --plan_request(toxics, rng)--> error | swallow | forward
    client <--shaped--- [latency, bandwidth, reset] <--whole response-- upstream

`esr.core.toxics.plan_request` is the pure part: which faults hit one request, drawn from the proxy's
seeded `random.Random`. The protocols here only carry bytes. Requests on one connection are served
strictly in order; the request is re-framed with a Content-Length, the response is forwarded as
the upstream sent it. `docs/faults.md` ("The fault proxy") states each fault's exact effect.
"""

from __future__ import annotations

import asyncio
import random
import socket
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

import httptools

from esr.core.toxics import Action, Down, Plan, Toxic, plan_request, reset_cut

__all__ = ["FaultProxy"]

PACE_SLICE_S = 0.05  # bandwidth pacing writes one slice of the response every 1/20 s
ERRORS_BODY = b'{"error": "injected by ESR: errors fault"}'


def _answer(status: int, body: bytes, *, keep_alive: bool, fault: str | None = None) -> bytes:
    """A complete JSON response written by the proxy itself."""
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Unknown"
    lines = [f"HTTP/1.1 {status} {reason}", "Content-Type: application/json",
             f"Content-Length: {len(body)}", f"Connection: {'keep-alive' if keep_alive else 'close'}"]
    if fault:
        lines.append(f"X-ESR-Fault: {fault}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@dataclass(frozen=True, slots=True)
class _Request:
    data: bytes  # re-framed for the upstream
    head: bool
    keep_alive: bool


@dataclass(frozen=True, slots=True)
class _Bad:
    reason: str


class _UpstreamFailed(Exception):
    def __init__(self, partial: bytes) -> None:
        self.partial = partial  # what came back before the failure


class _Upstream(asyncio.Protocol):
    """One keep-alive connection to the upstream; `exchange` returns a whole response, raw."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.lost: asyncio.Future[None] = loop.create_future()
        self.waiter: asyncio.Future[tuple[bytes, bool]] | None = None
        self.chunks: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def exchange(self, data: bytes, head: bool) -> asyncio.Future[tuple[bytes, bool]]:
        self.chunks, self.head, self.has_length, self.final = [], head, False, False
        self.parser = httptools.HttpResponseParser(self)  # fresh: a HEAD answer leaves it mid-body
        self.waiter = self.loop.create_future()
        assert self.transport is not None
        self.transport.write(data)
        return self.waiter

    def data_received(self, data: bytes) -> None:
        if self.waiter is None:  # nothing asked for: a broken upstream; never pass it on
            self.close()
            return
        self.chunks.append(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._finish(failed=True)

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"content-length" or (name.lower() == b"transfer-encoding" and b"chunked" in value.lower()):
            self.has_length = True

    def on_headers_complete(self) -> None:
        self.final = self.parser.get_status_code() >= 200  # a 1xx is followed by the real answer
        if self.final and self.head:  # announces a body it does not send
            self._finish(keep=False)

    def on_message_complete(self) -> None:
        if self.final:
            self._finish(keep=self.parser.should_keep_alive())

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and self.final and not self.has_length:
            self._finish(keep=False)  # a body without a length ends when the upstream closes
        self._finish(failed=True)
        if not self.lost.done():
            self.lost.set_result(None)

    def _finish(self, *, keep: bool = False, failed: bool = False) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is None or waiter.done():
            return
        if failed:
            waiter.set_exception(_UpstreamFailed(b"".join(self.chunks)))
        else:
            waiter.set_result((b"".join(self.chunks), keep))

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class _Client(asyncio.Protocol):
    """One client connection: parses requests, queues them, and serves them in order."""

    def __init__(self, proxy: FaultProxy) -> None:
        self.proxy = proxy
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.stalled = False  # a request was swallowed: nothing after it can be answered
        self.lost: asyncio.Future[None] = self.loop.create_future()
        self.parser = httptools.HttpRequestParser(self)
        self.pending: deque[_Request | _Bad] = deque()
        self.task: asyncio.Task[None] | None = None
        self.upstream: _Upstream | None = None
        self.paused = False
        self.writable: asyncio.Future[None] | None = None
        self.headers: list[bytes] = []  # of the request being parsed, from on_message_begin on
        self.body: list[bytes] = []

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if self.proxy.down:  # accepted just before the proxy went down or closed
            self.drop()
            return
        self.proxy._clients.add(self)  # noqa: SLF001

    def data_received(self, data: bytes) -> None:
        if self.stalled or self.closed or (self.pending and isinstance(self.pending[-1], _Bad)):
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            if self.parser.get_method() != b"CONNECT":  # forwarded without its Upgrade: go on in HTTP/1.1
                self.parser = httptools.HttpRequestParser(self)
                self.data_received(data[upgrade.args[0]:])
        except httptools.HttpParserError as exc:
            self._queue(_Bad(str(exc) or "malformed request"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.proxy._clients.discard(self)  # noqa: SLF001
        if self.task is not None:
            self.task.cancel()
        if self.upstream is not None:
            self.upstream.close()
        self._wake()
        if not self.lost.done():
            self.lost.set_result(None)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self._wake()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.url, self.headers, self.body, self.framed, self.expects = b"", [], [], False, False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        lower = name.lower()
        if lower in (b"content-length", b"transfer-encoding"):
            self.framed = True  # re-framed below with the length of the whole body
        elif lower == b"expect" and value.lower() == b"100-continue":
            self.expects = True  # answered here: the proxy wants the whole body before it decides
        elif lower != b"upgrade":  # the proxy speaks HTTP/1.1 only, so it upgrades nothing
            self.headers.append(b"%s: %s\r\n" % (name, value))

    def on_headers_complete(self) -> None:
        if self.expects and not self.pending and (self.task is None or self.task.done()):
            self._write(b"HTTP/1.1 100 Continue\r\n\r\n")  # (else a response is being written)

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        method = self.parser.get_method()
        if method == b"CONNECT":
            self._queue(_Bad("CONNECT is not supported: this proxy forwards to one upstream"))
            return
        body = b"".join(self.body)
        length = [b"Content-Length: %d\r\n" % len(body)] if self.framed or body else []
        head = b"%s %s HTTP/%s\r\n" % (method, self.url, self.parser.get_http_version().encode())
        data = b"".join([head, *self.headers, *length, b"\r\n", body])
        self._queue(_Request(data, method == b"HEAD", self.parser.should_keep_alive()))

    # serving
    def _queue(self, item: _Request | _Bad) -> None:
        self.pending.append(item)
        if self.task is None or self.task.done():
            self.task = self.proxy._spawn(self._serve())  # noqa: SLF001

    async def _serve(self) -> None:
        while self.pending and not self.closed:
            item = self.pending.popleft()
            if isinstance(item, _Bad):
                self.proxy.stats["bad_requests"] += 1
                self._write(_answer(400, b'{"error": "bad request: %s"}' % _json_text(item.reason), keep_alive=False))
                self.drop()
                return
            keep = await self._serve_one(item)
            if not keep:
                self.drop()
                return

    async def _serve_one(self, request: _Request) -> bool:
        """Serve one request; False when the client connection must close after it."""
        stats = self.proxy.stats
        stats["requests"] += 1
        plan = plan_request(self.proxy._toxics.values(), self.proxy.rng)  # noqa: SLF001
        if plan.action is Action.DROP:
            return False
        if plan.action is Action.SWALLOW:
            stats["timeouts"] += 1
            self.stalled = True
            self.pending.clear()
            return True
        if plan.action is Action.ERROR:
            stats["errors"] += 1
            data, keep = _answer(plan.status, ERRORS_BODY, keep_alive=request.keep_alive, fault="errors"), True
        else:
            data, keep = await self._forward(request)
        return await self._deliver(data, plan) and keep and request.keep_alive

    async def _forward(self, request: _Request) -> tuple[bytes, bool]:
        stats = self.proxy.stats
        for attempt in (1, 2):
            upstream, reused = self.upstream, self.upstream is not None and not self.upstream.closed
            if upstream is None or not reused:
                try:
                    upstream = self.upstream = await self.proxy._connect()  # noqa: SLF001
                except OSError as exc:
                    stats["refused"] += 1
                    why = f"the upstream refused the connection ({exc.strerror or exc})"
                    return self._bad_gateway(why, request.keep_alive), True
            if attempt == 1:
                stats["forwarded"] += 1
            try:
                data, keep = await upstream.exchange(request.data, request.head)
            except _UpstreamFailed as failed:
                upstream.close()
                self.upstream = None
                if not failed.partial and reused and attempt == 1:
                    continue  # the upstream closed an idle connection as we wrote: once more, fresh
                stats["upstream_failures"] += 1
                if failed.partial:
                    return failed.partial, False  # pass the cut answer on, then close as it did
                why = "the upstream closed the connection without answering"
                return self._bad_gateway(why, request.keep_alive), True
            if not keep:
                upstream.close()
                self.upstream = None
            return data, keep
        raise AssertionError("unreachable")  # pragma: no cover

    def _bad_gateway(self, why: str, keep_alive: bool) -> bytes:
        where = f"{self.proxy.upstream_host}:{self.proxy.upstream_port}"
        body = b'{"error": "bad gateway: %s (%s)"}' % (_json_text(why), where.encode())
        return _answer(502, body, keep_alive=keep_alive)

    async def _deliver(self, data: bytes, plan: Plan) -> bool:
        """Write a response as the plan shapes it; False when the connection was reset."""
        stats = self.proxy.stats
        if plan.delay_s > 0:
            stats["delayed"] += 1
            await asyncio.sleep(plan.delay_s)  # on top of the upstream's own time, as Toxiproxy adds it
        cut = reset_cut(plan.reset, len(data)) if plan.reset is not None else None
        payload = data if cut is None else data[:cut]
        if plan.bytes_per_s:
            stats["throttled"] += 1
            await self._paced(payload, plan.bytes_per_s)
        else:
            self._write(payload)
        if self.paused or cut is not None:
            await self._drain(empty=cut is not None)
        if cut is not None:
            stats["resets"] += 1
            self.reset()
            return False
        return True

    async def _paced(self, data: bytes, bytes_per_s: float) -> None:
        """Write `data` so its last byte leaves len/bytes_per_s seconds from now."""
        start = self.loop.time()
        step = max(1, int(bytes_per_s * PACE_SLICE_S))
        for offset in range(0, len(data), step):
            chunk = data[offset:offset + step]
            await asyncio.sleep(max(0.0, start + (offset + len(chunk)) / bytes_per_s - self.loop.time()))
            self._write(chunk)
            await self._drain()

    def _write(self, data: bytes) -> None:
        if not self.closed and self.transport is not None and data:
            self.transport.write(data)

    async def _drain(self, *, empty: bool = False) -> None:
        """Wait while the transport is over its high-water mark; with `empty`, until every byte
        has gone to the kernel (a reset must not discard what it lets through)."""
        if empty and self.transport is not None and not self.closed:
            self.transport.set_write_buffer_limits(high=0)  # pauses now if anything is buffered
        while self.paused and not self.closed:
            if self.writable is None or self.writable.done():
                self.writable = self.loop.create_future()
            await self.writable

    def _wake(self) -> None:
        if self.writable is not None and not self.writable.done():
            self.writable.set_result(None)

    # ending
    def drop(self) -> None:
        """Close gracefully: what was written still goes out."""
        self._end()
        if self.transport is not None:
            self.transport.close()

    def reset(self) -> None:
        """Abort with a TCP RST (SO_LINGER 0), so the client sees a reset, not an end."""
        self._end()
        if self.transport is not None:
            sock = self.transport.get_extra_info("socket")
            if sock is not None:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_0)
                except OSError:
                    pass
            self.transport.abort()

    def _end(self) -> None:
        self.closed = True
        self.pending.clear()
        if self.task is not None and self.task is not asyncio.current_task():
            self.task.cancel()
        if self.upstream is not None:
            self.upstream.close()


_LINGER_0 = b"\x01\x00\x00\x00\x00\x00\x00\x00"  # struct linger {l_onoff = 1, l_linger = 0}


def _json_text(text: str) -> bytes:
    return text.replace("\\", "\\\\").replace('"', "'").encode("ascii", "replace")


class FaultProxy:
    """Listens on loopback and forwards HTTP/1.1 to one upstream, applying the active toxics."""

    def __init__(self, upstream_host: str, upstream_port: int, *, host: str = "127.0.0.1", port: int = 0,
                 seed: int = 0) -> None:
        self.upstream_host, self.upstream_port = upstream_host, upstream_port
        self.host, self.port = host, port
        self.url = ""
        self.rng = random.Random(seed)
        # requests: complete requests received; forwarded: sent upstream; errors, timeouts, resets,
        # delayed, throttled: requests each fault hit; refused: 502s for an upstream that refused
        # the connection; upstream_failures: upstream closed or cut an answer; dropped: client
        # connections closed by Down; bad_requests: 400s for malformed requests
        self.stats: dict[str, int] = dict.fromkeys(
            ("requests", "forwarded", "errors", "timeouts", "resets", "refused", "delayed", "throttled",
             "bad_requests", "upstream_failures", "dropped"), 0)
        self._toxics: dict[str, Toxic] = {}
        self._clients: set[_Client] = set()
        self._upstreams: set[_Upstream] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._listener: socket.socket | None = None
        self._started = self.closed = False

    @property
    def active(self) -> dict[str, Toxic]:
        return dict(self._toxics)

    @property
    def down(self) -> bool:
        return self.closed or any(isinstance(t, Down) for t in self._toxics.values())

    def address_of(self, target_url: str) -> str:
        """`target_url` as sent through this proxy (once started): the proxy's host and port, the
        target's user, password and path, so nothing of the URL is lost on the way."""
        parts = urlsplit(target_url)
        userinfo = parts.netloc.rpartition("@")[0]
        return self.url.replace("//", f"//{userinfo}@" if userinfo else "//", 1) + parts.path.rstrip("/")

    async def start(self) -> str:
        """Bind (port 0: a free one, kept for later re-listens) and return the base URL."""
        if not self._started:
            self._started = True
            sock = self._bind()
            self.port = sock.getsockname()[1]
            host = f"[{self.host}]" if ":" in self.host else self.host
            self.url = f"http://{host}:{self.port}"
            if self.down:
                sock.close()
            else:
                self._listen(sock)
        return self.url

    def apply(self, key: str, toxic: Toxic) -> None:
        """Activate `toxic` under `key` from now on (replacing what `key` held)."""
        self._toxics[key] = toxic
        if isinstance(toxic, Down):
            self._stop_listening()
            for client in list(self._clients):
                self.stats["dropped"] += 1
                client.drop()

    def clear(self, key: str) -> None:
        """Deactivate `key`; when the last Down goes, listen again on the same port (an OSError
        if something else took the port meanwhile)."""
        if self._toxics.pop(key, None) is not None and self._started and not self.down and self._listener is None:
            self._listen(self._bind())

    async def close(self) -> None:
        """Stop listening, close every connection, and wait until they are gone."""
        if self.closed:
            return
        self.closed = True
        self._stop_listening()
        for client in list(self._clients):
            client.drop()
        for upstream in list(self._upstreams):
            upstream.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        ends = [c.lost for c in self._clients] + [u.lost for u in self._upstreams]
        if ends:
            await asyncio.wait(ends, timeout=2)

    # listening: by hand rather than loop.create_server, so that going down and up again is
    # synchronous (apply and clear return with the port closed or listening)
    def _bind(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            sock.listen(1024)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        return sock

    def _listen(self, sock: socket.socket) -> None:
        asyncio.get_running_loop().add_reader(sock.fileno(), self._accept, sock)
        self._listener = sock

    def _stop_listening(self) -> None:
        sock, self._listener = self._listener, None
        if sock is not None:
            asyncio.get_running_loop().remove_reader(sock.fileno())
            sock.close()

    def _accept(self, sock: socket.socket) -> None:
        for _ in range(_ACCEPT_BATCH):
            try:
                conn, _ = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # e.g. out of file descriptors: the client sees its connection closed
                return
            conn.setblocking(False)
            self._spawn(self._adopt(conn))

    async def _adopt(self, conn: socket.socket) -> None:
        try:
            await asyncio.get_running_loop().connect_accepted_socket(lambda: _Client(self), conn)
        except OSError:
            conn.close()

    async def _connect(self) -> _Upstream:
        loop = asyncio.get_running_loop()
        _, upstream = await loop.create_connection(lambda: _Upstream(loop), self.upstream_host, self.upstream_port)
        self._upstreams.add(upstream)
        upstream.lost.add_done_callback(lambda _: self._upstreams.discard(upstream))
        return upstream

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


_ACCEPT_BATCH = 64  # connections accepted per wake-up of the listening socket
