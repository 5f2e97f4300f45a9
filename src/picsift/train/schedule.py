"""Learning-rate schedules as functions of training progress p in [0, 1].

Indexing by progress rather than step lets a time budget drive the schedule: progress is
max(step / planned_steps, elapsed / budget), so a run decays on time wherever its speed lands.
"""

from __future__ import annotations

import math


def lr_factor(kind: str, p: float, warmup: float = 0.1) -> float:
    """The learning-rate multiplier at progress `p` (clipped to [0, 1]) for "onecycle" or "cosine";
    ValueError for another kind."""
    p = min(max(p, 0.0), 1.0)
    if kind == "onecycle":
        # Linear warm-up to the peak, then cosine annealing to ~0 (the one-cycle policy's shape).
        if p < warmup:
            return 0.04 + 0.96 * p / warmup
        q = (p - warmup) / (1.0 - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * q)) * 0.999 + 0.001
    if kind == "cosine":
        short = min(warmup, 0.05)
        if p < short:
            return p / short
        q = (p - short) / (1.0 - short)
        return 0.5 * (1.0 + math.cos(math.pi * q))
    raise ValueError(f"unknown schedule {kind!r}")


class Progress:
    """Tracks the fraction of training done, by steps and (optionally) by wall-clock budget."""

    def __init__(self, planned_steps: int, budget_s: float | None, start: float) -> None:
        self.planned_steps = max(1, planned_steps)
        self.budget_s = budget_s
        self.start = start
        self.step = 0

    def fraction(self, now: float) -> float:
        """The fraction done at time `now` (s): steps / planned steps, or elapsed / budget if larger; at most 1."""
        p = self.step / self.planned_steps
        if self.budget_s:
            p = max(p, (now - self.start) / self.budget_s)
        return min(p, 1.0)

    def done(self, now: float) -> bool:
        """Whether training has reached its planned steps or its time budget."""
        return self.fraction(now) >= 1.0
