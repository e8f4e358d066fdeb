"""What a bot worker says about its share of the tick topic: a worker that owns none of its
partitions (more workers than partitions) is idle, and says so once per idle spell."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["IdleNotice", "idle_line"]


def idle_line(topic: str, *, partitions: int, workers: int | None, group: str) -> str:
    counted = f"{partitions} partition{'' if partitions == 1 else 's'}, {'?' if workers is None else workers} workers"
    return (f"esr worker bots: owns no partition of {topic} ({counted} in group {group}): idle until a rebalance "
            "gives it one; raise ESR_KAFKA_PARTITIONS to use it")


@dataclass(slots=True)
class IdleNotice:
    """Whether an assignment starts an idle spell (then the worker says so), or continues one
    (already said: a rebalance that leaves it idle says nothing new)."""

    idle: bool = False

    def assigned(self, tick_partitions: list[int]) -> bool:
        starts = not tick_partitions and not self.idle
        self.idle = not tick_partitions
        return starts
