"""Words for events, shared by the sinks that write for people (Slack, Alertmanager).

One table of titles and severities, so a failure reads the same in every channel. Not a
sink itself: sinks may import it (import-linter keeps sinks from importing each other).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from monitor.model import Event, EventType, is_scope_failure

CRITICAL = "critical"
WARNING = "warning"
INFO = "info"
OK = "ok"  # good news: a job completed, a source is back

SEVERITY: Mapping[EventType, str] = MappingProxyType(
    {
        EventType.JOB_FAILED: CRITICAL,
        EventType.JOB_DOMAIN_FAILED: CRITICAL,
        EventType.SOURCE_DOWN: CRITICAL,
        EventType.JOB_STUCK: WARNING,
        EventType.JOB_ABORTED: WARNING,
        EventType.JOB_ABORT_REQUESTED: WARNING,
        EventType.JOB_VANISHED: WARNING,
        EventType.JOB_STARTED: INFO,
        EventType.JOB_COMPLETED: OK,
        EventType.SOURCE_UP: OK,
    }
)
TITLE: Mapping[EventType, str] = MappingProxyType(
    {
        EventType.JOB_STARTED: "Job started",
        EventType.JOB_COMPLETED: "Job completed",
        EventType.JOB_FAILED: "Job failed",
        EventType.JOB_ABORTED: "Job aborted",
        EventType.JOB_ABORT_REQUESTED: "Job abort requested",
        EventType.JOB_DOMAIN_FAILED: "Scope failed",
        EventType.JOB_STUCK: "Job stuck",
        EventType.JOB_VANISHED: "Job vanished",
        EventType.SOURCE_DOWN: "Source down",
        EventType.SOURCE_UP: "Source up",
    }
)
_RANK = {CRITICAL: 0, WARNING: 1, OK: 2, INFO: 3}
TEST_PREFIX = "[TEST] "


def severity(event: Event) -> str:
    return SEVERITY.get(event.type, INFO)


def worst(events: list[Event]) -> Event:
    """The event that decides a grouped message's headline and colour: the most severe,
    and among equals the last (a job's terminal event comes after its scope failures)."""
    return min(reversed(events), key=lambda e: _RANK[severity(e)])


def is_test(event: Event) -> bool:
    """The synthetic event of ``cckm-monitor test-notification``."""
    return bool(event.data.get("test"))


def short_id(job_id: str | None) -> str:
    if not job_id:
        return ""
    return job_id if len(job_id) <= 12 else job_id[:8] + "…"


def subject(event: Event) -> str:
    """``aws job 1b2c3d4e… on prod``, or ``aws on prod`` for a source event."""
    if event.job_id is None:
        return f"{event.source} on {event.manager}"
    return f"{event.source} job {short_id(event.job_id)} on {event.manager}"


def duration_text(seconds: Any) -> str | None:
    """``45s``, ``12m 5s``, ``3h 04m``, ``2d 1h``; None when unknown."""
    if not isinstance(seconds, int | float) or seconds < 0:
        return None
    total = int(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def scope_counts(data: Mapping[str, Any]) -> tuple[int, int] | None:
    """(failed, total) scopes of a job event; None when it names none.

    An event carries at most 50 ``detailed_status`` entries and counts them all in
    ``scopes_failed``/``scopes_total`` (contract.md, "Bounded envelopes"); an event stored
    before those counts existed is counted from its (then complete) ``detailed_status``.
    """
    failed, total = _count(data.get("scopes_failed")), _count(data.get("scopes_total"))
    if failed is not None and total is not None:
        return failed, total
    scopes = data.get("detailed_status")
    if not isinstance(scopes, Mapping):
        return None
    return sum(1 for text in scopes.values() if is_scope_failure(str(text))), len(scopes)


def headline(event: Event) -> str:
    """One line for a person: ``Job failed: aws job 1b2c3d4e… on prod``."""
    prefix = TEST_PREFIX if is_test(event) else ""
    return f"{prefix}{TITLE.get(event.type, event.type.value)}: {subject(event)}"


def details(event: Event) -> list[tuple[str, str]]:
    """The facts worth a glance, as (label, value) pairs, in reading order."""
    data = event.data
    facts: list[tuple[str, str]] = [("Manager", event.manager), ("Source", event.source)]
    if data.get("cloud") and data.get("cloud") != event.source:
        facts.append(("Cloud", str(data["cloud"])))
    if event.job_id is not None:
        facts.append(("Job", event.job_id))
    status = data.get("status")
    if status:
        previous = data.get("previous_status")
        was = f" (was {previous})" if previous and previous != status else ""
        facts.append(("Status", f"{status}{was}"))
    duration = duration_text(data.get("duration_seconds"))
    if duration:
        facts.append(("Running for" if event.type is EventType.JOB_STUCK else "Duration", duration))
    counted = scope_counts(data)
    if counted is not None and counted[1]:
        failed, total = counted
        facts.append(("Scopes", f"{failed} of {total} failed" if failed else str(total)))
    if data.get("consecutive_failures"):
        facts.append(("Failed polls", str(data["consecutive_failures"])))
    if data.get("reason"):
        facts.append(("Reason", str(data["reason"])))
    return facts
