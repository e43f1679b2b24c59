"""structlog set-up: one stream, JSON when not a terminal, readable when it is; no secrets.

The log sink's event lines and the daemon's own lines (poll errors, start-up, shutdown)
go through the same processors, so format and redaction cannot drift apart.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, MutableMapping
from datetime import UTC, datetime
from typing import Any, TextIO

import structlog

from monitor.model import format_timestamp

REDACTED = "***"
SECRET_KEYS = frozenset(
    {
        "password",
        "refresh_token",
        "token",
        "jwt",
        "secret",
        "authorization",
        "auth_token",
        "url_with_key",
    }
)
_MIN_SECRET = 4  # shorter "secrets" would redact ordinary words


class Redactor:
    """Replaces every known secret value, wherever it appears in a log line."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()

    def add(self, values: Iterable[str | None]) -> None:
        self._secrets.update(v for v in values if v and len(v) >= _MIN_SECRET)

    def scrub(self, value: Any) -> Any:
        if isinstance(value, str):
            for secret in self._secrets:
                if secret in value:
                    value = value.replace(secret, REDACTED)
            return value
        if isinstance(value, dict):
            return {
                k: REDACTED if k in SECRET_KEYS and v else self.scrub(v) for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self.scrub(v) for v in value]
        return value

    def __call__(
        self, logger: Any, name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key, value in list(event_dict.items()):
            if key in SECRET_KEYS and value:
                event_dict[key] = REDACTED
            else:
                event_dict[key] = self.scrub(value)
        return event_dict


REDACTOR = Redactor()


def _timestamp(
    logger: Any, name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    # an event line keeps the event's own timestamp; the daemon's lines get "now"
    event_dict.setdefault("timestamp", format_timestamp(datetime.now(UTC)))
    return event_dict


def use_console(fmt: str, stream: TextIO) -> bool:
    if fmt == "console":
        return True
    if fmt == "json":
        return False
    return bool(getattr(stream, "isatty", lambda: False)())


def configure_logging(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> bool:
    """Set up structlog; returns True when lines are rendered for a terminal."""
    out = stream or sys.stdout
    console = use_console(fmt, out)
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=console and out.isatty(), sort_keys=False)
        if console
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            _timestamp,
            REDACTOR,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    return console


def get_logger(name: str = "cckm_monitor") -> Any:
    return structlog.get_logger(name)
