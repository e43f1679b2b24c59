"""A job event's ``data`` (the envelope's ``data``, contract.md): bounded whatever the job.

Pure. "Bounded envelopes": ``scopes`` and ``detailed_status`` hold at most
``MAX_ENVELOPE_SCOPES`` items (failed scopes first), and ``scopes_total`` /
``scopes_failed`` / ``scopes_succeeded`` count all of them, so the N events of a job with
N scopes cost O(N), not O(N²).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from monitor.model import JobSnapshot, format_optional, is_scope_failure, truncate

MAX_ENVELOPE_SCOPES = 50  # detailed_status entries and scope names one event carries


@dataclass(frozen=True, slots=True)
class ScopeSummary:
    """A job's ``detailed_status`` as an event carries it: bounded, with the counts."""

    entries: tuple[tuple[str, str], ...]  # at most MAX_ENVELOPE_SCOPES, the failed ones first
    total: int
    failed: int
    succeeded: int


def is_scope_success(value: str) -> bool:
    """A ``detailed_status`` value that ends ``... successfully``."""
    return value.strip().lower().endswith("successfully")


@lru_cache(maxsize=16)
def scope_summary(detailed_status: tuple[tuple[str, str], ...]) -> ScopeSummary:
    """The bounded entries and the counts of one snapshot's ``detailed_status``.

    Failed entries first, then the rest, each part in the snapshot's (key) order; values
    cut to ``MAX_TEXT``. Cached: a poll that finds 2,000 failed scopes of one job emits
    2,000 events of the same snapshot, and each must cost O(1), not O(scopes).
    """
    failed: list[tuple[str, str]] = []
    rest: list[tuple[str, str]] = []
    for pair in detailed_status:
        (failed if is_scope_failure(pair[1]) else rest).append(pair)
    shown = (failed + rest)[:MAX_ENVELOPE_SCOPES]
    return ScopeSummary(
        entries=tuple((k, truncate(v)) for k, v in shown),
        total=len(detailed_status),
        failed=len(failed),
        succeeded=sum(1 for _, v in rest if is_scope_success(v)),
    )


def event_data(
    manager: str,
    source: str,
    snapshot: JobSnapshot,
    *,
    previous_status: str | None,
    status: str | None = None,
    duration: float | None = None,
    scope: str | None = None,
    scope_status: str | None = None,
) -> dict[str, Any]:
    """The envelope's ``data`` for a job event (contract.md).

    Bounded whatever the job's size ("Bounded envelopes"): ``scopes`` and
    ``detailed_status`` hold at most ``MAX_ENVELOPE_SCOPES`` items (failed scopes first),
    and ``scopes_total``/``scopes_failed``/``scopes_succeeded`` count all of them, so the
    N events of a job with N scopes cost O(N), not O(N²).
    """
    summary = scope_summary(snapshot.detailed_status)
    return {
        "manager": manager,
        "source": source,
        "cloud": snapshot.cloud,
        "job_id": snapshot.job_id,
        "status": status if status is not None else snapshot.status,
        "previous_status": previous_status,
        "abort": snapshot.abort,
        "created_at": format_optional(snapshot.created_at),
        "updated_at": format_optional(snapshot.updated_at),
        "completed_at": format_optional(snapshot.completed_at),
        "duration_seconds": duration,
        "scopes": list(snapshot.scopes[:MAX_ENVELOPE_SCOPES]),
        "detailed_status": dict(summary.entries),
        "scopes_total": summary.total,
        "scopes_failed": summary.failed,
        "scopes_succeeded": summary.succeeded,
        "scope": scope,
        "scope_status": None if scope_status is None else truncate(scope_status),
    }
