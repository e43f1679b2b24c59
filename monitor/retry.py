"""The one back-off rule: exponential, capped, full jitter, ``Retry-After`` honoured.

Used by the manager client and by every sink's delivery worker, so retry behaviour is
decided in one place.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


def backoff_delay(
    attempt: int,
    *,
    initial: float,
    cap: float,
    rng: random.Random | None = None,
    retry_after: float | None = None,
) -> float:
    """Seconds to wait before retry number ``attempt`` (1 for the first retry).

    Full jitter: uniform in [0, min(cap, initial * 2**(attempt-1))]. A server's
    ``Retry-After`` is a floor (never retry earlier than asked), capped by ``cap``.
    """
    ceiling = min(cap, initial * (2 ** max(attempt - 1, 0)))
    delay = (rng or random).uniform(0, ceiling)
    if retry_after is not None:
        delay = max(delay, min(retry_after, cap))
    return delay


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After``: delta-seconds or an HTTP date -> seconds from now (>= 0)."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        return max(float(text), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)
