"""The state file: one transaction per poll, unique event ids, cursors, pruning, schema."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.health import SourceHealth
from monitor.model import Event, EventType, JobEssence, JobSnapshot, event_id
from monitor.statefile import StoreError
from monitor.store import SCHEMA_VERSION, Store

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def snap(job_id: str, status: str = "in_progress", **kw: object) -> JobSnapshot:
    return JobSnapshot(job_id=job_id, status=status, abort=False, created_at=T0, **kw)  # type: ignore[arg-type]


def essence(job_id: str, terminal: str | None = None) -> JobEssence:
    return JobEssence(
        snap(
            job_id,
            "in_progress" if terminal is None else "completed",
            detailed_status=(("123456789012/us-east-1", "in_progress"),),
        ),
        first_seen=T0,
        terminal=terminal,
    )


def event(name: str, kind: EventType = EventType.JOB_STARTED, source: str = "aws") -> Event:
    return Event(
        id=event_id(name, kind.value),
        type=kind,
        timestamp=T0,
        manager="prod",
        source=source,
        job_id=name,
        data={"job_id": name, "manager": "prod"},
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "state.db")
    yield s
    s.close()


def test_poll_commit_round_trips_state_and_queues_events(store: Store) -> None:
    watermark = T0 + timedelta(microseconds=123456)
    added = store.commit_poll(
        "prod",
        "aws",
        changed={"a": essence("a"), "b": essence("b", "job.completed")},
        events=[event("a"), event("b")],
        watermark=watermark,
        health=SourceHealth(0, False, 2),
        now=T0.timestamp(),
    )
    assert added == 2
    state = store.load_source("prod", "aws")
    assert state.baseline_done
    assert state.watermark == watermark
    assert state.health == SourceHealth(0, False, 2)
    assert set(state.running) == {"a"}  # only jobs without a terminal event
    assert state.running["a"] == essence("a")
    assert store.load_jobs("prod", "aws", ["a", "b", "zzz"]).keys() == {"a", "b"}
    assert store.load_source("prod", "gcp").baseline_done is False


def test_same_event_id_is_queued_once(store: Store) -> None:
    store.register_sinks(["log"])
    for _ in range(2):
        store.commit_poll(
            "prod",
            "aws",
            changed={},
            events=[event("a")],
            watermark=None,
            health=SourceHealth(),
            now=T0.timestamp(),
        )
    assert [e.event.id for e in store.pending("log")] == [event("a").id]


def test_commit_is_atomic_when_the_disk_write_fails(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "state.db")
    store.register_sinks(["log"])
    bad = Event(
        id="evt_x",
        type=EventType.JOB_STARTED,
        timestamp=T0,
        manager="prod",
        source="aws",
        job_id="a",
        data={"not_json": object()},
    )
    with pytest.raises(TypeError):
        store.commit_poll(
            "prod",
            "aws",
            changed={"a": essence("a")},
            events=[bad],
            watermark=None,
            health=SourceHealth(),
            now=T0.timestamp(),
        )
    # neither the essence nor any event was written
    assert store.load_jobs("prod", "aws", ["a"]) == {}
    assert store.pending("log") == []
    store.close()


def test_cursor_delivery_in_order_and_ack(store: Store) -> None:
    store.register_sinks(["log", "hook"])
    store.commit_poll(
        "prod",
        "aws",
        changed={},
        events=[event(str(i)) for i in range(5)],
        watermark=None,
        health=SourceHealth(),
        now=T0.timestamp(),
    )
    pending = store.pending("log")
    assert [e.event.job_id for e in pending] == ["0", "1", "2", "3", "4"]
    store.ack("log", pending[2].seq)
    assert [e.event.job_id for e in store.pending("log")] == ["3", "4"]
    assert store.queue_depth("log") == 2
    assert store.queue_depth("hook") == 5  # sinks are independent


def test_new_sink_starts_at_the_end_of_the_outbox(store: Store) -> None:
    store.register_sinks(["log"])
    store.commit_poll(
        "prod",
        "aws",
        changed={},
        events=[event("old")],
        watermark=None,
        health=SourceHealth(),
        now=T0.timestamp(),
    )
    store.register_sinks(["log", "late"])
    assert store.pending("late") == []
    assert len(store.pending("log")) == 1


def test_dead_letters_are_kept_and_skipped(store: Store) -> None:
    store.register_sinks(["hook"])
    store.commit_poll(
        "prod",
        "aws",
        changed={},
        events=[event("a"), event("b")],
        watermark=None,
        health=SourceHealth(),
        now=T0.timestamp(),
    )
    first = store.pending("hook")[0]
    store.dead_letter("hook", first.seq, reason="404 from receiver", attempts=1, now=T0.timestamp())
    assert [e.event.job_id for e in store.pending("hook")] == ["b"]
    letters = store.dead_letters("hook")
    assert [(d.seq, d.reason, d.event.job_id) for d in letters] == [
        (first.seq, "404 from receiver", "a")
    ]


def test_prune_drops_old_finished_jobs_and_delivered_events_only(store: Store) -> None:
    store.register_sinks(["log"])
    old = T0.timestamp()
    store.commit_poll(
        "prod",
        "aws",
        changed={"done": essence("done", "job.completed"), "run": essence("run")},
        events=[event("e1"), event("e2")],
        watermark=None,
        health=SourceHealth(),
        now=old,
    )
    store.ack("log", store.pending("log")[0].seq)  # e1 delivered, e2 not
    removed = store.prune(now=old + 8 * 86400, retention_seconds=7 * 86400, sinks=["log"])
    assert removed == 2  # the finished job and the delivered event
    assert store.load_jobs("prod", "aws", ["done", "run"]).keys() == {"run"}
    assert [e.event.job_id for e in store.pending("log")] == ["e2"]
    assert store.event_count() == 1


def test_recent_events_newest_first(store: Store) -> None:
    store.commit_poll(
        "prod",
        "aws",
        changed={},
        events=[event("a"), event("b")],
        watermark=None,
        health=SourceHealth(),
        now=T0.timestamp(),
    )
    assert [e.job_id for e in store.recent_events(10)] == ["b", "a"]
    assert [e.job_id for e in store.recent_events(1)] == ["b"]


def test_state_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    first = Store.open(path)
    first.commit_poll(
        "prod",
        "aws",
        changed={"a": essence("a")},
        events=[event("a")],
        watermark=T0,
        health=SourceHealth(3, True, 1),
        now=T0.timestamp(),
    )
    first.close()
    again = Store.open(path)
    state = again.load_source("prod", "aws")
    assert state.health == SourceHealth(3, True, 1)
    assert "a" in state.running
    again.close()


def test_wal_mode(store: Store, tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "state.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_newer_schema_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    Store.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),))
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer than this cckm-monitor understands"):
        Store.open(path)


def test_unusable_state_path_is_a_clear_error(tmp_path: Path) -> None:
    not_a_db = tmp_path / "state.db"
    not_a_db.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match=r"state file .*state\.db"):
        Store.open(not_a_db)


def test_impossible_state_path_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError, match=r"cannot open state file .*a-file/state\.db"):
        Store.open(blocker / "state.db")


def test_a_full_disk_is_a_clear_error_and_loses_nothing_committed(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "state.db")
    store.register_sinks(["log"])
    store.commit_poll(
        "prod",
        "aws",
        changed={},
        events=[event("kept")],
        watermark=None,
        health=SourceHealth(),
        now=T0.timestamp(),
    )
    # SQLite's own limit stands in for a full disk: the same error, "disk is full"
    store._conn.execute("PRAGMA max_page_count = 1")
    big = [event(f"e{i}") for i in range(2000)]
    with pytest.raises(StoreError, match=r"cannot write state file .*full"):
        store.commit_poll(
            "prod",
            "aws",
            changed={"a": essence("a")},
            events=big,
            watermark=None,
            health=SourceHealth(),
            now=T0.timestamp(),
        )
    store._conn.execute("PRAGMA max_page_count = 1073741823")
    assert [e.event.job_id for e in store.pending("log")] == ["kept"]
    assert store.load_jobs("prod", "aws", ["a"]) == {}
    store.close()
