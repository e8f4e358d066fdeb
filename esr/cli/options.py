"""What several commands share: the `--kafka` flag, and the event loop a command runs on."""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["kafka_option", "run_loop"]

T = TypeVar("T")


def kafka_option(parser: argparse.ArgumentParser, help: str) -> None:  # noqa: A002 - argparse's name
    parser.add_argument("--kafka", metavar="HOST:PORT", default=os.environ.get("ESR_KAFKA") or None, help=help)


def run_loop(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` on uvloop (as the server does), or asyncio's loop where uvloop is missing."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux and macOS
        return asyncio.run(coro)
    return uvloop.run(coro)
