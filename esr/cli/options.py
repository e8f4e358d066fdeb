"""What several commands share: the `--kafka` flag, the HTTP client, and the event loop a command runs on."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from esr.core.errors import EsrError
from esr.engine.sender import HTTP_CLIENTS
from esr.settings import Settings

__all__ = ["http_client", "kafka_option", "run_loop"]

T = TypeVar("T")


def kafka_option(parser: argparse.ArgumentParser, help: str) -> None:  # noqa: A002 - argparse's name
    parser.add_argument("--kafka", metavar="HOST:PORT", help=help)  # default: Settings (ESR_KAFKA)


def http_client(settings: Settings) -> str:
    """`--http-client` (checked by argparse) or ESR_HTTP_CLIENT, which is checked here."""
    if settings.http_client not in HTTP_CLIENTS:
        raise EsrError(f"ESR_HTTP_CLIENT={settings.http_client!r} is not an HTTP client; choose one of "
                       f"{', '.join(HTTP_CLIENTS)}")
    return settings.http_client


def run_loop(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` on uvloop (as the server does), or asyncio's loop where uvloop is missing."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux and macOS
        return asyncio.run(coro)
    return uvloop.run(coro)
