"""Issue 11, items 2 and 3: polls that cost what changed; detection inside its bound.

- the newest-first walk starts with a small page and grows only while the history bound
  is not reached; no new job is missed however many arrive;
- finished jobs listed last cycle are not read from the store again, within a bound;
- the common timestamp form has a fast path that agrees with the general parser;
- cycles start on a fixed grid: jitter only shortens a gap, an overrun does not push the
  next start, first polls are spread over the first interval.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

import monitor.model as model
import monitor.poller as poller_module
from monitor.app import Daemon
from monitor.cadence import PollSchedule, first_offset
from monitor.clock import FakeClock
from monitor.cm.client import ManagerClient
from monitor.cm.parse import Page
from monitor.families import FAMILIES
from monitor.model import JobEssence, parse_timestamp
from monitor.poller import NEWEST_FIRST_PAGE, PollOptions, SourcePoller
from monitor.simulator import SimConfig
from monitor.store import Store
from tests.pipeline_harness import Pipeline, PollRecorder, client_options, pipeline

AWS = FAMILIES["aws"]


def record_pages(p: Pipeline) -> list[tuple[int, int, str]]:
    """Every list request of the pipeline's client: (skip, limit, which list)."""
    asked: list[tuple[int, int, str]] = []
    real = p.client.list_page

    async def list_page(family: Any, *, skip: int, limit: int, filters: Any = None) -> Page:
        kind = "newest" if filters and "sort" in filters else "running" if filters else "all"
        asked.append((skip, limit, kind))
        return await real(family, skip=skip, limit=limit, filters=filters)

    p.client.list_page = list_page  # type: ignore[method-assign]
    return asked


def record_loads(p: Pipeline) -> list[list[str]]:
    loads: list[list[str]] = []
    real = p.store.load_jobs

    def load_jobs(manager: str, source: str, ids: Collection[str]) -> dict[str, JobEssence]:
        loads.append(list(ids))
        return real(manager, source, ids)

    p.store.load_jobs = load_jobs  # type: ignore[method-assign]
    return loads


def history(n: int) -> SimConfig:
    return SimConfig(sources=("aws",), history=n, job_rate=0.0)


# --- the newest-first walk ------------------------------------------------------------


async def test_an_idle_cycle_reads_one_small_newest_first_page(tmp_path: Path) -> None:
    async with pipeline(tmp_path, sim=history(500)) as p:
        await p.cycle()  # the baseline walks full pages
        asked = record_pages(p)
        p.clock.advance(30)
        assert await p.cycle() == []
        assert [a for a in asked if a[2] == "newest"] == [(0, NEWEST_FIRST_PAGE, "newest")]


@pytest.mark.parametrize(("new", "limits"), [(1, [10]), (30, [10, 100]), (120, [10, 100, 100])])
async def test_the_walk_grows_until_the_history_bound_and_misses_no_job(
    tmp_path: Path, new: int, limits: list[int]
) -> None:
    async with pipeline(tmp_path, sim=history(500)) as p:
        await p.cycle()
        p.clock.advance(1)
        jobs = [await p.script_job("aws", [("r1", 1.0, "success")]) for _ in range(new)]
        asked = record_pages(p)
        p.clock.advance(5)
        events = await p.cycle()
        assert [limit for _, limit, kind in asked if kind == "newest"] == limits
        started = {e.job_id for e in events if e.type.value == "job.started"}
        completed = {e.job_id for e in events if e.type.value == "job.completed"}
        assert started == completed == set(jobs)
        assert len(events) == 2 * new  # each once


# --- finished jobs known unchanged ------------------------------------------------------


async def test_finished_jobs_listed_last_cycle_are_not_read_from_the_store(
    tmp_path: Path,
) -> None:
    async with pipeline(tmp_path, sim=history(500)) as p:
        await p.cycle()
        p.clock.advance(30)
        await p.cycle()
        loads = record_loads(p)
        for _ in range(3):
            p.clock.advance(30)
            assert await p.cycle() == []
        assert all(ids == [] for ids in loads)  # nothing read: a dict look-up each

        # a job that ends between two cycles is still announced once, then remembered
        job = await p.script_job("aws", [("r1", 1.0, "success")])
        p.clock.advance(30)
        assert sorted(p.types(await p.cycle())) == ["job.completed", "job.started"]
        for _ in range(2):
            p.clock.advance(30)
            assert await p.cycle() == []
        assert job in p.pollers["aws"]._finished
        assert [ids for ids in loads if ids] == [[job]]  # only the new job, once


async def test_the_memory_of_finished_jobs_is_bounded_and_the_store_answers_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(poller_module, "KNOWN_MAX", 3)
    async with pipeline(tmp_path, sim=history(50), page_size=20) as p:
        await p.cycle()
        p.clock.advance(1)
        jobs = [await p.script_job("aws", [("r1", 1.0, "success")]) for _ in range(8)]
        p.clock.advance(5)
        await p.cycle()
        aws = p.pollers["aws"]
        assert len(aws._finished) == 3
        loads = record_loads(p)
        for _ in range(2):
            p.clock.advance(30)
            assert await p.cycle() == []  # the 8 finished jobs: 3 remembered, 5 read
        assert loads and all(len(ids) <= NEWEST_FIRST_PAGE for ids in loads)
        assert p.types(p.events).count("job.completed") == 8
        assert {e.job_id for e in p.events} == set(jobs)


async def test_after_a_restart_the_store_answers_and_nothing_is_announced_again(
    tmp_path: Path,
) -> None:
    async with pipeline(tmp_path, sim=history(100)) as p:
        await p.cycle()
        p.clock.advance(1)
        await p.script_job("aws", [("r1", 1.0, "success")])
        p.clock.advance(5)
        assert len(await p.cycle()) == 2
        fresh = SourcePoller(
            manager="sim",
            family=AWS,
            client=p.client,
            store=p.store,
            options=PollOptions(interval_seconds=30),
            clock=p.clock,
            observer=PollRecorder(),
        )
        p.clock.advance(30)
        assert await fresh.poll_once() == []
        assert fresh._finished  # learned from the store


# --- timestamps ---------------------------------------------------------------------------


@given(
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59, 999999)),
    st.integers(min_value=0, max_value=12),
    st.sampled_from(["T", "t"]),
    st.sampled_from(["Z", "z"]),
)
def test_the_common_form_reads_as_the_general_parser_does(
    moment: datetime, digits: int, sep: str, zone: str
) -> None:
    nanos = f"{moment.microsecond:06d}123456"[:digits]
    text = moment.strftime(f"%Y-%m-%d{sep}%H:%M:%S").rjust(19, "0")
    if digits:
        text += "." + nanos
    text += zone
    model._PARSED.clear()
    assert parse_timestamp(text) == model._to_utc(text)
    assert parse_timestamp(text) == model._to_utc(text)  # and from the table


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-23T10:00:00.123456789Z", datetime(2026, 11, 23, 10, 0, 0, 123456, tzinfo=UTC)),
        ("2016-12-31T23:59:60Z", datetime(2016, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
        ("2026-11-23T12:00:00+02:00", datetime(2026, 11, 23, 10, 0, tzinfo=UTC)),
    ],
)
def test_forms_off_the_fast_path_still_parse(text: str, expected: datetime) -> None:
    assert parse_timestamp(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2026-02-30T00:00:00Z",
        "0000-01-01T00:00:00Z",
        "2026-13-01T00:00:00Z",
        "2026-11-23T24:00:00Z",
    ],
)
def test_impossible_common_forms_are_value_errors(text: str) -> None:
    with pytest.raises(ValueError, match="not a timestamp"):
        parse_timestamp(text)
    assert text not in model._PARSED


def test_the_table_of_parsed_stamps_is_bounded() -> None:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    for n in range(model.PARSED_MAX + 50):
        stamp = (base + timedelta(seconds=n)).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert parse_timestamp(stamp) == base + timedelta(seconds=n)
    assert len(model._PARSED) <= model.PARSED_MAX


# --- the schedule -----------------------------------------------------------------------


def test_jitter_only_shortens_a_gap() -> None:
    schedule = PollSchedule(30.0, 0.1, start=1000.0, rng=random.Random(7))
    starts = [schedule.due]
    for _ in range(2000):
        starts.append(schedule.advance(starts[-1] + 0.05))  # quick cycles
    gaps = [b - a for a, b in pairwise(starts)]
    assert max(gaps) <= 30.0
    assert min(gaps) >= 27.0
    assert max(gaps) - min(gaps) > 2.5  # jittered, not fixed


def test_an_overrun_restarts_at_once_and_re_anchors_the_grid() -> None:
    schedule = PollSchedule(10.0, 0.0, start=0.0, rng=random.Random(1))
    assert schedule.advance(6.0) == 10.0  # a 6 s cycle does not push the next start
    assert schedule.advance(25.0) == 25.0  # overran past 20: start now…
    assert schedule.advance(26.0) == 35.0  # …and the grid continues from there
    assert schedule.delay(30.0) == 5.0
    assert schedule.delay(40.0) == 0.0


def test_first_polls_are_spread_over_the_first_interval() -> None:
    offsets = [first_offset(n, 700, 30.0) for n in range(700)]
    assert offsets[0] == 0.0
    assert max(offsets) < 30.0
    assert len(set(offsets)) == 700
    assert first_offset(0, 1, 30.0) == 0.0


def _poller(tmp_path: Path, clock: FakeClock, *, jitter: float) -> tuple[SourcePoller, Store]:
    store = Store.open(tmp_path / "state.db")
    poller = SourcePoller(
        manager="sim",
        family=AWS,
        client=ManagerClient(client_options("http://127.0.0.1:9"), clock=clock),
        store=store,
        options=PollOptions(interval_seconds=10.0, jitter_fraction=jitter),
        clock=clock,
        observer=PollRecorder(),
        rng=random.Random(3),
    )
    return poller, store


async def _starts(
    poller: SourcePoller, clock: FakeClock, durations: list[float], first_delay: float = 0.0
) -> list[float]:
    """Run ``poller.run`` with cycles lasting ``durations``; the start of each."""
    starts: list[float] = []
    done = anyio.Event()

    async def cycle() -> list[Any]:
        starts.append(clock.monotonic())
        clock.advance(durations[len(starts) - 1])
        if len(starts) == len(durations):
            done.set()
            await anyio.sleep_forever()
        return []

    poller.poll_guarded = cycle  # type: ignore[method-assign]
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: poller.run(first_delay=first_delay))
        await done.wait()
        tg.cancel_scope.cancel()
    return starts


async def test_run_keeps_cycle_starts_on_the_grid_despite_slow_cycles(tmp_path: Path) -> None:
    clock = FakeClock(autojump=True)
    poller, store = _poller(tmp_path, clock, jitter=0.0)
    t0 = clock.monotonic()
    starts = await _starts(poller, clock, [6.0, 9.5, 0.1, 23.0, 0.1, 0.1], first_delay=4.0)
    assert [s - t0 for s in starts] == [4.0, 14.0, 24.0, 34.0, 57.0, 67.0]
    store.close()


async def test_run_never_leaves_a_gap_longer_than_the_interval(tmp_path: Path) -> None:
    clock = FakeClock(autojump=True)
    poller, store = _poller(tmp_path, clock, jitter=0.5)
    starts = await _starts(poller, clock, [0.3] * 300)
    gaps = [b - a for a, b in pairwise(starts)]
    assert max(gaps) <= 10.0 + 1e-9
    assert min(gaps) >= 5.0 - 1e-9
    store.close()


async def test_the_daemon_spreads_its_sources_first_polls(tmp_path: Path) -> None:
    delays: list[float] = []
    all_started = anyio.Event()

    class Source:
        async def run(self, *, first_delay: float = 0.0) -> None:
            delays.append(first_delay)
            if len(delays) == 6:
                all_started.set()
            await anyio.sleep_forever()

    class NoStore:
        async def write(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
            return None

    daemon = object.__new__(Daemon)
    daemon.settings = SimpleNamespace(  # type: ignore[assignment]
        poll=SimpleNamespace(interval_seconds=30.0), retention_days=7
    )
    daemon.store, daemon.clock, daemon.workers = NoStore(), FakeClock(), []  # type: ignore[assignment]
    daemon.pollers = [Source() for _ in range(6)]  # type: ignore[misc]
    stop = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(daemon.run, stop)
        await all_started.wait()
        stop.set()
    assert sorted(delays) == [0.0, 5.0, 10.0, 15.0, 20.0, 25.0]
