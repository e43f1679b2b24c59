"""Sink settings -> the sink object: the one place that knows every sink type.

HTTP sinks open their session on first use; whoever builds a sink closes it with
``await sink.close()`` when done (the daemon at shutdown, ``test-notification`` after
sending).
"""

from __future__ import annotations

from monitor.clock import Clock
from monitor.config import (
    AlertmanagerSinkSettings,
    LogSinkSettings,
    SinkSettings,
    SlackSinkSettings,
    WebhookSinkSettings,
)
from monitor.logs import get_logger
from monitor.model import TERMINAL_EVENTS, EventType
from monitor.sinks.alertmanager import AlertmanagerSink
from monitor.sinks.base import Sink
from monitor.sinks.log import LogSink
from monitor.sinks.slack import SlackSink
from monitor.sinks.webhook import WebhookSink


class UnsupportedSink(Exception):
    """A sink type this version cannot deliver to yet."""


def build_sink(settings: SinkSettings, *, console: bool, clock: Clock | None = None) -> Sink:
    """The sink for one ``sinks[]`` entry.

    ``console``: the log sink writes for a terminal. ``clock`` (default: the system's)
    dates what the sinks stamp: webhook timestamps, Alertmanager ``endsAt``.
    """
    if isinstance(settings, LogSinkSettings):
        return LogSink(settings.name, console=console)
    if isinstance(settings, WebhookSinkSettings):
        return WebhookSink(
            settings.name,
            settings.url.get_secret_value(),
            where=settings.display_url,
            signing_key=settings.signing_key(),
            headers=settings.headers,
            timeout_seconds=settings.timeout_seconds,
            clock=clock,
        )
    if isinstance(settings, SlackSinkSettings):
        return SlackSink(
            settings.name,
            settings.url.get_secret_value(),
            where=settings.display_url,
            timeout_seconds=settings.timeout_seconds,
            clock=clock,
        )
    if isinstance(settings, AlertmanagerSinkSettings):
        _warn_unresolvable(settings)
        return AlertmanagerSink(
            settings.name,
            settings.url,
            where=settings.display_url,
            resolve_after_seconds=settings.resolve_after_seconds,
            headers=settings.headers,
            timeout_seconds=settings.timeout_seconds,
            clock=clock,
        )
    raise UnsupportedSink(
        f"sink {settings.name!r}: type {settings.type!r} is not supported by this version "
        "of cckm-monitor yet"
    )


def _warn_unresolvable(settings: AlertmanagerSinkSettings) -> None:
    """An events filter that lets an open alert fire but not the event that resolves it
    leaves the alert firing for weeks: say so at start, once."""
    if settings.events is None:
        return
    chosen = set(settings.events)
    missing: list[str] = []
    if EventType.JOB_STUCK in chosen:
        missing += sorted(e.value for e in TERMINAL_EVENTS if e not in chosen)
    if EventType.SOURCE_DOWN in chosen and EventType.SOURCE_UP not in chosen:
        missing.append(EventType.SOURCE_UP.value)
    if missing:
        get_logger("cckm_monitor").warning(
            "sink.filter_keeps_alerts_open",
            sink=settings.name,
            missing_events=missing,
            hint="these events resolve alerts in Alertmanager; add them to the sink's events",
        )
