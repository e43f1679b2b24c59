"""Tokens for one manager: password or refresh-token grant, renewed before expiry."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from monitor.cm.errors import AuthError, InvalidResponse

AUTH_PATH = "/api/v1/auth/tokens/"
RENEW_BEFORE_SECONDS = 60.0  # renew about a minute before the JWT expires
MAX_TOKEN_SECONDS = 86_400  # a longer token life is read as a day: renewed at least daily
MAX_TOKEN_TEXT = 16_384  # a JWT (or refresh token) longer than this is no header value


@dataclass(frozen=True, slots=True)
class Token:
    jwt: str
    expires_at: float  # monotonic seconds
    refresh_token: str | None

    def fresh(self, now: float) -> bool:
        return now < self.expires_at - RENEW_BEFORE_SECONDS

    def __repr__(self) -> str:  # never print the token itself
        return f"Token(expires_at={self.expires_at:.0f})"


@dataclass(frozen=True, slots=True)
class Credentials:
    username: str | None
    password: str | None
    refresh_token: str | None
    domain: str | None

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, domain={self.domain!r})"

    def grants(self, current_refresh: str | None) -> list[dict[str, Any]]:
        """Bodies to try in order: refresh grant first, password as fallback."""
        bodies: list[dict[str, Any]] = []
        refresh = current_refresh or self.refresh_token
        if refresh:
            bodies.append({"grant_type": "refresh_token", "refresh_token": refresh})
        if self.password is not None and self.username is not None:
            body: dict[str, Any] = {
                "grant_type": "password",
                "username": self.username,
                "password": self.password,
            }
            if self.domain:
                body["domain"] = self.domain
            bodies.append(body)
        if not bodies:
            raise AuthError("no credentials: configure a password or a refresh token")
        return bodies


def _header_safe(value: Any) -> str | None:
    """``value`` when it is a non-empty printable-ASCII string of sane length, else None."""
    if (
        isinstance(value, str)
        and 0 < len(value) <= MAX_TOKEN_TEXT
        and value.isascii()
        and value.isprintable()
        and not value.isspace()
    ):
        return value
    return None


def parse_token(raw: Any, now: float, previous_refresh: str | None) -> Token:
    """The auth answer -> Token; InvalidResponse when it is not the documented shape.

    Total: the ``jwt`` goes into an HTTP header, so it must be printable ASCII (a control
    character or a non-ASCII letter would fail the next request); ``duration`` must be a
    finite positive number, capped at a day. A ``refresh_token`` that is not printable
    ASCII is ignored (the previous one, or the password, is used next time).
    """
    if not isinstance(raw, dict):
        raise InvalidResponse("login: the answer has no 'jwt' string")
    jwt = raw.get("jwt")
    if not isinstance(jwt, str) or not jwt:
        raise InvalidResponse("login: the answer has no 'jwt' string")
    if _header_safe(jwt) is None:
        raise InvalidResponse(
            "login: the answer's 'jwt' is not a printable ASCII string of at most "
            f"{MAX_TOKEN_TEXT} characters"
        )
    duration = raw.get("duration", 300)
    if (
        isinstance(duration, bool)
        or not isinstance(duration, int | float)
        or (isinstance(duration, float) and not math.isfinite(duration))
        or duration <= 0
    ):
        raise InvalidResponse("login: field 'duration' is not a positive number")
    seconds = float(min(duration, MAX_TOKEN_SECONDS))  # min first: a 5,000-digit int fits
    refresh = _header_safe(raw.get("refresh_token")) or previous_refresh
    return Token(jwt=jwt, expires_at=now + seconds, refresh_token=refresh)
