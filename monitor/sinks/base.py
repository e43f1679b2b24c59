"""The delivery mechanism every sink shares (Alertmanager's notify pipeline, in small).

A sink is one object with ``name`` and ``async send(event)`` that either returns
(delivered) or raises ``DeliveryError`` saying whether a retry can help. Everything else
— reading the outbox in order, filters, back-off with full jitter, ``Retry-After``,
give-up rules, dead letters, disabling on 410, telemetry — lives here, once.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Protocol

import anyio

from monitor.clock import Clock
from monitor.model import Event
from monitor.retry import backoff_delay
from monitor.store import OutboxEntry, Store

# failure reasons: the `reason` label of cckm_notification_failures_total
TIMEOUT = "timeout"
CONNECTION = "connection"
HTTP_4XX = "http_4xx"
HTTP_5XX = "http_5xx"
INVALID = "invalid"
DEAD_LETTER = "dead_letter"
DISABLED = "disabled"
FAILURE_REASONS = (TIMEOUT, CONNECTION, HTTP_4XX, HTTP_5XX, INVALID, DEAD_LETTER, DISABLED)


class DeliveryError(Exception):
    """One delivery attempt failed. The message must hold no secret (no full URL)."""

    def __init__(
        self,
        message: str,
        *,
        reason: str,
        retryable: bool,
        retry_after: float | None = None,
        disable: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.retryable = retryable
        self.retry_after = retry_after
        self.disable = disable


class Sink(Protocol):
    name: str

    async def send(self, event: Event) -> None:
        """Deliver one event or raise DeliveryError."""
        ...


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    initial_seconds: float = 1.0
    max_seconds: float = 60.0
    max_age_seconds: float = 86400.0
    max_attempts: int | None = None


@dataclass(frozen=True, slots=True)
class Filters:
    events: frozenset[str] | None = None
    sources: frozenset[str] | None = None
    managers: frozenset[str] | None = None

    def accepts(self, event: Event) -> bool:
        return (
            (self.events is None or event.type.value in self.events)
            and (self.sources is None or event.source in self.sources)
            and (self.managers is None or event.manager in self.managers)
        )


class DeliveryObserver(Protocol):
    def delivered(self, sink: str, event: Event, seconds: float) -> None: ...

    def failed(
        self, sink: str, event: Event, error: DeliveryError, attempt: int, final: bool
    ) -> None: ...

    def queue_depth(self, sink: str, depth: int) -> None: ...

    def sink_disabled(self, sink: str, reason: str) -> None: ...


class Wakeup:
    """Wakes the delivery workers when the pollers commit new events.

    A generation counter, so a notification that arrives while a worker is busy is not
    lost: the worker's next ``wait`` returns at once.
    """

    def __init__(self) -> None:
        self.generation = 0
        self._event: anyio.Event | None = None

    def notify(self) -> None:
        self.generation += 1
        if self._event is not None:
            self._event.set()
            self._event = None

    async def wait(self, since: int, at_most: float) -> None:
        """Return when notified after generation ``since``, or after ``at_most`` seconds."""
        if self.generation != since:
            return
        if self._event is None:
            self._event = anyio.Event()
        event = self._event
        with anyio.move_on_after(at_most):
            await event.wait()


class DeliveryWorker:
    """Delivers one sink's outbox entries in order; never blocks other sinks or pollers."""

    def __init__(
        self,
        sink: Sink,
        store: Store,
        *,
        policy: RetryPolicy,
        filters: Filters,
        clock: Clock,
        wakeup: Wakeup,
        observer: DeliveryObserver,
        rng: random.Random | None = None,
        batch: int = 100,
    ) -> None:
        self.sink = sink
        self.name = sink.name
        self._store = store
        self._policy = policy
        self._filters = filters
        self._clock = clock
        self._wakeup = wakeup
        self._observer = observer
        self._rng = rng or random.Random()  # noqa: S311 - jitter
        self._batch = batch
        self.disabled: str | None = None  # why, after a 410

    async def run(self, idle_seconds: float = 5.0) -> None:
        """Deliver until cancelled, sleeping until woken when the outbox is empty."""
        while True:
            seen = self._wakeup.generation
            if not await self.deliver_pending():
                await self._wakeup.wait(seen, idle_seconds)

    async def deliver_pending(self) -> int:
        """Deliver everything queued now; returns how many entries were handled."""
        handled = 0
        while True:
            entries = self._store.pending(self.name, self._batch)
            self._observer.queue_depth(self.name, self._store.queue_depth(self.name))
            if not entries:
                return handled
            for entry in entries:
                await self._handle(entry)
                handled += 1

    async def drain(self, deadline_seconds: float) -> bool:
        """Deliver what is queued, giving up after the deadline; True if the queue is empty."""
        with anyio.move_on_after(deadline_seconds):
            await self.deliver_pending()
            return True
        return False

    async def _handle(self, entry: OutboxEntry) -> None:
        event = entry.event
        if self.disabled is not None or not self._filters.accepts(event):
            if self.disabled is not None:
                self._store.dead_letter(
                    self.name,
                    entry.seq,
                    reason=self.disabled,
                    attempts=0,
                    now=self._clock.now().timestamp(),
                )
            else:
                self._store.ack(self.name, entry.seq)
            return
        attempt = 0
        while True:
            attempt += 1
            started = self._clock.monotonic()
            try:
                await self.sink.send(event)
            except DeliveryError as exc:
                if await self._after_failure(entry, exc, attempt):
                    return
                continue
            self._store.ack(self.name, entry.seq)
            self._observer.delivered(self.name, event, self._clock.monotonic() - started)
            return

    async def _after_failure(self, entry: OutboxEntry, exc: DeliveryError, attempt: int) -> bool:
        """Wait before the next attempt, or give up; True when the entry is done."""
        event = entry.event
        age = (self._clock.now() - event.timestamp).total_seconds()
        policy = self._policy
        give_up = (
            not exc.retryable
            or exc.disable
            or age >= policy.max_age_seconds
            or (policy.max_attempts is not None and attempt >= policy.max_attempts)
        )
        self._observer.failed(self.name, event, exc, attempt, give_up)
        if exc.disable:
            self.disabled = f"disabled after: {exc.message}"
            self._observer.sink_disabled(self.name, exc.message)
        if give_up:
            self._store.dead_letter(
                self.name,
                entry.seq,
                reason=exc.message,
                attempts=attempt,
                now=self._clock.now().timestamp(),
            )
            return True
        delay = backoff_delay(
            attempt,
            initial=policy.initial_seconds,
            cap=policy.max_seconds,
            rng=self._rng,
            retry_after=exc.retry_after,
        )
        await self._clock.sleep(min(delay, max(policy.max_age_seconds - age, 0.0)))
        return False
