"""Connection failures in words: one mapping for the manager client and the HTTP sinks.

``describe(exc)`` turns what aiohttp, asyncio or the OS raise when no (valid) answer
came into a short phrase an operator understands — "connection refused", "name not
resolved", "TLS verification failed (self-signed certificate)", "timed out" — and the
kind of failure: ``TIMEOUT``, ``CONNECTION`` or ``INVALID`` (an answer that is not HTTP).
Never a class name such as ``ClientConnectorError``.
"""

from __future__ import annotations

import errno
import socket
import ssl
from dataclasses import dataclass
from typing import Final

import aiohttp

TIMEOUT: Final = "timeout"
CONNECTION: Final = "connection"
INVALID: Final = "invalid_response"

_ERRNO_WORDS: Final = {
    errno.ECONNREFUSED: "connection refused",
    errno.ECONNRESET: "connection reset by the server",
    errno.ECONNABORTED: "connection aborted",
    errno.EPIPE: "connection closed by the server",
    errno.ETIMEDOUT: "timed out",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ENETUNREACH: "network unreachable",
    errno.EADDRNOTAVAIL: "address not available",
}


@dataclass(frozen=True, slots=True)
class Failure:
    """What went wrong, in words, and its kind (the ``reason`` label)."""

    words: str
    kind: str
    tls_untrusted: bool = False  # the peer's certificate was refused: ca_file may help


def describe(exc: BaseException) -> Failure:
    """The words for a failed exchange (``exc`` from aiohttp, asyncio or the OS)."""
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return Failure("timed out", TIMEOUT)
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return Failure(
            f"TLS verification failed ({_tls_detail(exc.certificate_error)})",
            CONNECTION,
            tls_untrusted=True,
        )
    if isinstance(exc, ssl.SSLCertVerificationError):
        return Failure(f"TLS verification failed ({_tls_detail(exc)})", CONNECTION, True)
    if isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError):
        cause = getattr(exc, "os_error", exc)
        return Failure(f"TLS handshake failed ({_tls_detail(cause)})", CONNECTION)
    if isinstance(exc, aiohttp.ClientConnectorDNSError) or isinstance(
        getattr(exc, "os_error", None), socket.gaierror
    ):
        return Failure("name not resolved", CONNECTION)
    if isinstance(exc, socket.gaierror):
        return Failure("name not resolved", CONNECTION)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return Failure("connection closed by the server without an answer", CONNECTION)
    if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ClientResponseError):
        return Failure("the answer is not valid HTTP", INVALID)
    if isinstance(exc, aiohttp.InvalidURL):
        return Failure("the URL is not usable", INVALID)
    os_error = getattr(exc, "os_error", None)
    if isinstance(os_error, OSError):
        return _os_words(os_error)
    if isinstance(exc, OSError):
        return _os_words(exc)
    if isinstance(exc, aiohttp.ClientConnectionError):
        return Failure("connection failed", CONNECTION)
    return Failure("the exchange failed", CONNECTION)


def _os_words(exc: OSError) -> Failure:
    if isinstance(exc, TimeoutError):
        return Failure("timed out", TIMEOUT)
    if isinstance(exc, ConnectionRefusedError):
        return Failure("connection refused", CONNECTION)
    if isinstance(exc, ConnectionResetError):
        return Failure("connection reset by the server", CONNECTION)
    if isinstance(exc, BrokenPipeError | ConnectionAbortedError):
        return Failure("connection closed by the server", CONNECTION)
    if exc.errno in _ERRNO_WORDS:
        return Failure(_ERRNO_WORDS[exc.errno], CONNECTION)
    words = (exc.strerror or "").strip().lower()
    return Failure(words or "connection failed", CONNECTION)


def _tls_detail(exc: BaseException) -> str:
    """``self-signed certificate in certificate chain``, not the OpenSSL file and line."""
    verify = getattr(exc, "verify_message", None)
    if isinstance(verify, str) and verify:
        return verify
    reason = getattr(exc, "reason", None)
    if isinstance(reason, str) and reason:
        return reason.replace("_", " ").lower()
    text = str(exc).split("] ", 1)[-1].split(" (_ssl.c", 1)[0].strip()
    return text or "no detail"
