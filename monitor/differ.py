"""The pure state differ: previous essence + current snapshot + ``now`` -> events.

No I/O, no clock, no randomness: every decision about *what changed* lives here, so it
can be tested as a matrix and as a property. Rules (contract.md, cckm-api.md):

- a job not seen before emits ``job.started``, then whatever else its first snapshot
  shows (abort requested, failed scopes, its end), so a job that started and ended
  between two polls still gets exactly one ``started`` and one terminal event;
- at first start (``baseline``) running jobs are recorded silently; they get no
  ``started`` but do get their ``stuck`` and terminal events later;
- a finished job never seen before and created before the newest job already seen (the
  *watermark*) is history, not news: ignored. Ties are not history: the baseline records
  the finished jobs created exactly at the watermark, so they are known, not new;
- the watermark believes no stamp later than the manager's own present (its ``Date``), so
  a job dated in the future cannot hide the jobs after it; when the manager's clock shows
  it stepped back, the history bound moves down with it (``history_bound``);
- ages (``job.stuck``) are measured at the earlier of the monitor's and the manager's
  present, so neither clock jumping forward makes young jobs look old;
- once a terminal event is recorded, the job is frozen: later changes emit nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from monitor.envelope import event_data
from monitor.model import (
    ABORT_STATUSES,
    COMPLETED,
    VANISHED,
    Event,
    EventType,
    JobEssence,
    JobSnapshot,
    event_id,
    is_scope_failure,
)

# Clocks are compared to the second (HTTP Date) plus a request's latency: differences
# smaller than this are noise, not a manager clock that stepped back.
CLOCK_TOLERANCE = timedelta(seconds=5)
# Without a Date header, a createdAt this far past the monitor's own clock is from the future.
UNDATED_FUTURE = timedelta(hours=1)
# At first start, finished jobs this far below the newest are recorded as history: a
# manager clock stepping back later by up to this much presents none of them as new.
BASELINE_WINDOW = timedelta(hours=24)


def terminal_type(snapshot: JobSnapshot) -> EventType:
    """Which terminal event a stopped job gets."""
    if snapshot.abort or snapshot.status in ABORT_STATUSES:
        return EventType.JOB_ABORTED
    if snapshot.status == COMPLETED:
        return EventType.JOB_COMPLETED
    return EventType.JOB_FAILED  # "failed" and any unknown terminal word


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round(max((end - start).total_seconds(), 0.0), 6)


def job_age(essence_or_snapshot: JobSnapshot, first_seen: datetime, now: datetime) -> float:
    start = essence_or_snapshot.created_at or first_seen
    return (now - start).total_seconds()


@dataclass(slots=True)
class _Emitter:
    manager: str
    source: str
    now: datetime
    events: list[Event] = field(default_factory=list)

    def emit(self, kind: EventType, snapshot: JobSnapshot, *, scope: str = "", **data: Any) -> None:
        body = event_data(self.manager, self.source, snapshot, scope=scope or None, **data)
        self.events.append(
            Event(
                id=event_id(self.manager, self.source, snapshot.job_id, kind.value, scope),
                type=kind,
                timestamp=self.now,
                manager=self.manager,
                source=self.source,
                job_id=snapshot.job_id,
                data=body,
            )
        )


def diff_job(
    manager: str,
    source: str,
    previous: JobEssence | None,
    current: JobSnapshot | None,
    now: datetime,
    *,
    stuck_after_seconds: float,
    baseline: bool = False,
    watermark: datetime | None = None,
    age_now: datetime | None = None,
) -> tuple[JobEssence | None, list[Event]]:
    """Compare one job with its last-seen essence.

    ``current`` is None when the manager answered 404 for a tracked job. ``watermark``:
    an unknown finished job created before it is history. ``age_now``: the instant ages
    are measured at (default ``now``). Returns the essence to remember (None: nothing to
    remember) and the events, in order.
    """
    aged_at = now if age_now is None else age_now
    out = _Emitter(manager, source, now)
    if previous is None:
        if current is None:
            return None, []
        if not current.running and _is_history(current, watermark):
            return None, []
        if baseline:
            if not current.running:
                return None, []
            return JobEssence(current, first_seen=now, baseline=True), []
        out.emit(EventType.JOB_STARTED, current, previous_status=None)
        essence = JobEssence(current, first_seen=now)
        prior_scopes: dict[str, str] = {}
        prior_abort = False
        prior_status: str | None = None
    else:
        if previous.terminal is not None:
            return previous, []
        if current is None:
            out.emit(
                EventType.JOB_VANISHED,
                previous.snapshot,
                previous_status=previous.snapshot.status,
                status=VANISHED,
            )
            return replace(previous, terminal=EventType.JOB_VANISHED.value), out.events
        if current == previous.snapshot and (
            previous.stuck_reported
            or job_age(current, previous.first_seen, aged_at) <= stuck_after_seconds
        ):
            return previous, []  # the common case: nothing moved, nothing is due
        essence = replace(previous, snapshot=current)
        prior_scopes = previous.snapshot.scope_map()
        prior_abort = previous.snapshot.abort
        prior_status = previous.snapshot.status

    if current.running and current.abort and not prior_abort:
        out.emit(EventType.JOB_ABORT_REQUESTED, current, previous_status=prior_status)
    for scope, value in current.detailed_status:
        if is_scope_failure(value) and not is_scope_failure(prior_scopes.get(scope, "")):
            out.emit(
                EventType.JOB_DOMAIN_FAILED,
                current,
                scope=scope,
                scope_status=value,
                previous_status=prior_status,
            )
    if current.running:
        age = job_age(current, essence.first_seen, aged_at)
        if not essence.stuck_reported and age > stuck_after_seconds:
            out.emit(
                EventType.JOB_STUCK, current, previous_status=prior_status, duration=round(age, 6)
            )
            essence = replace(essence, stuck_reported=True)
    else:
        kind = terminal_type(current)
        out.emit(
            kind,
            current,
            previous_status=prior_status,
            duration=_seconds(current.created_at, current.completed_at or now),
        )
        essence = replace(essence, terminal=kind.value)
    return essence, out.events


def _is_history(snapshot: JobSnapshot, watermark: datetime | None) -> bool:
    return (
        watermark is not None
        and snapshot.created_at is not None
        and snapshot.created_at < watermark
    )


@dataclass(frozen=True, slots=True)
class SourceDiff:
    """What one successful poll of a source changes."""

    changed: dict[str, JobEssence]  # essences to persist (new or different)
    events: list[Event]
    watermark: datetime | None  # newest createdAt seen so far


def diff_source(
    manager: str,
    source: str,
    previous: Mapping[str, JobEssence],
    current: Iterable[JobSnapshot],
    gone: Iterable[str],
    now: datetime,
    *,
    stuck_after_seconds: float,
    baseline: bool,
    watermark: datetime | None,
    history_before: datetime | None = None,
    present: datetime | None = None,
) -> SourceDiff:
    """Diff one whole poll of a source.

    ``previous`` must hold the essence of every tracked running job and of every job in
    ``current`` that is known; ``gone`` lists tracked jobs that answered 404. Tracked
    running jobs absent from both are left alone (the poller guarantees they are
    listed or fetched; an incomplete poll is never diffed).

    ``history_before`` (default: the watermark): unknown finished jobs created before it
    are history; ``history_bound`` computes it. ``present``: the manager's present (its
    ``Date``), which the new watermark never passes and at which ages are measured when
    it is earlier than ``now``.
    """
    changed: dict[str, JobEssence] = {}
    events: list[Event] = []
    seen: set[str] = set()
    newest = watermark
    # the watermark never believes a stamp later than the manager's present: a job stamped
    # in the future would otherwise make every later job look like history
    ceiling = (now + UNDATED_FUTURE) if present is None else present
    age_now = now if present is None else min(now, present)
    bound = watermark if history_before is None else history_before
    listed = sorted(current, key=_creation_order)
    for snapshot in listed:
        if snapshot.job_id in seen:
            continue
        seen.add(snapshot.job_id)
        old = previous.get(snapshot.job_id)
        essence, job_events = diff_job(
            manager,
            source,
            old,
            snapshot,
            now,
            stuck_after_seconds=stuck_after_seconds,
            baseline=baseline,
            watermark=bound,
            age_now=age_now,
        )
        if essence is not None and essence != old:
            changed[snapshot.job_id] = essence
        events.extend(job_events)
        if snapshot.created_at is not None:
            # a stamp from the future does not move the watermark past the present
            stamp = min(snapshot.created_at, ceiling)
            if newest is None or stamp > newest:
                newest = stamp
    for job_id in gone:
        old = previous.get(job_id)
        if old is None or job_id in seen:
            continue
        essence, job_events = diff_job(
            manager,
            source,
            old,
            None,
            now,
            stuck_after_seconds=stuck_after_seconds,
            age_now=age_now,
        )
        if essence is not None and essence != old:
            changed[job_id] = essence
        events.extend(job_events)
    if baseline:
        # remember the finished jobs the watermark cannot rule out later: those created
        # at its very instant (a tie is not history), those with no createdAt at all, and
        # (with the manager's Date) those of the last day, which a later history bound may
        # still reach when the manager's clock steps back
        floor = newest
        if newest is not None and present is not None:
            floor = min(newest, present) - BASELINE_WINDOW
        for snapshot in listed:
            if (
                not snapshot.running
                and snapshot.job_id not in previous
                and (
                    snapshot.created_at is None
                    or (floor is not None and snapshot.created_at >= floor)
                )
            ):
                changed.setdefault(
                    snapshot.job_id,
                    JobEssence(
                        snapshot,
                        first_seen=now,
                        terminal=terminal_type(snapshot).value,
                        baseline=True,
                    ),
                )
    return SourceDiff(changed=changed, events=events, watermark=newest)


def history_bound(
    watermark: datetime | None,
    *,
    present: datetime | None,
    previous_present: datetime | None,
    elapsed_seconds: float | None,
) -> datetime | None:
    """Where "history" begins for the next poll: the watermark, unless the manager's
    clock shows that jobs created since the last good poll may carry older stamps.

    Jobs created since then are stamped no earlier than ``previous_present`` (the
    manager's present at that poll) or, when its clock stepped back meanwhile, than
    ``present - elapsed``. When that is more than ``CLOCK_TOLERANCE`` before the
    watermark, the bound moves down to it (less the tolerance): the walk goes deeper and
    no new job is called history because of its stamp. ``present`` alone (after a
    restart) lowers the bound to the present when the watermark is ahead of it.
    """
    if watermark is None or present is None:
        return watermark
    earliest = present
    if previous_present is not None:
        earliest = min(earliest, previous_present)
        if elapsed_seconds is not None:
            earliest = min(earliest, present - timedelta(seconds=max(elapsed_seconds, 0.0)))
    if earliest >= watermark - CLOCK_TOLERANCE:
        return watermark
    return earliest - CLOCK_TOLERANCE


def _creation_order(snapshot: JobSnapshot) -> tuple[float, str]:
    stamp = snapshot.created_at.timestamp() if snapshot.created_at is not None else float("inf")
    return (stamp, snapshot.job_id)
