"""Typed errors at the edge with CipherTrust Manager.

Each carries a ``reason`` from the fixed set used as the ``reason`` label of
``cckm_poll_errors_total``, and a message that is one clear sentence with no secret in it:
every configured secret is scrubbed from the message (and ``code_desc``) when the error is
made, whatever the manager echoed.
"""

from __future__ import annotations

from typing import Final

from monitor.logs import REDACTOR

TIMEOUT: Final = "timeout"
CONNECTION: Final = "connection"
HTTP_4XX: Final = "http_4xx"
HTTP_5XX: Final = "http_5xx"
AUTH: Final = "auth"
INVALID_RESPONSE: Final = "invalid_response"
INTERNAL: Final = "internal"  # a bug of ours in a cycle, caught by the poller's supervisor
REASONS: Final = (TIMEOUT, CONNECTION, HTTP_4XX, HTTP_5XX, AUTH, INVALID_RESPONSE, INTERNAL)


class CMError(Exception):
    """Talking to the manager failed."""

    reason: str = CONNECTION

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        # scrubbed here, at the edge: a manager may quote a password or token back to us,
        # and this message is logged, stored in events and served by the API
        message = REDACTOR.scrub_text(message)
        super().__init__(message)
        self.message = message
        self.status = status
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return False


class TransportError(CMError):
    """No answer: connection refused or dropped, TLS failure."""

    reason = CONNECTION

    @property
    def retryable(self) -> bool:
        return True


class RequestTimeout(TransportError):
    reason = TIMEOUT


class HTTPStatusError(CMError):
    """The manager answered with an error status."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        retry_after: float | None = None,
        code_desc: str | None = None,
    ) -> None:
        super().__init__(message, status=status, retry_after=retry_after)
        self.code_desc = None if code_desc is None else REDACTOR.scrub_text(code_desc)
        self.reason = HTTP_5XX if status >= 500 else HTTP_4XX

    @property
    def retryable(self) -> bool:
        return self.status is not None and (self.status >= 500 or self.status == 429)


class NotFound(HTTPStatusError):
    """404: the job (or path) does not exist."""


class AuthError(CMError):
    """Login refused, or a token refused even after logging in again."""

    reason = AUTH


class InvalidResponse(CMError):
    """An answer that is not what the API documents: never half-parsed."""

    reason = INVALID_RESPONSE


class InvalidJobId(CMError):
    """A job id that no URL can carry safely (empty, ``..``, control characters, too long).

    Nothing was sent. From the command line it is a usage error; from the manager's own
    lists it is an answer that is not what the API documents.
    """

    reason = INVALID_RESPONSE
