"""Build the simulator's aiohttp application and serve it (plain HTTP or TLS)."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path

from aiohttp import web

from monitor.simulator.api import handle_api
from monitor.simulator.config import SimConfig
from monitor.simulator.context import SIMULATOR, Simulator
from monitor.simulator.control import add_routes
from monitor.simulator.state import SimState
from monitor.simulator.tls import write_certificates

TICK_SECONDS = 0.25  # how often the background task applies due transitions


def build_app(config: SimConfig, *, clock: Callable[[], float] = time.time) -> web.Application:
    """The simulator as an aiohttp application: /api (the manager) and /sim/v1 (control).

    ``clock`` gives epoch seconds; pass a fake clock's function to drive job life cycles
    from a test. The simulator object is ``app[SIMULATOR]``.
    """
    app = web.Application()
    app[SIMULATOR] = Simulator.create(config, clock)

    async def date_header(request: web.Request, response: web.StreamResponse) -> None:
        # the manager's own clock, as a real manager's answers carry it (the monitor bounds
        # what it believes of job timestamps by it)
        response.headers["Date"] = formatdate(clock(), usegmt=True)

    app.on_response_prepare.append(date_header)
    add_routes(app)
    app.router.add_route("*", "/api", handle_api)
    app.router.add_route("*", "/api/{tail:.*}", handle_api)
    app.cleanup_ctx.append(_ticker)
    return app


async def _ticker(app: web.Application) -> AsyncIterator[None]:
    """Apply due transitions even when nobody asks (transition log, demo liveliness)."""
    state = app[SIMULATOR].state

    async def tick() -> None:
        while True:
            state.advance()
            await asyncio.sleep(TICK_SECONDS)

    task = asyncio.create_task(tick())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@dataclass(frozen=True)
class RunningSimulator:
    """A simulator listening on a socket: where it is and what it holds."""

    url: str  # e.g. http://127.0.0.1:54321 (no trailing slash; /api paths go after it)
    port: int
    ca_file: Path | None  # the CA certificate to trust, with tls=True
    state: SimState  # the job store, for in-process tests
    app: web.Application

    @property
    def simulator(self) -> Simulator:
        return self.app[SIMULATOR]


def _check_host(host: str, allow_remote: bool) -> None:
    if allow_remote or host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(
            f"refusing to bind the simulator to non-loopback address {host!r} "
            "(--allow-remote, or allow_remote=True, allows it)"
        )


def _bind(host: str, port: int) -> socket.socket:
    info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(info[0], socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(info[4])
    except OSError:
        sock.close()
        raise
    return sock


@contextlib.asynccontextmanager
async def running_simulator(
    config: SimConfig,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    tls: bool = False,
    cert_dir: Path | None = None,
    clock: Callable[[], float] = time.time,
    allow_remote: bool = False,
) -> AsyncIterator[RunningSimulator]:
    """Serve a simulator on ``host:port`` (0: any free port) for the ``async with`` body.

    With ``tls`` a CA and server certificate are written to ``cert_dir`` (a temporary
    directory, removed afterwards, when None); ``ca_file`` points at the CA certificate.
    """
    _check_host(host, allow_remote)
    with contextlib.ExitStack() as files:
        ssl_context = None
        ca_file = None
        if tls:
            directory = cert_dir
            if directory is None:
                directory = Path(files.enter_context(tempfile.TemporaryDirectory()))
            certs = write_certificates(directory)
            ssl_context, ca_file = certs.server_context(), certs.ca_file
        app = build_app(config, clock=clock)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            sock = _bind(host, port)
            site = web.SockSite(runner, sock, ssl_context=ssl_context)
            await site.start()
            bound = sock.getsockname()[1]
            scheme = "https" if tls else "http"
            shown = f"[{host}]" if ":" in host else host
            yield RunningSimulator(
                url=f"{scheme}://{shown}:{bound}",
                port=bound,
                ca_file=ca_file,
                state=app[SIMULATOR].state,
                app=app,
            )
        finally:
            await runner.cleanup()


async def serve(
    config: SimConfig,
    *,
    host: str,
    port: int,
    tls: bool,
    cert_dir: Path | None,
    announce: Callable[[str], None],
    allow_remote: bool = False,
) -> None:
    """Run a simulator until cancelled, telling ``announce`` where it listens."""
    async with running_simulator(
        config, host=host, port=port, tls=tls, cert_dir=cert_dir, allow_remote=allow_remote
    ) as sim:
        announce(f"simulator listening on {sim.url}")
        if sim.ca_file is not None:
            announce(f"CA certificate for clients (ca_file): {sim.ca_file}")
        announce(
            f"log in as {config.username!r}; control API at {sim.url}/sim/v1 "
            f"({len(config.sources)} sources, history {config.history} per source, "
            f"{config.schedules} schedules)"
        )
        await asyncio.Event().wait()
