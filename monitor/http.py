"""The daemon's HTTP server: metrics, health, readiness and a small read-only JSON API.

Nothing here calls the manager: answers come from memory and the state file, and
``/metrics`` only renders the registry that ``Telemetry`` keeps up to date.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio
from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from monitor.codec import essence_summary
from monitor.exposition import CONTENT_TYPE as TEXT_CONTENT_TYPE
from monitor.exposition import iter_text, render_gzip
from monitor.model import format_timestamp
from monitor.store import Store

MAX_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class SourceStatus:
    manager: str
    source: str
    ready: bool
    down: bool
    last_success_age: float | None  # seconds since the last good poll


StatusProvider = Callable[[], Sequence[SourceStatus]]


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status)


def _error(status: int, message: str) -> web.Response:
    return _json({"error": message}, status)


PROTECTED_PREFIXES = ("/metrics", "/api/")


def bearer_auth(token: str) -> Any:
    """Middleware: the protected paths need the bearer token (compared in constant time).

    The scheme is case-insensitive (RFC 7235: ``bearer``, ``BEARER`` …); the token is not.
    """
    expected = token.encode()

    @web.middleware
    async def check(request: web.Request, handler: Callable[[web.Request], Awaitable[Any]]) -> Any:
        if request.path.startswith(PROTECTED_PREFIXES):
            scheme, _, given = request.headers.get("Authorization", "").strip().partition(" ")
            presented = given.strip().encode("utf-8", "backslashreplace")
            if not (hmac.compare_digest(presented, expected) and scheme.lower() == "bearer"):
                response = _error(401, "a valid bearer token is required")
                response.headers["WWW-Authenticate"] = 'Bearer realm="cckm-monitor"'
                return response
        return await handler(request)

    return check


@web.middleware
async def json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[Any]]
) -> Any:
    """Unknown paths and wrong methods answer JSON ``{"error": …}``, as the API does."""
    try:
        return await handler(request)
    except web.HTTPMethodNotAllowed as exc:
        allowed = ", ".join(sorted(exc.allowed_methods))
        response = _error(405, f"{request.method} is not allowed here; use {allowed}")
        response.headers["Allow"] = ",".join(sorted(exc.allowed_methods))
        return response
    except web.HTTPNotFound:
        known = sorted(
            {
                info.get("path", "")
                for info in (r.get_info() for r in request.app.router.resources())
            }
            - {""}
        )
        return _error(404, f"no such endpoint; the endpoints are: {', '.join(known)}")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _error(exc.status, exc.reason)


def accepts_gzip(header: str) -> bool:
    """Whether an ``Accept-Encoding`` value accepts gzip (``gzip;q=0`` refuses it)."""
    for part in header.lower().split(","):
        coding, _, params = part.partition(";")
        if coding.strip() != "gzip":
            continue
        for param in params.split(";"):
            key, _, value = param.partition("=")
            if key.strip() == "q":
                try:
                    return float(value.strip()) > 0
                except ValueError:
                    return False
        return True
    return False


def metrics_handler(
    registry: CollectorRegistry,
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """``GET /metrics``: the Prometheus text format, or OpenMetrics when Accept asks."""

    async def metrics(request: web.Request) -> web.StreamResponse:
        # Rendering only reads values kept in memory (no I/O, no call to the manager), but
        # takes tens of ms for 42 sources and 1000 running jobs: a thread keeps the
        # pollers' timers on time. prometheus_client's metrics are thread-safe.
        encode, content_type = choose_encoder(request.headers.get("Accept", ""))
        headers = {"Content-Type": content_type}
        if content_type != TEXT_CONTENT_TYPE:
            body = await anyio.to_thread.run_sync(encode, registry)
            response = web.Response(body=body, headers=headers)
            response.enable_compression()  # only when the scraper accepts gzip
            return response
        if accepts_gzip(request.headers.get("Accept-Encoding", "")):
            # what Prometheus asks for: compressed by exposition.py, which keeps the
            # running jobs' lines compressed between scrapes (0.6 MB for 100,000 jobs)
            body = await anyio.to_thread.run_sync(render_gzip, registry)
            headers["Content-Encoding"] = "gzip"
            return web.Response(body=body, headers=headers)
        # the same text as prometheus_client's, faster, in pieces (exposition.py): one
        # piece is the usual answer; more go out as they are rendered, so that tracking
        # 100,000 running jobs a scrape never holds its 13 MB of text at once
        # (uncompressed: a scraper that does not take gzip takes no other compression)
        pieces = iter_text(registry)
        first = await anyio.to_thread.run_sync(next, pieces, b"")
        piece = await anyio.to_thread.run_sync(next, pieces, None)
        if piece is None:
            return web.Response(body=first, headers=headers)
        stream = web.StreamResponse(headers=headers)
        await stream.prepare(request)
        await stream.write(first)
        while piece is not None:
            await stream.write(piece)
            piece = await anyio.to_thread.run_sync(next, pieces, None)
        await stream.write_eof()
        return stream

    return metrics


def build_app(
    store: Store,
    status: StatusProvider,
    *,
    version: str,
    registry: CollectorRegistry | None = None,
    auth_token: str | None = None,
    extra_routes: Sequence[web.RouteDef] = (),
    sinks: Sequence[str] | None = None,
) -> web.Application:
    """The aiohttp application (tests mount it without a socket).

    ``registry``: served at ``/metrics``; without one there is no such route.
    ``auth_token``: ``/metrics`` and ``/api/v1/*`` then need ``Authorization: Bearer`` with
    it; ``/healthz`` and ``/readyz`` stay open for probes.
    ``sinks``: the configured sink names; ``/api/v1/deadletters?sink=`` answers 404 for any
    other name (without them, any name is looked up).
    """
    known_sinks = None if sinks is None else tuple(sinks)

    async def healthz(request: web.Request) -> web.Response:
        return _json({"status": "ok", "version": version})

    async def readyz(request: web.Request) -> web.Response:
        sources = status()
        ready = bool(sources) and all(s.ready for s in sources)
        body = {
            "ready": ready,
            "sources": [
                {
                    "manager": s.manager,
                    "source": s.source,
                    "ready": s.ready,
                    "down": s.down,
                    "last_success_age_seconds": s.last_success_age,
                }
                for s in sources
            ],
        }
        return _json(body, 200 if ready else 503)

    async def jobs(request: web.Request) -> web.Response:
        problem = _unknown_params(request, ("limit", "running"))
        if problem is not None:
            return problem
        limit = _limit(request, default=MAX_LIMIT)
        if isinstance(limit, web.Response):
            return limit
        running_only = _flag(request, "running")
        if isinstance(running_only, web.Response):
            return running_only
        rows = store.jobs(running_only=running_only, limit=limit)
        return _json({"jobs": [essence_summary(m, s, e) for m, s, e in rows]})

    async def events(request: web.Request) -> web.Response:
        problem = _unknown_params(request, ("limit",))
        if problem is not None:
            return problem
        limit = _limit(request, default=100)
        if isinstance(limit, web.Response):
            return limit
        return _json({"events": [e.envelope() for e in store.recent_events(limit)]})

    async def deadletters(request: web.Request) -> web.Response:
        problem = _unknown_params(request, ("sink",))
        if problem is not None:
            return problem
        sink = request.query.get("sink")
        if sink is not None and not sink.strip():
            return _error(400, "sink must name a configured sink")
        if sink is not None and known_sinks is not None and sink not in known_sinks:
            have = ", ".join(known_sinks) or "none"
            return _error(404, f"no sink named {sink[:100]!r}; the configured sinks: {have}")
        return _json(
            {
                "deadletters": [
                    {
                        "sink": d.sink,
                        "seq": d.seq,
                        "reason": d.reason,
                        "attempts": d.attempts,
                        "at": format_timestamp(datetime.fromtimestamp(d.at, UTC)),
                        "event": d.event.envelope(),
                    }
                    for d in store.dead_letters(sink)
                ]
            }
        )

    app = web.Application(
        middlewares=[json_errors, *([bearer_auth(auth_token)] if auth_token else [])]
    )
    app.add_routes(
        [
            web.get("/healthz", healthz),
            web.get("/readyz", readyz),
            web.get("/api/v1/jobs", jobs),
            web.get("/api/v1/events", events),
            web.get("/api/v1/deadletters", deadletters),
            *extra_routes,
        ]
    )
    if registry is not None:
        app.router.add_get("/metrics", metrics_handler(registry))
    return app


def _unknown_params(request: web.Request, known: Sequence[str]) -> web.Response | None:
    """A 400 naming the first query parameter the endpoint does not take, or one given
    twice; None when all is well."""
    for name in request.query:
        if name not in known:
            takes = ", ".join(known)
            return _error(
                400, f"unknown query parameter {name[:100]!r}; this endpoint takes: {takes}"
            )
        if len(request.query.getall(name)) > 1:
            return _error(400, f"query parameter {name!r} is given more than once")
    return None


_TRUE = frozenset({"1", "true", "yes"})
_FALSE = frozenset({"0", "false", "no"})


def _flag(request: web.Request, name: str) -> bool | web.Response:
    raw = request.query.get(name)
    if raw is None:
        return False
    word = raw.strip().lower()
    if word in _TRUE | _FALSE:
        return word in _TRUE
    return _error(400, f"{name} must be true or false (or 1/0, yes/no)")


def _limit(request: web.Request, *, default: int) -> int | web.Response:
    raw = request.query.get("limit")
    if raw is None:
        return default
    text = raw.strip()
    if not (text.isascii() and text.isdigit() and 1 <= int(text) <= MAX_LIMIT):
        return _error(400, f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return int(text)


class HttpServer:
    """Runs the application on ``host:port`` until stopped."""

    def __init__(self, app: web.Application, host: str, port: int) -> None:
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        self._host = host
        self._port = port
        self.port: int | None = None

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port, reuse_address=True)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else self._port

    async def stop(self) -> None:
        await self._runner.cleanup()

    @property
    def url(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"
