"""Run logs on disk: each run's events as JSON lines under `$ESR_HOME/runs/<run_id>/`.

Lines are appended as they happen (buffered, flushed at least every few hundred
milliseconds), so a crash leaves a readable prefix; a torn final line is skipped on reading.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from esr.bus.codec import decode, encode
from esr.core.errors import RunLogError
from esr.core.events import Event

__all__ = ["RunLog", "check_run_id", "cut_torn_tail", "is_run_id", "private_dir", "new_run_id", "read_events",
           "run_log_path"]

LOG_NAME = "events.jsonl"


def new_run_id(now: datetime | None = None) -> str:
    """Sortable and unique: 20261127-090512-3f9a1c."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def is_run_id(text: str) -> bool:
    """1-100 letters, digits, '.', '_' or '-', starting with a letter or digit, no '..'."""
    return bool(_RUN_ID.match(text)) and ".." not in text


def check_run_id(run_id: str, home: Path) -> None:
    """A run id names a new folder under $ESR_HOME/runs: letters, digits, '.', '_', '-'."""
    if not is_run_id(run_id):
        raise RunLogError(f"run id {run_id!r} must be 1-100 letters, digits, '.', '_' or '-', "
                          "starting with a letter or digit")
    if (home / "runs" / run_id).exists():
        raise RunLogError(f"run id {run_id!r} is taken ({home / 'runs' / run_id}); choose another "
                          "or leave --run-id out for a generated one")


def run_log_path(home: Path, run_id: str) -> Path:
    """The log of `run_id` (`latest` is the newest run)."""
    runs = home / "runs"
    if run_id == "latest":
        logs = [p / LOG_NAME for p in runs.glob("*") if (p / LOG_NAME).exists()] if runs.exists() else []
        if not logs:
            raise RunLogError(f"no runs under {runs}")
        return max(logs, key=lambda log: (log.stat().st_mtime_ns, log.parent.name))
    path = runs / run_id / LOG_NAME
    if not path.exists():
        raise RunLogError(f"no run log for run {run_id!r} at {path}; list runs with `ls {runs}`")
    return path


def private_dir(path: Path) -> Path:
    """Make `path` (and missing parents) readable by its owner only: run logs hold scenarios,
    targets and answers."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


class RunLog:
    """Appends events to one run's log (mode 0600, in a folder of mode 0700)."""

    def __init__(self, home: Path, run_id: str) -> None:
        check_run_id(run_id, home)
        self.path = home / "runs" / run_id / LOG_NAME
        private_dir(self.path.parent.parent)
        private_dir(self.path.parent)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._file: BinaryIO = os.fdopen(fd, "wb")
        self._buffer: list[bytes] = []

    def append(self, event: Event) -> None:
        self._buffer.append(encode(event))
        if len(self._buffer) >= 4096:
            self.flush()

    def flush(self) -> None:
        if self._buffer:
            self._file.write(b"".join(self._buffer))
            self._buffer.clear()
            self._file.flush()

    def close(self) -> None:
        self.flush()
        os.fsync(self._file.fileno())
        self._file.close()


def cut_torn_tail(path: Path) -> int:
    """Cut a log back to its last complete event before anything is appended to it (a crash
    mid-write leaves a fragment that would otherwise merge with the next line). The fragment
    is kept beside the log (`events.jsonl.torn`); a last event that is whole but for its newline
    gets the newline. Returns how many bytes were cut."""
    with open(path, "r+b") as file:
        size = file.seek(0, os.SEEK_END)
        if size == 0:
            return 0
        file.seek(size - 1)
        if file.read(1) == b"\n":
            return 0
        keep, block = 0, 65536
        position = size
        while position > 0:  # the last newline, reading backwards
            start = max(0, position - block)
            file.seek(start)
            chunk = file.read(position - start)
            found = chunk.rfind(b"\n")
            if found >= 0:
                keep = start + found + 1
                break
            position = start
        file.seek(keep)
        fragment = file.read()
        try:
            decode(fragment, f"{path}:last line")
        except RunLogError:
            pass
        else:  # whole, only its newline is missing
            file.write(b"\n")
            file.flush()
            os.fsync(file.fileno())
            return 0
        side = path.with_name(path.name + ".torn")
        fd = os.open(side, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "ab") as kept:
            kept.write(fragment + b"\n")
            kept.flush()
            os.fsync(kept.fileno())
        file.truncate(keep)
        file.flush()
        os.fsync(file.fileno())
    return size - keep


def read_events(path: Path) -> Iterator[Event]:
    """Events of a log in order, streamed; a torn last line (crash mid-write) is skipped."""
    try:
        file = open(path, "rb")  # noqa: SIM115
    except OSError as exc:
        raise RunLogError(f"cannot read {path}: {exc.strerror}") from None
    with file:
        for number, line in enumerate(file, 1):
            if not line.strip():
                continue
            try:
                yield decode(line, f"{path}:{number}")
            except RunLogError:
                if not line.endswith(b"\n"):  # the last line, cut off when the process stopped
                    return
                raise
