"""The shared sink test kit: a real loopback receiver, sinks built from settings, events.

Every HTTP sink runs the same checks against the same receiver (Alertmanager's lesson:
one retry test kit for every integration). Nothing here is mocked: the sinks speak
HTTP to an aiohttp server on 127.0.0.1 that answers what the test scripted.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import anyio
from aiohttp import web
from anyio.from_thread import start_blocking_portal

from monitor.clock import Clock
from monitor.config import (
    AlertmanagerSinkSettings,
    SinkSettings,
    SlackSinkSettings,
    WebhookSinkSettings,
)
from monitor.model import Event, EventType, event_id
from monitor.sinks.base import Sink
from monitor.sinks.registry import build_sink
from tests.processes import free_port

HTTP_SINKS = ("webhook", "slack", "alertmanager")
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # Standard Webhooks' example secret
# the part of a URL that must never appear in a message: webhook keys live in the path
PATH_SECRET = "s3cr3t-path-key"
PATHS = {
    "webhook": f"/hooks/{PATH_SECRET}",
    "slack": f"/services/T000/B000/{PATH_SECRET}",
    "alertmanager": "/api/v2/alerts",
}
T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Reply:
    """What the receiver answers to one request. ``hang``: never answer (a timeout, or a
    2xx lost on the way back: the request was received and recorded)."""

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: str = ""
    hang: bool = False


@dataclass(frozen=True)
class Received:
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    """An aiohttp server on loopback that records requests and answers from a script.

    ``stop`` and ``start`` again on the same port: a receiver that was down comes back.
    """

    def __init__(self, port: int | None = None, default: Reply | None = None) -> None:
        self.port = port or free_port()
        self.script: list[Reply] = []
        self.default = default or Reply()
        self.requests: list[Received] = []
        self.arrived = anyio.Event()
        self._release = anyio.Event()
        self._runner: web.AppRunner | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, kind: str) -> str:
        """Where a sink of ``kind`` posts (Alertmanager's sink adds the path itself)."""
        return self.base if kind == "alertmanager" else self.base + PATHS[kind]

    def answer(self, *replies: Reply) -> None:
        self.script.extend(replies)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(
            Received(request.path, request.query_string, dict(request.headers), body)
        )
        self.arrived.set()
        self.arrived = anyio.Event()
        reply = self.script.pop(0) if self.script else self.default
        if reply.hang:
            await self._release.wait()
        return web.Response(status=reply.status, headers=dict(reply.headers), text=reply.body)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True).start()

    async def stop(self) -> None:
        self._release.set()  # let hanging handlers finish so the server can close
        self._release = anyio.Event()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def json(self, index: int = -1) -> Any:
        return json.loads(self.requests[index].body)


@asynccontextmanager
async def receiver(default: Reply | None = None) -> AsyncIterator[Receiver]:
    rcv = Receiver(default=default)
    await rcv.start()
    try:
        yield rcv
    finally:
        await rcv.stop()


@contextmanager
def receiver_in_thread(default: Reply | None = None) -> Iterator[Receiver]:
    """A receiver on its own event loop, for code that runs ``anyio.run`` itself (the CLI)."""
    with start_blocking_portal() as portal:
        rcv = portal.call(lambda: Receiver(default=default))
        portal.call(rcv.start)
        try:
            yield rcv
        finally:
            portal.call(rcv.stop)


def sink_settings(kind: str, url: str, *, timeout: float = 0.2, **extra: Any) -> SinkSettings:
    """Validated settings of one HTTP sink, as a config file would give them."""
    data: dict[str, Any] = {"type": kind, "name": kind, "url": url, "timeout_seconds": timeout}
    if kind == "webhook":
        data.setdefault("secret", SECRET)
    data.update(extra)
    models: dict[str, type[SinkSettings]] = {
        "webhook": WebhookSinkSettings,
        "slack": SlackSinkSettings,
        "alertmanager": AlertmanagerSinkSettings,
    }
    return models[kind].model_validate(data)


def make_sink(
    kind: str, url: str, *, timeout: float = 0.2, clock: Clock | None = None, **extra: Any
) -> Sink:
    """A sink built the daemon's way: settings -> registry.build_sink."""
    return build_sink(
        sink_settings(kind, url, timeout=timeout, **extra), console=False, clock=clock
    )


def job_event(
    kind: EventType = EventType.JOB_FAILED,
    *,
    job: str = "6a1f0c2e-0001",
    scope: str | None = None,
    message: str | None = None,
    at: datetime = T0,
    manager: str = "prod",
    source: str = "aws",
    **data: Any,
) -> Event:
    """A job event shaped like the differ's (contract.md's envelope)."""
    body: dict[str, Any] = {
        "manager": manager,
        "source": source,
        "cloud": "aws",
        "job_id": job,
        "status": "failed" if kind is EventType.JOB_FAILED else "in_progress",
        "previous_status": "in_progress",
        "abort": False,
        "created_at": "2026-11-23T09:00:00.000Z",
        "updated_at": None,
        "completed_at": None,
        "duration_seconds": 3600.0 if kind is EventType.JOB_FAILED else None,
        "scopes": ["kms"],
        "detailed_status": {scope: message} if scope and message else {},
        "scope": scope,
        "scope_status": message,
    }
    body.update(data)
    return Event(
        id=event_id(manager, source, job, kind.value, scope or ""),
        type=kind,
        timestamp=at,
        manager=manager,
        source=source,
        job_id=job,
        data=body,
    )


def source_event(kind: EventType, *, at: datetime = T0, source: str = "aws") -> Event:
    return Event(
        id=event_id("prod", source, kind.value, "1"),
        type=kind,
        timestamp=at,
        manager="prod",
        source=source,
        data={
            "manager": "prod",
            "source": source,
            "consecutive_failures": 3,
            "reason": "timeout" if kind is EventType.SOURCE_DOWN else None,
            "error": "the manager did not answer in 10 s"
            if kind is EventType.SOURCE_DOWN
            else None,
        },
    )
