"""The shared delivery mechanism: order, filters, back-off, Retry-After, give-up rules."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest

from monitor.clock import FakeClock
from monitor.differ import SourceHealth
from monitor.model import Event, EventType, event_id
from monitor.retry import backoff_delay, parse_retry_after
from monitor.sinks.base import (
    DeliveryError,
    DeliveryWorker,
    Filters,
    RetryPolicy,
    Wakeup,
)
from monitor.store import Store

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def event(n: int, kind: EventType = EventType.JOB_FAILED, source: str = "aws") -> Event:
    return Event(
        id=event_id(str(n)),
        type=kind,
        timestamp=T0,
        manager="prod",
        source=source,
        job_id=f"job-{n}",
        data={"n": n},
    )


class ScriptedSink:
    """Answers each send with the next scripted outcome (None = success)."""

    def __init__(self, outcomes: list[DeliveryError | None] | None = None) -> None:
        self.name = "hook"
        self.outcomes = list(outcomes or [])
        self.sent: list[str] = []
        self.attempts = 0

    async def send(self, event: Event) -> None:
        self.attempts += 1
        outcome = self.outcomes.pop(0) if self.outcomes else None
        if outcome is not None:
            raise outcome
        self.sent.append(event.job_id or "")


class Recorder:
    """A DeliveryObserver that remembers what it was told."""

    def __init__(self) -> None:
        self.failures: list[tuple[str, int, bool]] = []
        self.delivered_ids: list[str] = []
        self.depth = -1
        self.disabled = ""

    def delivered(self, sink: str, event: Event, seconds: float) -> None:
        self.delivered_ids.append(event.id)

    def failed(
        self, sink: str, event: Event, error: DeliveryError, attempt: int, final: bool
    ) -> None:
        self.failures.append((error.reason, attempt, final))

    def queue_depth(self, sink: str, depth: int) -> None:
        self.depth = depth

    def sink_disabled(self, sink: str, reason: str) -> None:
        self.disabled = reason


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "state.db")
    s.register_sinks(["hook"])
    yield s
    s.close()


def queue(store: Store, *events: Event) -> None:
    store.commit_poll(
        "prod",
        "aws",
        changed={},
        events=list(events),
        watermark=None,
        health=SourceHealth(),
        now=T0.timestamp(),
    )


def worker(
    store: Store,
    sink: ScriptedSink,
    clock: FakeClock,
    recorder: Recorder,
    policy: RetryPolicy | None = None,
    filters: Filters | None = None,
) -> DeliveryWorker:
    return DeliveryWorker(
        sink,
        store,
        policy=policy or RetryPolicy(),
        filters=filters or Filters(),
        clock=clock,
        wakeup=Wakeup(),
        observer=recorder,
        rng=random.Random(1),
    )


async def run_until_idle(
    w: DeliveryWorker, clock: FakeClock, step: float = 1.0, limit: int = 100_000
) -> None:
    """Deliver while advancing the fake clock whenever the worker sleeps."""
    async with anyio.create_task_group() as tg:
        done = anyio.Event()

        async def deliver() -> None:
            await w.deliver_pending()
            done.set()

        tg.start_soon(deliver)
        for _ in range(limit):
            await anyio.wait_all_tasks_blocked()
            if done.is_set():
                break
            clock.advance(step)
        else:
            raise AssertionError("worker never finished")


def retryable(reason: str = "http_5xx", retry_after: float | None = None) -> DeliveryError:
    return DeliveryError(
        "receiver answered 503", reason=reason, retryable=True, retry_after=retry_after
    )


async def test_delivers_in_order_and_acks(store: Store) -> None:
    queue(store, *(event(i) for i in range(5)))
    sink, clock, rec = ScriptedSink(), FakeClock(T0), Recorder()
    await run_until_idle(worker(store, sink, clock, rec), clock)
    assert sink.sent == [f"job-{i}" for i in range(5)]
    assert store.pending("hook") == []
    assert len(rec.delivered_ids) == 5
    assert rec.depth == 0


async def test_retries_until_success_keeping_order(store: Store) -> None:
    queue(store, event(1), event(2))
    sink = ScriptedSink([retryable(), retryable(), None, None])
    clock, rec = FakeClock(T0), Recorder()
    await run_until_idle(worker(store, sink, clock, rec), clock)
    assert sink.sent == ["job-1", "job-2"]
    assert [f[:2] for f in rec.failures] == [("http_5xx", 1), ("http_5xx", 2)]
    assert not any(final for *_, final in rec.failures)


async def test_permanent_failure_dead_letters_and_moves_on(store: Store) -> None:
    queue(store, event(1), event(2))
    permanent = DeliveryError("receiver answered 400", reason="http_4xx", retryable=False)
    sink, clock, rec = ScriptedSink([permanent]), FakeClock(T0), Recorder()
    await run_until_idle(worker(store, sink, clock, rec), clock)
    assert sink.sent == ["job-2"]
    assert rec.failures == [("http_4xx", 1, True)]
    assert [d.event.job_id for d in store.dead_letters("hook")] == ["job-1"]


async def test_max_age_dead_letters(store: Store) -> None:
    queue(store, event(1))
    sink = ScriptedSink([retryable()] * 10_000)
    clock, rec = FakeClock(T0), Recorder()
    policy = RetryPolicy(initial_seconds=1, max_seconds=60, max_age_seconds=600)
    await run_until_idle(worker(store, sink, clock, rec, policy), clock, step=5)
    assert sink.sent == []
    assert rec.failures[-1][2] is True
    assert (clock.now() - T0).total_seconds() >= 600
    assert len(store.dead_letters("hook")) == 1


async def test_max_attempts(store: Store) -> None:
    queue(store, event(1))
    sink, clock, rec = ScriptedSink([retryable()] * 10), FakeClock(T0), Recorder()
    await run_until_idle(worker(store, sink, clock, rec, RetryPolicy(max_attempts=3)), clock)
    assert sink.attempts == 3
    assert len(store.dead_letters("hook")) == 1


async def test_retry_after_is_a_floor(store: Store) -> None:
    queue(store, event(1))
    sink = ScriptedSink([retryable(retry_after=30), None])
    clock, rec = FakeClock(T0), Recorder()
    policy = RetryPolicy(initial_seconds=0.001, max_seconds=60)
    await run_until_idle(worker(store, sink, clock, rec, policy), clock, step=1)
    assert sink.sent == ["job-1"]
    assert (clock.now() - T0).total_seconds() >= 30


async def test_disable_on_gone_stops_further_attempts(store: Store) -> None:
    queue(store, event(1), event(2), event(3))
    gone = DeliveryError("receiver answered 410", reason="http_4xx", retryable=False, disable=True)
    sink, clock, rec = ScriptedSink([gone]), FakeClock(T0), Recorder()
    w = worker(store, sink, clock, rec)
    await run_until_idle(w, clock)
    assert sink.attempts == 1
    assert w.disabled is not None
    assert rec.disabled == "receiver answered 410"
    assert len(store.dead_letters("hook")) == 3  # kept, for replay after the fix


async def test_filters_skip_without_sending(store: Store) -> None:
    queue(
        store,
        event(1, EventType.JOB_STARTED),
        event(2, EventType.JOB_FAILED),
        event(3, EventType.JOB_FAILED, source="gcp"),
    )
    sink, clock, rec = ScriptedSink(), FakeClock(T0), Recorder()
    filters = Filters(events=frozenset({"job.failed"}), sources=frozenset({"aws"}))
    await run_until_idle(worker(store, sink, clock, rec, filters=filters), clock)
    assert sink.sent == ["job-2"]
    assert store.pending("hook") == []


async def test_wakeup_is_not_lost_when_it_comes_before_the_wait() -> None:
    wakeup = Wakeup()
    seen = wakeup.generation
    wakeup.notify()
    with anyio.fail_after(1):
        await wakeup.wait(seen, at_most=60)


def test_backoff_full_jitter_and_cap() -> None:
    rng = random.Random(3)
    for attempt in range(1, 12):
        delay = backoff_delay(attempt, initial=1, cap=60, rng=rng)
        assert 0 <= delay <= min(60, 2 ** (attempt - 1))
    assert backoff_delay(1, initial=1, cap=60, rng=rng, retry_after=30) >= 30
    assert backoff_delay(1, initial=1, cap=60, rng=rng, retry_after=3600) == 60


def test_parse_retry_after() -> None:
    assert parse_retry_after("5") == 5
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    now = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    assert parse_retry_after("Mon, 23 Nov 2026 10:00:30 GMT", now) == 30
