"""The fault proxy between ESR's own HTTP client and a real aiohttp upstream, all on loopback.

Each fault is checked by its effect on values: statuses, bodies, byte counts, what the upstream
saw, and timings with strict lower bounds (what a fault adds) and upper bounds either far above
what it adds or below what the wrong behaviour would take, so a slow or busy machine passes too."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
import orjson
import pytest
from aiohttp import web
from loopback import free_port, wait_until

from esr.core.journey import PreparedRequest
from esr.core.toxics import Bandwidth, Down, Errors, Latency, Reset, Timeout
from esr.engine.http import PooledHttpSender
from esr.engine.response import Response
from esr.faults.proxy import FaultProxy

pytestmark = [pytest.mark.integration,
              pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")]

BIG = bytes(range(256)) * 195 + b"x" * 80  # 50,000 bytes
CHUNKS = [b"alpha-", b"beta-" * 300, b"gamma"]
INJECTED = b'{"error": "injected by ESR: errors fault"}'
PATIENT_S = 60.0  # client timeouts where an answer is expected: only a hung test waits this long


@dataclass
class Upstream:
    url: str
    port: int
    seen: Counter[str] = field(default_factory=Counter)
    connections: set[int] = field(default_factory=set)


def req(path: str = "/ok", method: str = "GET", **kw: object) -> PreparedRequest:
    return PreparedRequest(method=method, path=path, endpoint="x", step="s", **kw)  # type: ignore[arg-type]


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    up = Upstream("", 0)

    @web.middleware
    async def count(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
        up.seen[request.path] += 1
        up.connections.add(id(request.transport))
        return await handler(request)

    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "path": request.path})

    async def big(request: web.Request) -> web.Response:
        return web.Response(body=BIG, content_type="application/octet-stream")

    async def chunked(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for chunk in CHUNKS:
            await resp.write(chunk)
        await resp.write_eof()
        return resp

    async def echo(request: web.Request) -> web.Response:
        return web.Response(body=await request.read(), content_type=request.content_type)

    async def empty(request: web.Request) -> web.Response:
        return web.Response(status=204)

    app = web.Application(middlewares=[count])
    app.router.add_get("/ok", ok)
    app.router.add_get("/big", big)
    app.router.add_get("/chunked", chunked)
    app.router.add_post("/echo", echo)
    app.router.add_get("/empty", empty)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    up.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # noqa: SLF001
    up.url = f"http://127.0.0.1:{up.port}"
    yield up
    await runner.cleanup()


@pytest.fixture
async def proxy(upstream: Upstream) -> AsyncIterator[FaultProxy]:
    fp = FaultProxy("127.0.0.1", upstream.port, seed=7)
    await fp.start()
    yield fp
    await fp.close()


@pytest.fixture
async def client(proxy: FaultProxy) -> AsyncIterator[PooledHttpSender]:
    sender = PooledHttpSender(proxy.url, timeout=PATIENT_S, max_connections=50)
    yield sender
    await sender.close()


async def timed(sender: PooledHttpSender, request: PreparedRequest) -> tuple[Response, float]:
    began = time.monotonic()
    response = await sender.send(request, {})
    return response, time.monotonic() - began


async def many(sender: PooledHttpSender, count: int, request: PreparedRequest, concurrency: int = 50
               ) -> list[tuple[Response, float]]:
    gate = asyncio.Semaphore(concurrency)

    async def one() -> tuple[Response, float]:
        async with gate:
            return await timed(sender, request)

    return await asyncio.gather(*(one() for _ in range(count)))


async def raw_exchange(url: str, data: bytes, *, timeout: float = PATIENT_S) -> tuple[bytes, BaseException | None]:
    """Send raw bytes and read until the server closes; what came back and how it ended."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(data)
    received = b""
    ended: BaseException | None = None
    try:
        async with asyncio.timeout(timeout):
            while chunk := await reader.read(65536):
                received += chunk
    except (OSError, TimeoutError) as exc:
        ended = exc
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return received, ended


# no toxic


async def test_without_toxics_responses_are_those_of_the_upstream(upstream: Upstream, proxy: FaultProxy,
                                                                   client: PooledHttpSender) -> None:
    direct = PooledHttpSender(upstream.url, timeout=PATIENT_S)
    cases = [req("/ok"), req("/big"), req("/chunked"), req("/ok", "HEAD"), req("/empty"), req("/missing"),
             req("/echo", "POST", json={"a": [1, 2, 3]}), req("/echo", "POST", body=BIG)]
    for request in cases:
        want, got = await direct.send(request, {}), await client.send(request, {})
        assert (got.status, got.body, got.error) == (want.status, want.body, want.error), request
        assert got.headers.get("Content-Type") == want.headers.get("Content-Type")
    await direct.close()
    assert (await client.send(req("/chunked"), {})).body == b"".join(CHUNKS)
    assert (await client.send(req("/echo", "POST", body=BIG), {})).body == BIG
    async with aiohttp.ClientSession() as session:  # a second client: chunked request bodies too
        async with session.post(proxy.url + "/echo", data=iter_chunks(BIG)) as resp:
            assert (resp.status, await resp.read()) == (200, BIG)
        async with session.get(proxy.url + "/chunked") as resp:
            assert resp.headers["Transfer-Encoding"] == "chunked"
            assert await resp.read() == b"".join(CHUNKS)
    assert proxy.stats["errors"] == proxy.stats["resets"] == proxy.stats["timeouts"] == 0


async def iter_chunks(data: bytes) -> AsyncIterator[bytes]:
    for offset in range(0, len(data), 7000):
        yield data[offset:offset + 7000]


async def test_keep_alive_uses_one_upstream_connection(upstream: Upstream, proxy: FaultProxy) -> None:
    sender = PooledHttpSender(proxy.url, timeout=PATIENT_S, max_connections=1)
    results = [await sender.send(req("/ok"), {}) for _ in range(20)]
    await sender.close()
    assert [r.status for r in results] == [200] * 20
    assert len(upstream.connections) == 1
    assert proxy.stats["requests"] == proxy.stats["forwarded"] == 20


async def test_pipelined_requests_are_answered_in_order(proxy: FaultProxy) -> None:
    data = (b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /chunked HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    received, ended = await raw_exchange(proxy.url, data)
    assert ended is None
    assert received.count(b"HTTP/1.1 200 OK") == 3
    first, second = received.index(b'"path"'), received.index(b"alpha-")
    assert first < second < received.rindex(b'"path"')


async def test_a_body_that_ends_with_the_connection_is_passed_on() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    fp = FaultProxy("127.0.0.1", server.sockets[0].getsockname()[1])
    sender = PooledHttpSender(await fp.start(), timeout=PATIENT_S)
    responses = [await sender.send(req("/"), {}) for _ in range(3)]
    assert [(r.status, r.body, r.error) for r in responses] == [(200, b"until the end", None)] * 3
    await sender.close()
    await fp.close()
    server.close()
    await server.wait_closed()


async def test_an_upstream_that_refuses_gets_a_502(upstream: Upstream) -> None:
    fp = FaultProxy("127.0.0.1", upstream.port)
    url = await fp.start()
    fp.upstream_port = free_port()  # nothing listens there
    sender = PooledHttpSender(url, timeout=PATIENT_S)
    response = await sender.send(req("/ok"), {})
    assert (response.status, response.error) == (502, "5xx")
    assert b"bad gateway" in response.body and b"refused" in response.body
    assert fp.stats["refused"] == 1
    await sender.close()
    await fp.close()


# latency and bandwidth


async def test_latency_with_jitter_delays_every_response(proxy: FaultProxy, client: PooledHttpSender) -> None:
    proxy.apply("latency(200ms, jitter=50ms)", Latency(0.2, 0.05))
    results = await many(client, 40, req("/ok"), concurrency=20)
    latencies = [elapsed for response, elapsed in results]
    assert all(response.status == 200 for response, _ in results)
    assert min(latencies) >= 0.15
    # at most 250 ms is injected; the rest is the machine, so the bound only catches a delay
    # of the wrong order (seconds, not milliseconds)
    assert 0.15 <= statistics.median(latencies) < 5
    assert max(latencies) - min(latencies) > 0.02  # the jitter spreads them
    assert proxy.stats["delayed"] == 40


async def test_latency_without_jitter_is_at_least_the_delay(proxy: FaultProxy, client: PooledHttpSender) -> None:
    proxy.apply("latency", Latency(0.2))
    for _ in range(3):
        response, elapsed = await timed(client, req("/ok"))
        assert response.status == 200 and 0.2 <= elapsed < 5  # 200 ms injected; the rest is the machine


async def test_bandwidth_paces_the_whole_response(proxy: FaultProxy, client: PooledHttpSender) -> None:
    proxy.apply("bandwidth(25)", Bandwidth(25_000))
    proxy.apply("bandwidth(100)", Bandwidth(100_000))  # the smallest applies
    response, elapsed = await timed(client, req("/big"))
    assert response.body == BIG
    # 50,000 bytes and headers at 25,000 bytes/s: 2 s; pacing catches up after a stall, so only
    # a wrong rate (a tenth of it) goes past the upper bound
    assert 1.6 <= elapsed < 20
    proxy.clear("bandwidth(25)")
    response, elapsed = await timed(client, req("/big"))
    # now 100,000 bytes/s: 0.5 s; under the 2 s that the cleared 25,000 bytes/s would take at least
    assert response.body == BIG and 0.4 <= elapsed < 2.0


# errors


async def test_errors_answer_a_share_of_requests_without_forwarding_them(
        upstream: Upstream, proxy: FaultProxy, client: PooledHttpSender) -> None:
    proxy.apply("errors(rate=0.3, status=503)", Errors(0.3, 503))
    results = [response for response, _ in await many(client, 1000, req("/ok"))]
    failed = [r for r in results if r.status == 503]
    assert 0.24 <= len(failed) / 1000 <= 0.36
    assert {r.status for r in results} == {200, 503}
    assert all(r.body == INJECTED and r.error == "5xx" for r in failed)
    assert all(r.headers["X-ESR-Fault"] == "errors" and r.headers["Content-Type"] == "application/json"
               and r.headers["Content-Length"] == str(len(INJECTED)) for r in failed)
    assert upstream.seen["/ok"] == 1000 - len(failed) == proxy.stats["forwarded"]
    assert proxy.stats["errors"] == len(failed)

    proxy.apply("errors(rate=0.3, status=503)", Errors(1.0, 429))  # the same key, replaced
    again = [response for response, _ in await many(client, 100, req("/ok"))]
    assert {(r.status, r.error) for r in again} == {(429, "4xx")}
    assert upstream.seen["/ok"] == 1000 - len(failed)
    assert len(upstream.connections) <= 50  # the proxy's 429s kept connections alive


async def test_a_seed_replays_the_same_faults(upstream: Upstream) -> None:
    async def statuses(seed: int) -> list[int]:
        fp = FaultProxy("127.0.0.1", upstream.port, seed=seed)
        fp.apply("errors", Errors(0.5))
        sender = PooledHttpSender(await fp.start(), timeout=PATIENT_S, max_connections=1)
        got = [(await sender.send(req("/ok"), {})).status for _ in range(40)]
        await sender.close()
        await fp.close()
        return got

    first, second, other = await statuses(1), await statuses(1), await statuses(2)
    assert first == second and first != other and 503 in first and 200 in first


async def test_clear_restores_normal_answers(proxy: FaultProxy, client: PooledHttpSender) -> None:
    proxy.apply("errors", Errors(1.0, 500))
    proxy.clear("nothing")  # no error for a key that is not active
    assert (await client.send(req("/ok"), {})).status == 500
    assert list(proxy.active) == ["errors"]
    proxy.clear("errors")
    proxy.clear("errors")
    assert proxy.active == {}
    response = await client.send(req("/ok"), {})
    assert (response.status, orjson.loads(response.body)) == (200, {"ok": True, "path": "/ok"})


async def test_latency_and_errors_combine(upstream: Upstream, proxy: FaultProxy, client: PooledHttpSender) -> None:
    proxy.apply("latency", Latency(0.15))
    proxy.apply("errors", Errors(0.5, 502))
    results = await many(client, 60, req("/ok"))
    statuses = Counter(response.status for response, _ in results)
    assert set(statuses) == {200, 502} and 15 <= statuses[502] <= 45
    assert min(elapsed for _, elapsed in results) >= 0.15  # injected answers are delayed too
    assert upstream.seen["/ok"] == statuses[200]


# down, reset, timeout


async def test_down_refuses_and_closes_then_listens_again_on_the_same_port(
        upstream: Upstream, proxy: FaultProxy) -> None:
    host, port = proxy.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await reader.readuntil(b"}")).startswith(b"HTTP/1.1 200 OK")
    proxy.apply("down", Down())
    async with asyncio.timeout(PATIENT_S):
        assert await reader.read() == b""  # the kept-alive connection was closed
    writer.close()
    sender = PooledHttpSender(proxy.url, timeout=PATIENT_S)  # refused at once: "connect", not a timeout
    assert (await sender.send(req("/ok"), {})).error == "connect"
    assert proxy.stats["dropped"] == 1
    proxy.clear("down")
    assert proxy.url == f"http://{host}:{port}"
    assert [(await sender.send(req("/ok"), {})).status for _ in range(3)] == [200] * 3
    proxy.apply("down", Down())  # and once more: down and up again on the same port
    assert (await PooledHttpSender(proxy.url, timeout=PATIENT_S).send(req("/ok"), {})).error == "connect"
    proxy.clear("down")
    assert (await sender.send(req("/ok"), {})).status == 200
    await sender.close()


async def test_reset_cuts_the_response_with_a_tcp_reset(proxy: FaultProxy, client: PooledHttpSender) -> None:
    proxy.apply("reset", Reset(1.0, 100))
    received, ended = await raw_exchange(proxy.url, b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
    assert isinstance(ended, ConnectionResetError)
    assert len(received) == 100 and received.startswith(b"HTTP/1.1 200 OK\r\n")
    response = await client.send(req("/big"), {})
    assert (response.status, response.error) == (0, "protocol")

    proxy.apply("reset", Reset(1.0))  # no `after`: half the response
    received, ended = await raw_exchange(proxy.url, b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
    assert isinstance(ended, ConnectionResetError)
    assert 25_000 < len(received) < 25_200  # half of 50,000 bytes and the head


async def test_reset_rate_cuts_about_that_share(proxy: FaultProxy, client: PooledHttpSender) -> None:
    proxy.apply("reset(rate=0.5)", Reset(0.5, 10))
    results = [response for response, _ in await many(client, 200, req("/ok"), concurrency=10)]
    errors = Counter(r.error for r in results)
    assert set(errors) == {None, "protocol"}
    assert 70 <= errors["protocol"] <= 130
    assert proxy.stats["resets"] == errors["protocol"]


async def test_timeout_swallows_the_request(upstream: Upstream, proxy: FaultProxy,
                                            client: PooledHttpSender) -> None:
    proxy.apply("timeout", Timeout(1.0))
    response, elapsed = await timed(client, req("/ok", timeout=0.5))
    assert (response.status, response.error) == (0, "timeout")
    assert 0.5 <= elapsed < 10  # the request's own 0.5 s, not the client's PATIENT_S
    assert upstream.seen["/ok"] == 0 and proxy.stats["timeouts"] == 1
    # nothing waits on a swallowed request (a task just done leaves the set one loop turn later)
    await wait_until(lambda: proxy._tasks == set(), what="no proxy task left")  # noqa: SLF001
    proxy.clear("timeout")
    assert (await client.send(req("/ok"), {})).status == 200


# robustness and shutdown


async def test_garbage_gets_400_and_others_are_served(proxy: FaultProxy, client: PooledHttpSender) -> None:
    garbage = raw_exchange(proxy.url, b"\x00\x01\x02 not http at all\r\n\r\n")
    served = many(client, 50, req("/ok"), concurrency=10)
    (received, ended), results = await asyncio.gather(garbage, served)
    assert received.startswith(b"HTTP/1.1 400 Bad Request") and ended is None  # then closed
    assert b"Connection: close" in received
    assert [response.status for response, _ in results] == [200] * 50
    assert proxy.stats["bad_requests"] == 1


async def test_upgrades_are_declined_and_connect_refused(proxy: FaultProxy) -> None:
    upgrade = (b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
               b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    received, ended = await raw_exchange(proxy.url, upgrade)
    assert ended is None and received.count(b"HTTP/1.1 200 OK") == 2  # answered in HTTP/1.1
    received, ended = await raw_exchange(proxy.url, b"CONNECT example.org:443 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert ended is None and received.startswith(b"HTTP/1.1 400 Bad Request")
    assert proxy.stats["forwarded"] == 2


async def test_expect_100_continue_is_answered_by_the_proxy(proxy: FaultProxy) -> None:
    host, port = proxy.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
    async with asyncio.timeout(PATIENT_S):
        assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"hello")
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK") and b"100 Continue" not in head
        assert await reader.readexactly(5) == b"hello"
    writer.close()
    await writer.wait_closed()


async def test_close_closes_the_port_and_leaves_no_tasks(upstream: Upstream) -> None:
    fp = FaultProxy("127.0.0.1", upstream.port)
    url = await fp.start()
    fp.apply("timeout", Timeout(0.5))
    fp.apply("latency", Latency(60.0))  # a delayed answer is pending at close
    sender = PooledHttpSender(url, timeout=2 * PATIENT_S)  # the close ends them, not the client
    pending = [asyncio.ensure_future(sender.send(req("/ok"), {})) for _ in range(10)]
    await wait_until(lambda: fp.stats["timeouts"] + fp.stats["delayed"] == 10, what="10 requests swallowed or delayed")
    clients, upstreams = list(fp._clients), list(fp._upstreams)  # noqa: SLF001
    began = time.monotonic()
    await fp.close()
    await fp.close()  # idempotent
    assert time.monotonic() - began < 30  # it did not wait for the 60 s answers
    # every connection ended before close returned (it gives up on them after 2 s)
    assert len(clients) == 10 and all(c.lost.done() for c in clients) and all(u.lost.done() for u in upstreams)
    results = await asyncio.gather(*pending)
    assert {r.error for r in results} == {"protocol"}
    mine = [t for t in asyncio.all_tasks() if "fault_proxy" in repr(t.get_coro())]
    assert mine == []
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", fp.port)
    await sender.close()
