"""`FaultGuard`: a small watchdog process that recovers the target if the run's process dies.

The run arms the guard with a fault's (rendered) recovery action before starting the fault and
disarms it after recovering. The guard reads these messages on its stdin; when stdin closes
(the run's process exited, however it exited) it performs every recovery still armed. It runs
in its own session and ignores Ctrl-C, so a signal to the run's process group cannot stop it
before it has done its work.

Started by `FaultGuard.spawn` (`python -c` calling `main`), not by hand.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from typing import IO

import orjson

from esr.core.fault_actions import ActionCall
from esr.faults.actions import perform

__all__ = ["FaultGuard"]


_ENTRY = "import sys; from esr.faults.guard import main; sys.exit(main(sys.argv[1:]))"


class FaultGuard:
    """The run's side of the guard: a pipe to the watchdog process."""

    def __init__(self, process: subprocess.Popen[bytes], target_url: str) -> None:
        self.process = process
        self.target_url = target_url

    @classmethod
    def spawn(cls, run_id: str, target_url: str) -> FaultGuard:
        process = subprocess.Popen(
            [sys.executable, "-c", _ENTRY, run_id, target_url],
            stdin=subprocess.PIPE, start_new_session=True)
        return cls(process, target_url)

    def _send(self, message: dict) -> None:
        stdin = self.process.stdin
        assert stdin is not None
        try:
            stdin.write(orjson.dumps(message) + b"\n")
            stdin.flush()
        except (BrokenPipeError, ValueError):  # the guard is gone; the run recovers by itself
            pass

    def arm(self, key: str, recovery: ActionCall) -> None:
        self._send({"arm": key, "recover": recovery.to_dict()})

    def disarm(self, key: str) -> None:
        self._send({"disarm": key})

    def close(self, timeout: float = 30.0) -> None:
        """Stop the guard; it performs whatever is still armed (nothing after a clean run)."""
        if self.process.stdin is not None:
            try:
                self.process.stdin.close()
            except BrokenPipeError:
                pass
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _watch(run_id: str, target_url: str, stdin: IO[bytes], report: IO[str]) -> int:
    armed: dict[str, ActionCall] = {}
    for line in stdin:
        try:
            message = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if "arm" in message:
            armed[message["arm"]] = ActionCall.from_dict(message["recover"])
        elif "disarm" in message:
            armed.pop(message["disarm"], None)
    failed = 0
    for key, call in armed.items():
        ok, detail = perform(call, target_url)
        failed += not ok
        print(f"esr fault guard: run {run_id} ended with {key!r} active; recovery "
              f"{'done' if ok else 'FAILED'}: {detail}", file=report, flush=True)
    return 1 if failed else 0


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    run_id, target_url = argv[0], argv[1]
    return _watch(run_id, target_url, sys.stdin.buffer, sys.stderr)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
