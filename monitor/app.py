"""Wiring only: build clients, pollers, sinks and the HTTP server; run them; shut down.

Shutdown runs in phases with a deadline (uvicorn/arq style): stop polling, drain the
sinks, close the store. A second SIGTERM/SIGINT forces the exit.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from functools import partial

import anyio
from prometheus_client import CollectorRegistry

from monitor import __version__
from monitor.cadence import first_offset
from monitor.clock import Clock, SystemClock
from monitor.cm.auth import Credentials
from monitor.cm.client import ClientOptions, ManagerClient
from monitor.config import ManagerSettings, Settings, SinkSettings
from monitor.families import FAMILIES
from monitor.http import HttpServer, SourceStatus, build_app
from monitor.lockfile import InstanceLock
from monitor.logs import REDACTOR, get_logger
from monitor.metrics import Metrics
from monitor.poller import PollOptions, SourcePoller
from monitor.sinks.base import DeliveryWorker, Filters, RetryPolicy, Wakeup
from monitor.sinks.registry import build_sink
from monitor.statefile import StoreError
from monitor.store import Store
from monitor.telemetry import Telemetry

DRAIN_SECONDS = 10.0  # how long shutdown waits for sinks to deliver what is queued
PRUNE_EVERY_SECONDS = 3600.0
READY_INTERVALS = 3  # /readyz: every source polled successfully within this many intervals
# how long one write of the running daemon may block the event loop waiting for another
# process's lock (a `replay`); then StoreBusy, and Store.write retries with awaited back-off
DAEMON_BUSY_TIMEOUT = 0.01


@dataclass(frozen=True, slots=True)
class DaemonInfo:
    """What a running daemon tells whoever started it (the demo prints it)."""

    http_url: str | None
    sources: int
    sinks: Sequence[str]


def register_secrets(settings: Settings) -> None:
    """Every secret of the config is redacted from every log line."""
    for manager in settings.managers:
        REDACTOR.add(
            [
                manager.password.get_secret_value() if manager.password else None,
                manager.refresh_token.get_secret_value() if manager.refresh_token else None,
            ]
        )
    for sink in settings.sinks:
        for attr in ("url", "secret"):
            value = getattr(sink, attr, None)
            if value is not None and hasattr(value, "get_secret_value"):
                REDACTOR.add([value.get_secret_value()])
        # custom headers often carry credentials (Authorization: Bearer …)
        REDACTOR.add(getattr(sink, "headers", {}).values())
    if settings.http.auth_token is not None:
        REDACTOR.add([settings.http.auth_token.get_secret_value()])


def client_options(manager: ManagerSettings, settings: Settings) -> ClientOptions:
    return ClientOptions(
        name=manager.name,
        url=manager.url,
        credentials=Credentials(
            username=manager.username,
            password=manager.password.get_secret_value() if manager.password else None,
            refresh_token=(
                manager.refresh_token.get_secret_value() if manager.refresh_token else None
            ),
            domain=manager.domain,
        ),
        verify_tls=manager.verify_tls,
        ca_file=None if manager.ca_file is None else str(manager.ca_file),
        timeout_seconds=settings.poll.timeout_seconds,
        max_concurrency=settings.poll.max_concurrency,
        max_response_bytes=settings.poll.max_response_bytes,
        max_pages=settings.poll.max_pages,
    )


def _filters(settings: SinkSettings) -> Filters:
    def names(values: Sequence[object] | None) -> frozenset[str] | None:
        return None if values is None else frozenset(str(v) for v in values)

    return Filters(
        events=names(settings.events),
        sources=names(settings.sources),
        managers=names(settings.managers),
    )


def _policy(settings: SinkSettings) -> RetryPolicy:
    r = settings.retry
    return RetryPolicy(
        initial_seconds=r.initial_seconds,
        max_seconds=r.max_seconds,
        max_age_seconds=r.max_age_seconds,
        max_attempts=r.max_attempts,
    )


class Daemon:
    """The running parts, built from settings. ``run`` or ``run_once`` drives them."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        clients: dict[str, ManagerClient],
        *,
        clock: Clock,
        console: bool,
        telemetry: Telemetry,
    ) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.wakeup = Wakeup()
        poll = settings.poll
        options = PollOptions(
            interval_seconds=poll.interval_seconds,
            jitter_fraction=poll.jitter_fraction,
            page_size=poll.page_size,
            strategy=poll.strategy,
            stuck_after_seconds=settings.stuck_after_seconds,
        )
        self.pollers = [
            SourcePoller(
                manager=m.name,
                family=FAMILIES[source],
                client=clients[m.name],
                store=store,
                options=options,
                clock=clock,
                observer=telemetry,
                on_commit=self.wakeup.notify,
            )
            for m in settings.managers
            for source in m.sources
        ]
        self.workers = [
            DeliveryWorker(
                build_sink(s, console=console),
                store,
                policy=_policy(s),
                filters=_filters(s),
                clock=clock,
                wakeup=self.wakeup,
                observer=telemetry,
                max_in_flight=s.max_in_flight,
            )
            for s in settings.sinks
        ]
        store.register_sinks(w.name for w in self.workers)

    def statuses(self) -> list[SourceStatus]:
        horizon = READY_INTERVALS * self.settings.poll.interval_seconds
        now = self.clock.monotonic()
        out = []
        for p in self.pollers:
            age = None if p.last_success is None else now - p.last_success
            out.append(
                SourceStatus(
                    p.manager,
                    p.source,
                    ready=age is not None and age <= horizon,
                    down=p.health.down,
                    last_success_age=age,
                )
            )
        return out

    async def run_once(self) -> None:
        async with anyio.create_task_group() as tg:
            for poller in self.pollers:
                tg.start_soon(poller.poll_guarded)
        await self.drain(DRAIN_SECONDS)

    async def drain(self, deadline: float) -> None:
        """Deliver what is queued, for at most ``deadline`` seconds; then close the sinks."""
        with anyio.move_on_after(deadline):
            async with anyio.create_task_group() as tg:
                for worker in self.workers:
                    tg.start_soon(worker.deliver_pending)
        with anyio.CancelScope(shield=True):
            for worker in self.workers:
                await worker.close()

    async def prune_forever(self) -> None:
        """Prune every hour. Ages run on the earlier of the wall clock and a steady one
        (the wall time at start plus monotonic time since): a wall clock stepped forward
        prunes nothing young. A bug here is logged and tried again next hour."""
        retention = self.settings.retention_days * 86400.0
        names = [w.name for w in self.workers]
        wall0, mono0 = self.clock.now().timestamp(), self.clock.monotonic()
        log = get_logger("cckm_monitor")
        while True:
            steady = wall0 + self.clock.monotonic() - mono0
            try:
                await self.store.write(
                    self.store.prune,
                    now=min(self.clock.now().timestamp(), steady),
                    retention_seconds=retention,
                    sinks=names,
                )
            except StoreError:
                raise
            except Exception as exc:  # a bug of ours must not stop the daemon
                log.error(
                    "prune.internal_error",
                    error=f"{type(exc).__name__}: {exc}",
                    hint="a bug in cckm-monitor; pruning is tried again in an hour",
                    exc_info=exc,
                )
            await self.clock.sleep(PRUNE_EVERY_SECONDS)

    async def run(self, stop: anyio.Event) -> None:
        """Run until ``stop`` is set, then shut down in phases."""
        log = get_logger("cckm_monitor")
        async with anyio.create_task_group() as tg:
            polling = anyio.CancelScope()
            delivering = anyio.CancelScope()

            async def pollers() -> None:
                with polling:
                    async with anyio.create_task_group() as inner:
                        # first polls spread over the first interval, not all at once
                        interval = self.settings.poll.interval_seconds
                        count = len(self.pollers)
                        for n, poller in enumerate(self.pollers):
                            offset = first_offset(n, count, interval)
                            inner.start_soon(partial(poller.run, first_delay=offset))

            async def workers() -> None:
                with delivering:
                    async with anyio.create_task_group() as inner:
                        for worker in self.workers:
                            inner.start_soon(worker.run)
                        inner.start_soon(self.prune_forever)

            tg.start_soon(pollers)
            tg.start_soon(workers)
            await stop.wait()
            log.info("daemon.stopping", phase="stop polling")
            polling.cancel()
            delivering.cancel()
            log.info("daemon.stopping", phase="drain sinks", deadline_seconds=DRAIN_SECONDS)
            await self.drain(DRAIN_SECONDS)
            tg.cancel_scope.cancel()


async def watch_signals(stop: anyio.Event, force: Callable[[], None]) -> None:
    """First SIGTERM/SIGINT: graceful stop. Second: forced exit."""
    log = get_logger("cckm_monitor")
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            if not stop.is_set():
                log.info(
                    "daemon.signal",
                    signal=signal.Signals(signum).name,
                    action="graceful shutdown; send again to force",
                )
                stop.set()
            else:
                log.warning(
                    "daemon.signal", signal=signal.Signals(signum).name, action="forced exit"
                )
                force()
                return


async def run_daemon(
    settings: Settings,
    *,
    once: bool = False,
    clock: Clock | None = None,
    console: bool = False,
    stop: anyio.Event | None = None,
    handle_signals: bool = True,
    on_ready: Callable[[DaemonInfo], None] | None = None,
) -> None:
    """The daemon: raises StoreError, UnsupportedSink or OSError when it cannot start,
    AlreadyRunning when another process holds the state file, and StoreError when the
    state file fails while running (raised as itself, never inside an exception group)."""
    try:
        await _run_daemon(
            settings,
            once=once,
            clock=clock,
            console=console,
            stop=stop,
            handle_signals=handle_signals,
            on_ready=on_ready,
        )
    except BaseExceptionGroup as group:
        fatal = _fatal_in(group)
        if fatal is None:
            raise
        raise fatal from None


def _fatal_in(group: BaseExceptionGroup[BaseException]) -> StoreError | None:
    """The StoreError that ended the task groups (the rest is their cancellation)."""
    for exc in group.exceptions:
        found = _fatal_in(exc) if isinstance(exc, BaseExceptionGroup) else exc
        if isinstance(found, StoreError):
            return found
    return None


async def _run_daemon(
    settings: Settings,
    *,
    once: bool,
    clock: Clock | None,
    console: bool,
    stop: anyio.Event | None,
    handle_signals: bool,
    on_ready: Callable[[DaemonInfo], None] | None,
) -> None:
    clock = clock or SystemClock()
    log = get_logger("cckm_monitor")
    register_secrets(settings)
    for manager in settings.managers:
        if not manager.verify_tls:
            log.warning(
                "tls.verification_disabled",
                manager=manager.name,
                hint="verify_tls is false: the manager's certificate is not checked",
            )
    # one daemon per state file (--once too), held until this process ends
    lock = (
        None
        if str(settings.state_path) == ":memory:"
        else InstanceLock.acquire(settings.state_path)
    )
    try:
        store = Store.open(settings.state_path)
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    registry = CollectorRegistry()  # never the global one: one daemon, one registry
    metrics = Metrics.from_settings(registry, settings, [s.name for s in settings.sinks])
    telemetry = Telemetry(log, metrics, clock=clock)
    try:
        async with AsyncExitStack() as stack:
            clients = {
                m.name: await stack.enter_async_context(
                    ManagerClient(
                        client_options(m, settings),
                        clock=clock,
                        on_response=partial(telemetry.api_response, m.name),
                    )
                )
                for m in settings.managers
            }
            daemon = Daemon(
                settings, store, clients, clock=clock, console=console, telemetry=telemetry
            )
            for poller in daemon.pollers:  # jobs running at the last stop, until the first poll
                telemetry.running_jobs(poller.manager, poller.source, poller.running)
            # from now on the event loop serves: a write never waits long for a lock
            store.set_busy_timeout(DAEMON_BUSY_TIMEOUT)
            if once:
                await daemon.run_once()
                return
            http = HttpServer(
                build_app(
                    store,
                    daemon.statuses,
                    version=__version__,
                    registry=registry,
                    auth_token=(
                        settings.http.auth_token.get_secret_value()
                        if settings.http.auth_token
                        else None
                    ),
                    sinks=[w.name for w in daemon.workers],
                ),
                settings.http.host,
                settings.http.port,
            )
            await http.start()
            stack.push_async_callback(http.stop)
            log.info(
                "daemon.started",
                version=__version__,
                http=http.url,
                sources=len(daemon.pollers),
                sinks=[w.name for w in daemon.workers],
                state_path=str(settings.state_path),
            )
            if on_ready is not None:
                on_ready(
                    DaemonInfo(http.url, len(daemon.pollers), [w.name for w in daemon.workers])
                )
            stop = stop or anyio.Event()
            async with anyio.create_task_group() as tg:
                if handle_signals:
                    tg.start_soon(watch_signals, stop, tg.cancel_scope.cancel)
                await daemon.run(stop)
                tg.cancel_scope.cancel()
            log.info("daemon.stopped")
    finally:
        store.close()
        if lock is not None:
            lock.release()
