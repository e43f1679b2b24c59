"""Several requests in flight per sink, each job's events still in order.

Two small parts the delivery worker drives:

- ``Lanes``: one delivery round's batches. A batch starts when a slot is free
  (``max_in_flight`` batches in progress at once, a batch keeping its slot while it waits
  to retry) and every earlier batch of its ``order_key`` (its job, or its source for
  source events) has settled. Batches of different jobs go side by side; ready batches
  start oldest first. The lanes also know how far the round has read the outbox, and
  how many entries it holds unsettled (bounded: the round stops reading at ``window``).
- ``Gate``: the sink's health, across rounds. While the receiver's last answer was a
  retryable failure (it may be down), requests go one at a time, each no sooner than the
  back-off that failure set — so a down receiver sees one request per back-off, not one
  per slot — and the first in line is a batch that has not failed yet (it tells whether
  the receiver or the retried batch is the trouble), else the oldest. Any other answer
  (delivered, or refused for good) opens the gate to every slot again.
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from contextlib import asynccontextmanager
from typing import Generic, TypeVar

import anyio
from anyio.abc import TaskGroup

from monitor.clock import Clock
from monitor.model import Event
from monitor.retry import backoff_delay

_B = TypeVar("_B")


def order_key(event: Event) -> Hashable:
    """Events with one key are delivered in outbox order: one job's, or one source's
    events about itself (``source.down``/``source.up``)."""
    return (event.manager, event.source, event.job_id)


class Lanes(Generic[_B]):
    """One round's batches: which may start now, which wait for their job's previous
    batch, and how much of the outbox is held unsettled.

    ``run(batch)`` delivers a batch and settles it; up to ``slots`` runner tasks call it
    in ``task_group``, which the owner cancels when the round is over (``idle``).
    """

    def __init__(
        self,
        task_group: TaskGroup,
        run: Callable[[_B], Awaitable[None]],
        *,
        slots: int,
        window: int,
    ) -> None:
        self._tg = task_group
        self._run = run
        self._slots = slots
        self.window = window
        self._ready: list[tuple[int, int, _B]] = []  # (position, size, batch), a heap
        self._queued: dict[Hashable, deque[tuple[int, int, _B]]] = {}
        self._busy: set[Hashable] = set()  # keys with a batch ready or in progress
        self._keys: dict[int, Hashable] = {}  # position -> key
        self._position = 0
        self._runners = 0
        self._idle: list[anyio.Event] = []  # runners waiting for a ready batch
        self.running = 0
        self.held = 0  # entries added and not settled
        self.settled = 0  # entries settled this round
        self._changed = anyio.Event()

    def add(self, batch: _B, key: Hashable | None, size: int) -> None:
        """Queue ``batch`` (``size`` outbox entries) behind the earlier batches of ``key``
        (None: no order to keep, e.g. entries that are only acknowledged)."""
        self._position += 1
        item = (self._position, size, batch)
        self.held += size
        if key is not None:
            self._keys[self._position] = key
            if key in self._busy:
                self._queued.setdefault(key, deque()).append(item)
                return
            self._busy.add(key)
        heapq.heappush(self._ready, item)
        self._fill()

    def idle(self) -> bool:
        return self.held == 0

    def next_settle(self) -> anyio.Event:
        """Set when the next batch settles (take it before yielding to the loop)."""
        return self._changed

    async def room(self) -> None:
        """Return when fewer than ``window`` entries are held."""
        while self.held >= self.window:
            await self._changed.wait()

    def _fill(self) -> None:
        """Wake an idle runner, or start one (at most ``slots``), for each ready batch."""
        wanted = len(self._ready)
        while wanted and self._idle:
            self._idle.pop().set()
            wanted -= 1
        while wanted and self._runners < self._slots:
            self._runners += 1
            self._tg.start_soon(self._runner)
            wanted -= 1

    async def _runner(self) -> None:
        """One slot: takes the oldest ready batch, delivers it, settles it; until the
        round's task group is cancelled (the round is over)."""
        while True:
            if not self._ready:
                wake = anyio.Event()
                self._idle.append(wake)
                await wake.wait()
                continue
            position, size, batch = heapq.heappop(self._ready)
            self.running += 1
            await self._run(batch)
            # settled: the slot and the job's lane are free
            self.running -= 1
            self.held -= size
            self.settled += size
            key = self._keys.pop(position, None)
            if key is not None:
                waiting = self._queued.get(key)
                if waiting:
                    heapq.heappush(self._ready, waiting.popleft())
                    if not waiting:
                        del self._queued[key]
                else:
                    self._busy.discard(key)
            self._fill()
            self._changed.set()
            self._changed = anyio.Event()


class Gate:
    """The sink's health as its answers tell it; see the module's docstring."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self.failures = 0  # retryable failures in a row, sink-wide
        self._not_before = 0.0  # monotonic: no request while failing before this
        self._probing = False
        self._waiting: set[tuple[bool, int]] = set()  # (a retry?, position)
        self._changed = anyio.Event()

    @property
    def failing(self) -> bool:
        return self.failures > 0

    @asynccontextmanager
    async def request(self, position: int, *, retry: bool) -> AsyncIterator[None]:
        """Hold the right to send one request (at once, unless the sink is failing)."""
        probing = False
        if self.failures:
            me = (retry, position)
            self._waiting.add(me)
            try:
                while self.failures:
                    wait = self._not_before - self._clock.monotonic()
                    if wait > 0:
                        await self._clock.sleep(wait)
                        continue
                    if not self._probing and me == min(self._waiting):
                        probing = self._probing = True
                        break
                    await self._changed.wait()
            finally:
                self._waiting.discard(me)
                self._signal()  # the next in line may be waiting for this one
        try:
            yield
        finally:
            if probing:
                self._probing = False
                self._signal()

    def answered(self) -> None:
        """The receiver answered (delivered, or refused for good): it is up."""
        if self.failures:
            self.failures = 0
            self._signal()

    def failed(
        self,
        attempt: int,
        *,
        initial: float,
        cap: float,
        rng: random.Random,
        retry_after: float | None,
        at_most: float,
    ) -> float:
        """A retryable failure of a batch's ``attempt``: the delay before its retry, which
        is also how long the whole sink waits (``at_most`` caps it: the batch's age)."""
        self.failures += 1
        delay = backoff_delay(
            max(attempt, self.failures),
            initial=initial,
            cap=cap,
            rng=rng,
            retry_after=retry_after,
        )
        delay = min(delay, at_most)
        self._not_before = self._clock.monotonic() + delay
        self._signal()
        return delay

    def _signal(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()
