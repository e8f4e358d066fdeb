"""`RunStatus`: the states of a run, and the only moves between them.

    QUEUED -> RUNNING -> DRAINING -> FINISHED
       |         |          |
       +---------+----------+-----> ABORTED

A Kafka bot shard taken over after its last tick has nothing to play, so it may also go from
QUEUED (or RUNNING) straight to FINISHED. Upper-case values are what the API and the seed's
client read (`report(run_id)["state"]`).
"""

from __future__ import annotations

import enum

from esr.core.errors import EsrError

__all__ = ["TRANSITIONS", "InvalidTransition", "RunStatus"]


class RunStatus(str, enum.Enum):  # noqa: UP042 - str() of a member stays "RunStatus.X", as before
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    DRAINING = "DRAINING"
    FINISHED = "FINISHED"
    ABORTED = "ABORTED"

    @property
    def ended(self) -> bool:
        return not TRANSITIONS[self]

    def to(self, new: RunStatus) -> RunStatus:
        """`new`, if a run in this state may move there; otherwise `InvalidTransition`."""
        if new not in TRANSITIONS[self]:
            raise InvalidTransition(f"a {self.value} run cannot become {new.value}")
        return new


TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.QUEUED: frozenset({RunStatus.RUNNING, RunStatus.FINISHED, RunStatus.ABORTED}),
    RunStatus.RUNNING: frozenset({RunStatus.DRAINING, RunStatus.FINISHED, RunStatus.ABORTED}),
    RunStatus.DRAINING: frozenset({RunStatus.FINISHED, RunStatus.ABORTED}),
    RunStatus.FINISHED: frozenset(),
    RunStatus.ABORTED: frozenset(),
}


class InvalidTransition(EsrError):
    """A run was asked to move to a state it cannot reach from where it is (a bug, not user input)."""
