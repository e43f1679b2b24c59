"""Finished jobs made before the simulator started, stored as columns.

A bench asks for 100,000 jobs per source; an object per job would cost hundreds of
bytes each. Here a job is a row of four small arrays (creation time, duration, outcome,
scope pool index) plus a tombstone set; everything else (which scope failed, with what
message, the sub-microsecond digits) is derived from a hash of the row number, and the
job id is an invertible function of it, so ``GET /{id}`` needs no index.
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Iterable

from monitor.families import Family
from monitor.simulator.config import seeded
from monitor.simulator.jobs import ABORTED, COMPLETED, FAILED, RUNNING, UPDATE_LAG, Job
from monitor.simulator.scopes import Catalog, failure_text, success_text

GAP = 600.0  # mean seconds between two history jobs of one source
MAX_DURATION = 180.0  # < GAP / 2: a history job always ended before the next began
POOL_SIZE = 16

# outcome codes -> (overall_status, abort); 2 and 3 are both cancelled jobs: the docs
# show the word "completed" (seed 003) and "aborted" (seed 004) for those.
OUTCOMES: tuple[tuple[str, bool], ...] = (
    (COMPLETED, False),
    (FAILED, False),
    (COMPLETED, True),
    (ABORTED, True),
)
_WEIGHTS = (0.75, 0.15, 0.07, 0.03)

_MASK62 = (1 << 62) - 1
_ODD = 0x2545F4914F6CDD1D & _MASK62  # any odd number: multiplication mod 2**62 is a bijection
_ODD_INVERSE = pow(_ODD, -1, 1 << 62)


def _mix(value: int) -> int:
    """splitmix64: a well-spread 64-bit hash of ``value``."""
    z = (value + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return z ^ (z >> 31)


class HistoryBlock:
    """``count`` finished jobs of one family, the newest ending before ``end``."""

    def __init__(self, family: Family, catalog: Catalog, count: int, end: float, seed: int):
        rng = seeded(seed, f"history:{family.source}")
        self.family = family
        self.count = count
        self.pool = [catalog.pick(rng) for _ in range(POOL_SIZE)]
        self._salt = rng.getrandbits(62)
        self._hash_salt = rng.getrandbits(64)
        start = end - (count + 1) * GAP
        half = GAP / 2
        rand = rng.random
        self.created = array("d", [start + i * GAP + rand() * half for i in range(count)])
        self.duration = array("f", [2.0 + rand() * (MAX_DURATION - 2.0) for _ in range(count)])
        self.outcome = bytes(rng.choices(range(len(OUTCOMES)), weights=_WEIGHTS, k=count))
        self.combo = bytes(rng.choices(range(POOL_SIZE), k=count))
        self.deleted: set[int] = set()
        self._deleted_sorted: list[int] = []
        self._success = success_text(family)
        self._nanos_always = family.source == "external_cm"  # as in seed 002

    # --- ids ----------------------------------------------------------------------------

    def id_of(self, index: int) -> str:
        """A UUID-4-shaped id: the low half encodes ``index``, the high half hashes it."""
        low = (1 << 63) | (((index * _ODD) & _MASK62) ^ self._salt)  # variant bits 10
        high = _mix(low ^ self._hash_salt) & ~(0xF << 12) | (0x4 << 12)  # version 4
        text = f"{high:016x}{low:016x}"
        return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"

    def index_of(self, job_id: str) -> int | None:
        """The row of a live (not deleted) history job with this id, else None."""
        text = job_id.lower()
        if len(text) != 36:
            return None
        try:
            low = int(text[19:23] + text[24:], 16)
        except ValueError:
            return None
        if low >> 62 != 0b10:
            return None
        index = (((low & _MASK62) ^ self._salt) * _ODD_INVERSE) & _MASK62
        if index >= self.count or index in self.deleted:
            return None
        return index if self.id_of(index) == text else None

    # --- rows -----------------------------------------------------------------------------

    @property
    def alive(self) -> int:
        return self.count - len(self.deleted)

    def delete(self, index: int) -> None:
        self.deleted.add(index)
        bisect.insort(self._deleted_sorted, index)

    def count_alive_le(self, moment: float) -> int:
        """How many live rows were created at or before ``moment``."""
        rows = bisect.bisect_right(self.created, moment)
        return rows - bisect.bisect_left(self._deleted_sorted, rows)

    def nth_alive(self, n: int) -> int:
        """The row of the ``n``-th (0-based, oldest first) live job."""
        # The smallest fixed point of row = n + |deleted <= row| is never a deleted row;
        # iterating from n climbs to it in at most len(deleted) steps.
        row = n
        while True:
            following = n + bisect.bisect_right(self._deleted_sorted, row)
            if following == row:
                return row
            row = following

    def rows(self) -> Iterable[int]:
        """Every live row, oldest first."""
        deleted = self.deleted
        return (i for i in range(self.count) if i not in deleted) if deleted else range(self.count)

    def status_of(self, index: int) -> str:
        return OUTCOMES[self.outcome[index]][0]

    def updated_of(self, index: int) -> float:
        return self.created[index] + self.duration[index] + UPDATE_LAG

    def status_counts(self) -> dict[int, int]:
        counts = {code: self.outcome.count(code) for code in range(len(OUTCOMES))}
        for index in self.deleted:
            counts[self.outcome[index]] -= 1
        return counts

    def job(self, index: int) -> Job:
        """Row ``index`` as a (throw-away) Job object."""
        bits = _mix(self._hash_salt + index)
        scope = self.pool[self.combo[index]]
        status, abort = OUTCOMES[self.outcome[index]]
        size = len(scope.keys)
        results = [self._success] * size
        pick = (bits >> 8) % size
        if status == FAILED:
            for slot in range(size):
                if slot == pick or (bits >> (16 + slot)) & 3 == 0:
                    choice = (bits >> (24 + 2 * slot)) & 0xFF
                    results[slot] = failure_text(self.family, scope.keys[slot], choice)
        elif abort:  # stopped midway: the scopes not reached stay in_progress (seed 004)
            for slot in range(pick, size):
                results[slot] = RUNNING
        job = Job(
            seq=index - self.count,  # before every live job
            job_id=self.id_of(index),
            family=self.family,
            scope=scope,
            created=self.created[index],
            status=status,
            results=results,
            nanos=self._nanos_always or bits & 0xF < 3,
            ns_salt=(bits >> 40) % 1000,
        )
        job.completed = self.created[index] + self.duration[index]
        job.updated = job.completed + UPDATE_LAG
        job.abort = abort
        return job
