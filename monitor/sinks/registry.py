"""Sink settings -> the sink object: the one place that knows every sink type."""

from __future__ import annotations

from monitor.config import SinkSettings
from monitor.sinks.base import Sink
from monitor.sinks.log import LogSink


class UnsupportedSink(Exception):
    """A sink type this version cannot deliver to yet."""


def build_sink(settings: SinkSettings, *, console: bool) -> Sink:
    """The sink for one ``sinks[]`` entry; ``console``: the log sink writes for a terminal."""
    if settings.type == "log":
        return LogSink(settings.name, console=console)
    raise UnsupportedSink(
        f"sink {settings.name!r}: type {settings.type!r} is not supported by this version "
        "of cckm-monitor yet"
    )
