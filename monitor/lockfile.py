"""One daemon per state file: an exclusive ``flock`` on ``<state file>.lock``.

The lock is held for the daemon's whole life and the holder's PID is written in the
file. The kernel releases a ``flock`` when its process dies, however it dies, so a lock
file left by a crashed daemon never blocks the next start. The file itself is never
deleted: deleting it would let two processes lock two different files of one name.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class LockError(Exception):
    """The state file's lock cannot be taken (one sentence)."""


class AlreadyRunning(LockError):
    """Another process holds the state file's lock."""


def lock_path(state_path: Path) -> Path:
    return state_path.with_name(state_path.name + ".lock")


class InstanceLock:
    """Held from ``acquire`` until ``release`` (or the process's end)."""

    def __init__(self, fd: int, path: Path) -> None:
        self._fd: int | None = fd
        self.path = path

    @classmethod
    def acquire(cls, state_path: Path) -> InstanceLock:
        """Lock ``state_path`` for this process, or raise ``AlreadyRunning`` naming the
        holder; ``LockError`` if the lock file cannot be created."""
        path = lock_path(state_path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
        except OSError as exc:
            raise LockError(
                f"cannot open state file {state_path}: cannot create its lock file {path} "
                f"({exc.strerror or exc})"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise AlreadyRunning(
                f"state file {state_path} is in use by another cckm-monitor "
                f"(PID {holder}, lock {path}); stop that one first, or give this one "
                "another state_path"
            ) from None
        except OSError as exc:
            os.close(fd)
            raise LockError(
                f"cannot lock state file {state_path} through {path} ({exc.strerror or exc})"
            ) from exc
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(fd, path)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the last descriptor releases the flock
            self._fd = None


def _read_pid(fd: int) -> str:
    """The PID the holder wrote; "unknown" in the instant between its lock and write."""
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return text if text.isdigit() else "unknown"
