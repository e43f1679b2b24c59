"""Small builders for job snapshots, essences and events used by the differ tests."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta

from monitor.health import SourceHealth
from monitor.model import Event, JobEssence, JobSnapshot, normalise_status
from monitor.store import Store

MANAGER = "prod"
SOURCE = "aws"
T0 = datetime(2026, 11, 23, 10, 0, 0, 123000, tzinfo=UTC)
STUCK_AFTER = 3600.0

# The exact key set of a job event's ``data`` (contract.md, Events).
JOB_DATA_KEYS = frozenset(
    {
        "manager",
        "source",
        "cloud",
        "job_id",
        "status",
        "previous_status",
        "abort",
        "created_at",
        "updated_at",
        "completed_at",
        "duration_seconds",
        "scopes",
        "detailed_status",
        "scopes_total",  # issue 10: bounded envelopes
        "scopes_failed",
        "scopes_succeeded",
        "scope",
        "scope_status",
    }
)

IN_PROGRESS_TEXT = "in_progress"
# Written out here rather than imported, so the tests do not share the differ's tables.
RUNNING_WORDS = frozenset({"in_progress", "running", "pending", "queued", "started"})
ABORT_WORDS = frozenset({"aborted", "cancelled", "canceled"})
SUCCESS_TEXT = "region synchronized successfully"


def at(seconds: float) -> datetime:
    """``T0`` plus ``seconds``."""
    return T0 + timedelta(seconds=seconds)


def snap(
    status: str = "in_progress",
    *,
    job_id: str = "job-1",
    abort: bool = False,
    created_at: datetime | None = T0,
    updated_at: datetime | None = None,
    completed_at: datetime | None = None,
    cloud: str | None = "aws",
    scopes: Iterable[str] = ("kms",),
    detailed: Mapping[str, str] | None = None,
) -> JobSnapshot:
    """A snapshot as the API client would build it: status normalised, scopes sorted."""
    return JobSnapshot(
        job_id=job_id,
        status=normalise_status(status),
        abort=abort,
        created_at=created_at,
        updated_at=updated_at,
        completed_at=completed_at,
        cloud=cloud,
        scopes=tuple(scopes),
        detailed_status=tuple(sorted((detailed or {}).items())),
    )


def essence(
    snapshot: JobSnapshot,
    *,
    first_seen: datetime = T0,
    terminal: str | None = None,
    stuck_reported: bool = False,
    baseline: bool = False,
) -> JobEssence:
    return JobEssence(
        snapshot=snapshot,
        first_seen=first_seen,
        terminal=terminal,
        stuck_reported=stuck_reported,
        baseline=baseline,
    )


def types(events: Iterable[Event]) -> list[str]:
    """The event types, in order, as plain strings."""
    return [str(event.type) for event in events]


def is_running_word(word: str) -> bool:
    """Independent of the differ: does this raw status mean "still running"?"""
    return normalise_status(word) in RUNNING_WORDS


def expected_terminal(word: str, abort: bool) -> str:
    """The terminal event a job stopping with ``word``/``abort`` must get (contract.md)."""
    status = normalise_status(word)
    if abort or status in ABORT_WORDS:
        return "job.aborted"
    if status == "completed":
        return "job.completed"
    return "job.failed"


def queue(store: Store, *events: Event) -> None:
    """Put events in the outbox as one poll of prod/aws would."""
    store.commit_poll(
        "prod",
        "aws",
        changed={},
        events=list(events),
        watermark=None,
        health=SourceHealth(),
        now=events[0].timestamp.timestamp(),
    )
