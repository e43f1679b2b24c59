"""The ``webhook`` sink: the event envelope as JSON, signed the Standard Webhooks way.

Each request carries ``webhook-id`` (the event id: the same on every retry, so the
receiver can de-duplicate), ``webhook-timestamp`` (unix seconds of this attempt) and,
with a secret, ``webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``
over the exact bytes sent. Signing is done by the reference ``standardwebhooks``
package, so what receivers verify with it is what we produce by construction.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from standardwebhooks import Webhook

from monitor.clock import Clock, SystemClock
from monitor.model import Event
from monitor.sinks.http_post import HttpPoster


def envelope_body(event: Event) -> str:
    """The request body: the envelope as compact JSON (ASCII, so text and bytes agree)."""
    return json.dumps(event.envelope(), separators=(",", ":"), ensure_ascii=True)


class WebhookSink:
    """POSTs one event per request; retries are the delivery worker's business."""

    max_batch = 1

    def __init__(
        self,
        name: str,
        url: str,
        *,
        where: str,
        signing_key: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout_seconds: float = 10.0,
        clock: Clock | None = None,
    ) -> None:
        self.name = name
        self._clock = clock or SystemClock()
        # Webhook(bytes) takes the key as is: the config already decoded whsec_ base64
        self._signer = None if signing_key is None else Webhook(signing_key)
        self._poster = HttpPoster(
            url,
            where=where,
            timeout_seconds=timeout_seconds,
            clock=self._clock,
            headers=headers,
        )

    def signed_headers(self, event: Event, body: str) -> dict[str, str]:
        """The Standard Webhooks headers for this attempt of ``event`` with ``body``."""
        seconds = int(self._clock.now().timestamp())
        headers = {"webhook-id": event.id, "webhook-timestamp": str(seconds)}
        if self._signer is not None:
            moment = datetime.fromtimestamp(seconds, UTC)
            headers["webhook-signature"] = self._signer.sign(event.id, moment, body)
        return headers

    async def send(self, events: Sequence[Event]) -> None:
        """POST each event; ``max_batch`` is 1, so the worker hands them one at a time."""
        for event in events:
            body = envelope_body(event)
            await self._poster.post(body.encode(), self.signed_headers(event, body))

    async def close(self) -> None:
        await self._poster.close()
