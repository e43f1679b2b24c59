"""The outbox with entries settled out of order: the cursor moves only over a contiguous
settled prefix, ``pending`` skips what is settled past it, and nothing sorts the backlog.
Also the ``max_in_flight`` setting."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from monitor.config import ConfigError, parse_config
from monitor.store import Store
from tests.factories import queue
from tests.test_delivery_inflight import interleaved


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "state.db")
    s.register_sinks(["hook"])
    yield s
    s.close()


def cursor(store: Store) -> int:
    return int(store._conn.execute("SELECT seq FROM cursors WHERE sink='hook'").fetchone()[0])


def marks(store: Store) -> list[int]:
    return [int(seq) for (seq,) in store._conn.execute("SELECT seq FROM settled ORDER BY seq")]


def test_the_cursor_waits_for_the_gap_then_jumps_over_what_settled(store: Store) -> None:
    queue(store, *interleaved(jobs=5, steps=1))
    s1, s2, s3, s4, s5 = (e.seq for e in store.pending("hook"))
    start = cursor(store)
    store.ack_many("hook", [s3])
    store.dead_letter_many("hook", [s4], reason="x", attempts=1, now=0)
    assert cursor(store) == start  # s1 and s2 are still in flight
    assert marks(store) == [s3, s4]
    assert [e.seq for e in store.pending("hook")] == [s1, s2, s5]
    assert [e.seq for e in store.pending("hook", after=s2)] == [s5]
    assert store.queue_depth("hook") == 3
    store.ack_many("hook", [s2])
    assert cursor(store) == start  # s1 still open
    store.ack_many("hook", [s1])
    assert cursor(store) == s4  # over s1 … s4 at once, not past s5
    assert marks(store) == []
    assert [e.seq for e in store.pending("hook")] == [s5]
    assert store.queue_depth("hook") == 1


def test_a_dead_letter_settled_past_the_cursor_can_be_replayed(store: Store) -> None:
    queue(store, *interleaved(jobs=3, steps=1))
    s1, s2, s3 = (e.seq for e in store.pending("hook"))
    store.dead_letter_many("hook", [s2], reason="x", attempts=1, now=0)
    assert store.replay("hook") == 1
    pending = store.pending("hook")
    assert [(e.seq, e.replayed) for e in pending] == [(s2, True), (s1, False), (s3, False)]
    assert [e.seq for e in store.pending("hook", skip={s2})] == [s1, s3]
    assert store.queue_depth("hook") == 3
    store.ack_many("hook", [s2])
    store.ack_many("hook", [s1])
    store.ack_many("hook", [s3])
    assert store.pending("hook") == []
    assert store.queue_depth("hook") == 0
    assert cursor(store) == s3
    assert marks(store) == []


def test_ack_still_means_everything_up_to(store: Store) -> None:
    queue(store, *interleaved(jobs=4, steps=1))
    _, s2, s3, s4 = (e.seq for e in store.pending("hook"))
    store.ack_many("hook", [s3])
    store.ack("hook", s2)
    assert cursor(store) == s3  # up to s2, then over the settled s3
    assert marks(store) == []
    assert [e.seq for e in store.pending("hook")] == [s4]


def test_prune_keeps_events_settled_past_the_cursor(store: Store) -> None:
    queue(store, *interleaved(jobs=2, steps=1))
    s1, s2 = (e.seq for e in store.pending("hook"))
    store.ack_many("hook", [s2])
    store.prune(now=1e12, retention_seconds=1, sinks=["hook"])
    assert [e.seq for e in store.pending("hook")] == [s1]
    store.ack_many("hook", [s1])
    assert store.pending("hook") == []


def test_pending_and_settling_read_by_key_and_sort_nothing(store: Store) -> None:
    queue(store, *interleaved(jobs=200, steps=10))
    first = store.pending("hook", 3)
    store.ack_many("hook", [first[2].seq])  # one settled past the cursor
    store.dead_letter("hook", first[1].seq, reason="x", attempts=1, now=0)
    store.replay("hook")
    seen: list[str] = []
    store._conn.set_trace_callback(seen.append)
    try:
        store.pending("hook", 100)
        store.pending("hook", 100, after=first[2].seq, skip={first[1].seq})
        store.ack_many("hook", [first[0].seq])
    finally:
        store._conn.set_trace_callback(None)
    statements = [sql for sql in seen if sql.lstrip().upper().startswith(("SELECT", "UPDATE"))]
    assert len(statements) >= 4
    for sql in statements:
        plan = " | ".join(row[3] for row in store._conn.execute("EXPLAIN QUERY PLAN " + sql))
        assert "TEMP B-TREE" not in plan, (sql, plan)
        assert "SCAN" not in plan.replace("SCAN CONSTANT ROW", ""), (sql, plan)


# --- max_in_flight -----------------------------------------------------------------------


def _sinks(*sinks: dict[str, Any]) -> dict[str, Any]:
    return {
        "managers": [
            {"name": "prod", "url": "https://cm.example.com", "username": "a", "password": "p"}
        ],
        "sinks": list(sinks),
    }


def test_max_in_flight_defaults_to_4_and_1_for_slack() -> None:
    settings = parse_config(
        _sinks(
            {"type": "log"},
            {"type": "webhook", "url": "https://hooks.example.com/x"},
            {"type": "alertmanager", "url": "http://127.0.0.1:9093"},
            {"type": "slack", "url": "https://hooks.slack.com/services/T/B/x"},
            {
                "type": "webhook",
                "name": "two",
                "url": "https://h.example.com/y",
                "max_in_flight": 16,
            },
        ),
        environ={},
    )
    assert [s.max_in_flight for s in settings.sinks] == [4, 4, 4, 1, 16]


@pytest.mark.parametrize("value", [0, -1, 65, "many"])
def test_a_bad_max_in_flight_is_one_sentence_at_its_key(value: object) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(_sinks({"type": "log", "max_in_flight": value}), environ={})
    (problem,) = info.value.problems
    assert problem.startswith("sinks[0].max_in_flight: "), problem
