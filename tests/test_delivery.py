"""The shared delivery mechanism: order, filters, back-off, Retry-After, give-up rules."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest

from monitor.clock import FakeClock
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
from tests.factories import queue

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

    def __init__(
        self, outcomes: list[DeliveryError | None] | None = None, max_batch: int = 1
    ) -> None:
        self.name = "hook"
        self.max_batch = max_batch
        self.outcomes = list(outcomes or [])
        self.sent: list[str] = []
        self.batches: list[list[str]] = []
        self.attempts = 0
        self.closed = False

    async def send(self, events: Sequence[Event]) -> None:
        self.attempts += 1
        outcome = self.outcomes.pop(0) if self.outcomes else None
        if outcome is not None:
            raise outcome
        self.batches.append([e.job_id or "" for e in events])
        self.sent += [e.job_id or "" for e in events]

    async def close(self) -> None:
        self.closed = True


class Recorder:
    """A DeliveryObserver that remembers what it was told."""

    def __init__(self) -> None:
        self.failures: list[tuple[str, int, bool]] = []
        self.delivered_ids: list[str] = []
        self.depth = -1
        self.disabled = ""
        self.crashes: list[tuple[str, bool]] = []

    def delivered(self, sink: str, event: Event, seconds: float) -> None:
        self.delivered_ids.append(event.id)

    def failed(
        self, sink: str, events: Sequence[Event], error: DeliveryError, attempt: int, final: bool
    ) -> None:
        self.failures.extend((error.reason, attempt, final) for _ in events)

    def queue_depth(self, sink: str, depth: int) -> None:
        self.depth = depth

    def sink_disabled(self, sink: str, reason: str) -> None:
        self.disabled = reason

    def delivery_crashed(self, sink: str, *, error: BaseException, traceback: bool) -> None:
        self.crashes.append((f"{type(error).__name__}: {error}", traceback))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "state.db")
    s.register_sinks(["hook"])
    yield s
    s.close()


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


# --- batches ------------------------------------------------------------------------


def scope_event(job: str, scope: int, kind: EventType = EventType.JOB_DOMAIN_FAILED) -> Event:
    """One of a flood: the events of one job found in one poll share the timestamp."""
    return Event(
        id=event_id(job, kind.value, str(scope)),
        type=kind,
        timestamp=T0,
        manager="prod",
        source="aws",
        job_id=job,
        data={"scope": f"region-{scope}"},
    )


async def test_a_flood_of_one_job_is_one_batch(store: Store) -> None:
    queue(store, *(scope_event("job-a", i) for i in range(40)), scope_event("job-b", 0))
    sink, clock, rec = ScriptedSink(max_batch=100), FakeClock(T0), Recorder()
    await run_until_idle(worker(store, sink, clock, rec), clock)
    assert [len(b) for b in sink.batches] == [40, 1]
    assert len(rec.delivered_ids) == 41  # the observer hears of each event
    assert store.queue_depth("hook") == 0


async def test_batches_respect_max_batch_and_page_boundaries(store: Store) -> None:
    queue(store, *(scope_event("job-a", i) for i in range(20)))
    queue(store, *(scope_event("job-b", i) for i in range(20)))
    sink, clock, rec = ScriptedSink(max_batch=15), FakeClock(T0), Recorder()
    w = DeliveryWorker(
        sink,
        store,
        policy=RetryPolicy(),
        filters=Filters(),
        clock=clock,
        wakeup=Wakeup(),
        observer=rec,
        batch=25,  # the first page ends inside job-b's events
    )
    await run_until_idle(w, clock)
    assert [len(b) for b in sink.batches] == [15, 5, 15, 5]
    assert [b[0] for b in sink.batches] == ["job-a", "job-a", "job-b", "job-b"]


async def test_filtered_events_inside_a_batch_are_acknowledged(store: Store) -> None:
    events = [scope_event("job-a", i) for i in range(3)]
    events.insert(1, scope_event("job-a", 99, EventType.JOB_STARTED))
    queue(store, *events)
    sink, clock, rec = ScriptedSink(max_batch=10), FakeClock(T0), Recorder()
    filters = Filters(events=frozenset({"job.domain_failed"}))
    await run_until_idle(worker(store, sink, clock, rec, filters=filters), clock)
    assert [len(b) for b in sink.batches] == [3]
    assert store.pending("hook") == []


async def test_a_batch_is_retried_and_dead_lettered_together(store: Store) -> None:
    queue(store, *(scope_event("job-a", i) for i in range(5)), scope_event("job-b", 0))
    permanent = DeliveryError("receiver answered 400", reason="http_4xx", retryable=False)
    sink = ScriptedSink([retryable(), permanent], max_batch=10)
    clock, rec = FakeClock(T0), Recorder()
    await run_until_idle(worker(store, sink, clock, rec), clock)
    assert sink.batches == [["job-b"]]
    assert rec.failures == [("http_5xx", 1, False)] * 5 + [("http_4xx", 2, True)] * 5
    assert len(store.dead_letters("hook")) == 5


async def test_a_sink_bug_dead_letters_instead_of_stopping_the_worker(store: Store) -> None:
    class Broken(ScriptedSink):
        async def send(self, events: Sequence[Event]) -> None:
            if events[0].job_id == "job-1":
                raise KeyError("boom")
            await super().send(events)

    queue(store, event(1), event(2))
    sink, clock, rec = Broken(), FakeClock(T0), Recorder()
    await run_until_idle(worker(store, sink, clock, rec), clock)
    assert sink.sent == ["job-2"]
    (letter,) = store.dead_letters("hook")
    assert letter.reason == "the sink failed unexpectedly (KeyError)"
    assert rec.failures == [("invalid_response", 1, True)]


async def test_close_closes_the_sink(store: Store) -> None:
    sink, clock, rec = ScriptedSink(), FakeClock(T0), Recorder()
    await worker(store, sink, clock, rec).close()
    assert sink.closed


# --- replay -------------------------------------------------------------------------


async def test_replay_requeues_dead_letters_ahead_of_newer_events(store: Store) -> None:
    queue(store, event(1), event(2), event(3))
    permanent = DeliveryError("receiver answered 404", reason="http_4xx", retryable=False)
    sink, clock, rec = ScriptedSink([permanent, None, permanent]), FakeClock(T0), Recorder()
    w = worker(store, sink, clock, rec)
    await run_until_idle(w, clock)
    assert sink.sent == ["job-2"]
    assert [d.event.job_id for d in store.dead_letters("hook")] == ["job-1", "job-3"]

    queue(store, event(4))
    assert store.replay("hook") == 2
    assert store.dead_letters("hook") == []
    assert [e.event.job_id for e in store.pending("hook")] == ["job-1", "job-3", "job-4"]
    assert store.queue_depth("hook") == 3
    await run_until_idle(w, clock)
    assert sink.sent == ["job-2", "job-1", "job-3", "job-4"]
    assert store.queue_depth("hook") == 0
    assert store.replay("hook") == 0


async def test_a_replayed_event_that_fails_again_is_a_dead_letter_again(store: Store) -> None:
    queue(store, event(1))
    permanent = DeliveryError("receiver answered 404", reason="http_4xx", retryable=False)
    sink, clock, rec = ScriptedSink([permanent, permanent]), FakeClock(T0), Recorder()
    w = worker(store, sink, clock, rec)
    await run_until_idle(w, clock)
    store.replay("hook")
    await run_until_idle(w, clock)
    assert [d.event.job_id for d in store.dead_letters("hook")] == ["job-1"]
    assert store.pending("hook") == []


async def test_replayed_events_survive_pruning(store: Store) -> None:
    queue(store, event(1))
    store.dead_letter("hook", store.pending("hook")[0].seq, reason="x", attempts=1, now=0)
    store.replay("hook")
    later = T0.timestamp() + 30 * 86400
    assert store.prune(now=later, retention_seconds=86400, sinks=["hook"]) == 0
    assert [e.event.job_id for e in store.pending("hook")] == ["job-1"]


async def test_a_running_worker_picks_up_a_replay_from_another_process(
    store: Store, tmp_path: Path
) -> None:
    queue(store, event(1))
    store.dead_letter("hook", store.pending("hook")[0].seq, reason="x", attempts=1, now=0)
    arrived = anyio.Event()

    class Signalling(ScriptedSink):
        async def send(self, events: Sequence[Event]) -> None:
            await super().send(events)
            arrived.set()

    sink, clock, rec = Signalling(), FakeClock(T0), Recorder()
    w = worker(store, sink, clock, rec)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(w.run, 0.02)
            await anyio.sleep(0.05)
            assert sink.sent == []
            other = Store.open(tmp_path / "state.db")  # what `cckm-monitor replay` opens
            try:
                assert other.replay("hook") == 1
            finally:
                other.close()
            await arrived.wait()
            tg.cancel_scope.cancel()
    assert sink.sent == ["job-1"]
