"""The webhook sink: Standard Webhooks signatures checked by the reference package, and
durable delivery across a receiver outage (real worker, store and loopback receiver)."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from monitor.clock import FakeClock
from monitor.model import Event, EventType
from monitor.sinks.base import DeliveryWorker, Filters, RetryPolicy, Wakeup
from monitor.sinks.webhook import envelope_body
from monitor.store import Store
from tests.factories import queue
from tests.sink_kit import SECRET, Receiver, Reply, job_event, make_sink, receiver
from tests.test_delivery import Recorder


async def deliver_one(rcv: Receiver, event: Event, **settings: object) -> None:
    sink = make_sink("webhook", rcv.url("webhook"), **settings)  # type: ignore[arg-type]
    try:
        await sink.send([event])
    finally:
        await sink.close()


async def test_signature_verifies_with_the_reference_package() -> None:
    event = job_event(scope="123456789012/us-east-1", message="AccessDenied: <kms> & co")
    async with receiver() as rcv:
        await deliver_one(rcv, event, headers={"X-Team": "platform"})
    (request,) = rcv.requests
    payload = Webhook(SECRET).verify(request.body, request.headers)
    assert payload == event.envelope()
    assert request.body == envelope_body(event).encode()
    assert request.headers["webhook-id"] == event.id
    assert abs(int(request.headers["webhook-timestamp"]) - datetime.now(UTC).timestamp()) < 5
    assert request.headers["webhook-signature"].startswith("v1,")
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-Team"] == "platform"
    assert request.headers["User-Agent"].startswith("cckm-monitor/")


async def test_a_tampered_body_fails_verification() -> None:
    async with receiver() as rcv:
        await deliver_one(rcv, job_event())
    (request,) = rcv.requests
    tampered = request.body.replace(b'"failed"', b'"completed"')
    assert tampered != request.body
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(tampered, request.headers)


async def test_an_old_timestamp_fails_verification() -> None:
    late = FakeClock(datetime.now(UTC) - timedelta(minutes=10))
    async with receiver() as rcv:
        await deliver_one(rcv, job_event(), clock=late)
    (request,) = rcv.requests
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(SECRET).verify(request.body, request.headers)


async def test_a_plain_text_secret_is_the_key_bytes() -> None:
    async with receiver() as rcv:
        await deliver_one(rcv, job_event(), secret="correct horse battery staple")
    (request,) = rcv.requests
    Webhook(b"correct horse battery staple").verify(request.body, request.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(request.body, request.headers)


async def test_without_a_secret_requests_are_unsigned_but_identified() -> None:
    event = job_event()
    async with receiver() as rcv:
        await deliver_one(rcv, event, secret=None)
    (request,) = rcv.requests
    assert "webhook-signature" not in request.headers
    assert request.headers["webhook-id"] == event.id
    assert request.headers["webhook-timestamp"].isdigit()


# --- durability ------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "state.db")
    s.register_sinks(["webhook"])
    yield s
    s.close()


def twenty_events(start: datetime) -> list[list[Event]]:
    """Five polls, each with one event for each of four jobs."""
    kinds = [
        EventType.JOB_STARTED,
        EventType.JOB_ABORT_REQUESTED,
        EventType.JOB_DOMAIN_FAILED,
        EventType.JOB_STUCK,
        EventType.JOB_FAILED,
    ]
    return [
        [
            job_event(
                kind,
                job=f"job-{j}",
                scope=f"r{j}" if kind.value.endswith("d_failed") else None,
                at=start + timedelta(seconds=30 * poll),
            )
            for j in range(4)
        ]
        for poll, kind in enumerate(kinds)
    ]


def webhook_worker(
    store: Store, sink_url: str, clock: FakeClock, timeout: float = 1.0
) -> DeliveryWorker:
    return DeliveryWorker(
        make_sink("webhook", sink_url, timeout=timeout),
        store,
        policy=RetryPolicy(initial_seconds=1, max_seconds=30),
        filters=Filters(),
        clock=clock,
        wakeup=Wakeup(),
        observer=Recorder(),
        rng=random.Random(5),
    )


async def test_twenty_events_during_an_outage_all_arrive_in_order_once(store: Store) -> None:
    now = datetime.now(UTC)
    polls = twenty_events(now)
    expected = [e.id for poll in polls for e in poll]
    clock = FakeClock(now)  # moved by hand: back-off waits for the test
    rcv = Receiver()  # down: nothing listens on its port yet
    w = webhook_worker(store, rcv.url("webhook"), clock)
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(w.run, 0.05)
            for poll in polls:  # the events happen while the receiver is down
                queue(store, *poll)
                await anyio.sleep(0.02)
                clock.advance(30)
            assert rcv.requests == []
            await rcv.start()  # and it comes back
            try:
                while len({r.headers["webhook-id"] for r in rcv.requests}) < 20:
                    clock.advance(30)  # past any back-off
                    await anyio.sleep(0.01)
            finally:
                tg.cancel_scope.cancel()
                await rcv.stop()
                await w.close()
    ids = [r.headers["webhook-id"] for r in rcv.requests]
    assert ids == expected  # in order, each once: no 2xx was lost
    per_job: defaultdict[str, list[str]] = defaultdict(list)
    for request in rcv.requests:
        Webhook(SECRET).verify(request.body, request.headers)
        body = rcv.json(rcv.requests.index(request))
        per_job[body["data"]["job_id"]].append(body["type"])
    assert all(kinds == [p[0].type.value for p in polls] for kinds in per_job.values())
    assert store.queue_depth("webhook") == 0
    assert store.dead_letters("webhook") == []


async def test_a_receiver_down_for_twelve_hours_gets_everything_afterwards(
    store: Store,
) -> None:
    """A long outage on an injected clock: hundreds of refused attempts, nothing lost,
    nothing dead-lettered (the default max age is a day), order kept."""
    now = datetime.now(UTC)
    polls = twenty_events(now)
    expected = [e.id for poll in polls for e in poll]
    clock = FakeClock(now)
    rcv = Receiver()
    w = webhook_worker(store, rcv.url("webhook"), clock)
    recorder = w._observer
    assert isinstance(recorder, Recorder)
    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            tg.start_soon(w.run, 0.05)
            for poll in polls:
                queue(store, *poll)
            for _ in range(12 * 6):  # twelve hours, ten minutes at a time
                clock.advance(600)
                await anyio.lowlevel.checkpoint()
                await anyio.wait_all_tasks_blocked()
            assert rcv.requests == []
            await rcv.start()
            try:
                while len({r.headers["webhook-id"] for r in rcv.requests}) < 20:
                    clock.advance(30)
                    await anyio.sleep(0.01)
            finally:
                tg.cancel_scope.cancel()
                await rcv.stop()
                await w.close()
    assert [r.headers["webhook-id"] for r in rcv.requests] == expected
    assert len(recorder.failures) >= 12  # it kept trying through the night (capped back-off)
    assert store.dead_letters("webhook") == []
    assert store.queue_depth("webhook") == 0


async def test_a_lost_2xx_repeats_the_event_with_the_same_id(store: Store) -> None:
    now = datetime.now(UTC)
    events = [job_event(job=f"job-{i}", at=now) for i in range(5)]
    queue(store, *events)
    clock = FakeClock(now, autojump=True)
    async with receiver() as rcv:
        # the third request is received, but its answer never comes back
        rcv.answer(Reply(), Reply(), Reply(hang=True))
        w = webhook_worker(store, rcv.url("webhook"), clock, timeout=0.3)
        with anyio.fail_after(10):
            await w.deliver_pending()
        await w.close()
    ids = [r.headers["webhook-id"] for r in rcv.requests]
    e = [x.id for x in events]
    assert ids == [e[0], e[1], e[2], e[2], e[3], e[4]]
    for request in rcv.requests:  # the repeat is signed afresh, with the same id
        Webhook(SECRET).verify(request.body, request.headers)
