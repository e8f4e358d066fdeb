"""Run logs: safe run ids, no overwrites, torn last lines."""

from __future__ import annotations

from pathlib import Path

import pytest
from factories import RunEvents

from esr.bus.runlog import RunLog, check_run_id, read_events, run_log_path
from esr.core.errors import RunLogError


@pytest.mark.parametrize("run_id", ["../x", "a/b", "", ".hidden", "x" * 101, "a..b"])
def test_run_ids_cannot_leave_the_runs_folder(tmp_path: Path, run_id: str) -> None:
    with pytest.raises(RunLogError, match="must be 1-100 letters"):
        check_run_id(run_id, tmp_path)


def test_an_existing_run_is_never_appended_to(tmp_path: Path) -> None:
    log = RunLog(tmp_path, "r1")
    log.append(RunEvents(run_id="r1").started())
    log.close()
    with pytest.raises(RunLogError, match="run id 'r1' is taken"):
        RunLog(tmp_path, "r1")
    assert len(list(read_events(run_log_path(tmp_path, "r1")))) == 1


def test_a_torn_last_line_is_skipped_but_a_bad_middle_line_is_an_error(tmp_path: Path) -> None:
    ev = RunEvents(run_id="r2")
    log = RunLog(tmp_path, "r2")
    log.append(ev.started())
    log.append(ev.journey_started(sim=1.0))
    log.close()
    path = run_log_path(tmp_path, "latest")
    path.write_bytes(path.read_bytes() + b'{"type":"result","run_')
    assert [type(e).__name__ for e in read_events(path)] == ["RunStarted", "JourneyStarted"]
    lines = path.read_bytes().split(b"\n")
    path.write_bytes(lines[0] + b"\nnot json\n" + lines[1] + b"\n")
    with pytest.raises(RunLogError, match=r"events.jsonl:2: not a JSON event"):
        list(read_events(path))


def test_unknown_run(tmp_path: Path) -> None:
    with pytest.raises(RunLogError, match="no run log for run 'nope'"):
        run_log_path(tmp_path, "nope")
    with pytest.raises(RunLogError, match="no runs under"):
        run_log_path(tmp_path, "latest")
