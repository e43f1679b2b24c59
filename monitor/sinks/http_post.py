"""The one HTTP POST every HTTP sink uses, and the one reading of its answer.

An answer becomes success or a ``DeliveryError`` saying whether a retry can help
(docs/sinks.md has the table):

- 2xx: delivered.
- 3xx: permanent — redirects are not followed, a signed POST must not wander off.
- 408, 425, 429: retried ("try later" by definition); ``Retry-After`` honoured on 429.
- 410: permanent, and the sink is disabled until restart (the receiver is gone).
- any other 4xx (400, 401, 403, 404, 413, …): permanent — the same request would get
  the same answer, so it is dead-lettered at once instead of clogging the queue.
- 5xx: retried; ``Retry-After`` honoured on 503.
- timeouts, refused or dropped connections, TLS failures, garbled answers: retried; the
  message says which in words (``monitor.neterrors``): "connection refused", "name not
  resolved", "TLS verification failed (…)", "timed out", …

Messages name the receiver by ``redact_url`` only: webhook URLs carry their key in the
path, so no error or log line ever holds the full URL.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from http import HTTPStatus
from urllib.parse import urlsplit

import aiohttp

from monitor import __version__
from monitor.clock import Clock
from monitor.neterrors import INVALID as NET_INVALID
from monitor.neterrors import TIMEOUT as NET_TIMEOUT
from monitor.neterrors import describe
from monitor.retry import parse_retry_after
from monitor.sinks.base import (
    AUTH,
    CONNECTION,
    HTTP_4XX,
    HTTP_5XX,
    INVALID,
    TIMEOUT,
    DeliveryError,
)

USER_AGENT = f"cckm-monitor/{__version__}"
RETRYABLE_4XX = frozenset({408, 425, 429})
RETRY_AFTER_STATUSES = frozenset({429, 503})
GONE = 410
_SNIPPET_BYTES = 512
_SNIPPET_CHARS = 120
_SPACE = re.compile(r"\s+")


def _phrase(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


def classify(
    status: int,
    *,
    where: str,
    retry_after: float | None = None,
    detail: str = "",
) -> DeliveryError | None:
    """None for a 2xx; otherwise the error, retryable or not (the module's table)."""
    if 200 <= status < 300:
        return None
    said = f"{where} answered {_phrase(status)}" + (f": {detail}" if detail else "")
    if 300 <= status < 400:
        return DeliveryError(
            f"{said} (redirects are not followed: configure the final URL)",
            reason=INVALID,
            retryable=False,
        )
    if status == GONE:
        return DeliveryError(said, reason=HTTP_4XX, retryable=False, disable=True)
    if 400 <= status < 500:
        retryable = status in RETRYABLE_4XX
        return DeliveryError(
            said,
            reason=AUTH if status in (401, 403) else HTTP_4XX,
            retryable=retryable,
            retry_after=retry_after if status in RETRY_AFTER_STATUSES else None,
        )
    if 500 <= status < 600:
        return DeliveryError(
            said,
            reason=HTTP_5XX,
            retryable=True,
            retry_after=retry_after if status in RETRY_AFTER_STATUSES else None,
        )
    return DeliveryError(f"{where} answered with status {status}", reason=INVALID, retryable=True)


class HttpPoster:
    """POSTs to one URL through a session created on first use; ``close`` ends it.

    ``where`` is the receiver as messages may show it (``redact_url``); ``clock`` dates
    a ``Retry-After`` given as an HTTP date.
    """

    def __init__(
        self,
        url: str,
        *,
        where: str,
        timeout_seconds: float,
        clock: Clock,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.url = url
        self.where = where
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._clock = clock
        self._headers = {"User-Agent": USER_AGENT, **(headers or {})}
        self._session: aiohttp.ClientSession | None = None
        parts = urlsplit(url)
        # what an answer must not quote back to us: the URL, its path and its query
        self._hidden = sorted(
            (x for x in (url, parts.path, parts.query) if len(x) > 1), key=len, reverse=True
        )

    async def post(self, body: bytes, headers: Mapping[str, str]) -> None:
        """POST ``body`` (JSON) with these headers on top of the configured ones."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        sent = {**self._headers, **headers, "Content-Type": "application/json"}
        try:
            async with self._session.post(
                self.url, data=body, headers=sent, allow_redirects=False
            ) as response:
                raw = await response.content.read(_SNIPPET_BYTES)
                error = classify(
                    response.status,
                    where=self.where,
                    retry_after=parse_retry_after(
                        response.headers.get("Retry-After"), self._clock.now()
                    ),
                    detail="" if response.status < 400 else self._snippet(raw),
                )
        except aiohttp.InvalidURL:
            raise DeliveryError(
                f"{self.where}: the URL is not usable", reason=INVALID, retryable=False
            ) from None
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            # in words, as the manager client says them: refused, name not resolved, …
            failure = describe(exc)
            reason = {NET_TIMEOUT: TIMEOUT, NET_INVALID: INVALID}.get(failure.kind, CONNECTION)
            raise self._failed(f"failed: {failure.words}", reason) from None
        if error is not None:
            raise error

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _failed(self, what: str, reason: str) -> DeliveryError:
        return DeliveryError(f"POST to {self.where} {what}", reason=reason, retryable=True)

    def _snippet(self, raw: bytes) -> str:
        """The start of an error answer (Slack says ``invalid_blocks`` there), on one line,
        without the URL, its path or query should the receiver echo them."""
        text = raw.decode("utf-8", "replace")
        for hidden in self._hidden:
            text = text.replace(hidden, "…")
        text = "".join(ch for ch in _SPACE.sub(" ", text) if ch.isprintable()).strip()
        return text if len(text) <= _SNIPPET_CHARS else text[: _SNIPPET_CHARS - 1] + "…"
