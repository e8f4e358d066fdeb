"""`SimClock`: the pure mapping between real and simulated time.

    sim = (real - real_start) * time_warp                 while the load plays
    sim = load_end_sim + (real - load_end_real) * drain_warp   during the drain

Times here are offsets in seconds from the run's start (real) and from `sim_start` (sim);
the runtimes add the wall-clock origin. Nothing here reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SimClock"]


@dataclass(frozen=True, slots=True)
class SimClock:
    time_warp: float
    load_end_sim: float
    drain_warp: float

    def __post_init__(self) -> None:
        if self.time_warp <= 0 or self.drain_warp <= 0:
            raise ValueError("time_warp and drain_warp must be > 0")

    @property
    def load_end_real(self) -> float:
        return self.load_end_sim / self.time_warp

    def sim_at(self, real: float) -> float:
        """Simulated seconds at `real` seconds after the start."""
        if real <= self.load_end_real:
            return real * self.time_warp
        return self.load_end_sim + (real - self.load_end_real) * self.drain_warp

    def real_at(self, sim: float) -> float:
        """Real seconds after the start at which simulated second `sim` is played."""
        if sim <= self.load_end_sim:
            return sim / self.time_warp
        return self.load_end_real + (sim - self.load_end_sim) / self.drain_warp

    def real_span(self, from_sim: float, to_sim: float) -> float:
        """Real seconds it takes to play simulated [from_sim, to_sim)."""
        return self.real_at(to_sim) - self.real_at(from_sim)
