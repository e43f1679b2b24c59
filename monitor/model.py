"""The values that flow through the pipeline: job snapshots, stored essences, events.

Imports nothing of ours. Everything here is immutable and cheap to compare.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class EventType(StrEnum):
    JOB_STARTED = "job.started"
    JOB_COMPLETED = "job.completed"
    JOB_FAILED = "job.failed"
    JOB_ABORTED = "job.aborted"
    JOB_ABORT_REQUESTED = "job.abort_requested"
    JOB_DOMAIN_FAILED = "job.domain_failed"
    JOB_STUCK = "job.stuck"
    JOB_VANISHED = "job.vanished"
    SOURCE_DOWN = "source.down"
    SOURCE_UP = "source.up"
    # issue 12: the manager's scheduler (monitor/schedules.py) and scope freshness
    # (monitor/freshness.py); no job_id, the data names the schedule or the scope
    SCHEDULE_MISSED = "schedule.missed"
    SCHEDULE_RUN_FAILED = "schedule.run_failed"
    SCHEDULE_DISABLED = "schedule.disabled"
    SCHEDULE_ENABLED = "schedule.enabled"
    SCOPE_STALE = "scope.stale"
    SCOPE_FRESH = "scope.fresh"


TERMINAL_EVENTS = frozenset(
    {EventType.JOB_COMPLETED, EventType.JOB_FAILED, EventType.JOB_ABORTED, EventType.JOB_VANISHED}
)

# --- statuses -------------------------------------------------------------------------

IN_PROGRESS = "in_progress"
COMPLETED = "completed"
FAILED = "failed"
ABORTED = "aborted"
VANISHED = "vanished"  # our own word: a tracked running job answered 404

# Words that mean "still running". Only ``in_progress`` is documented; the others are
# tolerated so that an undocumented synonym is not mistaken for a failure.
ACTIVE_STATUSES = frozenset({IN_PROGRESS, "running", "pending", "queued", "started"})
ABORT_STATUSES = frozenset({ABORTED, "cancelled", "canceled"})
KNOWN_STATUSES = ACTIVE_STATUSES | ABORT_STATUSES | {COMPLETED, FAILED}

MAX_TEXT = 1024  # longest manager-supplied text we keep (scope messages, statuses)


def truncate(text: str, limit: int = MAX_TEXT) -> str:
    """Cut ``text`` to ``limit`` characters, marking the cut."""
    if len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


def normalise_status(raw: str) -> str:
    """``"in progress"``, ``"In_Progress"`` -> ``"in_progress"``; unknown words verbatim."""
    word = re.sub(r"[\s\-]+", "_", raw.strip().lower())
    if word in KNOWN_STATUSES:
        return word
    return truncate(raw.strip(), 200)


def is_active(status: str) -> bool:
    return status in ACTIVE_STATUSES


def is_scope_failure(value: str) -> bool:
    """A ``detailed_status`` value that is neither running nor ``... successfully``."""
    text = value.strip()
    if not text:
        return False
    if normalise_status(text) in ACTIVE_STATUSES:
        return False
    return not text.lower().endswith("successfully")


# --- timestamps -----------------------------------------------------------------------

_FRACTION = re.compile(r"\.(\d+)")
# "23:59:60": a leap second, as RFC 3339 allows; datetime stops at :59
_LEAP_SECOND = re.compile(r"(\d\d:\d\d):60(\.\d+)?(?=[Zz+-]|$)")
MAX_TIMESTAMP_TEXT = 100  # the longest stamp a manager sends is ~40 characters


def parse_timestamp(text: str) -> datetime:
    """Parse the manager's RFC 3339 stamps, nanoseconds included, into aware UTC.

    Total: any input gives a UTC datetime or raises ``ValueError`` with one sentence.
    Offsets are converted to UTC; a stamp whose UTC moment falls outside years 1..9999
    (``9999-12-31T23:59:59-23:59``) is a ``ValueError``, not an overflow. A leap second
    (``…:60``) is read as the last microsecond of its minute.
    """
    if not isinstance(text, str):
        raise ValueError(f"a timestamp must be a string, not {type(text).__name__}")
    known = _PARSED.get(text)
    if known is not None:
        return known
    moment = _parse(text)
    if type(text) is str and len(text) <= MAX_TIMESTAMP_TEXT:
        if len(_PARSED) >= PARSED_MAX:
            _PARSED.clear()
        _PARSED[text] = moment
    return moment


# The same stamps come back every poll (each listed job's createdAt, updatedAt…) and are
# read again from the state file: parsed once, each later sighting is a dict look-up.
# Bounded: the table starts afresh when full. Only successes are kept.
PARSED_MAX = 8192
_PARSED: dict[str, datetime] = {}


def _parse(text: str) -> datetime:
    value = text.strip()
    if not value or len(value) > MAX_TIMESTAMP_TEXT or not value.isascii():
        raise ValueError(f"not a timestamp: {value[:40]!r}")
    if not value.isprintable():
        raise ValueError(f"not a timestamp (control characters): {value[:40]!r}")
    fast = _common_form(value)
    if fast is not None:
        return fast
    try:
        return _to_utc(value)
    except (ValueError, OverflowError) as exc:
        leap = _LEAP_SECOND.search(value)
        if leap is None:
            raise ValueError(f"not a timestamp: {value[:40]!r} ({exc})") from None
    try:
        moment = _to_utc(value[: leap.start()] + leap.group(1) + ":59" + value[leap.end() :])
        return moment.replace(microsecond=999999)
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"not a timestamp: {value[:40]!r} ({exc})") from None


def _common_form(value: str) -> datetime | None:
    """``2026-11-23T10:00:00[.fraction]Z`` (what managers send) read directly; None for
    any other form or an impossible date, which the general parser then judges."""
    if (
        len(value) < 20
        or value[-1] not in "Zz"
        or value[4] != "-"
        or value[7] != "-"
        or value[10] not in "Tt"
        or value[13] != ":"
        or value[16] != ":"
    ):
        return None
    digits = value[0:4] + value[5:7] + value[8:10] + value[11:13] + value[14:16] + value[17:19]
    fraction = value[19:-1]
    if not digits.isdigit():  # ASCII already (the caller checked)
        return None
    if fraction:
        if len(fraction) < 2 or fraction[0] != "." or not fraction[1:].isdigit():
            return None
        micro = int((fraction[1:] + "000000")[:6])
    else:
        micro = 0
    try:
        return datetime(
            int(digits[0:4]),
            int(digits[4:6]),
            int(digits[6:8]),
            int(digits[8:10]),
            int(digits[10:12]),
            int(digits[12:14]),
            micro,
            tzinfo=UTC,
        )
    except ValueError:  # :60, Feb 30, year 0: the general parser decides
        return None


def _to_utc(value: str) -> datetime:
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    # fromisoformat takes at most 6 fractional digits
    value = _FRACTION.sub(lambda m: "." + (m.group(1) + "000000")[:6], value, count=1)
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)  # OverflowError at the calendar's edges


def format_timestamp(moment: datetime) -> str:
    """``2026-11-23T10:00:00.123Z``: UTC, milliseconds, ``Z``; four-digit years 0001..9999."""
    utc = moment.astimezone(UTC)
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T{utc.hour:02d}:{utc.minute:02d}:"
        f"{utc.second:02d}.{utc.microsecond // 1000:03d}Z"
    )


def format_optional(moment: datetime | None) -> str | None:
    return None if moment is None else format_timestamp(moment)


# --- jobs -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JobSnapshot:
    """One job as the manager reports it now, validated and normalised."""

    job_id: str
    status: str  # normalised overall_status
    abort: bool
    created_at: datetime | None
    updated_at: datetime | None = None
    completed_at: datetime | None = None
    cloud: str | None = None
    scopes: tuple[str, ...] = ()
    # sorted (scope key, status text) pairs: immutable and comparable
    detailed_status: tuple[tuple[str, str], ...] = ()

    @property
    def running(self) -> bool:
        return is_active(self.status)

    def scope_map(self) -> dict[str, str]:
        return dict(self.detailed_status)


@dataclass(frozen=True, slots=True)
class JobEssence:
    """What the monitor remembers of a job between polls (kopf's "essence").

    ``snapshot`` is the last state seen; the flags record which once-only events were
    already emitted so that a restart never repeats them.
    """

    snapshot: JobSnapshot
    first_seen: datetime
    terminal: str | None = None  # event type of the terminal event, once emitted/recorded
    stuck_reported: bool = False
    baseline: bool = False  # recorded silently at first start; no job.started was emitted

    @property
    def job_id(self) -> str:
        return self.snapshot.job_id

    @property
    def tracked_running(self) -> bool:
        """Still watched as running: no terminal state recorded yet."""
        return self.terminal is None


# --- events ---------------------------------------------------------------------------


def event_id(*parts: str) -> str:
    """A stable id for one transition: the same parts give the same id after a restart.

    The parts are hashed as a JSON array (ASCII-escaped), so that no part can contain
    the separator of two others: distinct part tuples give distinct ids, and a part with a
    lone surrogate still hashes.
    """
    text = json.dumps(list(parts), ensure_ascii=True)
    return "evt_" + hashlib.sha256(text.encode("ascii")).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Event:
    """One transition, as stored in the outbox and delivered to sinks."""

    id: str
    type: EventType
    timestamp: datetime
    manager: str
    source: str
    job_id: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)  # the envelope's ``data``

    def envelope(self) -> dict[str, Any]:
        """The body a webhook receives (contract.md)."""
        return {
            "id": self.id,
            "type": str(self.type),
            "timestamp": format_timestamp(self.timestamp),
            "data": dict(self.data),
        }
