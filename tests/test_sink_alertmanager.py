"""The Alertmanager sink's mapping: which alerts an event posts, with which labels and
times. The real Alertmanager is in test_e2e_alertmanager.py."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from pathlib import Path

import pytest

from monitor.clock import FakeClock
from monitor.health import SourceHealth
from monitor.logs import configure_logging
from monitor.model import Event, EventType, format_timestamp
from monitor.sinks.alertmanager import OPEN_ALERT_SECONDS, alerts_for, labels
from monitor.sinks.base import DeliveryWorker, Filters, RetryPolicy, Wakeup
from monitor.sinks.registry import build_sink
from monitor.store import Store
from tests.sink_kit import T0, job_event, make_sink, receiver, sink_settings, source_event
from tests.test_delivery import Recorder

HOUR = 3600.0

# event -> the alerts it posts: (alertname, firing?)
MAPPING = {
    EventType.JOB_STARTED: [],
    EventType.JOB_ABORT_REQUESTED: [],
    EventType.JOB_COMPLETED: [("CCKMJobStuck", False)],
    EventType.JOB_FAILED: [("CCKMJobFailed", True), ("CCKMJobStuck", False)],
    EventType.JOB_ABORTED: [("CCKMJobAborted", True), ("CCKMJobStuck", False)],
    EventType.JOB_VANISHED: [("CCKMJobVanished", True), ("CCKMJobStuck", False)],
    EventType.JOB_DOMAIN_FAILED: [("CCKMDomainFailed", True)],
    EventType.JOB_STUCK: [("CCKMJobStuck", True)],
    EventType.SOURCE_DOWN: [("CCKMSourceDown", True)],
    EventType.SOURCE_UP: [("CCKMSourceDown", False)],
    # issue 12: the event types exist; their alerts come with the surfaces (item 3)
    EventType.SCHEDULE_MISSED: [],
    EventType.SCHEDULE_RUN_FAILED: [],
    EventType.SCHEDULE_DISABLED: [],
    EventType.SCHEDULE_ENABLED: [],
    EventType.SCOPE_STALE: [],
    EventType.SCOPE_FRESH: [],
}


def event_of(kind: EventType) -> Event:
    if kind in (EventType.SOURCE_DOWN, EventType.SOURCE_UP):
        return source_event(kind)
    return job_event(kind, scope="acct/us-east-1", message="AccessDenied")


@pytest.mark.parametrize("kind", list(EventType), ids=str)
def test_each_event_maps_to_its_alerts(kind: EventType) -> None:
    alerts = alerts_for(event_of(kind), now=T0, resolve_after=HOUR)
    assert [(a["labels"]["alertname"], "startsAt" in a) for a in alerts] == MAPPING[kind]


def test_labels_are_deterministic_and_free_of_times() -> None:
    first = job_event(EventType.JOB_DOMAIN_FAILED, scope="acct/us-east-1", message="Denied")
    later = job_event(
        EventType.JOB_DOMAIN_FAILED, scope="acct/us-east-1", message="Denied", at=T0 + timedelta(1)
    )
    a = alerts_for(first, now=T0, resolve_after=HOUR)[0]["labels"]
    b = alerts_for(later, now=T0 + timedelta(1), resolve_after=60)[0]["labels"]
    assert (
        a
        == b
        == {
            "alertname": "CCKMDomainFailed",
            "severity": "critical",
            "manager": "prod",
            "source": "aws",
            "job_id": first.job_id,
            "scope": "acct/us-east-1",
        }
    )


def test_a_resolution_has_the_labels_of_what_it_resolves() -> None:
    stuck = alerts_for(job_event(EventType.JOB_STUCK), now=T0, resolve_after=HOUR)[0]
    for kind in (EventType.JOB_COMPLETED, EventType.JOB_FAILED, EventType.JOB_VANISHED):
        end = job_event(kind, at=T0 + timedelta(hours=2))
        resolution = alerts_for(end, now=T0 + timedelta(hours=3), resolve_after=HOUR)[-1]
        assert resolution["labels"] == stuck["labels"]
        assert resolution["endsAt"] == format_timestamp(end.timestamp)
        assert "startsAt" not in resolution  # Alertmanager keeps the firing alert's
    # an event stamped ahead of our clock still resolves now, never in the future
    ahead = job_event(EventType.JOB_COMPLETED, at=T0 + timedelta(seconds=30))
    assert alerts_for(ahead, now=T0, resolve_after=HOUR)[0]["endsAt"] == format_timestamp(T0)
    down = alerts_for(source_event(EventType.SOURCE_DOWN), now=T0, resolve_after=HOUR)[0]
    up = alerts_for(source_event(EventType.SOURCE_UP), now=T0, resolve_after=HOUR)[0]
    assert (
        up["labels"]
        == down["labels"]
        == labels("CCKMSourceDown", EventType.SOURCE_DOWN, source_event(EventType.SOURCE_DOWN))
    )


def test_times_of_one_shot_and_open_alerts() -> None:
    failed = alerts_for(job_event(EventType.JOB_FAILED), now=T0, resolve_after=HOUR)[0]
    assert failed["startsAt"] == format_timestamp(T0)
    assert failed["endsAt"] == format_timestamp(T0 + timedelta(seconds=HOUR))
    # delivered two hours late (receiver down, or a replay): it still fires for an hour
    late = T0 + timedelta(hours=2)
    replayed = alerts_for(job_event(EventType.JOB_FAILED), now=late, resolve_after=HOUR)[0]
    assert replayed["startsAt"] == format_timestamp(T0)
    assert replayed["endsAt"] == format_timestamp(late + timedelta(seconds=HOUR))
    stuck = alerts_for(job_event(EventType.JOB_STUCK), now=T0, resolve_after=HOUR)[0]
    assert stuck["endsAt"] == format_timestamp(T0 + timedelta(seconds=OPEN_ALERT_SECONDS))


def test_annotations_say_what_happened() -> None:
    event = job_event(EventType.JOB_DOMAIN_FAILED, scope="acct/us-east-1", message="AccessDenied")
    alert = alerts_for(event, now=T0, resolve_after=HOUR)[0]
    assert alert["annotations"]["summary"] == "Scope failed: aws job 6a1f0c2e… on prod"
    description = alert["annotations"]["description"]
    assert "Scope: acct/us-east-1" in description
    assert "Message: AccessDenied" in description
    assert event.id in description


async def test_events_without_alerts_are_acknowledged_without_a_request(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "state.db")
    store.register_sinks(["alertmanager"])
    events = [job_event(EventType.JOB_STARTED, job=f"j{i}") for i in range(3)]
    events.append(job_event(EventType.JOB_FAILED, job="j9"))
    store.commit_poll(
        "prod",
        "aws",
        changed={},
        events=events,
        watermark=None,
        health=SourceHealth(),
        now=T0.timestamp(),
    )
    async with receiver() as rcv:
        sink = make_sink("alertmanager", rcv.url("alertmanager"), headers={"X-Scope": "team"})
        worker = DeliveryWorker(
            sink,
            store,
            policy=RetryPolicy(),
            filters=Filters(),
            clock=FakeClock(T0, autojump=True),
            wakeup=Wakeup(),
            observer=Recorder(),
        )
        await worker.deliver_pending()
        await worker.close()
    assert store.queue_depth("alertmanager") == 0
    (request,) = rcv.requests
    assert request.path == "/api/v2/alerts"
    assert request.headers["X-Scope"] == "team"
    names = [a["labels"]["alertname"] for a in json.loads(request.body)]
    assert names == ["CCKMJobFailed", "CCKMJobStuck"]
    store.close()


def test_a_filter_that_keeps_alerts_open_is_reported() -> None:
    out = io.StringIO()
    configure_logging("info", "json", out)
    url = "http://127.0.0.1:9093"
    build_sink(sink_settings("alertmanager", url, events=["job.stuck"]), console=False)
    build_sink(
        sink_settings("alertmanager", url, events=["source.down", "source.up"]), console=False
    )
    (line,) = [json.loads(x) for x in out.getvalue().splitlines()]
    assert line["event"] == "sink.filter_keeps_alerts_open"
    assert line["missing_events"] == [
        "job.aborted",
        "job.completed",
        "job.failed",
        "job.vanished",
    ]
