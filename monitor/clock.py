"""Time, injected: the daemon reads wall time, monotonic time and sleeps through a Clock.

Tests pass a ``FakeClock`` whose ``sleep`` returns as soon as the test advances time,
so nothing in the suite waits for real seconds where a clock will do.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol

import anyio


class Clock(Protocol):
    def now(self) -> datetime:
        """Wall-clock time, aware UTC."""
        ...

    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(max(seconds, 0.0))


class FakeClock:
    """A clock that moves only when told to; sleepers wake when their time comes.

    With ``autojump`` a sleep moves the clock itself (like trio's MockClock), for code
    under test that backs off between retries.
    """

    def __init__(self, start: datetime | None = None, *, autojump: bool = False) -> None:
        self.autojump = autojump
        self._wall = (start or datetime(2026, 11, 23, 10, 0, tzinfo=UTC)).timestamp()
        self._mono = 1000.0
        self._changed: anyio.Event | None = None  # created lazily, inside the event loop

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._wall, UTC)

    def time(self) -> float:
        return self._wall

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        self._wall += seconds
        self._mono += seconds
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    def step_wall(self, seconds: float) -> None:
        """Step the wall clock alone (NTP, an operator, a VM resumed): monotonic time
        does not move."""
        self._wall += seconds

    async def sleep(self, seconds: float) -> None:
        until = self._mono + max(seconds, 0.0)
        if self.autojump and until > self._mono:
            self.advance(until - self._mono)
        while self._mono < until:
            if self._changed is None:
                self._changed = anyio.Event()
            await self._changed.wait()
        await anyio.lowlevel.checkpoint()
