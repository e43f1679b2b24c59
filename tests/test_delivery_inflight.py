"""Several requests in flight per sink: they overlap, each job's events stay in order,
the cursor never passes an unsettled entry, a crash loses nothing, a down receiver is
probed one request at a time and a failing batch does not hold up other jobs."""

from __future__ import annotations

import itertools
import random
from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.clock import FakeClock
from monitor.model import Event, EventType, event_id
from monitor.sinks.base import DeliveryError, DeliveryWorker, Filters, RetryPolicy, Wakeup
from monitor.store import Store
from tests.factories import queue
from tests.test_delivery import Recorder

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def job_event(job: int, step: int, source: str = "aws") -> Event:
    """Step ``step`` of job ``job``; every step is its own poll, so its own batch."""
    return Event(
        id=event_id("inflight", str(job), str(step)),
        type=EventType.JOB_DOMAIN_FAILED,
        timestamp=T0 + timedelta(seconds=step),
        manager="prod",
        source=source,
        job_id=f"job-{job}",
        data={"step": step},
    )


def interleaved(jobs: int, steps: int) -> list[Event]:
    """Step 0 of every job, then step 1 of every job, …: each job spread over the outbox."""
    return [job_event(j, s) for s in range(steps) for j in range(jobs)]


def step_of(event: Event) -> int:
    return int(event.data["step"])


def retryable() -> DeliveryError:
    return DeliveryError("receiver answered 503", reason="http_5xx", retryable=True)


def permanent() -> DeliveryError:
    return DeliveryError("receiver answered 400", reason="http_4xx", retryable=False)


class HoldingSink:
    """Holds every request until the test lets it go; counts requests in flight."""

    def __init__(self, max_batch: int = 1) -> None:
        self.name = "hook"
        self.max_batch = max_batch
        self.in_flight = 0
        self.peak = 0
        self.held: list[tuple[list[Event], anyio.Event]] = []
        self.arrived = anyio.Event()
        self.sent: list[Event] = []
        self.answers: dict[str, DeliveryError] = {}  # event id -> the answer it gets

    async def send(self, events: Sequence[Event]) -> None:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        go = anyio.Event()
        self.held.append((list(events), go))
        self.arrived.set()
        self.arrived = anyio.Event()
        try:
            await go.wait()
        finally:
            self.in_flight -= 1
        answer = self.answers.get(events[0].id)
        if answer is not None:
            raise answer
        self.sent += events

    async def wait_for(self, count: int) -> None:
        while len(self.held) < count:
            await self.arrived.wait()

    def release(self, index: int) -> list[Event]:
        events, go = self.held.pop(index)
        go.set()
        return events

    async def close(self) -> None:
        pass


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "state.db")
    s.register_sinks(["hook"])
    yield s
    s.close()


def make_worker(
    store: Store,
    sink: object,
    clock: FakeClock,
    *,
    max_in_flight: int = 4,
    policy: RetryPolicy | None = None,
    recorder: Recorder | None = None,
    filters: Filters | None = None,
    seed: int = 1,
) -> DeliveryWorker:
    return DeliveryWorker(
        sink,  # type: ignore[arg-type]
        store,
        policy=policy or RetryPolicy(initial_seconds=1, max_seconds=30),
        filters=filters or Filters(),
        clock=clock,
        wakeup=Wakeup(),
        observer=recorder or Recorder(),
        rng=random.Random(seed),
        max_in_flight=max_in_flight,
    )


def cursor(store: Store) -> int:
    row = store._conn.execute("SELECT seq FROM cursors WHERE sink='hook'").fetchone()
    return int(row[0])


def seqs_by_id(store: Store) -> dict[str, int]:
    return {e.event.id: e.seq for e in store.pending("hook", 100_000)}


def assert_in_order_per_job(events: Sequence[Event]) -> None:
    steps: dict[str | None, list[int]] = defaultdict(list)
    for event in events:
        steps[event.job_id].append(step_of(event))
    for job, seen in steps.items():
        assert seen == sorted(seen), (job, seen)


# --- several in flight ------------------------------------------------------------------


async def test_batches_of_different_jobs_really_overlap(store: Store) -> None:
    queue(store, *interleaved(jobs=10, steps=1))
    sink, clock = HoldingSink(), FakeClock(T0)
    w = make_worker(store, sink, clock, max_in_flight=4)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(w.deliver_pending)
            await sink.wait_for(4)
            await anyio.wait_all_tasks_blocked()
            assert sink.in_flight == 4  # four held, and no fifth started
            while sink.held or len(sink.sent) < 10:
                await sink.wait_for(1)
                sink.release(0)
                await anyio.wait_all_tasks_blocked()
    assert sink.peak == 4
    assert len(sink.sent) == 10
    assert store.queue_depth("hook") == 0


async def test_one_jobs_batches_never_overlap(store: Store) -> None:
    queue(store, *(job_event(1, step) for step in range(6)))
    sink, clock = HoldingSink(), FakeClock(T0)
    w = make_worker(store, sink, clock, max_in_flight=4)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(w.deliver_pending)
            for _ in range(6):
                await sink.wait_for(1)
                await anyio.wait_all_tasks_blocked()
                assert sink.in_flight == 1  # the next step waits for this one to settle
                sink.release(0)
    assert [step_of(e) for e in sink.sent] == list(range(6))


async def test_source_events_keep_their_order_too(store: Store) -> None:
    def source_event(kind: EventType, n: int) -> Event:
        return Event(
            id=event_id("src", kind.value, str(n)),
            type=kind,
            timestamp=T0 + timedelta(seconds=n),
            manager="prod",
            source="aws",
            job_id=None,
            data={"step": n},
        )

    kinds = [EventType.SOURCE_DOWN, EventType.SOURCE_UP] * 3
    queue(store, *(source_event(kind, n) for n, kind in enumerate(kinds)))
    sink, clock = HoldingSink(), FakeClock(T0)
    w = make_worker(store, sink, clock, max_in_flight=4)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(w.deliver_pending)
            for _ in kinds:
                await sink.wait_for(1)
                await anyio.wait_all_tasks_blocked()
                assert sink.in_flight == 1
                sink.release(0)
    assert [e.type for e in sink.sent] == kinds


# --- order under random delays and failures ---------------------------------------------


class ChaosSink:
    """Random delays (in scheduler turns) and random retryable failures; checks, at every
    request, that no other batch of the job is in flight and that the store's cursor has
    not passed the entries being sent."""

    def __init__(self, rng: random.Random, store: Store, seqs: dict[str, int]) -> None:
        self.name = "hook"
        self.max_batch = 3
        self._rng = rng
        self._store = store
        self._seqs = seqs
        self.busy: set[str | None] = set()
        self.in_flight = 0
        self.peak = 0
        self.sent: list[Event] = []

    async def send(self, events: Sequence[Event]) -> None:
        job = events[0].job_id
        assert job not in self.busy, f"two batches of {job} in flight"
        assert cursor(self._store) < min(self._seqs[e.id] for e in events)
        self.busy.add(job)
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            for _ in range(self._rng.randint(0, 6)):
                await anyio.lowlevel.checkpoint()
            if self._rng.random() < 0.2:
                raise retryable()
            self.sent += events
        finally:
            self.in_flight -= 1
            self.busy.discard(job)

    async def close(self) -> None:
        pass


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), jobs=st.integers(1, 8), slots=st.integers(1, 6))
def test_each_jobs_events_arrive_in_order_whatever_the_delays_and_failures(
    tmp_path_factory: pytest.TempPathFactory, seed: int, jobs: int, slots: int
) -> None:
    rng = random.Random(seed)
    events = interleaved(jobs, steps=6)
    rng.shuffle(events)  # the outbox in any order across jobs, in order within each
    events.sort(key=step_of)

    async def main() -> None:
        store = Store.open(tmp_path_factory.mktemp("chaos") / "state.db")
        store.register_sinks(["hook"])
        queue(store, *events)
        sink = ChaosSink(rng, store, seqs_by_id(store))
        clock = FakeClock(T0, autojump=True)
        w = make_worker(store, sink, clock, max_in_flight=slots, seed=seed)
        with anyio.fail_after(20):
            await w.deliver_pending()
        assert sorted(e.id for e in sink.sent) == sorted(e.id for e in events)
        assert_in_order_per_job(sink.sent)
        assert sink.peak <= slots
        assert store.queue_depth("hook") == 0
        assert store.pending("hook") == []
        store.close()

    anyio.run(main)


# --- the cursor and crashes ---------------------------------------------------------------


async def test_a_crash_mid_flight_resends_only_what_was_unsettled(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = Store.open(path)
    store.register_sinks(["hook"])
    events = interleaved(jobs=6, steps=3)
    queue(store, *events)
    seqs = seqs_by_id(store)
    sink, clock = HoldingSink(), FakeClock(T0)
    w = make_worker(store, sink, clock, max_in_flight=4)
    settled: list[Event] = []
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(w.deliver_pending)
            await sink.wait_for(4)
            # the newest settle first: the cursor must stay behind the oldest in flight
            for _ in range(3):
                settled += sink.release(len(sink.held) - 1)
                await anyio.wait_all_tasks_blocked()
            await sink.wait_for(4)
            in_flight = [e for events_, _ in sink.held for e in events_]
            oldest = min(seqs[e.id] for e in in_flight)
            assert cursor(store) < oldest
            tg.cancel_scope.cancel()  # the crash: four requests in flight, never answered
    store.close()

    store = Store.open(path)  # the restart, on the same state file
    again = HoldingSink()
    w = make_worker(store, again, FakeClock(T0), max_in_flight=4)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(w.deliver_pending)
            while len(again.sent) + len(settled) < len(events):
                await again.wait_for(1)
                again.release(rng_index(again))
                await anyio.wait_all_tasks_blocked()
    # nothing lost, nothing settled sent twice, and the first deliveries in order per job
    first = sink.sent + again.sent
    assert sorted(e.id for e in first) == sorted(e.id for e in events)
    assert not {e.id for e in settled} & {e.id for e in again.sent}
    assert_in_order_per_job(first)
    assert store.queue_depth("hook") == 0
    assert store._conn.execute("SELECT COUNT(*) FROM settled").fetchone()[0] == 0
    store.close()


def rng_index(sink: HoldingSink) -> int:
    """Release the held requests newest first: out of order, on purpose."""
    return len(sink.held) - 1


# --- failures ----------------------------------------------------------------------------


class FlakySink:
    """Fails every request of ``bad_job`` (retryable); answers the rest after a turn."""

    def __init__(self, clock: FakeClock, bad_job: str | None = None, down_until: float = 0) -> None:
        self.name = "hook"
        self.max_batch = 1
        self._clock = clock
        self.bad_job = bad_job
        self.down_until = down_until  # monotonic: every request fails before this
        self.in_flight = 0
        self.peak_while_down = 0
        self.failed_once = False
        self.peak_after_a_failure = 0  # requests in flight, counted after the first failure
        self.attempts: list[tuple[float, str | None]] = []
        self.sent: list[Event] = []

    async def send(self, events: Sequence[Event]) -> None:
        self.in_flight += 1
        down = self._clock.monotonic() < self.down_until
        if down:
            self.peak_while_down = max(self.peak_while_down, self.in_flight)
            if self.failed_once:
                self.peak_after_a_failure = max(self.peak_after_a_failure, self.in_flight)
        self.attempts.append((self._clock.monotonic(), events[0].job_id))
        try:
            await anyio.lowlevel.checkpoint()
            if down or events[0].job_id == self.bad_job:
                self.failed_once = True
                raise retryable()
            self.sent += events
        finally:
            self.in_flight -= 1

    async def close(self) -> None:
        pass


async def test_a_failing_batch_does_not_hold_up_other_jobs(store: Store) -> None:
    queue(store, *interleaved(jobs=5, steps=4))
    clock = FakeClock(T0, autojump=True)
    sink = FlakySink(clock, bad_job="job-0")
    rec = Recorder()
    policy = RetryPolicy(initial_seconds=1, max_seconds=60, max_attempts=8)
    w = make_worker(store, sink, clock, max_in_flight=4, policy=policy, recorder=rec)
    with anyio.fail_after(10):
        await w.deliver_pending()
    # every other job went through, in order, while job-0's first batch was retried
    others = [e for e in sink.sent if e.job_id != "job-0"]
    assert len(others) == 16
    assert_in_order_per_job(others)
    bad_attempts = [t for t, job in sink.attempts if job == "job-0"]
    last_other = max(t for t, job in sink.attempts if job != "job-0")
    assert last_other < bad_attempts[-1]  # done long before job-0 gave up
    # job-0's batches went to the dead letters one by one, each after its attempts
    assert [d.event.job_id for d in store.dead_letters("hook")] == ["job-0"] * 4
    assert store.queue_depth("hook") == 0


async def test_a_down_receiver_gets_one_request_at_a_time(store: Store) -> None:
    queue(store, *interleaved(jobs=8, steps=2))
    clock = FakeClock(T0, autojump=True)
    sink = FlakySink(clock, down_until=clock.monotonic() + 600)
    w = make_worker(store, sink, clock, max_in_flight=4)
    with anyio.fail_after(10):
        await w.deliver_pending()
    down = [t for t, _ in sink.attempts if t < 1000 + 600]
    # the first requests went out together before any answer; after the first failure
    # the sink probes alone, one request per back-off (capped at 30 s, full jitter: 15 s
    # on average), as the sequential worker did: 600 s down, about 40 requests, not 4x
    assert sink.peak_while_down == 4
    assert sink.peak_after_a_failure == 1
    assert len(down) <= 4 + 60
    assert all(later > earlier for earlier, later in itertools.pairwise(down[4:]))
    assert sorted(e.id for e in sink.sent) == sorted(e.id for e in interleaved(8, 2))
    assert_in_order_per_job(sink.sent)


async def test_dead_letters_and_replay_with_several_in_flight(store: Store) -> None:
    events = interleaved(jobs=6, steps=3)
    queue(store, *events)
    sink, clock = HoldingSink(), FakeClock(T0)
    refused = {job_event(2, 1).id, job_event(4, 0).id}
    sink.answers = {event_id: permanent() for event_id in refused}
    w = make_worker(store, sink, clock, max_in_flight=4)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(w.deliver_pending)
            while len(sink.sent) + len(store.dead_letters("hook")) < len(events):
                await sink.wait_for(1)
                sink.release(len(sink.held) - 1)
                await anyio.wait_all_tasks_blocked()
    assert {d.event.id for d in store.dead_letters("hook")} == refused
    assert len(sink.sent) == len(events) - 2  # a refused event holds up nothing
    assert_in_order_per_job(sink.sent)
    assert store.queue_depth("hook") == 0

    sink.answers = {}
    queue(store, job_event(9, 0))
    assert store.replay("hook") == 2
    assert store.queue_depth("hook") == 3
    before = len(sink.sent)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(w.deliver_pending)
            while len(sink.sent) < before + 3:
                await sink.wait_for(1)
                sink.release(0)
                await anyio.wait_all_tasks_blocked()
    assert {e.id for e in sink.sent[before:]} == refused | {job_event(9, 0).id}
    assert store.dead_letters("hook") == []
    assert store.queue_depth("hook") == 0


async def test_a_gone_receiver_disables_the_sink_with_several_in_flight(store: Store) -> None:
    queue(store, *interleaved(jobs=6, steps=2))
    sink, clock, rec = HoldingSink(), FakeClock(T0), Recorder()
    gone = DeliveryError("receiver answered 410", reason="http_4xx", retryable=False, disable=True)
    w = make_worker(store, sink, clock, max_in_flight=4, recorder=rec)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(w.deliver_pending)
            await sink.wait_for(4)
            sink.answers = {e.id: gone for events, _ in sink.held for e in events}
            while sink.held:
                sink.release(0)
                await anyio.wait_all_tasks_blocked()
    assert w.disabled is not None
    assert rec.disabled == "receiver answered 410"
    assert sink.sent == []  # nothing after the 410 was even tried
    assert len(store.dead_letters("hook")) == 12  # every event kept for replay
    assert store.queue_depth("hook") == 0


# --- the queue depth is cheap -------------------------------------------------------------


async def test_queue_depth_is_counted_at_most_once_a_second(store: Store) -> None:
    queue(store, *interleaved(jobs=50, steps=10))
    counts = 0
    real = store.queue_depth

    def counting(sink: str) -> int:
        nonlocal counts
        counts += 1
        return real(sink)

    store.queue_depth = counting  # type: ignore[method-assign]

    class Instant:
        name, max_batch = "hook", 1

        async def send(self, events: Sequence[Event]) -> None:
            await anyio.lowlevel.checkpoint()

        async def close(self) -> None:
            pass

    rec = Recorder()
    w = make_worker(store, Instant(), FakeClock(T0), recorder=rec)
    assert await w.deliver_pending() == 500
    assert counts == 1  # 5 pages and 500 settles, one count (the clock did not move)
    assert rec.depth == 0  # and the empty queue is reported without counting
