"""The senders bots send requests through, and the one place that picks one (`make_sender`).

`PooledHttpSender` (esr.engine.http) is the lean default, `AiohttpSender` the aiohttp one; tests
of journey logic may use any object with the same `send` coroutine (`esr.engine.response`).
Transport errors are classified by each sender: timeout, connect, protocol; HTTP statuses
become 4xx or 5xx. No sender follows a redirect: a 3xx is the answer (following it could take
traffic where it was never allowed to go).
"""

from __future__ import annotations

from typing import Any

import aiohttp

from esr.core.errors import EsrError
from esr.core.journey import PreparedRequest
from esr.engine.http import PooledHttpSender
from esr.engine.response import Response, Sender, basic_credentials, classify_status, sets_authorization

__all__ = ["HTTP_CLIENTS", "AiohttpSender", "connection_budget", "make_sender"]


_EMPTY: dict[str, str] = {}


class AiohttpSender:
    """Sends to `base_url` over one pooled session; never raises for a failed request."""

    def __init__(self, base_url: str, *, timeout: float, max_connections: int = 1000,
                 keep_headers: bool = True) -> None:
        base_url, self.authorization = basic_credentials(base_url)  # the URL's user and password
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.keep_headers = keep_headers
        connector = aiohttp.TCPConnector(limit=max_connections, ttl_dns_cache=300, enable_cleanup_closed=True)
        self.session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=timeout),
            auto_decompress=True, skip_auto_headers=("User-Agent",),
            headers={"User-Agent": "hms-esr"})
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}

    async def send(self, request: PreparedRequest, headers: dict[str, str]) -> Response:
        if self.authorization is not None and not sets_authorization(request.headers):
            headers = {**headers, "Authorization": self.authorization}
        if request.headers:
            headers = {**headers, **request.headers}
        kwargs: dict[str, Any] = {"headers": headers, "allow_redirects": False}  # a 3xx is a result
        if request.query:
            kwargs["params"] = request.query
        if request.json is not None:
            kwargs["json"] = request.json
        elif request.body is not None:
            kwargs["data"] = request.body
        if request.timeout is not None:
            kwargs["timeout"] = self._timeouts.setdefault(
                request.timeout, aiohttp.ClientTimeout(total=request.timeout))
        try:
            async with self.session.request(request.method, self.base_url + request.path, **kwargs) as resp:
                body = await resp.read()
                status = resp.status
                head = dict(resp.headers) if self.keep_headers else _EMPTY
        except (TimeoutError, aiohttp.ServerTimeoutError):
            return Response(0, _EMPTY, b"", "timeout")
        except aiohttp.ClientConnectorError:
            return Response(0, _EMPTY, b"", "connect")
        except (aiohttp.ClientError, OSError, ValueError):
            return Response(0, _EMPTY, b"", "protocol")
        return Response(status, head, body, classify_status(status))

    async def close(self) -> None:
        await self.session.close()


HTTP_CLIENTS = ("pooled", "aiohttp")


def make_sender(kind: str, base_url: str, *, timeout: float, max_connections: int,
                keep_headers: bool = True) -> Sender:
    """`pooled` (the lean default, esr.engine.http) or `aiohttp` (its client, for comparison
    or for features the lean client lacks, such as proxies)."""
    if kind == "aiohttp":
        return AiohttpSender(base_url, timeout=timeout, max_connections=max_connections, keep_headers=keep_headers)
    if kind == "pooled":
        return PooledHttpSender(base_url, timeout=timeout, max_connections=max_connections,
                                keep_headers=keep_headers)
    raise EsrError(f"unknown HTTP client {kind!r}; choose one of {', '.join(HTTP_CLIENTS)}")


def connection_budget(wanted: int) -> int:
    """Connections the bots may open: one per journey in flight, so no request waits for a
    connection (waiting costs a task wake-up per request and halves the rate an overloaded
    generator can catch up at). Raises the soft open-files limit toward the hard one, as Locust
    does, and keeps 64 descriptors for everything else."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        target = wanted + 64 if hard == resource.RLIM_INFINITY else min(hard, wanted + 64)
        if soft != resource.RLIM_INFINITY and soft < target:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        available = wanted + 64 if soft == resource.RLIM_INFINITY else soft
    except (ImportError, ValueError, OSError):
        available = 1024
    return max(1, min(wanted, available - 64))
