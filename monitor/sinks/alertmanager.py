"""The ``alertmanager`` sink: events become alerts POSTed to ``<url>/api/v2/alerts``.

| event | alert | endsAt |
|---|---|---|
| ``job.failed`` | ``CCKMJobFailed`` (critical) | event time + ``resolve_after_seconds`` |
| ``job.domain_failed`` | ``CCKMDomainFailed`` (critical), with ``scope`` | same |
| ``job.aborted`` | ``CCKMJobAborted`` (warning) | same |
| ``job.vanished`` | ``CCKMJobVanished`` (warning) | same |
| ``job.stuck`` | ``CCKMJobStuck`` (warning) | open: resolved by the job's end |
| ``source.down`` | ``CCKMSourceDown`` (critical) | open: resolved by ``source.up`` |

A job's terminal event (completed, failed, aborted, vanished) also posts
``CCKMJobStuck`` with ``endsAt`` = that event's time (or now, if earlier), and
``source.up`` posts ``CCKMSourceDown`` the same way: a resolution of an alert that
never fired is stored and never notified, so no memory of what fired is needed.
``job.started`` and ``job.abort_requested`` post nothing and are acknowledged.

Labels are a function of the event alone — alertname, severity, manager, source,
job_id, scope — never a daemon's name or a time, so two daemons posting one event
make one alert in Alertmanager (same labels, same fingerprint).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from monitor.clock import Clock, SystemClock
from monitor.model import TERMINAL_EVENTS, Event, EventType, format_timestamp
from monitor.sinks.describe import SEVERITY, TITLE, details, headline, is_test
from monitor.sinks.http_post import HttpPoster

ALERTS_PATH = "/api/v2/alerts"
JOB_FAILED = "CCKMJobFailed"
DOMAIN_FAILED = "CCKMDomainFailed"
JOB_ABORTED = "CCKMJobAborted"
JOB_VANISHED = "CCKMJobVanished"
JOB_STUCK = "CCKMJobStuck"
SOURCE_DOWN = "CCKMSourceDown"
ONE_SHOT: Mapping[EventType, str] = {
    EventType.JOB_FAILED: JOB_FAILED,
    EventType.JOB_DOMAIN_FAILED: DOMAIN_FAILED,
    EventType.JOB_ABORTED: JOB_ABORTED,
    EventType.JOB_VANISHED: JOB_VANISHED,
}
OPEN: Mapping[EventType, str] = {
    EventType.JOB_STUCK: JOB_STUCK,
    EventType.SOURCE_DOWN: SOURCE_DOWN,
}
# An open alert must carry an endsAt, or Alertmanager resolves it after its
# resolve_timeout (5 minutes): we post once, we do not re-send like Prometheus does.
OPEN_ALERT_SECONDS = 30 * 86400.0


def labels(alertname: str, cause: EventType, event: Event) -> dict[str, str]:
    """Deterministic labels: the alert's identity in Alertmanager."""
    found = {
        "alertname": alertname,
        "severity": SEVERITY[cause],
        "manager": event.manager,
        "source": event.source,
    }
    if event.job_id is not None:
        found["job_id"] = event.job_id
    if cause is EventType.JOB_DOMAIN_FAILED and event.data.get("scope"):
        found["scope"] = str(event.data["scope"])
    if is_test(event):
        found["test"] = "true"
    return found


def _description(event: Event) -> str:
    lines = [f"{label}: {value}" for label, value in details(event)]
    for key, label in (("scope", "Scope"), ("scope_status", "Message"), ("error", "Error")):
        if event.data.get(key):
            lines.append(f"{label}: {event.data[key]}")
    if is_test(event) and event.data.get("summary"):
        lines.insert(0, str(event.data["summary"]))
    lines.append(f"Event: {event.id} ({event.type.value})")
    return "\n".join(lines)


def alerts_for(event: Event, *, now: datetime, resolve_after: float) -> list[dict[str, Any]]:
    """The alerts one event posts: a firing alert, a resolution, both, or none."""
    out: list[dict[str, Any]] = []
    annotations = {"summary": headline(event), "description": _description(event)}
    if event.type in ONE_SHOT:
        # counted from delivery when later than the event: a replayed or late event
        # still fires, instead of arriving already resolved and never notified
        ends = max(event.timestamp, now) + timedelta(seconds=resolve_after)
        out.append(_alert(ONE_SHOT[event.type], event.type, event, annotations, ends))
    elif event.type in OPEN:
        ends = event.timestamp + timedelta(seconds=OPEN_ALERT_SECONDS)
        out.append(_alert(OPEN[event.type], event.type, event, annotations, ends))
    # A resolution must never lie in Alertmanager's future: until its endsAt it would be
    # an active alert, and one that never fired would notify as firing.
    resolved_at = min(event.timestamp, now)
    if event.type in TERMINAL_EVENTS:
        out.append(_resolution(JOB_STUCK, EventType.JOB_STUCK, event, resolved_at))
    elif event.type is EventType.SOURCE_UP:
        out.append(_resolution(SOURCE_DOWN, EventType.SOURCE_DOWN, event, resolved_at))
    return out


def _alert(
    name: str, cause: EventType, event: Event, annotations: dict[str, str], ends: datetime
) -> dict[str, Any]:
    return {
        "labels": labels(name, cause, event),
        "annotations": annotations,
        "startsAt": format_timestamp(event.timestamp),
        "endsAt": format_timestamp(ends),
    }


def _resolution(name: str, cause: EventType, event: Event, at: datetime) -> dict[str, Any]:
    # no startsAt: Alertmanager keeps the firing alert's, the earliest of the two
    summary = f"{TITLE[cause]} resolved ({event.type.value}): {headline(event).split(': ', 1)[-1]}"
    return {
        "labels": labels(name, cause, event),
        "annotations": {"summary": summary, "description": _description(event)},
        "endsAt": format_timestamp(at),
    }


class AlertmanagerSink:
    """Posts the alerts of a batch (one job's events of one poll) in one request."""

    max_batch = 50

    def __init__(
        self,
        name: str,
        url: str,
        *,
        where: str,
        resolve_after_seconds: float = 3600.0,
        headers: Mapping[str, str] | None = None,
        timeout_seconds: float = 10.0,
        clock: Clock | None = None,
    ) -> None:
        self.name = name
        self._clock = clock or SystemClock()
        self._resolve_after = resolve_after_seconds
        self._poster = HttpPoster(
            url.rstrip("/") + ALERTS_PATH,
            where=where,
            timeout_seconds=timeout_seconds,
            clock=self._clock,
            headers=headers,
        )

    def alerts(self, events: Sequence[Event]) -> list[dict[str, Any]]:
        now = self._clock.now()
        return [
            alert
            for event in events
            for alert in alerts_for(event, now=now, resolve_after=self._resolve_after)
        ]

    async def send(self, events: Sequence[Event]) -> None:
        alerts = self.alerts(events)
        if alerts:  # nothing to say (job.started): acknowledged without a request
            await self._poster.post(json.dumps(alerts).encode(), {})

    async def close(self) -> None:
        await self._poster.close()
