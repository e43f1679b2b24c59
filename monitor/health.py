"""Source health, pure: consecutive failed polls -> ``source.down`` / ``source.up``."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from monitor.model import Event, EventType, event_id, truncate

DOWN_AFTER_FAILURES = 3  # source.down after this many failed cycles in a row


@dataclass(frozen=True, slots=True)
class SourceHealth:
    """Consecutive failed polls of one source, and whether it was announced down."""

    consecutive_failures: int = 0
    down: bool = False
    episode: int = 0  # how many times it went down: makes source.* ids stable and unique


def diff_health(
    manager: str,
    source: str,
    previous: SourceHealth,
    *,
    ok: bool,
    now: datetime,
    reason: str | None = None,
    error: str | None = None,
) -> tuple[SourceHealth, list[Event]]:
    """One poll's outcome -> the new health and a ``source.down``/``source.up`` event."""
    if ok:
        if not previous.down:
            return (
                previous
                if previous.consecutive_failures == 0
                else replace(previous, consecutive_failures=0)
            ), []
        health = SourceHealth(0, False, previous.episode)
        return health, [
            _source_event(
                EventType.SOURCE_UP,
                manager,
                source,
                health,
                now,
                previous.consecutive_failures,
                None,
                None,
            )
        ]
    failures = previous.consecutive_failures + 1
    if previous.down or failures < DOWN_AFTER_FAILURES:
        return replace(previous, consecutive_failures=failures), []
    health = SourceHealth(failures, True, previous.episode + 1)
    return health, [
        _source_event(EventType.SOURCE_DOWN, manager, source, health, now, failures, reason, error)
    ]


def _source_event(
    kind: EventType,
    manager: str,
    source: str,
    health: SourceHealth,
    now: datetime,
    failures: int,
    reason: str | None,
    error: str | None,
) -> Event:
    return Event(
        id=event_id(manager, source, kind.value, str(health.episode)),
        type=kind,
        timestamp=now,
        manager=manager,
        source=source,
        data={
            "manager": manager,
            "source": source,
            "consecutive_failures": failures,
            "reason": reason,
            "error": None if error is None else truncate(error, 300),
        },
    )
