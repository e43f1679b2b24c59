"""The one back-off rule: exponential, capped, full jitter, ``Retry-After`` honoured.

Used by the manager client and by every sink's delivery worker, so retry behaviour is
decided in one place.
"""

from __future__ import annotations

import math
import random
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

MAX_RETRY_AFTER = 86_400.0  # a server asking for more than a day is read as one day
_MAX_EXPONENT = 62  # 2**62 times any sane ``initial`` is far past any cap
_DELTA_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]+)?")  # RFC 9110 delta-seconds (and decimals)


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
    ``Retry-After`` is a floor (never retry earlier than asked), capped by ``cap``; a
    NaN, negative or zero ``retry_after`` is no floor, an infinite one is ``cap``.
    """
    exponent = min(max(attempt - 1, 0), _MAX_EXPONENT)
    ceiling = min(cap, initial * 2.0**exponent)
    delay = (rng or random).uniform(0, ceiling)
    if retry_after is not None and retry_after > 0:  # NaN > 0 is False
        delay = max(delay, min(retry_after, cap))
    return max(delay, 0.0)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After``: delta-seconds or an HTTP date -> seconds from now.

    Total: None (absent, garbage, a date the calendar cannot hold) or a finite number in
    [0, MAX_RETRY_AFTER]; never NaN, never infinite, never raises.
    """
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text:
        return None
    if _DELTA_SECONDS.fullmatch(text):
        return min(float(text), MAX_RETRY_AFTER)  # "1e999"-sized digit strings: inf -> cap
    try:
        when = parsedate_to_datetime(text)
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)
