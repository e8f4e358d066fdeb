"""Tests that need a real part (a Kafka broker, Prometheus, Chromium, kcat, the Compose schema, the CA bundle)
skip where it is missing on a developer's machine, and fail under CI (`CI` set to true, 1 or
yes; `.ci/run` sets it), where a skip would hide a missing install."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

__all__ = ["missing", "on_ci"]


def on_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def missing(reason: str) -> NoReturn:
    """Skip for want of `reason`, or fail when on CI."""
    if on_ci():
        pytest.fail(f"{reason}; on CI this test may not skip")
    pytest.skip(reason)
