"""Issue 10: no value, clock or bug stops a source or makes it lose an event.

- a bug in one source's cycle is logged (traceback once), counted ``internal``, and the
  source polls again next cycle; other sources are untouched; a StoreError still ends it;
- a job stamped in the future, or a manager clock that steps back, hides no later job;
- a ``total`` that lies truncates no walk; a list that never ends is cut at max_pages;
- a monitor wall clock stepped forward by hours raises no ``job.stuck`` for young jobs and
  dead-letters nothing young.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from email.utils import formatdate
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import anyio
import pytest
from aiohttp import web

from monitor.app import Daemon
from monitor.clock import FakeClock
from monitor.cm.client import ManagerClient
from monitor.cm.errors import InvalidResponse
from monitor.differ import CLOCK_TOLERANCE, history_bound
from monitor.families import FAMILIES
from monitor.model import Event, EventType, event_id
from monitor.simulator import SimConfig, running_simulator
from monitor.sinks.base import DeliveryError, DeliveryWorker, Filters, RetryPolicy, Wakeup
from monitor.statefile import StoreError
from monitor.store import Store
from tests.factories import queue
from tests.pipeline_harness import Pipeline, client_options, pipeline

AWS = FAMILIES["aws"]


def jobs_of(p: Pipeline, job_id: str, events: Sequence[Event] | None = None) -> list[str]:
    return [e.type.value for e in (p.events if events is None else events) if e.job_id == job_id]


# --- supervision ------------------------------------------------------------------------


async def test_a_bug_in_one_cycle_is_counted_and_the_source_polls_again(tmp_path: Path) -> None:
    async with pipeline(tmp_path, sources=("aws", "gcp")) as p:
        await p.cycle()
        aws = p.pollers["aws"]
        real_fetch = aws._fetch
        calls = 0

        async def broken() -> Any:
            nonlocal calls
            calls += 1
            raise ZeroDivisionError("a bug")

        aws._fetch = broken  # type: ignore[method-assign]
        for _ in range(2):
            await aws.poll_guarded()
            await p.pollers["gcp"].poll_guarded()
        assert calls == 2
        # logged with its traceback the first time only, counted as failed polls
        assert p.recorder.crashes == [
            ("aws", "ZeroDivisionError: a bug", True),
            ("aws", "ZeroDivisionError: a bug", False),
        ]
        assert p.recorder.failures == [("aws", "internal"), ("aws", "internal")]
        assert aws.health.consecutive_failures == 2
        assert p.pollers["gcp"].health.consecutive_failures == 0

        aws._fetch = real_fetch  # type: ignore[method-assign]
        job = await p.script_job("aws", [("r1", 1.0, "success")])
        p.clock.advance(5)
        await aws.poll_guarded()
        assert jobs_of(p, job, p.store.recent_events()) == ["job.completed", "job.started"]
        assert aws.health.consecutive_failures == 0


async def test_three_crashing_cycles_raise_source_down(tmp_path: Path) -> None:
    async with pipeline(tmp_path) as p:
        await p.cycle()
        aws = p.pollers["aws"]

        async def broken() -> Any:
            raise KeyError("boom")

        aws._fetch = broken  # type: ignore[method-assign]
        events = [e for _ in range(3) for e in await aws.poll_guarded()]
        assert [e.type for e in events] == [EventType.SOURCE_DOWN]
        assert events[0].data["reason"] == "internal"
        assert "KeyError" in events[0].data["error"]


async def test_a_store_error_still_ends_the_poller(tmp_path: Path) -> None:
    async with pipeline(tmp_path) as p:
        aws = p.pollers["aws"]

        async def broken() -> Any:
            raise StoreError("cannot write state file x: disk full")

        aws._fetch = broken  # type: ignore[method-assign]
        with pytest.raises(StoreError):
            await aws.poll_guarded()


class _Recorder:
    def __init__(self) -> None:
        self.crashes: list[tuple[str, bool]] = []
        self.delivered_ids: list[str] = []
        self.failures: list[tuple[str, bool]] = []

    def delivered(self, sink: str, event: Event, seconds: float) -> None:
        self.delivered_ids.append(event.id)

    def failed(
        self, sink: str, events: Sequence[Event], error: DeliveryError, attempt: int, final: bool
    ) -> None:
        self.failures.append((error.reason, final))

    def queue_depth(self, sink: str, depth: int) -> None:
        pass

    def sink_disabled(self, sink: str, reason: str) -> None:
        pass

    def delivery_crashed(self, sink: str, *, error: BaseException, traceback: bool) -> None:
        self.crashes.append((type(error).__name__, traceback))


class _Sink:
    def __init__(self, on_send: Callable[[int], None] | None = None) -> None:
        self.name = "hook"
        self.max_batch = 10
        self.sent: list[str] = []
        self.calls = 0
        self._on_send = on_send

    async def send(self, events: Sequence[Event]) -> None:
        self.calls += 1
        if self._on_send is not None:
            self._on_send(self.calls)
        self.sent += [e.id for e in events]

    async def close(self) -> None:
        pass


def _event(n: int, when: datetime) -> Event:
    return Event(
        id=event_id("hardening", str(n)),
        type=EventType.JOB_FAILED,
        timestamp=when,
        manager="prod",
        source="aws",
        job_id=f"job-{n}",
        data={"n": n},
    )


def _one_queued_event(tmp_path: Path, clock: FakeClock) -> Store:
    """A state file whose sink "hook" has one event queued, stamped now."""
    store = Store.open(tmp_path / "state.db")
    store.register_sinks(["hook"])
    queue(store, _event(1, clock.now()))
    return store


def _worker(store: Store, sink: _Sink, clock: FakeClock, rec: _Recorder) -> DeliveryWorker:
    return DeliveryWorker(
        sink,
        store,
        policy=RetryPolicy(initial_seconds=1, max_seconds=10, max_age_seconds=3600),
        filters=Filters(),
        clock=clock,
        wakeup=Wakeup(),
        observer=rec,
        rng=random.Random(1),
    )


async def test_a_bug_in_a_delivery_round_is_counted_and_retried(tmp_path: Path) -> None:
    clock = FakeClock(autojump=True)
    store = _one_queued_event(tmp_path, clock)
    sent = anyio.Event()
    sink = _Sink(lambda call: sent.set())
    rec = _Recorder()
    w = _worker(store, sink, clock, rec)
    real_pending = store.pending
    broken = {"left": 2}

    def pending(name: str, limit: int = 100, **where: Any) -> Any:
        if broken["left"]:
            broken["left"] -= 1
            raise RuntimeError("a bug while reading the queue")
        return real_pending(name, limit, **where)

    store.pending = pending  # type: ignore[method-assign,assignment]
    with anyio.move_on_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(w.run, 1.0)
            await sent.wait()
            tg.cancel_scope.cancel()
    assert rec.crashes == [("RuntimeError", True), ("RuntimeError", False)]
    assert sink.sent == [event_id("hardening", "1")]
    assert store.queue_depth("hook") == 0
    store.close()


# --- the watermark and the manager's clock --------------------------------------------


async def test_a_job_stamped_in_the_future_hides_no_later_job(tmp_path: Path) -> None:
    async with pipeline(tmp_path) as p:
        await p.cycle()
        future = await p.script_job(
            "aws", [("r1", 1.0, "success")], created_at="2099-01-01T00:00:00Z"
        )
        await p.cycle()
        p.clock.advance(5)
        await p.cycle()
        assert jobs_of(p, future) == ["job.started", "job.completed"]
        # the watermark believes the manager's present, not the year 2099
        watermark = p.pollers["aws"]._watermark
        assert watermark is not None
        assert watermark <= p.clock.now()

        later = await p.script_job("aws", [("r1", 1.0, "failed: AccessDenied")])
        p.clock.advance(5)  # started and ended between two polls
        await p.cycle()
        assert jobs_of(p, later) == ["job.started", "job.domain_failed", "job.failed"]


@asynccontextmanager
async def _stepping_manager(
    tmp_path: Path, offset: list[float], **kwargs: Any
) -> AsyncIterator[Pipeline]:
    """A pipeline whose simulated manager's clock is the monitor's plus ``offset[0]``."""
    clock = FakeClock(autojump=True)
    config = SimConfig(sources=("aws",), history=30, job_rate=0.0)
    async with AsyncExitStack() as stack:
        sim = await stack.enter_async_context(
            running_simulator(config, clock=lambda: clock.time() + offset[0])
        )
        yield await stack.enter_async_context(
            pipeline(tmp_path, clock=clock, running_sim=sim, **kwargs)
        )


async def test_a_manager_clock_that_steps_back_hides_no_job(tmp_path: Path) -> None:
    offset = [0.0]
    async with _stepping_manager(tmp_path, offset, page_size=5) as p:
        await p.cycle()
        recent = [await p.script_job("aws", [("r1", 1.0, "success")]) for _ in range(8)]
        p.clock.advance(5)
        await p.cycle()
        assert all(jobs_of(p, j) == ["job.started", "job.completed"] for j in recent)

        offset[0] = -3600.0  # the manager's clock steps back an hour
        p.clock.advance(1)
        after_step = await p.script_job("aws", [("r1", 1.0, "failed: AccessDenied")])
        p.clock.advance(5)
        events = await p.cycle()
        # below more than a page of newer-stamped jobs, and older than the watermark: found
        assert jobs_of(p, after_step, events) == [
            "job.started",
            "job.domain_failed",
            "job.failed",
        ]
        assert {e.job_id for e in events} == {after_step}  # nothing seen before comes again

        # polls go on finding new jobs while the manager's clock is behind the watermark
        again = await p.script_job("aws", [("r1", 1.0, "success")])
        p.clock.advance(30)
        events = await p.cycle()
        assert jobs_of(p, again, events) == ["job.started", "job.completed"]
        assert {e.job_id for e in events} == {again}


def test_history_bound_is_the_watermark_while_clocks_agree() -> None:
    w = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    present = w + timedelta(seconds=31)
    # Date resolution and latency: a second either way is no step
    assert (
        history_bound(
            w, present=present, previous_present=w - timedelta(seconds=1), elapsed_seconds=32
        )
        == w
    )
    assert history_bound(w, present=None, previous_present=w, elapsed_seconds=30) == w
    assert history_bound(None, present=present, previous_present=w, elapsed_seconds=30) is None
    # a step back of an hour between polls: the bound follows the new clock
    stepped = w - timedelta(hours=1) + timedelta(seconds=30)
    bound = history_bound(w, present=stepped, previous_present=w, elapsed_seconds=30)
    assert bound == stepped - timedelta(seconds=30) - CLOCK_TOLERANCE
    # after a restart (no previous poll): the present alone, when behind the watermark
    bound = history_bound(w, present=stepped, previous_present=None, elapsed_seconds=None)
    assert bound == stepped - CLOCK_TOLERANCE


# --- pages: a lying total, a list without end ----------------------------------------


def _job(n: int) -> dict[str, Any]:
    return {
        "id": f"job-{n:05d}",
        "overall_status": "completed",
        "abort": False,
        "createdAt": "2026-11-23T10:00:00Z",
        "detailed_status": {},
        "regions": [],
    }


@asynccontextmanager
async def _fake_manager(
    jobs: int | None, *, total: int, answered_limit: int | None = None
) -> AsyncIterator[ManagerClient]:
    """A manager that lists ``jobs`` jobs (None: without end) with a ``total`` that lies."""

    async def token(request: web.Request) -> web.Response:
        return web.json_response({"jwt": "a.b.c", "duration": 300})

    async def listing(request: web.Request) -> web.Response:
        skip = int(request.query["skip"])
        limit = int(request.query["limit"])
        end = skip + limit if jobs is None else min(skip + limit, jobs)
        body = {
            "skip": skip,
            "limit": limit if answered_limit is None else answered_limit,
            "total": total,
            "resources": [_job(n) for n in range(skip, end)],
        }
        headers = {"Date": formatdate(usegmt=True)}
        return web.json_response(body, headers=headers)

    app = web.Application()
    app.router.add_post("/api/v1/auth/tokens/", token)
    app.router.add_get(AWS.path, listing)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        options = client_options(f"http://127.0.0.1:{port}", max_pages=50)
        async with ManagerClient(options) as client:
            yield client
    finally:
        await runner.cleanup()


async def test_a_total_that_lies_does_not_truncate_the_walk() -> None:
    async with _fake_manager(250, total=1) as client:
        jobs = await client.list_jobs(AWS, page_size=100)
    assert len(jobs) == 250


async def test_an_answered_limit_that_lies_does_not_truncate_the_walk() -> None:
    async with _fake_manager(250, total=1, answered_limit=10**9) as client:
        jobs = await client.list_jobs(AWS, page_size=100)
    assert len(jobs) == 250


async def test_a_list_without_end_is_cut_at_max_pages() -> None:
    async with _fake_manager(None, total=5) as client:
        with pytest.raises(InvalidResponse, match=r"more than 50 pages \(poll.max_pages\)"):
            await client.list_jobs(AWS, page_size=10)
        assert client.manager_now() is not None  # the Date header was read


# --- the monitor's wall clock ---------------------------------------------------------


@asynccontextmanager
async def _steady_manager(tmp_path: Path, **kwargs: Any) -> AsyncIterator[Pipeline]:
    """A pipeline whose manager keeps true time while the monitor's wall clock may step."""
    clock = FakeClock(autojump=True)
    start, mono = clock.time(), clock.monotonic()
    config = SimConfig(sources=("aws",), history=5, job_rate=0.0)
    async with AsyncExitStack() as stack:
        sim = await stack.enter_async_context(
            running_simulator(config, clock=lambda: start + clock.monotonic() - mono)
        )
        yield await stack.enter_async_context(
            pipeline(tmp_path, clock=clock, running_sim=sim, **kwargs)
        )


async def test_a_wall_clock_stepped_forward_raises_no_stuck_for_young_jobs(
    tmp_path: Path,
) -> None:
    async with _steady_manager(tmp_path, stuck_after_seconds=3600) as p:
        await p.cycle()
        job = await p.script_job("aws", [("r1", None, "success")], hang=True)
        await p.cycle()
        p.clock.advance(60)
        p.clock.step_wall(5 * 3600)  # NTP, a resumed VM: the monitor's wall clock jumps
        events = await p.cycle()
        assert jobs_of(p, job, events) == []
        p.clock.advance(3600)  # now it really is older than an hour
        events = await p.cycle()
        assert jobs_of(p, job, events) == ["job.stuck"]


async def test_a_wall_clock_stepped_forward_dead_letters_nothing_young(tmp_path: Path) -> None:
    clock = FakeClock(autojump=True)
    store = _one_queued_event(tmp_path, clock)

    def flaky(call: int) -> None:
        if call == 1:
            clock.step_wall(5 * 3600)  # the wall clock jumps while the receiver is down
            raise DeliveryError("receiver down", reason="http_5xx", retryable=True)

    sink = _Sink(flaky)
    rec = _Recorder()
    w = _worker(store, sink, clock, rec)
    await w.deliver_pending()
    assert rec.failures == [("http_5xx", False)]  # retried, not given up on
    assert sink.sent == [event_id("hardening", "1")]
    assert store.dead_letters("hook") == []
    store.close()


async def test_a_truly_old_event_is_still_dead_lettered(tmp_path: Path) -> None:
    clock = FakeClock(autojump=True)
    store = _one_queued_event(tmp_path, clock)

    def down(call: int) -> None:
        raise DeliveryError("receiver down", reason="http_5xx", retryable=True)

    sink = _Sink(down)
    rec = _Recorder()
    w = _worker(store, sink, clock, rec)
    await w.deliver_pending()
    assert rec.failures[-1] == ("http_5xx", True)
    assert [d.seq for d in store.dead_letters("hook")] == [1]
    assert clock.monotonic() - 1000.0 >= 3600  # only after max_age of steady time
    store.close()


# --- pruning ----------------------------------------------------------------------------


async def test_pruning_ages_are_steady_and_a_bug_in_it_is_survived(tmp_path: Path) -> None:
    """A wall clock stepped forward by a month prunes nothing young; a bug is logged and
    pruning goes on an hour later."""
    clock = FakeClock(autojump=True)
    store = Store.open(tmp_path / "state.db")
    calls: list[float] = []

    def prune(*, now: float, retention_seconds: float, sinks: Sequence[str]) -> int:
        calls.append(now)
        if len(calls) == 2:
            raise RuntimeError("a bug while pruning")
        if len(calls) == 4:
            raise StoreError("cannot write state file x: disk full")
        return 0

    store.prune = prune  # type: ignore[method-assign,assignment]
    daemon = object.__new__(Daemon)
    daemon.settings = SimpleNamespace(retention_days=7)  # type: ignore[assignment]
    daemon.store, daemon.clock, daemon.workers = store, clock, []
    start = clock.time()
    with pytest.raises(StoreError):  # only a store error ends it
        await daemon.prune_forever()
    assert len(calls) == 4
    assert calls[0] == start
    assert calls[1:] == [start + 3600, start + 7200, start + 10800]
    store.close()


async def test_a_wall_clock_stepped_forward_does_not_advance_pruning(tmp_path: Path) -> None:
    clock = FakeClock(autojump=True)
    store = Store.open(tmp_path / "state.db")
    calls: list[float] = []

    def prune(*, now: float, retention_seconds: float, sinks: Sequence[str]) -> int:
        calls.append(now)
        clock.step_wall(30 * 86400)  # a month ahead between two prunes
        if len(calls) == 3:
            raise StoreError("stop")
        return 0

    store.prune = prune  # type: ignore[method-assign,assignment]
    daemon = object.__new__(Daemon)
    daemon.settings = SimpleNamespace(retention_days=7)  # type: ignore[assignment]
    daemon.store, daemon.clock, daemon.workers = store, clock, []
    start = clock.time()
    with pytest.raises(StoreError):
        await daemon.prune_forever()
    assert calls == [start, start + 3600, start + 7200]
    store.close()
