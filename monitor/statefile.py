"""The state file's failures in words, and its write transaction.

Every SQLite error becomes ONE of two exceptions: ``StoreBusy`` (another process holds
the write lock: the same call may succeed a moment later) or ``StoreError`` (fatal: one
sentence naming the file and the cause in words).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path


class StoreError(Exception):
    """The state file cannot be opened, written or understood: fatal for the daemon."""


class StoreBusy(Exception):  # deliberately NOT a StoreError: it is not fatal
    """Another process holds the write lock; the same call may succeed a moment later."""


# sqlite3 error names (``exc.sqlite_errorname``, prefix match) -> the cause in words
_CAUSES = (
    ("SQLITE_FULL", "disk full"),
    ("SQLITE_CORRUPT", "the file is corrupt"),
    ("SQLITE_NOTADB", "the file is corrupt or not an SQLite database"),
    ("SQLITE_READONLY_DBMOVED", "the file was moved or deleted while open"),
    ("SQLITE_READONLY", "the file or its directory is read-only"),
    ("SQLITE_IOERR", "I/O error"),
    ("SQLITE_CANTOPEN", "the file cannot be opened"),
    ("SQLITE_PERM", "permission denied"),
    ("SQLITE_AUTH", "permission denied"),
    ("SQLITE_NOMEM", "out of memory"),
    ("SQLITE_TOOBIG", "a value is too big for SQLite"),
)
_BUSY = ("SQLITE_BUSY", "SQLITE_LOCKED")


def sqlite_failure(verb: str, path: Path, exc: sqlite3.Error) -> StoreError | StoreBusy:
    """One sentence for an SQLite error; busy/locked becomes the retryable StoreBusy."""
    name = getattr(exc, "sqlite_errorname", None) or ""
    if name.startswith(_BUSY):
        return StoreBusy(f"state file {path} is locked by another process")
    cause = next((words for prefix, words in _CAUSES if name.startswith(prefix)), None)
    return StoreError(f"cannot {verb} state file {path}: {cause or exc}")


def file_identity(path: Path) -> tuple[int, int] | None:
    """(st_dev, st_ino) of the file at ``path``; None when nothing is there."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino)


def as_fatal(exc: StoreError | StoreBusy) -> StoreError:
    """At open, even a lock held past the busy timeout is a reason not to start."""
    return exc if isinstance(exc, StoreError) else StoreError(str(exc))


class Transaction:
    """``BEGIN IMMEDIATE`` … ``COMMIT``, rolled back on error; SQLite errors become
    ``StoreBusy`` (the lock is taken: nothing was written) or ``StoreError``.

    Every transaction first checks that the file at the path is still the one opened.
    """

    def __init__(
        self, conn: sqlite3.Connection, path: Path, check_file: Callable[[], None]
    ) -> None:
        self._conn = conn
        self._path = path
        self._check_file = check_file

    def __enter__(self) -> None:
        self._check_file()
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise sqlite_failure("write", self._path, exc) from exc

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            try:
                self._conn.execute("COMMIT")
            except sqlite3.Error as err:
                self._rollback()
                raise sqlite_failure("write", self._path, err) from err
            return
        self._rollback()
        if isinstance(exc, sqlite3.Error):
            raise sqlite_failure("write", self._path, exc) from exc

    def _rollback(self) -> None:
        # after SQLITE_FULL or an I/O error SQLite may already have rolled back
        if self._conn.in_transaction:
            # a failing ROLLBACK says less than the error being raised
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")
