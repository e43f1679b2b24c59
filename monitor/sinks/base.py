"""The delivery mechanism every sink shares (Alertmanager's notify pipeline, in small).

A sink is one object with ``name``, ``max_batch``, ``async send(events)`` and
``async close()``. ``send`` either returns (every event of the batch delivered) or
raises ``DeliveryError`` saying whether a retry can help. Everything else — reading the
outbox in order, filters, batching, back-off with full jitter, ``Retry-After``, give-up
rules, dead letters, disabling on 410, closing idle connections, telemetry — lives
here, once.
"""

from __future__ import annotations

import random
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import anyio

from monitor.clock import Clock
from monitor.logs import REDACTOR
from monitor.model import Event
from monitor.retry import backoff_delay
from monitor.statefile import StoreError
from monitor.store import OutboxEntry, Store

# failure reasons: the `reason` label of cckm_notification_failures_total
TIMEOUT = "timeout"
CONNECTION = "connection"
HTTP_4XX = "http_4xx"
HTTP_5XX = "http_5xx"
AUTH = "auth"  # 401/403: the receiver refuses our credentials
INVALID = "invalid_response"  # a redirect, a non-HTTP answer, a sink's own bug
DEAD_LETTER = "dead_letter"
DISABLED = "disabled"
INTERNAL = "internal"  # a bug of ours outside the sink's send, caught by the supervisor
# the contract's fixed set, plus what only delivery has: giving up, a disabled sink, a bug
FAILURE_REASONS = (
    TIMEOUT, CONNECTION, HTTP_4XX, HTTP_5XX, AUTH, INVALID, DEAD_LETTER, DISABLED, INTERNAL,
)  # fmt: skip


class DeliveryError(Exception):
    """One delivery attempt failed. The message must hold no secret (no full URL); every
    configured secret a receiver echoed into it is scrubbed here, when it is made."""

    def __init__(
        self,
        message: str,
        *,
        reason: str,
        retryable: bool,
        retry_after: float | None = None,
        disable: bool = False,
    ) -> None:
        message = REDACTOR.scrub_text(message)
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.retryable = retryable
        self.retry_after = retry_after
        self.disable = disable


class Sink(Protocol):
    """One destination. ``max_batch``: how many events one ``send`` may carry (>= 1)."""

    name: str
    max_batch: int

    async def send(self, events: Sequence[Event]) -> None:
        """Deliver every event of the batch, or raise DeliveryError (none counts as sent)."""
        ...

    async def close(self) -> None:
        """Release connections; a later ``send`` opens them again."""
        ...


def batch_key(event: Event) -> Hashable:
    """Events that may share one batch: the same job (or source) seen in the same poll.

    Events of one poll carry the poll's instant as their timestamp, so a flood — forty
    regions of one job failing at once — has one key and becomes one message.
    """
    return (event.manager, event.source, event.job_id, event.timestamp)


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
        self, sink: str, events: Sequence[Event], error: DeliveryError, attempt: int, final: bool
    ) -> None:
        """One failed attempt at a batch (``final``: the batch is dead-lettered)."""
        ...

    def queue_depth(self, sink: str, depth: int) -> None: ...

    def sink_disabled(self, sink: str, reason: str) -> None: ...

    def delivery_crashed(self, sink: str, *, error: BaseException, traceback: bool) -> None:
        """A bug of ours in a delivery round (``traceback``: the first time it is seen)."""
        ...


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


@dataclass(slots=True)
class _Batch:
    """Consecutive outbox entries settled together: ``sent`` go to the sink, the rest
    were filtered out and are only acknowledged."""

    entries: list[OutboxEntry] = field(default_factory=list)
    sent: list[OutboxEntry] = field(default_factory=list)

    @property
    def events(self) -> list[Event]:
        return [entry.event for entry in self.sent]

    @property
    def seqs(self) -> list[int]:
        return [entry.seq for entry in self.entries]


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
        self._max_batch = max(1, sink.max_batch)
        self._page = max(batch, self._max_batch)
        self.disabled: str | None = None  # why, after a 410
        self._crashes_seen: set[str] = set()  # bugs already logged with their traceback

    async def run(self, idle_seconds: float = 5.0) -> None:
        """Deliver until cancelled, sleeping until woken when the outbox is empty.

        The idle wake-up also picks up dead letters re-queued by ``cckm-monitor replay``
        from another process. A bug in a round is logged, counted (``internal``) and the
        round tried again after ``idle_seconds``: nothing unacknowledged is lost. Only
        ``StoreError`` (the state file is gone or unwritable) ends the worker.
        """
        while True:
            seen = self._wakeup.generation
            try:
                handled = await self.deliver_pending()
            except StoreError:
                raise
            except Exception as exc:  # a bug of ours: log it, count it, try again later
                key = f"{type(exc).__name__}: {exc}"
                first = key not in self._crashes_seen
                if first and len(self._crashes_seen) < 100:
                    self._crashes_seen.add(key)
                self._observer.delivery_crashed(self.name, error=exc, traceback=first)
                await self._clock.sleep(idle_seconds)
                continue
            if not handled:
                await self._wakeup.wait(seen, idle_seconds)

    async def deliver_pending(self) -> int:
        """Deliver everything queued now; returns how many entries were handled."""
        handled = 0
        try:
            while True:
                entries = self._store.pending(self.name, self._page)
                self._observer.queue_depth(self.name, self._store.queue_depth(self.name))
                if not entries:
                    return handled
                batches = self._batches(entries)
                if len(entries) == self._page and len(batches) > 1:
                    # the last batch may go on in the next page: fetch it again, whole
                    batches.pop()
                for batch in batches:
                    await self._handle(batch)
                    handled += len(batch.entries)
        finally:
            if handled:
                # Idle keep-alive connections go stale (receivers drop them after seconds)
                # and a stopping daemon must not leak them: the sink reopens on next send.
                with anyio.CancelScope(shield=True):
                    await self.sink.close()

    async def drain(self, deadline_seconds: float) -> bool:
        """Deliver what is queued, giving up after the deadline; True if the queue is empty."""
        with anyio.move_on_after(deadline_seconds):
            await self.deliver_pending()
            return True
        return False

    async def close(self) -> None:
        """Close the sink's connections (``deliver_pending`` also does when it is done)."""
        await self.sink.close()

    def _batches(self, entries: Sequence[OutboxEntry]) -> list[_Batch]:
        """Split a page into batches: consecutive accepted events with one ``batch_key``,
        at most ``max_batch`` of them; filtered-out entries ride along with their
        neighbours so that acknowledging a batch never skips past an undelivered event."""
        batches = [_Batch()]
        key: Hashable = None
        for entry in entries:
            current = batches[-1]
            if not self._filters.accepts(entry.event):
                current.entries.append(entry)
                continue
            entry_key = batch_key(entry.event)
            if current.sent and (entry_key != key or len(current.sent) >= self._max_batch):
                current = _Batch()
                batches.append(current)
            key = entry_key
            current.entries.append(entry)
            current.sent.append(entry)
        return batches

    async def _handle(self, batch: _Batch) -> None:
        if not batch.sent:
            await self._store.write(self._store.ack_many, self.name, batch.seqs)
            return
        if self.disabled is not None:
            gone = DeliveryError(self.disabled, reason=DISABLED, retryable=False)
            self._observer.failed(self.name, batch.events, gone, 0, True)
            await self._settle_dead(batch, reason=self.disabled, attempts=0)
            return
        events = batch.events
        attempt = 0
        first_try = self._clock.monotonic()
        age_then = self._wall_age(batch)
        while True:
            attempt += 1
            started = self._clock.monotonic()
            try:
                await self.sink.send(events)
            except DeliveryError as exc:
                # steady: the age at the first attempt plus monotonic time since, so a wall
                # clock stepped forward dead-letters nothing young (and the wall age still
                # counts when it is smaller, e.g. after a restart)
                age = min(self._wall_age(batch), age_then + self._clock.monotonic() - first_try)
                if await self._after_failure(batch, exc, attempt, age):
                    return
                continue
            except Exception as exc:  # a bug in a sink must not stop the daemon
                # not retried: the same events would fail the same way; kept for replay
                error = DeliveryError(
                    f"the sink failed unexpectedly ({type(exc).__name__})",
                    reason=INVALID,
                    retryable=False,
                )
                await self._after_failure(batch, error, attempt, 0.0)
                return
            await self._store.write(self._store.ack_many, self.name, batch.seqs)
            seconds = self._clock.monotonic() - started
            for event in events:
                self._observer.delivered(self.name, event, seconds)
            return

    async def _settle_dead(self, batch: _Batch, *, reason: str, attempts: int) -> None:
        await self._store.write(  # retried while another process holds the write lock
            self._store.dead_letter_many,
            self.name,
            [entry.seq for entry in batch.sent],
            reason=reason,
            attempts=attempts,
            now=self._clock.now().timestamp(),
        )
        await self._store.write(self._store.ack_many, self.name, batch.seqs)

    def _wall_age(self, batch: _Batch) -> float:
        oldest = min(event.timestamp for event in batch.events)
        return max((self._clock.now() - oldest).total_seconds(), 0.0)

    async def _after_failure(
        self, batch: _Batch, exc: DeliveryError, attempt: int, age: float
    ) -> bool:
        """Wait before the next attempt, or give up; True when the batch is settled.

        ``age``: seconds since the batch's oldest event, as the policy judges it."""
        policy = self._policy
        give_up = (
            not exc.retryable
            or exc.disable
            or age >= policy.max_age_seconds
            or (policy.max_attempts is not None and attempt >= policy.max_attempts)
        )
        self._observer.failed(self.name, batch.events, exc, attempt, give_up)
        if exc.disable:
            self.disabled = f"disabled after: {exc.message}"
            self._observer.sink_disabled(self.name, exc.message)
        if give_up:
            await self._settle_dead(batch, reason=exc.message, attempts=attempt)
            return True
        # the gauge moves while a worker waits: a backlog alert must see the queue grow
        self._observer.queue_depth(self.name, self._store.queue_depth(self.name))
        delay = backoff_delay(
            attempt,
            initial=policy.initial_seconds,
            cap=policy.max_seconds,
            rng=self._rng,
            retry_after=exc.retry_after,
        )
        await self._clock.sleep(min(delay, max(policy.max_age_seconds - age, 0.0)))
        return False
