"""The scheduler's ``run_at``: 5-field cron, evaluated in UTC, with ``croniter``.

``croniter`` (pallets-eco, maintained) accepts what the manager's UI writes: ``* / , -``,
month and weekday names, and ``?`` in the day fields. We add one rule of our own: exactly
five fields (no seconds field, no ``@hourly`` nicknames), one-minute granularity.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache

from croniter import CroniterBadDateError, croniter

MAX_CRON_TEXT = 200


def check_cron(text: object) -> str:
    """``text`` when it is a valid 5-field cron expression; ``ValueError`` otherwise."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("run_at must be a cron expression such as '0 2 * * *'")
    value = text.strip()
    if len(value) > MAX_CRON_TEXT or len(value.split()) != 5 or not croniter.is_valid(value):
        raise ValueError(
            f"run_at {value[:60]!r} is not a 5-field cron expression "
            "(minute hour day-of-month month day-of-week)"
        )
    return value


@lru_cache(maxsize=512)
def _parsed(expression: str) -> croniter:
    """Parsing is the costly part (~0.3 ms): one parsed expression, asked from any time."""
    return croniter(expression, datetime.fromtimestamp(0, UTC))


@lru_cache(maxsize=8192)  # schedules sharing an expression share their due times
def _step(expression: str, moment: float, *, backwards: bool) -> float | None:
    start = datetime.fromtimestamp(moment, UTC)
    parsed = _parsed(expression)
    try:
        if backwards:
            return float(parsed.get_prev(float, start_time=start, update_current=False))
        return float(parsed.get_next(float, start_time=start, update_current=False))
    except CroniterBadDateError:  # e.g. '0 0 31 2 *': never
        return None


def next_due(expression: str, after: float) -> float | None:
    """The first due time strictly after ``after`` (epoch seconds, UTC); None if none."""
    return _step(expression, after, backwards=False)


def previous_due(expression: str, before: float) -> float | None:
    """The last due time strictly before ``before``; None if none."""
    return _step(expression, before, backwards=True)
