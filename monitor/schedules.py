"""The manager's sync schedules judged: due times, misses, failed runs, disabled/enabled.

Pure: state, the last reads and ``now`` in; new state and events out. No I/O, no clock.

Due times
  ``run_at`` is a 5-field cron evaluated in UTC by ``croniter`` (pallets-eco, 7.x:
  maintained, typed stubs, accepts ``?`` in the day fields and month/weekday names; also
  ``L``, ``W``, ``#``) or one of the macros ``@hourly``…``@yearly``. A schedule is due at
  ``T`` when the cron names ``T``, ``start_date <= T <= end_date`` (a missing date bounds
  nothing), and it is neither ``disabled`` nor past its ``end_date`` now. A ``run_at``
  the monitor cannot read (wrong field count, a character no cron uses, a date that never
  exists such as 31 February) is a state, ``error`` ("invalid"), never an exception: such
  a schedule is shown, not judged.

What counts as missed (``schedule.missed``)
  A due time ``T`` is judged once ``T + grace`` has passed both ``now`` and the moment up
  to which the source's job list is known (``SourceJobs.seen_until``: the last good poll
  of that source), so a job listed late is never a miss. It is missed when no job of the
  schedule's source was created in ``[T, T + grace]`` (both ends included; a manual job
  counts, a job just before ``T`` or just after ``T + grace`` does not). One event per
  schedule and due time, id ``event_id(manager, "schedule.missed", schedule id, due_at)``.
  A miss stays open (``ScheduleState.open_miss``) until a job of the source is created at
  or after ``T``; ``missed_schedule_for`` names that schedule for the job's
  ``job.started``.

Which due times are judged
  - each due time once: ``judged_until`` moves forward and never back;
  - at first start (``first_cycle``: no stored state for the manager) only the most
    recent due time past its grace is judged; older ones are history;
  - a schedule first seen later is judged from its ``createdAt`` (unknown: from now);
  - after a change of ``run_at`` or the dates, or when a disabled schedule is enabled
    again, due times before its ``updatedAt`` (unknown: now) are not judged;
  - a source never polled (absent from ``jobs``) or a schedule whose cloud we do not map
    (``source`` None) is not judged: unknown is not missed;
  - while the manager is down (``manager_up`` False) nothing is decided and nothing moves.
    When it is back, the due times that passed meanwhile are judged: the manager's job
    list is its history, so whether a job was created is knowable, not guessed;
  - the look-back is bounded: at most ``max_due_times`` (default ``MAX_DUE_TIMES``) most
    recent due times per schedule and judgement; older ones are skipped (the schedule id
    is listed in ``ScheduleJudgement.capped``, for one log line), so a ``* * * * *``
    schedule after a week's downtime costs ``MAX_DUE_TIMES`` cron steps, not 10,000.

Disabled and enabled (``schedule.disabled`` / ``schedule.enabled``)
  Between two reads: a schedule turning ``disabled`` (reason ``disabled``), passing its
  ``end_date`` (``ended``) or disappearing from a complete read (``deleted``) is announced
  once; one inactive again is announced ``enabled``. Inactive at first sight is state,
  not news. Ids carry an episode number kept in the state, so they are stable across
  restarts. A deleted schedule's state is kept ``DELETED_RETENTION``, then dropped.

Failed runs (``schedule.run_failed``)
  A run of a watched schedule (matched by ``job_config_id``, else by a unique name) that
  ends ``failed`` or ``aborted`` (or their synonyms, ``FAILED_RUNS``) is announced once
  per run id. A run already finished at first start is history; one in progress then and
  failed later is news; an unknown finished run created before the newest run seen is
  history, at or after it news (like the differ's watermark; a stamp in the future moves
  the watermark no further than ``now``). Unknown words count as still running. The state
  keeps only the ids of the last read, so it stays as small as one runs page.

Periods
  ``period_seconds`` is the longest gap between the next ``PERIOD_SAMPLES`` due times
  (a weekday-only schedule's period is its weekend gap); ``source_periods`` takes, per
  source, the longest period among its active schedules: the freshness default target is
  ``2 * period + grace`` (monitor/freshness.py).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from itertools import pairwise
from typing import Any, Final

from croniter import croniter

from monitor.cm.scheduler import ScheduleConfig, SchedulerRun
from monitor.model import Event, EventType, event_id, format_optional, format_timestamp

MAX_DUE_TIMES: Final = 100  # due times judged per schedule and judgement, the most recent
PERIOD_SAMPLES: Final = 10  # due times looked at for a schedule's period
DELETED_RETENTION: Final = timedelta(days=30)

DISABLED: Final = "disabled"
ENDED: Final = "ended"
DELETED: Final = "deleted"

# status words of ScheduleState.status (the CLI's status column)
OK: Final = "ok"
MISSED: Final = "missed"
INVALID: Final = "invalid"
UNWATCHED: Final = "unwatched"

FAILED_RUNS: Final = frozenset({"failed", "aborted", "cancelled", "canceled", "error", "errored"})
SUCCEEDED_RUNS: Final = frozenset({"completed", "succeeded", "success", "successful", "done"})

# the data keys of every schedule event (None where one does not apply)
SCHEDULE_DATA_KEYS: Final = (
    "manager",
    "source",
    "schedule",
    "due_at",
    "grace_seconds",
    "run_id",
    "run_status",
    "processing_node",
    "run_created_at",
    "reason",
)

_MACROS: Final = frozenset(
    {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
)
_CRON_FIELD = re.compile(r"[0-9A-Za-z*/,?#\-]+")
_TICK = timedelta(microseconds=1)
_REFERENCE = datetime(2026, 1, 1, tzinfo=UTC)
# croniter's parser and its search raise assorted types on hostile text or at the
# calendar's edges; every one of them means "no due time here"
_CRON_FAILURES = (ValueError, OverflowError, ArithmeticError, LookupError, TypeError)


# --- cron -----------------------------------------------------------------------------


@lru_cache(maxsize=1024)
def cron_error(run_at: str) -> str | None:
    """None when ``run_at`` is a cron the monitor reads, else one sentence saying why not."""
    text = run_at.strip()
    shown = text[:60]
    if not text:
        return "run_at is empty"
    if text.lower() in _MACROS:
        return None
    fields = text.split()
    if len(fields) != 5:
        return f"run_at {shown!r} is not a 5-field cron expression"
    if not all(_CRON_FIELD.fullmatch(part) for part in fields):
        return f"run_at {shown!r} holds a character no cron expression uses"
    try:
        croniter(text, _REFERENCE).get_next(datetime)
    except _CRON_FAILURES as exc:
        if "failed to find" in str(exc):
            return f"run_at {shown!r} names no date that exists"
        return f"run_at {shown!r} is not a cron expression the monitor reads"
    return None


def _normalised(run_at: str) -> str:
    text = run_at.strip()
    return text.lower() if text.lower() in _MACROS else " ".join(text.split())


@dataclass(frozen=True, slots=True)
class DueTimes:
    times: tuple[datetime, ...]  # ascending
    capped: bool  # older due times in the window were left out


def due_times(
    run_at: str,
    *,
    after: datetime | None,
    until: datetime,
    since: datetime | None = None,
    limit: int = MAX_DUE_TIMES,
) -> DueTimes:
    """The cron's due times ``T`` with ``after < T <= until`` and ``T >= since``.

    At most ``limit`` of them, the most recent; ``capped`` says older ones were left
    out. An unreadable ``run_at`` has none. At most ``limit + 1`` cron steps.
    """
    if cron_error(run_at) is not None or limit <= 0:
        return DueTimes((), False)
    found: list[datetime] = []
    capped = False
    try:
        steps = croniter(_normalised(run_at), until + _TICK)
        while True:
            moment = steps.get_prev(datetime).astimezone(UTC)
            if (after is not None and moment <= after) or (since is not None and moment < since):
                break
            if len(found) == limit:
                capped = True
                break
            found.append(moment)
    except _CRON_FAILURES:
        pass  # the calendar's edge: no earlier due time
    return DueTimes(tuple(reversed(found)), capped)


def _next_after(run_at: str, moment: datetime, count: int) -> list[datetime]:
    if cron_error(run_at) is not None:
        return []
    found: list[datetime] = []
    try:
        steps = croniter(_normalised(run_at), moment)
        while len(found) < count:
            found.append(steps.get_next(datetime).astimezone(UTC))
    except _CRON_FAILURES:
        pass
    return found


def inactive_reason(schedule: ScheduleConfig, now: datetime) -> str | None:
    """``disabled``, ``ended`` (past its ``end_date``), or None: active now."""
    if schedule.disabled:
        return DISABLED
    if schedule.end_date is not None and now > schedule.end_date:
        return ENDED
    return None


def next_due(schedule: ScheduleConfig, now: datetime) -> datetime | None:
    """The first due time after ``now`` inside the dates; None when inactive or unreadable."""
    if inactive_reason(schedule, now) is not None:
        return None
    base = now
    if schedule.start_date is not None and schedule.start_date - _TICK > now:
        base = schedule.start_date - _TICK
    found = _next_after(schedule.run_at, base, 1)
    if not found or (schedule.end_date is not None and found[0] > schedule.end_date):
        return None
    return found[0]


def period_seconds(run_at: str, now: datetime, samples: int = PERIOD_SAMPLES) -> float | None:
    """The longest gap between the next ``samples`` due times after ``now`` (None: none)."""
    found = _next_after(run_at, now, max(samples, 2))
    if len(found) < 2:
        return None
    return max((b - a).total_seconds() for a, b in pairwise(found))


@dataclass(frozen=True, slots=True)
class Timing:
    """What metrics and the CLI show of one schedule."""

    next_due: datetime | None
    period_seconds: float | None


def timing(schedule: ScheduleConfig, now: datetime) -> Timing:
    return Timing(next_due(schedule, now), period_seconds(schedule.run_at, now))


def source_periods(schedules: Iterable[ScheduleConfig], now: datetime) -> dict[str, float]:
    """Per source, the longest period among its active, readable schedules."""
    periods: dict[str, float] = {}
    for schedule in schedules:
        if schedule.source is None or inactive_reason(schedule, now) is not None:
            continue
        period = period_seconds(schedule.run_at, now)
        if period is not None:
            periods[schedule.source] = max(period, periods.get(schedule.source, 0.0))
    return periods


# --- the jobs of a source ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SourceJobs:
    """The creation times of a source's jobs, and how far the list is known."""

    created: tuple[datetime, ...]  # ascending
    seen_until: datetime  # every job created up to here is in ``created`` (the last poll)

    def any_between(self, start: datetime, end: datetime) -> bool:
        """A job created in ``[start, end]``."""
        index = bisect.bisect_left(self.created, start)
        return index < len(self.created) and self.created[index] <= end

    def first_from(self, start: datetime) -> datetime | None:
        """The first job created at or after ``start``."""
        index = bisect.bisect_left(self.created, start)
        return self.created[index] if index < len(self.created) else None

    def newest(self) -> datetime | None:
        return self.created[-1] if self.created else None


def remember_jobs(
    previous: SourceJobs | None,
    created: Iterable[datetime | None],
    *,
    seen_until: datetime,
    keep_after: datetime,
) -> SourceJobs:
    """``previous`` with the creation times of a poll's jobs added (duplicates kept once),
    those before ``keep_after`` dropped, and ``seen_until`` moved forward."""
    times = set(() if previous is None else previous.created)
    times.update(stamp for stamp in created if stamp is not None)
    kept = tuple(sorted(stamp for stamp in times if stamp >= keep_after))
    until = seen_until if previous is None else max(previous.seen_until, seen_until)
    return SourceJobs(kept, until)


# --- schedule state and judgement ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScheduleState:
    """What the monitor remembers of one schedule between reads."""

    schedule: ScheduleConfig  # as last read (deleted: as last seen)
    reason: str | None = None  # why inactive: disabled, ended, deleted; None: active
    changed_at: datetime | None = None  # when ``reason`` last changed
    episode: int = 0  # disabled transitions announced (event ids)
    error: str | None = None  # run_at is not a cron the monitor reads
    judged_until: datetime | None = None  # due times at or before were judged (or history)
    since: datetime | None = None  # due times before are not judged
    latest_only: bool = False  # first start: only the latest due time past grace is judged
    last_due: datetime | None = None  # the latest due time judged
    last_missed: datetime | None = None  # the latest due time judged missed
    open_miss: datetime | None = None  # a miss no job of the source has followed yet
    last_job_at: datetime | None = None  # the newest job of the source seen

    @property
    def status(self) -> str:
        """``disabled``, ``invalid``, ``unwatched``, ``missed`` or ``ok``."""
        if self.reason is not None:
            return DISABLED
        if self.error is not None:
            return INVALID
        if self.schedule.source is None:
            return UNWATCHED
        return MISSED if self.open_miss is not None else OK


@dataclass(frozen=True, slots=True)
class ScheduleJudgement:
    states: dict[str, ScheduleState]  # by schedule id: the whole new state
    events: list[Event]
    capped: tuple[str, ...] = ()  # schedule ids whose older due times were skipped


@dataclass(slots=True)
class _Out:
    manager: str
    now: datetime
    grace_seconds: float
    events: list[Event] = field(default_factory=list)

    def emit(
        self,
        kind: EventType,
        schedule: ScheduleConfig,
        id_parts: tuple[str, ...],
        **data: Any,
    ) -> None:
        body: dict[str, Any] = dict.fromkeys(SCHEDULE_DATA_KEYS)
        body.update(manager=self.manager, source=schedule.source, schedule=schedule.ref())
        body.update(data)
        self.events.append(
            Event(
                id=event_id(self.manager, kind.value, schedule.id, *id_parts),
                type=kind,
                timestamp=self.now,
                manager=self.manager,
                source=schedule.source or "",
                data=body,
            )
        )


def judge_schedules(
    manager: str,
    previous: Mapping[str, ScheduleState],
    schedules: Iterable[ScheduleConfig],
    jobs: Mapping[str, SourceJobs],
    now: datetime,
    *,
    grace_seconds: float,
    first_cycle: bool,
    manager_up: bool = True,
    max_due_times: int = MAX_DUE_TIMES,
) -> ScheduleJudgement:
    """Judge one complete read of a manager's sync schedules.

    ``previous``: the states of the last judgement (empty at first start). ``schedules``:
    every ``cckm_synchronization`` configuration of the read (a schedule absent from it is
    deleted, so pass complete reads only). ``jobs``: by source, the jobs seen; a source
    absent is not judged. ``first_cycle``: nothing of this manager is stored yet.
    """
    if not manager_up:
        return ScheduleJudgement(dict(previous), [])
    out = _Out(manager, now, grace_seconds)
    grace = timedelta(seconds=max(grace_seconds, 0.0))
    states: dict[str, ScheduleState] = {}
    capped: list[str] = []
    current = {schedule.id: schedule for schedule in schedules}
    for schedule_id in sorted(current.keys() | previous.keys()):
        old = previous.get(schedule_id)
        schedule = current.get(schedule_id)
        if schedule is None:
            assert old is not None
            kept = _deleted(old, now, out)
            if kept is not None:
                states[schedule_id] = kept
            continue
        state = _transition(old, schedule, now, first_cycle=first_cycle, out=out)
        source_jobs = None if schedule.source is None else jobs.get(schedule.source)
        if source_jobs is not None:
            state, was_capped = _judge_due(state, source_jobs, now, grace, max_due_times, out)
            if was_capped:
                capped.append(schedule_id)
        states[schedule_id] = state
    return ScheduleJudgement(states, out.events, tuple(capped))


def _deleted(old: ScheduleState, now: datetime, out: _Out) -> ScheduleState | None:
    if old.reason == DELETED:
        if old.changed_at is not None and now - old.changed_at > DELETED_RETENTION:
            return None
        return old
    episode = old.episode
    if old.reason is None and old.schedule.source is not None:
        episode += 1
        out.emit(EventType.SCHEDULE_DISABLED, old.schedule, (str(episode),), reason=DELETED)
    return replace(old, reason=DELETED, changed_at=now, episode=episode)


def _transition(
    old: ScheduleState | None,
    schedule: ScheduleConfig,
    now: datetime,
    *,
    first_cycle: bool,
    out: _Out,
) -> ScheduleState:
    reason = inactive_reason(schedule, now)
    error = cron_error(schedule.run_at)
    if old is None:
        since = schedule.created_at
        if not first_cycle and since is None:
            since = now  # created at an unknown moment since the last read
        return ScheduleState(
            schedule=schedule,
            reason=reason,
            changed_at=now,
            error=error,
            since=since,
            latest_only=first_cycle,
        )
    state = replace(old, schedule=schedule, error=error)
    if old.reason != reason:
        state = replace(state, reason=reason, changed_at=now)
        watched = schedule.source is not None
        if old.reason is None and reason is not None:
            state = replace(state, episode=old.episode + 1)
            if watched:
                out.emit(
                    EventType.SCHEDULE_DISABLED, schedule, (str(state.episode),), reason=reason
                )
        elif old.reason is not None and reason is None:
            state = _restart(state, schedule, now)
            if watched:
                out.emit(EventType.SCHEDULE_ENABLED, schedule, (str(state.episode),))
    if _timing_key(old.schedule) != _timing_key(schedule):
        state = _restart(state, schedule, now)
    return state


def _timing_key(schedule: ScheduleConfig) -> tuple[object, ...]:
    return (_normalised(schedule.run_at), schedule.start_date, schedule.end_date)


def _restart(state: ScheduleState, schedule: ScheduleConfig, now: datetime) -> ScheduleState:
    """After an enable or a change of timing: due times before it are not judged."""
    moment = schedule.updated_at if schedule.updated_at is not None else now
    since = moment if state.since is None else max(state.since, moment)
    return replace(state, since=since, latest_only=False)


def _judge_due(
    state: ScheduleState,
    jobs: SourceJobs,
    now: datetime,
    grace: timedelta,
    limit: int,
    out: _Out,
) -> tuple[ScheduleState, bool]:
    schedule = state.schedule
    newest = jobs.newest()
    if newest is not None and (state.last_job_at is None or newest > state.last_job_at):
        state = replace(state, last_job_at=min(newest, now))
    if state.open_miss is not None and jobs.first_from(state.open_miss) is not None:
        state = replace(state, open_miss=None)
    if state.reason is not None or state.error is not None:
        return state, False
    cutoff = min(now, jobs.seen_until) - grace
    if state.judged_until is not None and cutoff <= state.judged_until:
        return state, False
    since = _latest(state.since, schedule.start_date)
    until = cutoff if schedule.end_date is None else min(cutoff, schedule.end_date)
    found = due_times(
        schedule.run_at,
        after=None if state.latest_only else state.judged_until,
        until=until,
        since=since,
        limit=1 if state.latest_only else limit,
    )
    for due in found.times:
        state = replace(state, last_due=due)
        if jobs.any_between(due, due + grace):
            continue
        state = replace(state, last_missed=due)
        if jobs.first_from(due) is None:
            state = replace(state, open_miss=due)
        out.emit(
            EventType.SCHEDULE_MISSED,
            schedule,
            (format_timestamp(due),),
            due_at=format_timestamp(due),
            grace_seconds=out.grace_seconds,
        )
    capped = found.capped and not state.latest_only
    return replace(state, judged_until=cutoff, latest_only=False), capped


def _latest(*moments: datetime | None) -> datetime | None:
    known = [moment for moment in moments if moment is not None]
    return max(known) if known else None


def missed_schedule_for(
    states: Mapping[str, ScheduleState], source: str, created_at: datetime | None
) -> dict[str, str | None] | None:
    """``data.schedule`` for a job of ``source``: the schedule whose open miss it follows.

    The job must be created at or after the missed due time; of several, the latest
    miss. None when no miss of the source is open.
    """
    best: ScheduleState | None = None
    for state in states.values():
        miss = state.open_miss
        if state.schedule.source != source or miss is None:
            continue
        if created_at is not None and created_at < miss:
            continue
        if best is None or (best.open_miss is not None and miss > best.open_miss):
            best = state
    return None if best is None else best.schedule.ref()


# --- runs -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunsState:
    """The runs of the last read: which were running, which finished, the newest stamp."""

    running: frozenset[str] = frozenset()
    finished: frozenset[str] = frozenset()
    watermark: datetime | None = None


def run_finished(status: str) -> bool:
    return status in FAILED_RUNS or status in SUCCEEDED_RUNS


def judge_runs(
    manager: str,
    previous: RunsState | None,
    runs: Iterable[SchedulerRun],
    schedules: Mapping[str, ScheduleState],
    now: datetime,
    *,
    manager_up: bool = True,
) -> tuple[RunsState, list[Event]]:
    """Judge one read of the scheduler's runs (newest first or any order).

    ``previous`` None: the first read (nothing stored), where every finished run is
    history. ``schedules``: the states of ``judge_schedules`` (deleted ones included), to
    name each run's schedule and source. A run that matches no watched schedule is
    ignored.
    """
    if not manager_up:
        return previous or RunsState(), []
    prior = previous or RunsState()
    history = previous is None
    by_id = {state.schedule.id: state.schedule for state in schedules.values()}
    names: dict[str, ScheduleConfig | None] = {}
    for schedule in by_id.values():
        names[schedule.name] = None if schedule.name in names else schedule
    out = _Out(manager, now, 0.0)
    running: set[str] = set()
    finished: set[str] = set()
    newest = prior.watermark
    for run in runs:
        if run.id in running or run.id in finished:
            continue
        matched = by_id.get(run.job_config_id or "") or names.get(run.name or "")
        if matched is None or matched.source is None:
            continue
        if run.created_at is not None:
            stamp = min(run.created_at, now)
            newest = stamp if newest is None else max(newest, stamp)
        if not run_finished(run.status):
            running.add(run.id)
            continue
        finished.add(run.id)
        if run.status not in FAILED_RUNS or run.id in prior.finished:
            continue
        if run.id not in prior.running and (
            history
            or run.created_at is None
            or (prior.watermark is not None and run.created_at < prior.watermark)
        ):
            continue  # history
        out.emit(
            EventType.SCHEDULE_RUN_FAILED,
            matched,
            (run.id,),
            run_id=run.id,
            run_status=run.status,
            processing_node=run.processing_node,
            run_created_at=format_optional(run.created_at),
        )
    return RunsState(frozenset(running), frozenset(finished), newest), out.events
