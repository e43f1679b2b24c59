"""Typed errors at the edge with CipherTrust Manager.

Each carries a ``reason`` from the fixed set used as the ``reason`` label of
``cckm_poll_errors_total``, and a message that is one clear sentence with no secret in it.
"""

from __future__ import annotations

from typing import Final

TIMEOUT: Final = "timeout"
CONNECTION: Final = "connection"
HTTP_4XX: Final = "http_4xx"
HTTP_5XX: Final = "http_5xx"
AUTH: Final = "auth"
INVALID_RESPONSE: Final = "invalid_response"
REASONS: Final = (TIMEOUT, CONNECTION, HTTP_4XX, HTTP_5XX, AUTH, INVALID_RESPONSE)


class CMError(Exception):
    """Talking to the manager failed."""

    reason: str = CONNECTION

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
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
        self.code_desc = code_desc
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
