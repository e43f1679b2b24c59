"""The ONE polling loop, shared by every source (job family) of every manager.

Each cycle of the incremental strategy costs requests in proportion to running and new
jobs, never to history:

1. list ``overall_status=in_progress`` (every page);
2. list newest-first (``sort=-createdAt``) only down to the watermark, the newest
   ``createdAt`` already seen, so a job that started and ended between two polls is
   still seen;
3. fetch by id each tracked running job that left the running list (404: vanished).

``strategy: full`` lists everything instead, for managers that ignore ``sort``.
A poll that fails part-way is discarded whole: only complete data is diffed.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Protocol

import anyio

from monitor.clock import Clock
from monitor.cm.client import ManagerClient
from monitor.cm.errors import CMError, NotFound
from monitor.cm.parse import Page
from monitor.differ import SourceHealth, diff_health, diff_source
from monitor.families import Family
from monitor.model import IN_PROGRESS, Event, JobEssence, JobSnapshot
from monitor.store import Store


class PollObserver(Protocol):
    """Where a poll's outcome is reported (logs and metrics), in one place."""

    def poll_succeeded(
        self,
        manager: str,
        source: str,
        *,
        seconds: float,
        events: Sequence[Event],
        running: Mapping[str, JobEssence],
    ) -> None: ...

    def strategy_changed(
        self, manager: str, source: str, *, strategy: str, reason: str
    ) -> None: ...

    def poll_failed(
        self,
        manager: str,
        source: str,
        *,
        seconds: float,
        error: CMError,
        events: Sequence[Event],
        consecutive_failures: int,
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class PollOptions:
    interval_seconds: float = 30.0
    jitter_fraction: float = 0.1
    page_size: int = 100
    strategy: str = "incremental"
    stuck_after_seconds: float = 3600.0


@dataclass(frozen=True, slots=True)
class Fetched:
    """Everything one complete poll learned."""

    jobs: list[JobSnapshot]
    gone: list[str]


class SourcePoller:
    """Polls one job family of one manager and commits what changed."""

    def __init__(
        self,
        *,
        manager: str,
        family: Family,
        client: ManagerClient,
        store: Store,
        options: PollOptions,
        clock: Clock,
        observer: PollObserver,
        on_commit: Callable[[], None] = lambda: None,
        rng: random.Random | None = None,
    ) -> None:
        self.manager = manager
        self.family = family
        self.source = family.source
        self._client = client
        self._store = store
        self._options = options
        self._clock = clock
        self._observer = observer
        self._on_commit = on_commit
        self._rng = rng or random.Random()  # noqa: S311 - jitter
        state = store.load_source(manager, family.source)
        self._baseline_done = state.baseline_done
        self._watermark = state.watermark
        self.health: SourceHealth = state.health
        self.running: dict[str, JobEssence] = dict(state.running)
        self.last_success: float | None = None  # monotonic
        self.strategy = options.strategy  # may fall back to "full" (see _newest)

    # --- one cycle ----------------------------------------------------------------

    async def poll_once(self) -> list[Event]:
        """One complete cycle: fetch, diff, commit. Returns the new events."""
        started = self._clock.monotonic()
        try:
            fetched = await self._fetch()
        except CMError as exc:
            return self._failed(exc, self._clock.monotonic() - started)
        now = self._clock.now()
        known_ids = [j.job_id for j in fetched.jobs if j.job_id not in self.running]
        previous = dict(self.running)
        previous.update(self._store.load_jobs(self.manager, self.source, known_ids))
        result = diff_source(
            self.manager,
            self.source,
            previous,
            fetched.jobs,
            fetched.gone,
            now,
            stuck_after_seconds=self._options.stuck_after_seconds,
            baseline=not self._baseline_done,
            watermark=self._watermark,
        )
        health, health_events = diff_health(
            self.manager, self.source, self.health, ok=True, now=now
        )
        events = [*result.events, *health_events]
        self._store.commit_poll(
            self.manager,
            self.source,
            changed=result.changed,
            events=events,
            watermark=result.watermark,
            health=health,
            now=now.timestamp(),
        )
        # memory follows the store only after the commit succeeded
        self._baseline_done = True
        self._watermark = result.watermark
        self.health = health
        for job_id, essence in result.changed.items():
            if essence.tracked_running:
                self.running[job_id] = essence
            else:
                self.running.pop(job_id, None)
        self.last_success = self._clock.monotonic()
        self._observer.poll_succeeded(
            self.manager,
            self.source,
            seconds=self.last_success - started,
            events=events,
            running=self.running,
        )
        if events:
            self._on_commit()
        return events

    def _failed(self, error: CMError, seconds: float) -> list[Event]:
        now = self._clock.now()
        health, events = diff_health(
            self.manager,
            self.source,
            self.health,
            ok=False,
            now=now,
            reason=error.reason,
            error=error.message,
        )
        self._store.commit_health(
            self.manager, self.source, health=health, events=events, now=now.timestamp()
        )
        self.health = health
        self._observer.poll_failed(
            self.manager,
            self.source,
            seconds=seconds,
            error=error,
            events=events,
            consecutive_failures=health.consecutive_failures,
        )
        if events:
            self._on_commit()
        return events

    async def _fetch(self) -> Fetched:
        size = self._options.page_size
        keep = self._known
        if self.strategy == "full":
            listed = await self._client.list_jobs(self.family, page_size=size, keep=keep)
        else:
            running = await self._client.list_jobs(
                self.family, page_size=size, filters={"overall_status": IN_PROGRESS}, keep=keep
            )
            newest = await self._newest(size)
            if newest is None:  # the manager ignores sort: list everything from now on
                listed = await self._client.list_jobs(self.family, page_size=size, keep=keep)
            else:
                listed = running + newest
        seen = {job.job_id for job in listed}
        missing = [job_id for job_id in self.running if job_id not in seen]
        fetched, gone = await self._fetch_by_id(missing)
        return Fetched(jobs=listed + fetched, gone=gone)

    async def _newest(self, size: int) -> list[JobSnapshot] | None:
        """Jobs newest first, down to the watermark; None if the manager ignores ``sort``."""
        sort = {"sort": "-createdAt"}
        if self._baseline_done:
            jobs = await self._client.list_jobs(
                self.family,
                page_size=size,
                filters=sort,
                stop=self._reached_watermark,
                keep=self._known,
            )
        else:  # first start: one page sets the watermark (and shows the order)
            jobs = (
                await self._client.list_page(self.family, skip=0, limit=size, filters=sort)
            ).jobs
        stamps = [j.created_at for j in jobs if j.created_at is not None]
        if all(a >= b for a, b in pairwise(stamps)):
            return jobs
        # Walking "down to the watermark" needs newest-first answers; otherwise finished
        # jobs of any age would look new. Full listing is always right, only dearer.
        self.strategy = "full"
        self._observer.strategy_changed(
            self.manager,
            self.source,
            strategy="full",
            reason="the manager ignores sort=-createdAt",
        )
        return None

    def _known(self, job: JobSnapshot) -> JobSnapshot:
        """The snapshot already held when ``job`` has not changed (most jobs, most cycles)."""
        essence = self.running.get(job.job_id)
        return essence.snapshot if essence is not None and essence.snapshot == job else job

    def _reached_watermark(self, page: Page) -> bool:
        mark = self._watermark
        if mark is None:
            return False
        # strictly older: jobs sharing the watermark's instant may straddle the page end
        return any(j.created_at is not None and j.created_at < mark for j in page.jobs)

    async def _fetch_by_id(self, ids: list[str]) -> tuple[list[JobSnapshot], list[str]]:
        found: list[JobSnapshot] = []
        gone: list[str] = []
        errors: list[CMError] = []

        async def one(job_id: str) -> None:
            try:
                found.append(await self._client.get_job(self.family, job_id))
            except NotFound:
                gone.append(job_id)
            except CMError as exc:
                errors.append(exc)

        async with anyio.create_task_group() as tg:
            for job_id in ids:
                tg.start_soon(one, job_id)
        if errors:
            raise errors[0]
        return found, gone

    # --- the loop -----------------------------------------------------------------

    def next_delay(self) -> float:
        interval = self._options.interval_seconds
        spread = interval * self._options.jitter_fraction
        return max(interval + self._rng.uniform(-spread, spread), 0.0)

    async def run(self) -> None:
        """Poll until cancelled; a cycle never overlaps the previous one."""
        while True:
            started = self._clock.monotonic()
            await self.poll_once()
            elapsed = self._clock.monotonic() - started
            await self._clock.sleep(max(self.next_delay() - elapsed, 0.0))
