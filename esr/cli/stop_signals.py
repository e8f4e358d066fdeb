"""Ctrl-C and SIGTERM for a blocking command (`esr run --kafka`): turned into `Interrupted`
at any moment, whatever the process inherited.

Python raises KeyboardInterrupt for SIGINT only if SIGINT was not ignored when it started,
and a non-interactive shell starts its background jobs (`cmd &`, CI scripts) with SIGINT
ignored; SIGTERM ends the process without running any cleanup. A command that has published
something it must take back (a run's start) therefore installs its own handlers.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType, TracebackType
from typing import Any

__all__ = ["Interrupted", "StopSignals"]

REASONS = {signal.SIGINT: "interrupted (Ctrl-C)", signal.SIGTERM: "terminated (SIGTERM)"}


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived; `reason` says which, in the words of an ABORTED verdict."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class StopSignals:
    """While active, the first SIGINT or SIGTERM raises `Interrupted` in the main thread, or,
    inside `held()`, when the block ends (so a message is published whole or not at all).
    Later ones only set `repeated`, except inside `again()`: the cleanup they interrupt is
    the caller's to choose (an abort is published in any case, waiting for its verdict is not)."""

    def __init__(self) -> None:
        self.received: str | None = None
        self.repeated = False
        self._held = 0
        self._raised = False
        self._again = False
        self._previous: dict[signal.Signals, Any] = {}

    def __enter__(self) -> StopSignals:
        for sig in REASONS:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        reason = REASONS[signal.Signals(signum)]
        if self.received is None:
            self.received = reason
            if not self._held:
                self._raise()
        else:
            self.repeated = True
            if self._again:
                raise Interrupted(reason)

    def _raise(self) -> None:
        assert self.received is not None
        self._raised = True
        raise Interrupted(self.received)

    @contextmanager
    def held(self) -> Iterator[None]:
        self._held += 1
        try:
            yield
        finally:
            self._held -= 1
        if not self._held and self.received is not None and not self._raised:
            self._raise()

    @contextmanager
    def again(self) -> Iterator[None]:
        """A further signal raises `Interrupted` inside this block (and at once if one came already)."""
        if self.repeated:
            raise Interrupted(self.received or "interrupted")
        self._again = True
        try:
            yield
        finally:
            self._again = False
