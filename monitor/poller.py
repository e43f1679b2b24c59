"""The ONE polling loop, shared by every source (job family) of every manager.

Each cycle of the incremental strategy costs requests in proportion to running and new
jobs, never to history:

1. list ``overall_status=in_progress`` (every page);
2. list newest-first (``sort=-createdAt``) only down to the watermark, the newest
   ``createdAt`` already seen, so a job that started and ended between two polls is
   still seen;
3. fetch by id each tracked running job that left the running list (404: vanished).

``strategy: full`` lists everything instead, for managers that ignore ``sort``.

An idle cycle costs what changed, not a page: the newest-first walk asks for
``NEWEST_FIRST_PAGE`` jobs first and grows x10 (up to ``page_size``) only while the
history bound is not reached; the finished jobs listed last cycle are remembered as the
store holds them (at most ``KNOWN_MAX``), so an unchanged one is a dict look-up, not a
SQLite read and a JSON decode. Cycles start on a fixed grid (``run``,
``cadence.PollSchedule``).
A poll that fails part-way is discarded whole: only complete data is diffed.

The manager's own clock (its ``Date`` header) bounds what the walk believes: a job
stamped in the future does not move the watermark, and a clock that stepped back moves
the walk's floor down with it (``differ.history_bound``).

Each cycle is supervised: an unexpected exception (a bug) is logged with its traceback
the first time, counted as a failed poll (``reason="internal"``), and the source polls
again next cycle. Only ``StoreError`` (the state file is gone or unwritable) ends it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from typing import Protocol

import anyio

from monitor.cadence import PollSchedule
from monitor.clock import Clock
from monitor.cm.client import ManagerClient
from monitor.cm.errors import INTERNAL, CMError, NotFound
from monitor.cm.parse import Page
from monitor.differ import BASELINE_WINDOW, diff_source, history_bound
from monitor.families import Family
from monitor.health import SourceHealth, diff_health
from monitor.model import IN_PROGRESS, Event, JobEssence, JobSnapshot, truncate
from monitor.statefile import StoreError
from monitor.store import Store

BASELINE_PAGES = 10  # the first start's walk into the past stops here at the latest
NEWEST_FIRST_PAGE = 10  # the newest-first walk's first page; x10 per page up to page_size
KNOWN_MAX = 1000  # finished jobs of the last cycle remembered (per source), newest first


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

    def poll_crashed(
        self, manager: str, source: str, *, error: BaseException, traceback: bool
    ) -> None:
        """A bug of ours in a cycle (``traceback``: the first time this one is seen)."""
        ...


class _BaselineWalk:
    """Where the first start's newest-first walk stops: at ``BASELINE_WINDOW`` below the
    newest job, or after ``BASELINE_PAGES`` pages. The finished jobs it sees are recorded
    as history, so that a manager clock stepping back later (which lowers the history
    bound) does not present them as new."""

    def __init__(self) -> None:
        self.pages = 0
        self.newest: datetime | None = None

    def __call__(self, page: Page) -> bool:
        self.pages += 1
        stamps = [j.created_at for j in page.jobs if j.created_at is not None]
        if self.newest is None and stamps:
            self.newest = max(stamps)
        if self.pages >= BASELINE_PAGES or self.newest is None:
            return True
        return bool(stamps) and min(stamps) < self.newest - BASELINE_WINDOW


class InternalError(CMError):
    """A cycle ended by an unexpected exception: counted like a failed poll."""

    reason = INTERNAL


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
    history_before: datetime | None  # unknown finished jobs created before it are history
    present: datetime | None  # the manager's present, by its Date header


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
        self._present: datetime | None = None  # the manager's present at the last good poll
        self._history_before: datetime | None = None  # this cycle's floor of the walk
        self._crashes_seen: set[str] = set()  # bugs already logged with their traceback
        # the listed jobs of the last cycle that are not tracked running, as the store
        # holds them (None: not stored, i.e. history): an unchanged finished job costs a
        # dict look-up, not a SQLite read and a JSON decode, each cycle
        self._finished: dict[str, JobEssence | None] = {}

    # --- one cycle ----------------------------------------------------------------

    async def poll_once(self) -> list[Event]:
        """One complete cycle: fetch, diff, commit. Returns the new events."""
        started = self._clock.monotonic()
        try:
            fetched = await self._fetch()
        except CMError as exc:
            return await self._failed(exc, self._clock.monotonic() - started)
        now = self._clock.now()
        previous = self._previous(fetched.jobs)
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
            history_before=fetched.history_before,
            present=fetched.present,
        )
        health, health_events = diff_health(
            self.manager, self.source, self.health, ok=True, now=now
        )
        events = [*result.events, *health_events]
        await self._store.write(  # retried while another process holds the write lock
            self._store.commit_poll,
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
        self._present = fetched.present
        self.health = health
        for job_id, essence in result.changed.items():
            if essence.tracked_running:
                self.running[job_id] = essence
            else:
                self.running.pop(job_id, None)
        self._remember_finished(fetched.jobs, previous, result.changed)
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

    def _previous(self, listed: Sequence[JobSnapshot]) -> dict[str, JobEssence]:
        """The stored essence of every tracked running job and of every listed known job.

        Finished jobs listed last cycle come from memory (``_finished``); only the others
        are read from the store.
        """
        previous = dict(self.running)
        finished = self._finished
        unknown: list[str] = []
        for job in listed:
            job_id = job.job_id
            if job_id in previous:
                continue
            if job_id in finished:
                essence = finished[job_id]
                if essence is not None:
                    previous[job_id] = essence
            else:
                unknown.append(job_id)
        if unknown:
            previous.update(self._store.load_jobs(self.manager, self.source, unknown))
        return previous

    def _remember_finished(
        self,
        listed: Sequence[JobSnapshot],
        previous: Mapping[str, JobEssence],
        changed: Mapping[str, JobEssence],
    ) -> None:
        """After a commit: the listed jobs not tracked running, as the store now holds
        them, at most ``KNOWN_MAX`` (the newest, listed first by the newest-first walk)."""
        remembered: dict[str, JobEssence | None] = {}
        for job in listed:
            job_id = job.job_id
            if job_id in self.running or job_id in remembered:
                continue
            remembered[job_id] = changed.get(job_id) or previous.get(job_id)
            if len(remembered) >= KNOWN_MAX:
                break
        self._finished = remembered

    async def _failed(self, error: CMError, seconds: float) -> list[Event]:
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
        await self._store.write(  # retried while another process holds the write lock
            self._store.commit_health,
            self.manager,
            self.source,
            health=health,
            events=events,
            now=now.timestamp(),
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
            self._bound_history()
        else:
            running = await self._client.list_jobs(
                self.family, page_size=size, filters={"overall_status": IN_PROGRESS}, keep=keep
            )
            self._bound_history()  # the running list's answers carried the manager's Date
            newest = await self._newest(size)
            if newest is None:  # the manager ignores sort: list everything from now on
                listed = await self._client.list_jobs(self.family, page_size=size, keep=keep)
            else:
                listed = running + newest
        seen = {job.job_id for job in listed}
        missing = [job_id for job_id in self.running if job_id not in seen]
        fetched, gone = await self._fetch_by_id(missing)
        return Fetched(
            jobs=listed + fetched,
            gone=gone,
            history_before=self._history_before,
            present=self._client.manager_now(),
        )

    def _bound_history(self) -> None:
        """This cycle's history bound, from the manager's present and the last poll's."""
        elapsed = None if self.last_success is None else self._clock.monotonic() - self.last_success
        self._history_before = history_bound(
            self._watermark,
            present=self._client.manager_now(),
            previous_present=self._present,
            elapsed_seconds=elapsed,
        )

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
                first_page=NEWEST_FIRST_PAGE,  # usually 0 or 1 job is new: grow only if not
            )
        else:  # first start: the watermark, the order, and the recent past as history
            jobs = await self._client.list_jobs(
                self.family, page_size=size, filters=sort, stop=_BaselineWalk()
            )
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
        mark = self._history_before
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

    async def poll_guarded(self) -> list[Event]:
        """``poll_once`` under supervision: a bug ends this cycle, not the daemon."""
        try:
            return await self.poll_once()
        except StoreError:
            raise
        except Exception as exc:  # a bug of ours: log it, count it, poll again next cycle
            key = f"{type(exc).__name__}: {exc}"
            first = key not in self._crashes_seen
            if first and len(self._crashes_seen) < 100:
                self._crashes_seen.add(key)
            self._observer.poll_crashed(self.manager, self.source, error=exc, traceback=first)
            error = InternalError(
                f"{self.source} poll: an unexpected error ({truncate(key, 200)}); "
                "the cycle was discarded"
            )
            try:
                return await self._failed(error, 0.0)
            except StoreError:
                raise
            except Exception:  # reporting the failure failed too: the crash is logged
                return []

    async def run(self, *, first_delay: float = 0.0) -> None:
        """Poll until cancelled; a cycle never overlaps the previous one.

        Cycles start on a fixed grid (``cadence.PollSchedule``): at most
        ``interval_seconds`` apart, jitter only shortening a gap, an overrun not pushing
        the next start. ``first_delay`` spreads many sources' first polls
        (``cadence.first_offset``).
        """
        schedule = PollSchedule(
            self._options.interval_seconds,
            self._options.jitter_fraction,
            start=self._clock.monotonic() + max(first_delay, 0.0),
            rng=self._rng,
        )
        while True:
            await self._clock.sleep(schedule.delay(self._clock.monotonic()))
            await self.poll_guarded()
            schedule.advance(self._clock.monotonic())
