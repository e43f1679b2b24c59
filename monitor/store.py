"""Durable state in SQLite (WAL): last-seen job essences, the event outbox, delivery marks.

One poll's state change and the events it produced commit in ONE transaction, so a
crash can never record a transition without its event or an event without the state
that produced it. Event ids are unique: a transition recomputed after a restart is
ignored by ``INSERT OR IGNORE`` rather than queued twice.

Delivery marks are one cursor per sink, a ``settled`` table (entries a sink finished
past its cursor while an earlier one was still in flight: the cursor only ever moves over
a contiguous settled prefix, so a crash re-sends what was in flight and nothing else), a
dead-letter table for events a sink gave up on, and a ``redeliver`` table: dead letters
that ``cckm-monitor replay`` put back. A sink's queue is its redeliver rows (oldest
first), then the unsettled events after its cursor; both are read on every delivery
round, so a running daemon picks up a replay made by another process (SQLite WAL allows
the second writer).

Every SQLite error of every method comes out as ONE of two exceptions: ``StoreBusy``
(another process holds the write lock: retry, see ``Store.write``) or ``StoreError``
(fatal: one sentence naming the file and the cause in words — disk full, corrupt, I/O
error, read-only, deleted or replaced under the running process).
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

import anyio

from monitor.codec import decode_essence, decode_event, encode_essence, encode_event
from monitor.health import SourceHealth
from monitor.model import Event, JobEssence, parse_timestamp
from monitor.statefile import (
    StoreBusy,
    StoreError,
    Transaction,
    as_fatal,
    file_identity,
    sqlite_failure,
)

SCHEMA_VERSION = 1

CLI_BUSY_TIMEOUT = 5.0  # seconds a command waits for the write lock (nothing else to do)
BUSY_FIRST_DELAY = 0.005  # Store.write: first awaited back-off after StoreBusy …
BUSY_MAX_DELAY = 0.1  # … doubling up to this

_P = ParamSpec("_P")
_T = TypeVar("_T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sources (
    manager TEXT NOT NULL, source TEXT NOT NULL,
    baseline_done INTEGER NOT NULL DEFAULT 0,
    watermark TEXT,
    failures INTEGER NOT NULL DEFAULT 0,
    down INTEGER NOT NULL DEFAULT 0,
    episode INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (manager, source)
);
CREATE TABLE IF NOT EXISTS jobs (
    manager TEXT NOT NULL, source TEXT NOT NULL, job_id TEXT NOT NULL,
    running INTEGER NOT NULL,
    changed REAL NOT NULL,
    essence TEXT NOT NULL,
    PRIMARY KEY (manager, source, job_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS jobs_running ON jobs (manager, source) WHERE running = 1;
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    created REAL NOT NULL,
    body TEXT NOT NULL
);
-- seq alone, for counting a sink's queue without reading the events' bodies
CREATE INDEX IF NOT EXISTS events_seq ON events (seq);
CREATE TABLE IF NOT EXISTS cursors (sink TEXT PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS dead_letters (
    sink TEXT NOT NULL, seq INTEGER NOT NULL,
    reason TEXT NOT NULL, attempts INTEGER NOT NULL, at REAL NOT NULL,
    PRIMARY KEY (sink, seq)
);
CREATE TABLE IF NOT EXISTS redeliver (
    sink TEXT NOT NULL, seq INTEGER NOT NULL,
    PRIMARY KEY (sink, seq)
) WITHOUT ROWID;
-- entries a sink settled past its cursor while an earlier one was still in flight: the
-- cursor moves over them once the gap closes; until then ``pending`` skips them
CREATE TABLE IF NOT EXISTS settled (
    sink TEXT NOT NULL, seq INTEGER NOT NULL,
    PRIMARY KEY (sink, seq)
) WITHOUT ROWID;
"""


def _reads(
    method: Callable[Concatenate[Store, _P], _T],
) -> Callable[Concatenate[Store, _P], _T]:
    """A read method: any SQLite error (a corrupt page surfaces on a SELECT too) is mapped."""

    @functools.wraps(method)
    def wrapper(self: Store, /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as exc:
            raise sqlite_failure("read", self.path, exc) from exc

    return wrapper


@dataclass(frozen=True, slots=True)
class SourceState:
    """What a poller needs at start: where it left off."""

    baseline_done: bool = False
    watermark: datetime | None = None
    health: SourceHealth = field(default_factory=SourceHealth)
    running: dict[str, JobEssence] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    seq: int
    event: Event
    replayed: bool = False  # from the ``redeliver`` part (behind the cursor, or settled)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    sink: str
    seq: int
    reason: str
    attempts: int
    at: float
    event: Event


class Store:
    """The SQLite state file. Not thread-safe: use from the event loop's thread."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path
        self._file: tuple[int, int] | None = None  # identity of the file opened (not :memory:)
        # awaited between attempts of ``write``; a test may replace it
        self.busy_sleep: Callable[[float], Awaitable[None]] = anyio.sleep

    # --- life cycle ---------------------------------------------------------------

    @classmethod
    def open(cls, path: Path | str, *, busy_timeout: float = CLI_BUSY_TIMEOUT) -> Store:
        """Open or create the state file; a clear ``StoreError`` if that is impossible.

        ``busy_timeout``: how long a write waits for another process's write lock before
        ``StoreBusy``. Commands keep the long default; the daemon lowers it once started
        (``set_busy_timeout``) so that its event loop never waits on another process.
        """
        target = Path(path)
        where = str(target)
        try:
            if where != ":memory:":
                target.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(where, isolation_level=None, check_same_thread=False)
        except OSError as exc:
            raise StoreError(f"cannot open state file {where}: {exc.strerror or exc}") from exc
        except sqlite3.Error as exc:
            raise as_fatal(sqlite_failure("open", target, exc)) from exc
        store = cls(conn, target)
        try:
            store.set_busy_timeout(busy_timeout)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            store._migrate()
        except sqlite3.Error as exc:
            conn.close()
            raise as_fatal(sqlite_failure("use", target, exc)) from exc
        except (StoreError, StoreBusy) as exc:
            conn.close()
            raise as_fatal(exc) from exc
        if where not in (":memory:", ""):
            store._file = file_identity(target)
        return store

    def set_busy_timeout(self, seconds: float) -> None:
        """How long one write waits for another process's lock before ``StoreBusy``."""
        self._conn.execute(f"PRAGMA busy_timeout={max(int(seconds * 1000), 0)}")

    async def write(self, op: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """``op(*args, **kwargs)`` (a write method), retried while another process holds
        the write lock, with short AWAITED back-off: the event loop goes on serving.

        ``StoreError`` is not retried: it is fatal.
        """
        delay = BUSY_FIRST_DELAY
        while True:
            try:
                return op(*args, **kwargs)
            except StoreBusy:
                await self.busy_sleep(delay)
                delay = min(delay * 2, BUSY_MAX_DELAY)

    def check_file(self) -> None:
        """StoreError if the file at ``path`` is no longer the one opened (deleted or
        replaced by a rename): writing on would go to a file nobody will ever read."""
        if self._file is None:
            return
        now = file_identity(self.path)
        if now == self._file:
            return
        self._empty_the_wal()
        how = "deleted" if now is None else "replaced by another file"
        raise StoreError(
            f"state file {self.path} was {how} while in use; "
            "restart cckm-monitor to open the file now at that path"
        )

    def _migrate(self) -> None:
        self._conn.executescript(_SCHEMA)
        row = self._conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if row is None:
            with self._txn():
                self._conn.execute(
                    "INSERT INTO meta(key, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
            return
        found = int(row[0])
        if found > SCHEMA_VERSION:
            raise StoreError(
                f"state file {self.path} has schema version {found}, newer than this "
                f"cckm-monitor understands ({SCHEMA_VERSION}); upgrade cckm-monitor or "
                "point state_path at another file"
            )

    def close(self) -> None:
        if self._file is not None and file_identity(self.path) != self._file:
            self._empty_the_wal()
        self._conn.close()

    def _empty_the_wal(self) -> None:
        """The file was deleted or renamed away: move what the ``-wal`` holds into it
        (through the open descriptor) and empty the ``-wal``. SQLite does not checkpoint
        a moved file on close, and a ``-wal`` left full beside the path would be read
        into whatever file is there next: a frankenstein of two databases."""
        with contextlib.suppress(sqlite3.Error):
            self.set_busy_timeout(1.0)  # on the way out: readers may finish first
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def _txn(self) -> Transaction:
        return Transaction(self._conn, self.path, self.check_file)

    # --- sources and jobs ---------------------------------------------------------

    @_reads
    def load_source(self, manager: str, source: str) -> SourceState:
        row = self._conn.execute(
            "SELECT baseline_done, watermark, failures, down, episode FROM sources "
            "WHERE manager=? AND source=?",
            (manager, source),
        ).fetchone()
        running = {
            job_id: decode_essence(text)
            for job_id, text in self._conn.execute(
                "SELECT job_id, essence FROM jobs WHERE manager=? AND source=? AND running=1",
                (manager, source),
            )
        }
        if row is None:
            return SourceState(running=running)
        return SourceState(
            baseline_done=bool(row[0]),
            watermark=None if row[1] is None else parse_timestamp(row[1]),
            health=SourceHealth(int(row[2]), bool(row[3]), int(row[4])),
            running=running,
        )

    @_reads
    def load_jobs(self, manager: str, source: str, ids: Collection[str]) -> dict[str, JobEssence]:
        """Essences of the given jobs that the store knows."""
        found: dict[str, JobEssence] = {}
        wanted = list(ids)
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for job_id, text in self._conn.execute(
                f"SELECT job_id, essence FROM jobs WHERE manager=? AND source=? "  # noqa: S608
                f"AND job_id IN ({marks})",
                (manager, source, *chunk),
            ):
                found[job_id] = decode_essence(text)
        return found

    def commit_poll(
        self,
        manager: str,
        source: str,
        *,
        changed: Mapping[str, JobEssence],
        events: Sequence[Event],
        watermark: datetime | None,
        health: SourceHealth,
        now: float,
        baseline_done: bool = True,
    ) -> int:
        """Persist one poll's outcome in ONE transaction; returns how many events are new."""
        with self._txn():
            self._conn.executemany(
                "INSERT INTO jobs(manager, source, job_id, running, changed, essence) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(manager, source, job_id) DO UPDATE SET "
                "running=excluded.running, changed=excluded.changed, essence=excluded.essence",
                [
                    (manager, source, job_id, int(e.terminal is None), now, encode_essence(e))
                    for job_id, e in changed.items()
                ],
            )
            added = self._insert_events(events, now)
            self._conn.execute(
                "INSERT INTO sources(manager, source, baseline_done, watermark, failures, down, "
                "episode) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(manager, source) DO UPDATE SET "
                "baseline_done=excluded.baseline_done, watermark=excluded.watermark, "
                "failures=excluded.failures, down=excluded.down, episode=excluded.episode",
                (
                    manager,
                    source,
                    int(baseline_done),
                    None if watermark is None else watermark.isoformat(),
                    health.consecutive_failures,
                    int(health.down),
                    health.episode,
                ),
            )
        return added

    def commit_health(
        self,
        manager: str,
        source: str,
        *,
        health: SourceHealth,
        events: Sequence[Event],
        now: float,
    ) -> int:
        """Persist a failed poll: only the source's health and its source.* events."""
        with self._txn():
            added = self._insert_events(events, now)
            self._conn.execute(
                "INSERT INTO sources(manager, source, failures, down, episode) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT(manager, source) DO UPDATE SET "
                "failures=excluded.failures, down=excluded.down, episode=excluded.episode",
                (manager, source, health.consecutive_failures, int(health.down), health.episode),
            )
        return added

    def _insert_events(self, events: Iterable[Event], now: float) -> int:
        before = self._conn.total_changes
        self._conn.executemany(
            "INSERT OR IGNORE INTO events(id, created, body) VALUES (?, ?, ?)",
            [(e.id, now, encode_event(e)) for e in events],
        )
        return self._conn.total_changes - before

    @_reads
    def jobs(
        self, *, running_only: bool = False, limit: int = 1000
    ) -> list[tuple[str, str, JobEssence]]:
        """Tracked jobs, running first, then the most recently changed."""
        where = "WHERE running=1" if running_only else ""
        rows = self._conn.execute(
            f"SELECT manager, source, essence FROM jobs {where} "  # noqa: S608
            "ORDER BY running DESC, changed DESC LIMIT ?",
            (limit,),
        )
        return [(m, s, decode_essence(text)) for m, s, text in rows]

    # --- outbox -------------------------------------------------------------------

    def register_sinks(self, names: Iterable[str]) -> None:
        """Give each sink a cursor; a sink new to this state file starts at the end."""
        with self._txn():
            for name in names:
                self._conn.execute(
                    "INSERT OR IGNORE INTO cursors(sink, seq) "
                    "SELECT ?, COALESCE(MAX(seq), 0) FROM events",
                    (name,),
                )

    @_reads
    def pending(
        self, sink: str, limit: int = 100, *, after: int = 0, skip: Collection[int] = ()
    ) -> list[OutboxEntry]:
        """The sink's undelivered events: replayed dead letters first, then the unsettled
        events after its cursor; each part oldest first, at most ``limit`` in all.

        A worker with entries in flight reads on from where it got to: ``after`` (a seq)
        bounds the second part from below, ``skip`` leaves out replayed entries it holds.
        """
        # each part is read by key, stopping at ``limit``: nothing sorts the backlog
        replayed = [
            OutboxEntry(seq, decode_event(body), replayed=True)
            for seq, body in self._conn.execute(
                "SELECT e.seq, e.body FROM redeliver r JOIN events e ON e.seq = r.seq "
                "WHERE r.sink=? ORDER BY r.seq LIMIT ?",
                (sink, limit + len(skip)),
            )
            if seq not in skip
        ][:limit]
        rest = limit - len(replayed)
        if rest <= 0:
            return replayed
        rows = self._conn.execute(
            "SELECT seq, body FROM events WHERE seq > MAX(?, (SELECT seq FROM cursors "
            "WHERE sink=?)) AND seq NOT IN (SELECT seq FROM settled WHERE sink=?) "
            "ORDER BY seq LIMIT ?",
            (after, sink, sink, rest),
        )
        return replayed + [OutboxEntry(seq, decode_event(body)) for seq, body in rows]

    @_reads
    def queue_depth(self, sink: str) -> int:
        """How many entries ``pending`` would return without a limit. It counts the
        backlog (milliseconds at 50,000): callers asking often keep the figure a while."""
        row = self._conn.execute(
            "SELECT (SELECT COUNT(*) FROM events WHERE seq > "
            "(SELECT seq FROM cursors WHERE sink=?)) "
            "- (SELECT COUNT(*) FROM settled WHERE sink=? AND seq > "
            "(SELECT seq FROM cursors WHERE sink=?)) "
            "+ (SELECT COUNT(*) FROM redeliver WHERE sink=?)",
            (sink, sink, sink, sink),
        ).fetchone()
        return int(row[0])

    def ack(self, sink: str, seq: int) -> None:
        """Everything up to ``seq`` is done for ``sink`` (delivered or skipped)."""
        with self._txn():
            self._conn.execute("DELETE FROM redeliver WHERE sink=? AND seq=?", (sink, seq))
            self._conn.execute("UPDATE cursors SET seq=MAX(seq, ?) WHERE sink=?", (seq, sink))
            self._advance(sink)

    def ack_many(self, sink: str, seqs: Sequence[int]) -> None:
        """These entries of ``pending`` are done for ``sink``, in ONE transaction; the
        cursor moves over them once every entry before them is done too."""
        if not seqs:
            return
        with self._txn():
            self._settle(sink, seqs)

    def dead_letter(self, sink: str, seq: int, *, reason: str, attempts: int, now: float) -> None:
        """Give up on one event for one sink: keep it, and settle it."""
        self.dead_letter_many(sink, [seq], reason=reason, attempts=attempts, now=now)

    def dead_letter_many(
        self,
        sink: str,
        seqs: Sequence[int],
        *,
        reason: str,
        attempts: int,
        now: float,
        also_settled: Sequence[int] = (),
    ) -> None:
        """Give up on these events for one sink, in ONE transaction (with
        ``also_settled``: entries of the same batch that were only filtered out)."""
        if not seqs and not also_settled:
            return
        with self._txn():
            self._conn.executemany(
                "INSERT OR REPLACE INTO dead_letters(sink, seq, reason, attempts, at) "
                "VALUES (?, ?, ?, ?, ?)",
                [(sink, seq, reason, attempts, now) for seq in seqs],
            )
            self._settle(sink, [*seqs, *also_settled])

    def _settle(self, sink: str, seqs: Sequence[int]) -> None:
        """``seqs``: consecutive entries of ``pending`` (what one batch holds)."""
        self._conn.executemany(
            "DELETE FROM redeliver WHERE sink=? AND seq=?", [(sink, seq) for seq in seqs]
        )
        # in order (nothing unsettled between the cursor and these): move the cursor
        moved = self._conn.execute(
            "UPDATE cursors SET seq=:high WHERE sink=:sink AND seq < :high AND NOT EXISTS "
            "(SELECT 1 FROM events WHERE seq > cursors.seq AND seq < :low AND seq NOT IN "
            "(SELECT seq FROM settled WHERE sink=:sink))",
            {"sink": sink, "low": min(seqs), "high": max(seqs)},
        ).rowcount
        if not moved:
            # past an entry still in flight: mark them (a replayed entry lies behind the
            # cursor and needs no mark)
            self._conn.executemany(
                "INSERT OR IGNORE INTO settled(sink, seq) SELECT ?, ? WHERE ? > "
                "(SELECT seq FROM cursors WHERE sink=?)",
                [(sink, seq, seq, sink) for seq in seqs],
            )
        elif self._conn.execute("SELECT 1 FROM settled WHERE sink=? LIMIT 1", (sink,)).fetchone():
            self._advance(sink)

    def _advance(self, sink: str) -> None:
        """Move the cursor over the settled entries right after it, and forget their marks."""
        cursor = self._conn.execute("SELECT seq FROM cursors WHERE sink=?", (sink,)).fetchone()
        if cursor is None:
            return
        # the first unsettled event after the cursor, found by key from the cursor on
        row = self._conn.execute(
            "SELECT seq FROM events WHERE seq > ? AND seq NOT IN "
            "(SELECT seq FROM settled WHERE sink=?) ORDER BY seq LIMIT 1",
            (cursor[0], sink),
        ).fetchone()
        if row is None:
            top = self._conn.execute(
                "SELECT MAX(seq) FROM settled WHERE sink=?", (sink,)
            ).fetchone()[0]
            to = cursor[0] if top is None else max(cursor[0], int(top))
        else:
            to = max(cursor[0], int(row[0]) - 1)
        if to != cursor[0]:
            self._conn.execute("UPDATE cursors SET seq=? WHERE sink=?", (to, sink))
        self._conn.execute("DELETE FROM settled WHERE sink=? AND seq <= ?", (sink, to))

    @_reads
    def dead_letters(self, sink: str | None = None) -> list[DeadLetter]:
        rows = self._conn.execute(
            "SELECT d.sink, d.seq, d.reason, d.attempts, d.at, e.body FROM dead_letters d "
            "JOIN events e ON e.seq = d.seq WHERE (? IS NULL OR d.sink = ?) ORDER BY d.seq",
            (sink, sink),
        )
        return [DeadLetter(s, q, r, a, at, decode_event(b)) for s, q, r, a, at, b in rows]

    def replay(self, sink: str) -> int:
        """Move the sink's dead letters back into its queue; returns how many.

        They are delivered before the events queued after them, in their original order.
        """
        with self._txn():
            before = self._conn.total_changes
            self._conn.execute(
                "INSERT OR IGNORE INTO redeliver(sink, seq) "
                "SELECT sink, seq FROM dead_letters WHERE sink=?",
                (sink,),
            )
            moved = self._conn.total_changes - before
            self._conn.execute("DELETE FROM dead_letters WHERE sink=?", (sink,))
        return moved

    @_reads
    def recent_events(self, limit: int = 100) -> list[Event]:
        """Newest first."""
        rows = self._conn.execute("SELECT body FROM events ORDER BY seq DESC LIMIT ?", (limit,))
        return [decode_event(body) for (body,) in rows]

    @_reads
    def event_count(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    # --- retention ----------------------------------------------------------------

    def prune(self, *, now: float, retention_seconds: float, sinks: Collection[str]) -> int:
        """Drop finished jobs and delivered events older than the retention."""
        cutoff = now - retention_seconds
        marks = ",".join("?" * len(sinks)) or "NULL"
        with self._txn():
            before = self._conn.total_changes
            self._conn.execute("DELETE FROM jobs WHERE running=0 AND changed < ?", (cutoff,))
            self._conn.execute(
                "DELETE FROM events WHERE created < ? "  # noqa: S608
                f"AND seq <= (SELECT COALESCE(MIN(seq), 0) FROM cursors WHERE sink IN ({marks})) "
                "AND seq NOT IN (SELECT seq FROM dead_letters) "
                "AND seq NOT IN (SELECT seq FROM redeliver)",
                (cutoff, *sinks),
            )
            return self._conn.total_changes - before
