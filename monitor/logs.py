"""structlog set-up: one stream, JSON when not a terminal, readable when it is; no secrets.

The log sink's event lines and the daemon's own lines (poll errors, start-up, shutdown)
go through the same processors, so format and redaction cannot drift apart.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any, TextIO
from urllib.parse import quote, quote_plus, urlsplit

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
_KEY_SEGMENT = 8  # a URL path segment this long with a digit in it may be a key
_HEX = re.compile(r"%[0-9A-F]{2}")
# header values "<scheme> <credential>": the credential alone is echoed too
_AUTH_SCHEME = re.compile(
    r"^(bearer|basic|token|bot|apikey|api-key|key|geniekey|splunk|ssws)\s+(\S{4,})$",
    re.IGNORECASE,
)


class Redactor:
    """Replaces every known secret value, wherever it appears in a log line.

    A secret is also caught in the forms a server echoes it in: JSON string escaping,
    URL encoding (``quote``, ``quote_plus``, upper or lower case hex) and, for a URL that
    carries its key in the path (Slack, Teams), the path, the query and the key segments.
    """

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._order: tuple[str, ...] = ()  # longest first: a secret inside another one
        self._size = 0  # len(_secrets) when _order was built (tests may shrink the set)
        self.generation = 0  # moves when secrets are added: texts scrubbed before are stale

    def add(self, values: Iterable[str | None]) -> None:
        for value in values:
            if value and len(value) >= _MIN_SECRET:
                self._secrets.update(f for f in echoes(value) if len(f) >= _MIN_SECRET)
        self._size = -1
        self.generation += 1

    def scrub(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.scrub_text(value)
        if isinstance(value, dict):
            return {
                k: REDACTED if k in SECRET_KEYS and v else self.scrub(v) for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self.scrub(v) for v in value]
        return value

    def scrub_text(self, text: str) -> str:
        """``text`` with every registered secret (in every echoed form) replaced."""
        if not self._secrets:
            return text
        if self._size != len(self._secrets):
            self._order = tuple(sorted(self._secrets, key=len, reverse=True))
            self._size = len(self._secrets)
        for secret in self._order:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

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


def echoes(secret: str) -> set[str]:
    """``secret`` and the forms a server may quote it back in."""
    forms = {secret}
    scheme = _AUTH_SCHEME.match(secret)
    if scheme is not None:  # a header value "Bearer <token>": the token alone too
        forms.add(scheme.group(2))
        if scheme.group(1).lower() == "basic":
            with suppress(ValueError):  # not base64, or not text (UnicodeDecodeError)
                forms.add(base64.b64decode(scheme.group(2), validate=True).decode())
    parts = urlsplit(secret) if "://" in secret else None
    if parts is not None and parts.scheme in {"http", "https"} and parts.netloc:
        # the key of a Slack or Teams URL is its path (or query); receivers echo those
        if len(parts.path) >= _KEY_SEGMENT:
            forms.add(parts.path)
        if parts.query:
            forms.add(parts.query)
        forms.update(
            segment
            for segment in parts.path.split("/")
            if len(segment) >= _KEY_SEGMENT and any(ch.isdigit() for ch in segment)
        )
    for _ in range(2):  # escaped once, or twice: a JSON body quoted inside a JSON string
        for form in list(forms):
            forms.add(json.dumps(form)[1:-1])
            forms.add(json.dumps(form, ensure_ascii=False)[1:-1])
            forms.add(json.dumps(form)[1:-1].replace("/", "\\/"))  # PHP's escaped slashes
    for form in list(forms):
        for encoded in (quote(form, safe=""), quote(form), quote_plus(form)):
            forms.add(encoded)
            forms.add(_HEX.sub(lambda m: m.group(0).lower(), encoded))
    return forms


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
