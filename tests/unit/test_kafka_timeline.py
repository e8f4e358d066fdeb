"""A Kafka run's dashboard timeline shows a verdict only once the run's summary has it: the
metrics worker's final timeline and its verdict travel on two topics, in either order."""

from __future__ import annotations

from pathlib import Path

import orjson

from esr.api.dashboard import Timelines
from esr.api.runs import ManagedRun, RunManager
from esr.bus.runlog import RunLog


def _managed(home: Path, run_id: str, state: str) -> tuple[RunManager, ManagedRun]:
    """A Kafka run as the server holds it: its log (the start) on disk, no local `Run`."""
    RunLog(home, run_id).close()
    manager = RunManager(home)
    managed = manager.runs[run_id] = ManagedRun(run_id, "demo", "http://127.0.0.1:9", created=0.0, state=state)
    return manager, managed


def _final_timeline(run_id: str) -> dict:
    return {"run_id": run_id, "final": True,
            "timeline": {"t": [0.0, 1.0], "requests": [3, 4], "run": {"run_id": run_id},
                         "verdict": {"verdict": "PASS", "reason": "all assertions held"}}}


def test_the_final_timeline_waits_for_the_verdict_the_summary_shows(tmp_path: Path) -> None:
    manager, managed = _managed(tmp_path, "r1", "RUNNING")
    timelines = Timelines(manager, tmp_path)

    manager._on_progress(_final_timeline("r1"))  # the timeline came first
    body, final = timelines.get("r1")
    shown = orjson.loads(body)
    assert managed.summary()["state"] == "RUNNING"
    assert (shown["verdict"], final) == (None, False)
    assert shown["requests"] == [3, 4]

    managed.verdict = {"verdict": "PASS", "reason": "all assertions held", "assertions": [], "summary": {},
                       "completeness": {}, "generator": {}, "time": {}}
    managed.state = "FINISHED"
    manager._on_progress(_final_timeline("r1"))  # a repeat of the final message: a new version
    body, final = timelines.get("r1")
    assert orjson.loads(body)["verdict"] == {"verdict": "PASS", "reason": "all assertions held"}
    assert final is True


def test_a_verdict_of_its_own_replaces_the_workers(tmp_path: Path) -> None:
    """An aborted run shows ABORTED even though the worker's last timeline said otherwise."""
    manager, managed = _managed(tmp_path, "r2", "ABORTED")
    manager._on_progress(_final_timeline("r2"))
    managed.verdict = {"verdict": "ABORTED", "reason": "aborted through the API"}
    body, final = Timelines(manager, tmp_path).get("r2")
    assert orjson.loads(body)["verdict"] == {"verdict": "ABORTED", "reason": "aborted through the API"}
    assert final is True


def test_the_verdict_shows_at_once_when_it_comes_after_the_final_timeline(tmp_path: Path) -> None:
    """The page asked while the run was still RUNNING (its answer is cached for half a second);
    the verdict that comes next, with no new timeline message, is shown on the next request."""
    manager, managed = _managed(tmp_path, "r3", "RUNNING")
    timelines = Timelines(manager, tmp_path)
    manager._on_progress(_final_timeline("r3"))
    assert orjson.loads(timelines.get("r3")[0])["verdict"] is None

    managed.verdict = {"verdict": "PASS", "reason": "all assertions held", "assertions": [], "summary": {},
                       "completeness": {}, "generator": {}, "time": {}}
    managed.state = "FINISHED"
    body, final = timelines.get("r3")
    assert (orjson.loads(body)["verdict"], final) == ({"verdict": "PASS", "reason": "all assertions held"}, True)
