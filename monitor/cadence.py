"""When a source polls: a fixed grid of cycle starts, jitter only ever shortening a gap.

Detection waits for the next cycle, so the longest gap between two cycle starts bounds
it (issue 11: p99 detection <= interval + 250 ms). Hence three rules:

- jitter only shortens a gap: the next start is at most ``interval`` after the previous
  *scheduled* start (``interval - U(0, jitter_fraction * interval)``);
- a cycle that overruns does not push the next one: starts stay on the grid of scheduled
  starts; when the next one is already past, the cycle starts at once and the grid is
  re-anchored there (no burst of catch-up cycles);
- the first cycles of many sources are spread over the first interval (``first_offset``)
  instead of all starting at once.

Pure: monotonic seconds in, monotonic seconds out. Imports nothing of ours.
"""

from __future__ import annotations

import random


def first_offset(index: int, count: int, interval: float) -> float:
    """When source ``index`` of ``count`` first polls: evenly over the first interval."""
    if count <= 1:
        return 0.0
    return interval * (index % count) / count


class PollSchedule:
    """The scheduled starts of one source's cycles."""

    __slots__ = ("_interval", "_rng", "_spread", "due")

    def __init__(
        self, interval: float, jitter_fraction: float, *, start: float, rng: random.Random
    ) -> None:
        self._interval = max(interval, 0.0)
        self._spread = self._interval * min(max(jitter_fraction, 0.0), 1.0)
        self._rng = rng
        self.due = start  # monotonic: when the next cycle starts

    def delay(self, now: float) -> float:
        """Seconds to wait from ``now`` until the next cycle is due (0: start now)."""
        return max(self.due - now, 0.0)

    def advance(self, now: float) -> float:
        """After a cycle (``now``: when it ended): the next start, kept on the grid.

        ``due + interval - jitter`` from the previous scheduled start; when that is
        already past (the cycle overran), ``now``, and the grid continues from there.
        """
        gap = self._interval - (self._rng.uniform(0.0, self._spread) if self._spread else 0.0)
        self.due = max(self.due + gap, now)
        return self.due
