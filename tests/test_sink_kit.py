"""The shared retry test kit, run by every HTTP sink against a real loopback receiver.

Each HTTP status -> delivered, retried, dead-lettered or disabled; ``Retry-After`` in
seconds and as an HTTP date; timeouts; refused connections; twenty events across an
outage arrive in order, each id once. Back-off runs on a FakeClock: no real sleeps.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import anyio
import pytest

from monitor.clock import FakeClock
from monitor.model import Event
from monitor.sinks.base import (
    AUTH,
    CONNECTION,
    HTTP_4XX,
    HTTP_5XX,
    INVALID,
    TIMEOUT,
    DeliveryError,
    DeliveryWorker,
    Filters,
    RetryPolicy,
    Sink,
    Wakeup,
)
from monitor.store import Store
from tests.factories import queue
from tests.sink_kit import (
    HTTP_SINKS,
    PATH_SECRET,
    PATHS,
    T0,
    Receiver,
    Reply,
    job_event,
    make_sink,
    receiver,
)
from tests.test_delivery import Recorder

OK = (200, 202, 204)
PERMANENT = {301: INVALID, 400: HTTP_4XX, 401: AUTH, 403: AUTH, 404: HTTP_4XX}
PERMANENT[413] = HTTP_4XX
RETRIED = {408: HTTP_4XX, 429: HTTP_4XX, 500: HTTP_5XX, 502: HTTP_5XX, 503: HTTP_5XX}
RETRIED[504] = HTTP_5XX


async def attempt(sink: Sink, event: Event | None = None) -> DeliveryError | None:
    try:
        await sink.send([event or job_event()])
    except DeliveryError as exc:
        return exc
    finally:
        await sink.close()
    return None


def assert_no_secret(error: DeliveryError) -> None:
    assert PATH_SECRET not in error.message
    assert "/api/v2" not in error.message  # no path at all, only scheme://host:port/…


@pytest.mark.parametrize("status", OK)
@pytest.mark.parametrize("kind", HTTP_SINKS)
async def test_2xx_is_delivered(kind: str, status: int) -> None:
    async with receiver(Reply(status)) as rcv:
        assert await attempt(make_sink(kind, rcv.url(kind))) is None
        assert len(rcv.requests) == 1
        assert rcv.requests[0].path == PATHS[kind]


@pytest.mark.parametrize(("status", "reason"), sorted(PERMANENT.items()))
@pytest.mark.parametrize("kind", HTTP_SINKS)
async def test_permanent_statuses_are_not_retried(kind: str, status: int, reason: str) -> None:
    headers = {"Location": "http://127.0.0.1:1/elsewhere"} if status == 301 else {}
    async with receiver(Reply(status, headers, body="invalid_payload")) as rcv:
        error = await attempt(make_sink(kind, rcv.url(kind)))
        assert error is not None
        assert (error.retryable, error.disable, error.reason) == (False, False, reason)
        assert str(status) in error.message
        assert len(rcv.requests) == 1  # the redirect was not followed
        assert_no_secret(error)
        if status == 400:
            assert error.message.endswith(": invalid_payload")  # Slack's words, kept


@pytest.mark.parametrize("kind", HTTP_SINKS)
async def test_410_disables_the_sink(kind: str) -> None:
    async with receiver(Reply(410, body="channel_is_archived")) as rcv:
        error = await attempt(make_sink(kind, rcv.url(kind)))
        assert error is not None
        assert (error.retryable, error.disable, error.reason) == (False, True, HTTP_4XX)


@pytest.mark.parametrize(("status", "reason"), sorted(RETRIED.items()))
@pytest.mark.parametrize("kind", HTTP_SINKS)
async def test_retryable_statuses(kind: str, status: int, reason: str) -> None:
    async with receiver(Reply(status)) as rcv:
        error = await attempt(make_sink(kind, rcv.url(kind)))
        assert error is not None
        assert (error.retryable, error.disable, error.reason) == (True, False, reason)
        assert error.retry_after is None
        assert_no_secret(error)


@pytest.mark.parametrize("kind", HTTP_SINKS)
async def test_an_echoed_url_is_not_quoted_back(kind: str) -> None:
    async with receiver() as rcv:
        rcv.answer(
            Reply(400, body=f"bad request to {rcv.url(kind)}{PATHS[kind]}?x=1 {PATHS[kind]}")
        )
        error = await attempt(make_sink(kind, rcv.url(kind)))
        assert error is not None
        assert_no_secret(error)


@pytest.mark.parametrize("kind", HTTP_SINKS)
async def test_timeout_is_retried(kind: str) -> None:
    async with receiver(Reply(hang=True)) as rcv:
        with anyio.fail_after(5):
            error = await attempt(make_sink(kind, rcv.url(kind), timeout=0.2))
        assert error is not None
        assert (error.retryable, error.reason) == (True, TIMEOUT)
        assert "timed out" in error.message  # issue 10: errors in words
        assert_no_secret(error)


@pytest.mark.parametrize("kind", HTTP_SINKS)
async def test_connection_refused_is_retried(kind: str) -> None:
    closed = Receiver()  # never started: its port is closed
    error = await attempt(make_sink(kind, closed.url(kind)))
    assert error is not None
    assert (error.retryable, error.reason) == (True, CONNECTION)
    assert "connection refused" in error.message  # issue 10: errors in words
    assert_no_secret(error)


# --- through the delivery worker, on a fake clock -------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "state.db")
    s.register_sinks(HTTP_SINKS)
    yield s
    s.close()


def worker(sink: Sink, store: Store, clock: FakeClock) -> DeliveryWorker:
    return DeliveryWorker(
        sink,
        store,
        policy=RetryPolicy(initial_seconds=1, max_seconds=600),
        filters=Filters(),
        clock=clock,
        wakeup=Wakeup(),
        observer=Recorder(),
        rng=random.Random(7),
    )


def http_date(seconds_from_now: float) -> str:
    return format_datetime(datetime.now(UTC) + timedelta(seconds=seconds_from_now), usegmt=True)


@pytest.mark.parametrize(
    ("status", "retry_after", "low", "high"),
    [
        (429, "120", 120, 120),
        (503, "45", 45, 45),
        (429, "date", 117, 121),  # an HTTP date: whole seconds, taken against the wall
    ],
)
@pytest.mark.parametrize("kind", HTTP_SINKS)
async def test_retry_after_is_honoured(
    kind: str, status: int, retry_after: str, low: float, high: float, store: Store
) -> None:
    queue(store, job_event(at=datetime.now(UTC)))
    clock = FakeClock(datetime.now(UTC), autojump=True)
    async with receiver() as rcv:
        value = http_date(120) if retry_after == "date" else retry_after
        rcv.answer(Reply(status, {"Retry-After": value}))
        w = worker(make_sink(kind, rcv.url(kind)), store, clock)
        started = clock.monotonic()
        with anyio.fail_after(10):
            await w.deliver_pending()
        await w.close()
        waited = clock.monotonic() - started
        assert low <= waited <= high
        assert len(rcv.requests) == 2
        assert store.queue_depth(kind) == 0


@pytest.mark.parametrize("kind", HTTP_SINKS)
async def test_a_permanent_failure_is_a_dead_letter_and_410_disables(
    kind: str, store: Store
) -> None:
    queue(store, job_event(job="a"), job_event(job="b"), job_event(job="c"))
    clock = FakeClock(T0, autojump=True)
    async with receiver() as rcv:
        rcv.answer(Reply(404), Reply(410))
        w = worker(make_sink(kind, rcv.url(kind)), store, clock)
        await w.deliver_pending()
        await w.close()
        assert len(rcv.requests) == 2  # a, b; c is not even tried once disabled
        assert w.disabled is not None
        letters = store.dead_letters(kind)
        assert [d.event.job_id for d in letters] == ["a", "b", "c"]
        assert "404" in letters[0].reason and "410" in letters[1].reason
        assert all(PATH_SECRET not in d.reason for d in letters)
