"""Issue 10, items 5 and 6 in-process: every SQLite failure is one sentence (StoreError) or
a retryable StoreBusy; a deleted or replaced file is noticed; one daemon per state file;
writes wait for another process's lock without blocking the event loop."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from monitor import app, cli
from monitor.cli import main
from monitor.health import SourceHealth
from monitor.lockfile import AlreadyRunning, InstanceLock, lock_path
from monitor.model import EventType
from monitor.statefile import StoreBusy, StoreError
from monitor.store import BUSY_MAX_DELAY, Store
from tests.factories import queue
from tests.sink_kit import job_event


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state.db"


@pytest.fixture
def store(path: Path) -> Iterator[Store]:
    s = Store.open(path)
    yield s
    s.close()


def commit_health(store: Store, n: int = 1) -> int:
    return store.commit_health(
        "prod", "aws", health=SourceHealth(consecutive_failures=n), events=[], now=1.0
    )


def events(n: int, prefix: str = "j") -> list:  # type: ignore[type-arg]
    return [job_event(EventType.JOB_STARTED, job=f"{prefix}{i}") for i in range(n)]


# --- fatal errors: one sentence naming the file and the cause in words -------------------


def test_disk_full_is_one_sentence_and_loses_nothing_committed(store: Store, path: Path) -> None:
    queue(store, *events(3, "kept"))
    store._conn.execute("PRAGMA max_page_count = 1")  # SQLite's own "disk is full"
    with pytest.raises(StoreError) as caught:
        queue(store, *events(2000))
    assert str(caught.value) == f"cannot write state file {path}: disk full"
    store._conn.execute("PRAGMA max_page_count = 1073741823")
    assert store.event_count() == 3


def _corrupt_all_but_the_first_page(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    size = path.stat().st_size
    with path.open("r+b") as f:
        f.seek(page)
        f.write(b"\xa5" * (size - page))


def test_a_corrupt_page_on_a_read_is_a_store_error(store: Store, path: Path) -> None:
    store.register_sinks(["log"])
    queue(store, *events(50))
    _corrupt_all_but_the_first_page(path)  # under the open store, as a failing disk would
    for read in (store.event_count, lambda: store.pending("log"), store.dead_letters):
        with pytest.raises(StoreError) as caught:
            read()
        assert str(caught.value) == f"cannot read state file {path}: the file is corrupt"
    with pytest.raises(StoreError, match=r"^cannot write state file .*: the file is corrupt$"):
        queue(store, *events(1, "more"))


def test_a_corrupt_file_is_refused_at_open(path: Path) -> None:
    store = Store.open(path)
    queue(store, *events(50))
    store.close()
    _corrupt_all_but_the_first_page(path)
    with pytest.raises(StoreError) as caught:
        Store.open(path)
    assert str(caught.value) == f"cannot use state file {path}: the file is corrupt"


def test_a_file_that_is_not_a_database_is_refused_in_words(path: Path) -> None:
    path.write_bytes(b"this is not sqlite " * 300)
    with pytest.raises(StoreError) as caught:
        Store.open(path)
    assert str(caught.value) == (
        f"cannot use state file {path}: the file is corrupt or not an SQLite database"
    )


def test_a_read_only_file_is_said_in_words(store: Store, path: Path) -> None:
    store._conn.execute("PRAGMA query_only = 1")  # the same SQLITE_READONLY as a ro mount
    with pytest.raises(StoreError) as caught:
        commit_health(store)
    assert str(caught.value) == (
        f"cannot write state file {path}: the file or its directory is read-only"
    )


# --- the file under a running process ---------------------------------------------------


def test_a_deleted_state_file_is_noticed_on_the_next_write(store: Store, path: Path) -> None:
    queue(store, *events(1))
    path.unlink()
    with pytest.raises(StoreError) as caught:
        commit_health(store)
    assert str(caught.value) == (
        f"state file {path} was deleted while in use; "
        "restart cckm-monitor to open the file now at that path"
    )


def test_a_replaced_state_file_is_noticed_on_the_next_write(store: Store, path: Path) -> None:
    queue(store, *events(1))
    other = path.with_name("other.db")
    Store.open(other).close()
    os.link(path, path.with_name("old.db"))  # `mv state.db old.db`, then the new file in
    os.replace(other, path)
    with pytest.raises(StoreError, match=r"was replaced by another file while in use"):
        queue(store, *events(1, "late"))
    store.close()  # as the daemon does on its way out
    # nothing of the old file leaked into the new one (through a -wal left behind) …
    assert Store.open(path).event_count() == 0
    # … and everything committed is in the old file
    assert Store.open(path.with_name("old.db")).event_count() == 1


def test_an_unchanged_file_passes_the_check_many_times(store: Store) -> None:
    for n in range(50):
        commit_health(store, n)
    assert store.load_source("prod", "aws").health.consecutive_failures == 49


# --- StoreBusy and the awaited retry --------------------------------------------------------


@pytest.fixture
def holder(path: Path, store: Store) -> Iterator[sqlite3.Connection]:
    """Another connection (as `replay` would be) holding the write lock."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    yield conn
    if conn.in_transaction:
        conn.execute("ROLLBACK")
    conn.close()


def test_a_held_lock_is_a_quick_retryable_store_busy(
    store: Store, holder: sqlite3.Connection
) -> None:
    store.set_busy_timeout(0.01)
    started = time.monotonic()
    with pytest.raises(StoreBusy) as caught:
        queue(store, *events(1))
    assert time.monotonic() - started < 0.5  # not the 5 s a command waits
    assert not isinstance(caught.value, StoreError)  # not fatal
    holder.execute("ROLLBACK")
    queue(store, *events(1))  # nothing half-done was left behind
    assert store.event_count() == 1


async def test_write_retries_with_awaited_back_off_until_the_lock_is_released(
    store: Store, holder: sqlite3.Connection
) -> None:
    store.set_busy_timeout(0.0)
    slept: list[float] = []
    ticks = 0

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 6:
            holder.execute("COMMIT")  # the other process is done
        await anyio.lowlevel.checkpoint()

    async def other_task() -> None:  # the loop serves others while the write waits
        nonlocal ticks
        while True:
            ticks += 1
            await anyio.lowlevel.checkpoint()

    store.busy_sleep = sleep
    async with anyio.create_task_group() as tg:
        tg.start_soon(other_task)
        await store.write(queue, store, *events(2))
        tg.cancel_scope.cancel()
    assert store.event_count() == 2
    assert slept == [0.005, 0.01, 0.02, 0.04, 0.08, BUSY_MAX_DELAY]
    assert ticks >= 6


async def test_write_does_not_retry_a_fatal_error(store: Store) -> None:
    calls = 0

    def broken() -> None:
        nonlocal calls
        calls += 1
        raise StoreError("cannot write state file x: disk full")

    with pytest.raises(StoreError):
        await store.write(broken)
    assert calls == 1


async def test_write_returns_what_the_method_returns(store: Store) -> None:
    assert await store.write(store.commit_health, "prod", "aws", health=SourceHealth(),
                             events=events(2), now=1.0) == 2  # fmt: skip


# --- one daemon per state file --------------------------------------------------------------


def test_a_second_lock_names_the_file_and_the_holders_pid(path: Path) -> None:
    first = InstanceLock.acquire(path)
    try:
        with pytest.raises(AlreadyRunning) as caught:
            InstanceLock.acquire(path)
        message = str(caught.value)
        assert f"state file {path} is in use by another cckm-monitor (PID {os.getpid()}," in (
            message
        )
        assert "\n" not in message
    finally:
        first.release()
    InstanceLock.acquire(path).release()  # released: free again


def test_a_stale_lock_file_from_a_dead_process_does_not_block(path: Path) -> None:
    lock_path(path).write_text("999999\n")  # left behind, nobody holds the flock
    lock = InstanceLock.acquire(path)
    try:
        assert lock_path(path).read_text() == f"{os.getpid()}\n"
    finally:
        lock.release()


def test_run_refuses_a_state_file_held_by_another_process(
    tmp_path: Path, path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "monitor.yaml"
    config.write_text(
        "managers: [{name: sim, url: 'http://127.0.0.1:1', username: a, password: b}]\n"
        f"state_path: {path}\nsinks: [{{type: log}}]\n"
    )
    held = InstanceLock.acquire(path)
    try:
        assert main(["run", "--config", str(config), "--once"]) == 1
    finally:
        held.release()
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"PID {os.getpid()}" in err
    assert str(path) in err
    assert not path.exists()  # refused before the state file was even opened


# --- exception groups: the sentence, never "unhandled errors in a TaskGroup" -----------------


def test_a_store_error_inside_task_groups_is_one_sentence(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def crashed(_: object) -> int:
        inner = BaseExceptionGroup("inner", [StoreError("cannot write state file /x: disk full")])
        raise BaseExceptionGroup("unhandled errors in a TaskGroup", [inner])

    monkeypatch.setattr(cli, "_commands", lambda: {"deliveries": crashed})
    assert main(["deliveries", "--config", "x.yaml"]) == 1
    err = capsys.readouterr().err
    assert err == "cckm-monitor: cannot write state file /x: disk full\n"


async def test_run_daemon_raises_the_store_error_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def crash(*_: object, **__: object) -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(anyio.sleep, 10)
            raise StoreError("cannot write state file /x: disk full")

    monkeypatch.setattr(app, "_run_daemon", crash)
    with pytest.raises(StoreError, match="disk full"):
        await app.run_daemon(None)  # type: ignore[arg-type]
