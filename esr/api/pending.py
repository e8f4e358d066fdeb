"""`PendingRuns`: runs the server accepted (202) that have no run log yet, written down before
the answer so that a restart queues them again instead of forgetting them.

One JSON file per run under `$ESR_HOME/queued/` (mode 0600), written whole (temporary file,
fsync, rename). It goes when the run's log holds the run's end; a run aborted while queued
keeps its file, marked with the reason, as its only record.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import orjson

from esr.bus.runlog import is_run_id, private_dir

__all__ = ["PendingRun", "PendingRuns"]


@dataclass(frozen=True, slots=True)
class PendingRun:
    run_id: str
    scenario: dict[str, Any]  # Scenario.to_dict()
    target: str  # the name or URL the launch gave
    created: float
    aborted: str = ""  # why it was aborted while queued ("" while it waits)


class PendingRuns:
    def __init__(self, home: Path) -> None:
        self.folder = home / "queued"

    def _path(self, run_id: str) -> Path:
        return self.folder / f"{run_id}.json"

    def write(self, run: PendingRun) -> None:
        """Durably, before the launch is answered."""
        private_dir(self.folder)
        final = self._path(run.run_id)
        temporary = final.with_suffix(".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(orjson.dumps({"run_id": run.run_id, "scenario": run.scenario, "target": run.target,
                                     "created": run.created, "aborted": run.aborted}))
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, final)
        folder = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)

    def aborted(self, run: PendingRun, reason: str) -> PendingRun:
        marked = replace(run, aborted=reason or "aborted while queued")
        self.write(marked)
        return marked

    def remove(self, run_id: str) -> None:
        self._path(run_id).unlink(missing_ok=True)

    def load(self) -> list[PendingRun]:
        """Every record that can be read, oldest first (a file that cannot is left in place)."""
        if not self.folder.exists():
            return []
        runs = []
        for path in self.folder.glob("*.json"):
            try:
                data = orjson.loads(path.read_bytes())
                run = PendingRun(str(data["run_id"]), dict(data["scenario"]), str(data["target"]),
                                 float(data["created"]), str(data.get("aborted") or ""))
            except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                continue
            if is_run_id(run.run_id) and path.stem == run.run_id:
                runs.append(run)
        return sorted(runs, key=lambda r: (r.created, r.run_id))
