"""The jobs of one source: history rows plus live jobs, kept in creation order."""

from __future__ import annotations

import bisect

from monitor.families import Family
from monitor.simulator.history import HistoryBlock
from monitor.simulator.jobs import Job
from monitor.simulator.scopes import Catalog


def _order(job: Job) -> tuple[float, int]:
    return (job.created, job.seq)


class SourceJobs:
    """Every job of one family.

    ``live`` holds the jobs made after start (and the pre-started running ones) sorted by
    (createdAt, creation sequence), so newest-first pages are slices from its end;
    ``running`` indexes the unfinished ones so ``overall_status=in_progress`` costs
    O(running). History rows live in ``history`` and are always older.
    """

    def __init__(self, family: Family, catalog: Catalog, history: HistoryBlock | None) -> None:
        self.family = family
        self.catalog = catalog
        self.history = history
        self.live: list[Job] = []
        self.by_id: dict[str, Job] = {}
        self.running: dict[str, Job] = {}

    @property
    def total(self) -> int:
        return len(self.live) + (self.history.alive if self.history else 0)

    def add(self, job: Job) -> None:
        if not self.live or _order(self.live[-1]) <= _order(job):
            self.live.append(job)  # the usual case: the newest job
        else:  # a scripted job backdated with created_at
            bisect.insort(self.live, job, key=_order)
        self.by_id[job.job_id] = job
        if job.running:
            self.running[job.job_id] = job

    def find(self, job_id: str) -> Job | None:
        job = self.by_id.get(job_id)
        if job is not None:
            return job
        if self.history is not None:
            index = self.history.index_of(job_id)
            if index is not None:
                return self.history.job(index)
        return None

    def finished(self, job: Job) -> None:
        self.running.pop(job.job_id, None)

    def delete(self, job_id: str) -> Job | None:
        """Remove a job for good; returns it (as it was) or None when unknown."""
        job = self.by_id.pop(job_id, None)
        if job is not None:
            position = bisect.bisect_left(self.live, _order(job), key=_order)
            while self.live[position] is not job:
                position += 1
            del self.live[position]
            self.running.pop(job_id, None)
            job.deleted = True
            return job
        if self.history is not None:
            index = self.history.index_of(job_id)
            if index is not None:
                job = self.history.job(index)
                self.history.delete(index)
                return job
        return None
