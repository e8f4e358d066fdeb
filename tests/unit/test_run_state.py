"""esr.core.run_state: the run states and the only moves between them."""

from __future__ import annotations

import pytest

from esr.core.errors import EsrError
from esr.core.run_state import TRANSITIONS, InvalidTransition, RunStatus

S = RunStatus


@pytest.mark.parametrize(("start", "end"), [
    (S.QUEUED, S.RUNNING), (S.RUNNING, S.DRAINING), (S.DRAINING, S.FINISHED),
    (S.QUEUED, S.ABORTED), (S.RUNNING, S.ABORTED), (S.DRAINING, S.ABORTED),
    (S.RUNNING, S.FINISHED), (S.QUEUED, S.FINISHED),
])
def test_allowed_moves(start: RunStatus, end: RunStatus) -> None:
    assert start.to(end) is end


@pytest.mark.parametrize(("start", "end"), [
    (S.FINISHED, S.RUNNING), (S.FINISHED, S.ABORTED), (S.ABORTED, S.FINISHED), (S.ABORTED, S.ABORTED),
    (S.DRAINING, S.RUNNING), (S.RUNNING, S.QUEUED), (S.QUEUED, S.DRAINING), (S.RUNNING, S.RUNNING),
])
def test_other_moves_are_refused_with_both_states_named(start: RunStatus, end: RunStatus) -> None:
    with pytest.raises(InvalidTransition, match=f"a {start.value} run cannot become {end.value}"):
        start.to(end)


def test_every_state_has_a_row_and_only_finished_and_aborted_end() -> None:
    assert set(TRANSITIONS) == set(RunStatus)
    assert {s for s in RunStatus if s.ended} == {S.FINISHED, S.ABORTED}
    assert issubclass(InvalidTransition, EsrError)


def test_values_are_the_upper_case_names_the_seed_client_reads() -> None:
    assert [s.value for s in RunStatus] == ["QUEUED", "RUNNING", "DRAINING", "FINISHED", "ABORTED"]
    assert RunStatus("RUNNING") is S.RUNNING and S.RUNNING == "RUNNING"
