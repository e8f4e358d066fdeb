"""The pooled HTTP client against real sockets on loopback, including servers that misbehave."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

from esr.core.journey import PreparedRequest
from esr.engine.http import PooledHttpSender
from esr.engine.sender import HTTP_CLIENTS, make_sender

pytestmark = pytest.mark.integration

PATIENT_S = 60.0  # client timeouts where an answer is expected: only a hung test waits this long

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def get(path: str = "/", **kw: object) -> PreparedRequest:
    return PreparedRequest(method=kw.pop("method", "GET"), path=path, endpoint="x", step="s", **kw)  # type: ignore[arg-type]


@pytest.fixture
async def raw_server() -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    servers: list[asyncio.AbstractServer] = []

    async def start(handler: Handler) -> str:
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        servers.append(server)
        return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"

    yield start
    for server in servers:
        server.close()


async def serve_on_loopback(app: web.Application) -> tuple[web.AppRunner, int]:
    """`app` on a free loopback port: its runner (to clean up) and the port."""
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


async def read_request(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


async def test_body_that_ends_when_the_server_closes(raw_server) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhello")
        await writer.drain()
        writer.close()

    sender = PooledHttpSender(await raw_server(handler), timeout=PATIENT_S)
    response = await sender.send(get(), {})
    assert (response.status, response.body, response.error) == (200, b"hello", None)
    again = await sender.send(get(), {})  # the closed connection is not reused
    assert again.status == 200
    await sender.close()


async def test_idle_connections_closed_by_the_server_are_retried_once(raw_server) -> None:
    served = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal served
        await read_request(reader)
        served += 1
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        try:  # keep-alive timeout: the next request on this connection finds it closing
            await asyncio.wait_for(reader.read(1), 0.01)
        except TimeoutError:
            pass
        writer.transport.abort()

    sender = PooledHttpSender(await raw_server(handler), timeout=PATIENT_S)
    results = []
    for _ in range(30):
        results.append(await sender.send(get(), {}))
        await asyncio.sleep(0.012)
    assert [r.error for r in results] == [None] * 30
    assert served == 30
    await sender.close()


async def test_chunked_bodies_and_keep_alive(raw_server) -> None:
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while True:
            try:
                await read_request(reader)
            except asyncio.IncompleteReadError:
                return
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
            await writer.drain()

    sender = PooledHttpSender(await raw_server(handler), timeout=PATIENT_S)
    for _ in range(5):
        response = await sender.send(get(), {})
        assert response.body == b"abcde"
    assert connections == 1
    await sender.close()


async def test_paths_and_queries_are_percent_encoded() -> None:
    seen: list[str] = []

    async def echo(request: web.Request) -> web.Response:
        seen.append(request.raw_path)
        return web.Response(text=request.match_info.get("name", ""))

    app = web.Application()
    app.router.add_get("/claims/{name}", echo)
    runner, port = await serve_on_loopback(app)
    sender = PooledHttpSender(f"http://127.0.0.1:{port}", timeout=PATIENT_S)
    response = await sender.send(get("/claims/Mary Smith €", query={"q": "a b&c"}), {})
    assert (response.status, response.body.decode()) == (200, "Mary Smith €")
    again = await sender.send(get("/claims/Mary Smith €", query={"q": "d"}), {})  # the path's target is kept
    assert (again.status, again.body.decode()) == (200, "Mary Smith €")
    assert seen == ["/claims/Mary%20Smith%20%E2%82%AC?q=a+b%26c", "/claims/Mary%20Smith%20%E2%82%AC?q=d"]
    bad_header = await sender.send(get("/claims/x", headers={"X-Name": "€"}), {})
    assert bad_header.error == "protocol"
    await sender.close()
    await runner.cleanup()


async def test_waiting_for_a_connection_times_out_and_frees_nothing_twice(raw_server) -> None:
    release = asyncio.Event()
    holding = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        holding.set()
        await release.wait()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        await reader.read()

    sender = PooledHttpSender(await raw_server(handler), timeout=0.3, max_connections=1)
    first = asyncio.create_task(sender.send(get(), {}))
    await asyncio.wait_for(holding.wait(), PATIENT_S)  # the first request holds the only connection
    second = await sender.send(get(), {})  # waits for the only connection, then gives up
    assert second.error == "timeout"
    assert (await first).error == "timeout"
    release.set()
    assert sender._open == 0 and not sender._waiting  # noqa: SLF001
    third = await sender.send(get(), {})
    assert third.status == 200
    await sender.close()


async def test_refused_connection_and_timeout_kinds(raw_server) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    sender = PooledHttpSender(await raw_server(silent), timeout=0.1)
    assert (await sender.send(get(), {})).error == "timeout"
    await sender.close()
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    refused = PooledHttpSender(f"http://127.0.0.1:{port}", timeout=PATIENT_S)  # refused at once: not a timeout
    assert (await refused.send(get(), {})).error == "connect"
    assert refused._open == 0  # noqa: SLF001
    await refused.close()


@pytest.mark.parametrize("kind", HTTP_CLIENTS)
async def test_no_sender_follows_a_redirect(kind: str) -> None:
    """A 3xx is a result: following it could take traffic to a host that was never registered."""
    elsewhere_hits = 0

    async def elsewhere(request: web.Request) -> web.Response:
        nonlocal elsewhere_hits
        elsewhere_hits += 1
        return web.Response(text="you should not be here")

    async def redirecting(request: web.Request) -> web.Response:
        raise web.HTTPFound(location=f"{other_url}/landing")

    other = web.Application()
    other.router.add_get("/{tail:.*}", elsewhere)
    first = web.Application()
    first.router.add_get("/{tail:.*}", redirecting)
    runners = []
    urls = []
    for app in (other, first):
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        urls.append(f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}")  # type: ignore[union-attr]
    other_url, first_url = urls
    sender = make_sender(kind, first_url, timeout=PATIENT_S, max_connections=4)
    try:
        response = await sender.send(get("/start"), {})
    finally:
        await sender.close()
        for runner in runners:
            await runner.cleanup()
    assert response.status == 302 and response.error is None
    assert elsewhere_hits == 0


@pytest.mark.parametrize("kind", HTTP_CLIENTS)
async def test_credentials_in_the_target_url_are_sent_as_basic_auth(kind: str) -> None:
    """`http://user:password@host/` means HTTP Basic authentication, as curl and browsers read it
    (percent-escapes decoded); a request that sets its own Authorization header keeps it alone."""
    seen: list[list[str]] = []
    hosts: list[str] = []

    async def record(request: web.Request) -> web.Response:
        seen.append(request.headers.getall("Authorization", []))
        hosts.append(request.headers["Host"])
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/{tail:.*}", record)
    runner, port = await serve_on_loopback(app)
    sender = make_sender(kind, f"http://ana:p%40ss%3Aw%C3%B6rd@127.0.0.1:{port}/api", timeout=PATIENT_S,
                         max_connections=4)
    try:
        assert (await sender.send(get("/claims"), {})).status == 200
        assert (await sender.send(get("/claims", headers={"authorization": "Bearer own"}), {})).status == 200
        assert (await sender.send(get("/claims"), {"X-Sim-Time": "2025-01-01T00:00:00Z"})).status == 200
    finally:
        await sender.close()
        await runner.cleanup()
    basic = "Basic " + base64.b64encode("ana:p@ss:wörd".encode()).decode()
    assert seen == [[basic], ["Bearer own"], [basic]]
    assert hosts == [f"127.0.0.1:{port}"] * 3  # the user and password never go into the Host header
