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
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol

import anyio

from monitor.clock import Clock
from monitor.logs import REDACTOR
from monitor.model import Event
from monitor.sinks.inflight import Gate, Lanes, order_key
from monitor.statefile import StoreError
from monitor.store import OutboxEntry, Store

DEPTH_EVERY_SECONDS = 1.0  # the queue depth gauge is counted at most this often
REREAD_SECONDS = 5.0  # with batches in flight, the outbox is read again at least this often

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
    were filtered out and are only acknowledged. ``order``: its place in the round."""

    entries: list[OutboxEntry] = field(default_factory=list)
    sent: list[OutboxEntry] = field(default_factory=list)
    order: int = 0

    @property
    def events(self) -> list[Event]:
        return [entry.event for entry in self.sent]

    @property
    def seqs(self) -> list[int]:
        return [entry.seq for entry in self.entries]

    @property
    def key(self) -> Hashable | None:
        """Its job's (or source's) lane; None when nothing is sent (no order to keep)."""
        return order_key(self.sent[0].event) if self.sent else None


def _one_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error a failed round stands for: the state file's first (it ends the worker),
    else the first bug; the group itself when it holds only cancellations."""
    leaves: list[BaseException] = []
    pending: list[BaseException] = [group]
    while pending:
        exc = pending.pop(0)
        if isinstance(exc, BaseExceptionGroup):
            pending.extend(exc.exceptions)
        else:
            leaves.append(exc)
    for kind in (StoreError, Exception):
        for exc in leaves:
            if isinstance(exc, kind):
                return exc
    return group


class DeliveryWorker:
    """Delivers one sink's outbox entries, up to ``max_in_flight`` batches at once, each
    job's (or source's) events in order; never blocks other sinks or pollers.

    With ``max_in_flight`` 1 it is the sequential worker: the outbox in order, a failing
    batch retried before anything after it is sent.
    """

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
        max_in_flight: int = 1,
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
        self.max_in_flight = max(1, max_in_flight)
        # entries one round holds unsettled: a job stuck in retries holds at most this
        self._window = self._page * (self.max_in_flight + 1)
        self._gate = Gate(clock)
        self._depth_at: float | None = None  # monotonic time of the last count
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
        lanes: Lanes[_Batch] | None = None
        try:
            try:
                async with anyio.create_task_group() as tg:
                    replaying: set[int] = set()  # replayed entries in the lanes

                    async def run(batch: _Batch) -> None:
                        await self._handle(batch)
                        replaying.difference_update(e.seq for e in batch.entries if e.replayed)

                    lanes = Lanes(tg, run, slots=self.max_in_flight, window=self._window)
                    await self._feed(lanes, replaying)
                    tg.cancel_scope.cancel()  # the idle runners
            except BaseExceptionGroup as group:
                raise _one_error(group) from None
            return lanes.settled if lanes is not None else 0
        finally:
            if lanes is not None and lanes.settled:
                # Idle keep-alive connections go stale (receivers drop them after seconds)
                # and a stopping daemon must not leak them: the sink reopens on next send.
                with anyio.CancelScope(shield=True):
                    await self.sink.close()

    async def _feed(self, lanes: Lanes[_Batch], replaying: set[int]) -> None:
        """Read the outbox page by page into the lanes until it is empty and settled."""
        read_to = 0  # the highest seq after the cursor handed to the lanes
        order = 0
        while True:
            await lanes.room()
            seen = self._wakeup.generation
            entries = self._store.pending(self.name, self._page, after=read_to, skip=replaying)
            if not entries:
                if lanes.idle():
                    self._observer.queue_depth(self.name, 0)
                    return
                self._report_depth()
                # a batch is in flight (perhaps retrying for long): read again when one
                # settles, when new events are committed, or after a while (a replay)
                settled = lanes.next_settle()
                await _first_of(settled.wait, partial(self._wakeup.wait, seen, REREAD_SECONDS))
                continue
            self._report_depth()
            batches = self._batches(entries)
            if len(entries) == self._page and len(batches) > 1:
                # the last batch may go on in the next page: fetch it again, whole
                batches.pop()
            for batch in batches:
                order += 1
                batch.order = order
                for entry in batch.entries:
                    if entry.replayed:
                        replaying.add(entry.seq)
                    else:
                        read_to = max(read_to, entry.seq)
                lanes.add(batch, batch.key, len(batch.entries))

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
        """Deliver one batch and settle it: acknowledged, or a dead letter."""
        if not batch.sent:
            await self._store.write(self._store.ack_many, self.name, batch.seqs)
            return
        events = batch.events
        attempt = 0
        first_try = self._clock.monotonic()
        age_then = self._wall_age(batch)
        while True:
            attempt += 1
            async with self._gate.request(batch.order, retry=attempt > 1):
                if self.disabled is not None:  # a 410, before or while this one waited
                    gone = DeliveryError(self.disabled, reason=DISABLED, retryable=False)
                    self._observer.failed(self.name, events, gone, 0, True)
                    await self._settle_dead(batch, reason=self.disabled, attempts=0)
                    return
                started = self._clock.monotonic()
                try:
                    await self.sink.send(events)
                except DeliveryError as exc:
                    # steady: the age at the first attempt plus monotonic time since, so a
                    # wall clock stepped forward dead-letters nothing young (and the wall
                    # age still counts when it is smaller, e.g. after a restart)
                    age = min(self._wall_age(batch), age_then + self._clock.monotonic() - first_try)
                    error, delay = exc, self._judge(exc, attempt, age)
                except Exception as exc:  # a bug in a sink must not stop the daemon
                    # not retried: the same events would fail the same way; kept for replay
                    error = DeliveryError(
                        f"the sink failed unexpectedly ({type(exc).__name__})",
                        reason=INVALID,
                        retryable=False,
                    )
                    delay = None
                else:
                    self._gate.answered()
                    await self._store.write(self._store.ack_many, self.name, batch.seqs)
                    seconds = self._clock.monotonic() - started
                    for event in events:
                        self._observer.delivered(self.name, event, seconds)
                    return
            if await self._after_failure(batch, error, attempt, delay):
                return

    def _judge(self, exc: DeliveryError, attempt: int, age: float) -> float | None:
        """Tell the gate what the receiver's answer says; the back-off before a retry
        (None: no retry, the batch is given up)."""
        policy = self._policy
        if not exc.retryable:
            self._gate.answered()  # refused for good: the receiver is up
        else:
            # the sink-wide wait too: the batch's age caps it, so max_age is kept exactly
            delay = self._gate.failed(
                attempt,
                initial=policy.initial_seconds,
                cap=policy.max_seconds,
                rng=self._rng,
                retry_after=exc.retry_after,
                at_most=max(policy.max_age_seconds - age, 0.0),
            )
            give_up = age >= policy.max_age_seconds or (
                policy.max_attempts is not None and attempt >= policy.max_attempts
            )
            if not give_up and not exc.disable:
                return delay
        return None

    async def _settle_dead(self, batch: _Batch, *, reason: str, attempts: int) -> None:
        sent = [entry.seq for entry in batch.sent]
        await self._store.write(  # retried while another process holds the write lock
            self._store.dead_letter_many,
            self.name,
            sent,
            reason=reason,
            attempts=attempts,
            now=self._clock.now().timestamp(),
            also_settled=[seq for seq in batch.seqs if seq not in sent],
        )

    def _wall_age(self, batch: _Batch) -> float:
        oldest = min(event.timestamp for event in batch.events)
        return max((self._clock.now() - oldest).total_seconds(), 0.0)

    def _report_depth(self) -> None:
        """Count the queue for the gauge, at most once a second (it costs milliseconds
        with a big backlog; the count was once made for every page)."""
        now = self._clock.monotonic()
        if self._depth_at is not None and now - self._depth_at < DEPTH_EVERY_SECONDS:
            return
        self._depth_at = now
        self._observer.queue_depth(self.name, self._store.queue_depth(self.name))

    async def _after_failure(
        self, batch: _Batch, exc: DeliveryError, attempt: int, delay: float | None
    ) -> bool:
        """Wait ``delay`` before the next attempt, or give up (``delay`` None); True when
        the batch is settled."""
        give_up = delay is None
        self._observer.failed(self.name, batch.events, exc, attempt, give_up)
        if exc.disable:
            self.disabled = f"disabled after: {exc.message}"
            self._observer.sink_disabled(self.name, exc.message)
        if delay is None:
            await self._settle_dead(batch, reason=exc.message, attempts=attempt)
            return True
        # the gauge moves while a worker waits: a backlog alert must see the queue grow
        self._report_depth()
        await self._clock.sleep(delay)
        return False


async def _first_of(*waits: Callable[[], Awaitable[object]]) -> None:
    """Return as soon as one of ``waits`` returns."""
    async with anyio.create_task_group() as tg:

        async def one(wait: Callable[[], Awaitable[object]]) -> None:
            await wait()
            tg.cancel_scope.cancel()

        for wait in waits:
            tg.start_soon(one, wait)
