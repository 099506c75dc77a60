"""Keeping up with real time: how far behind the transcriber is, and what to give up.

The transcriber reports its backlog (audio captured but not yet transcribed, in
seconds) after each piece of work. Above the latency budget the governor steps
up one level of economy, at most once per ``cooldown_s``; after ``recover_s``
with the backlog under a quarter of the budget it steps back down. Levels:

0. normal
1. partial results half as often
2. no partial results, a tighter encoder window (``audio_ctx``)
3. a smaller model (through ``WhisperManager``'s downgrade chain; not undone here:
   the manager's own CPU monitor decides when to go back up)

The clock is injectable so the policy is unit-tested without waiting.
"""

from __future__ import annotations

import time
from typing import Callable, Optional

__all__ = ["LatencyGovernor", "MAX_LEVEL"]

MAX_LEVEL = 3


class LatencyGovernor:
    def __init__(self, budget_s: Optional[float] = 1.5, *, cooldown_s: float = 2.0, recover_s: float = 10.0,
                 max_level: int = MAX_LEVEL, clock: Callable[[], float] = time.monotonic) -> None:
        self.budget_s = budget_s
        self.cooldown_s = cooldown_s
        self.recover_s = recover_s
        self.max_level = max_level
        self.clock = clock
        self.level = 0
        self.floor = 0                 # levels that cannot be undone (a model already swapped)
        self.worst_behind_s = 0.0
        self._last_change = -float("inf")
        self._calm_since: Optional[float] = None

    @property
    def enabled(self) -> bool:
        return self.budget_s is not None

    def observe(self, behind_s: float) -> int:
        """Record the backlog; returns the level change (+1, -1 or 0) to apply now."""
        self.worst_behind_s = max(self.worst_behind_s, behind_s)
        if not self.enabled:
            return 0
        now = self.clock()
        if behind_s > self.budget_s:
            self._calm_since = None
            if self.level < self.max_level and now - self._last_change >= self.cooldown_s:
                self.level += 1
                self._last_change = now
                return +1
            return 0
        if behind_s < self.budget_s / 4:
            if self._calm_since is None:
                self._calm_since = now
            elif self.level > self.floor and now - self._calm_since >= self.recover_s:
                self.level -= 1
                self._last_change = now
                self._calm_since = now
                return -1
        else:
            self._calm_since = None
        return 0

    def cannot_go_below(self, level: int) -> None:
        """Pin a level that is not reversible (the model was swapped for a smaller one)."""
        self.floor = max(self.floor, min(level, self.level))
