"""Scope freshness: when did each scope last synchronize successfully, and is that too long?

Pure: records, snapshots, targets and ``now`` in; changed records and events out.

Scopes
  A scope is one ``detailed_status`` key of a job (an AWS ``account/region``, a key vault,
  a key ring, a domain, …), keyed ``(source, key)``. A value ending ``successfully`` is a
  success (``envelope.is_scope_success``), a value ``model.is_scope_failure`` calls a
  failure is a failure, a running word is neither (the scope is still recorded, so a scope
  that never succeeds is known from its first sighting).

When an outcome happened
  The manager's stamps, never the poll's clock, so a job first seen long after it ended
  (at first start, say) does not make its scopes look fresh: a finished job's outcomes
  count at its ``completed_at`` (else ``updatedAt``, else the poll's ``now``); a running
  job's at its ``createdAt`` (a lower bound that does not creep forward with each poll;
  without one they wait for the job's end), moved to ``completed_at`` when it ends. A
  stamp later than ``now`` counts as ``now``. Times only move forward: an older job seen
  later changes nothing.

Targets (``Targets``)
  The first ``freshness.rules`` entry whose globs (``fnmatch``, case-sensitive; ``*``
  also matches ``/``) match the source and the scope gives ``max_age_seconds`` (a rule
  with None: no target). Else, when an active schedule covers the source,
  ``2 * period + grace`` (``schedules.source_periods``: the longest period of the
  source's schedules). Else none: the scope is tracked and shown, never stale.

Stale and fresh (``scope.stale`` / ``scope.fresh``)
  A scope is stale when its age (``now`` minus its last success, or minus its first
  sighting when it never succeeded) exceeds its target; ``scope.stale`` is emitted once
  per episode. It turns fresh, with ``scope.fresh``, when it is no longer stale: a new
  success, or a target that grew or went away. The episode is named by the last success
  it followed (``never`` and the first sighting when none), so both ids are stable across
  restarts: ``event_id(manager, type, source, scope, episode)``. Nothing is decided while
  the manager is down, nor for a source that is down (unknown is not stale).

Bounds
  At most ``max_scopes`` (default ``MAX_SCOPES``) scopes per manager are tracked; scopes
  beyond are counted in ``Observation.dropped`` (for one log line), not tracked. Call
  ``observe`` with the snapshots that changed (the differ's changed essences): its cost
  is their scopes. ``judge_scopes`` visits every record; run it once per schedules
  interval, not per poll.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from fnmatch import fnmatchcase
from functools import lru_cache
from typing import Any, Final

from monitor.envelope import is_scope_success
from monitor.model import (
    Event,
    EventType,
    JobSnapshot,
    event_id,
    format_optional,
    format_timestamp,
    is_scope_failure,
)

MAX_SCOPES: Final = 5000  # freshness.max_scopes default
SUCCESS: Final = "success"
FAILURE: Final = "failure"
SCOPE_DATA_KEYS: Final = (
    "manager",
    "source",
    "scope",
    "last_success_at",
    "last_failure_at",
    "max_age_seconds",
    "age_seconds",
)

ScopeKey = tuple[str, str]  # (source, detailed_status key)


@dataclass(frozen=True, slots=True)
class ScopeRecord:
    """What the monitor knows of one scope."""

    first_seen: datetime
    last_success: datetime | None = None
    last_failure: datetime | None = None
    stale: bool = False
    episode: str | None = None  # the stale episode's name, while stale


@lru_cache(maxsize=4096)
def outcome(value: str) -> str | None:
    """``success``, ``failure`` or None (still running) for one ``detailed_status`` value."""
    if is_scope_success(value):
        return SUCCESS
    if is_scope_failure(value):
        return FAILURE
    return None


def outcome_time(snapshot: JobSnapshot, now: datetime) -> datetime | None:
    """When the outcomes of ``snapshot`` happened (None: not known yet), at most ``now``."""
    if snapshot.running:
        moment = snapshot.created_at
    else:
        moment = snapshot.completed_at or snapshot.updated_at or now
    return None if moment is None else min(moment, now)


@dataclass(frozen=True, slots=True)
class Observation:
    changed: dict[ScopeKey, ScopeRecord]  # records to store (new or different)
    dropped: int = 0  # scopes not tracked: the cap was reached


def observe(
    previous: Mapping[ScopeKey, ScopeRecord],
    source: str,
    snapshots: Iterable[JobSnapshot],
    now: datetime,
    *,
    max_scopes: int = MAX_SCOPES,
) -> Observation:
    """The scope outcomes of ``source``'s snapshots folded into the manager's records.

    ``previous``: every tracked scope of the manager (the cap counts them all).
    """
    changed: dict[ScopeKey, ScopeRecord] = {}
    dropped = 0
    tracked = len(previous)
    for snapshot in snapshots:
        moment = outcome_time(snapshot, now)
        for scope, value in snapshot.detailed_status:
            key = (source, scope)
            record = changed.get(key) or previous.get(key)
            if record is None:
                if tracked >= max_scopes:
                    dropped += 1
                    continue
                tracked += 1
                record = ScopeRecord(first_seen=now if moment is None else min(moment, now))
                changed[key] = record
            result = outcome(value)
            if result is None or moment is None:
                continue
            if result == SUCCESS and (record.last_success is None or moment > record.last_success):
                changed[key] = replace(record, last_success=moment)
            elif result == FAILURE and (
                record.last_failure is None or moment > record.last_failure
            ):
                changed[key] = replace(record, last_failure=moment)
    return Observation(changed, dropped)


# --- targets ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FreshnessRule:
    """One ``freshness.rules`` entry."""

    max_age_seconds: float | None  # None: matching scopes have no target
    source: str = "*"
    scope: str = "*"

    def matches(self, source: str, scope: str) -> bool:
        return fnmatchcase(source, self.source) and fnmatchcase(scope, self.scope)


def target_for(
    source: str,
    scope: str,
    rules: Sequence[FreshnessRule],
    periods: Mapping[str, float],
    grace_seconds: float,
) -> float | None:
    """The freshness target of one scope in seconds (None: none)."""
    for rule in rules:
        if rule.matches(source, scope):
            return rule.max_age_seconds
    period = periods.get(source)
    if period is None:
        return None
    return 2 * period + grace_seconds


class Targets:
    """``target_for`` with its answers remembered (rules and periods are fixed per object)."""

    __slots__ = ("_cache", "grace_seconds", "periods", "rules")

    def __init__(
        self,
        rules: Sequence[FreshnessRule] = (),
        periods: Mapping[str, float] | None = None,
        grace_seconds: float = 0.0,
    ) -> None:
        self.rules = tuple(rules)
        self.periods = dict(periods or {})
        self.grace_seconds = grace_seconds
        self._cache: dict[ScopeKey, float | None] = {}

    def target(self, source: str, scope: str) -> float | None:
        key = (source, scope)
        if key not in self._cache:
            if len(self._cache) >= 4 * MAX_SCOPES:
                self._cache.clear()
            self._cache[key] = target_for(
                source, scope, self.rules, self.periods, self.grace_seconds
            )
        return self._cache[key]


# --- stale and fresh --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FreshnessJudgement:
    changed: dict[ScopeKey, ScopeRecord]
    events: list[Event] = field(default_factory=list)


def age_seconds(record: ScopeRecord, now: datetime) -> float:
    """Seconds since the last success (since the first sighting when none)."""
    base = record.last_success or record.first_seen
    return max((now - base).total_seconds(), 0.0)


def episode_name(record: ScopeRecord) -> str:
    if record.last_success is not None:
        return format_timestamp(record.last_success)
    return "never:" + format_timestamp(record.first_seen)


def judge_scopes(
    manager: str,
    records: Mapping[ScopeKey, ScopeRecord],
    targets: Targets,
    now: datetime,
    *,
    manager_up: bool = True,
    down_sources: Collection[str] = (),
) -> FreshnessJudgement:
    """Stale/fresh transitions of a manager's scopes at ``now``."""
    if not manager_up:
        return FreshnessJudgement({})
    changed: dict[ScopeKey, ScopeRecord] = {}
    events: list[Event] = []
    for key, record in records.items():
        source, scope = key
        if source in down_sources:
            continue
        target = targets.target(source, scope)
        age = age_seconds(record, now)
        stale = target is not None and age > target
        if stale == record.stale:
            continue
        if stale:
            episode = episode_name(record)
            changed[key] = replace(record, stale=True, episode=episode)
            kind = EventType.SCOPE_STALE
        else:
            episode = record.episode or episode_name(record)
            changed[key] = replace(record, stale=False, episode=None)
            kind = EventType.SCOPE_FRESH
        events.append(_event(manager, kind, key, record, episode, target, age, now))
    return FreshnessJudgement(changed, events)


def _event(
    manager: str,
    kind: EventType,
    key: ScopeKey,
    record: ScopeRecord,
    episode: str,
    target: float | None,
    age: float,
    now: datetime,
) -> Event:
    source, scope = key
    data: dict[str, Any] = {
        "manager": manager,
        "source": source,
        "scope": scope,
        "last_success_at": format_optional(record.last_success),
        "last_failure_at": format_optional(record.last_failure),
        "max_age_seconds": target,
        "age_seconds": round(age, 3),
    }
    return Event(
        id=event_id(manager, kind.value, source, scope, episode),
        type=kind,
        timestamp=now,
        manager=manager,
        source=source,
        data=data,
    )
