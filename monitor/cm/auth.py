"""Tokens for one manager: password or refresh-token grant, renewed before expiry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from monitor.cm.errors import AuthError, InvalidResponse

AUTH_PATH = "/api/v1/auth/tokens/"
RENEW_BEFORE_SECONDS = 60.0  # renew about a minute before the JWT expires


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


def parse_token(raw: Any, now: float, previous_refresh: str | None) -> Token:
    """The auth answer -> Token; InvalidResponse when it is not the documented shape."""
    if not isinstance(raw, dict) or not isinstance(raw.get("jwt"), str) or not raw["jwt"]:
        raise InvalidResponse("login: the answer has no 'jwt' string")
    duration = raw.get("duration", 300)
    if isinstance(duration, bool) or not isinstance(duration, int | float) or duration <= 0:
        raise InvalidResponse("login: field 'duration' is not a positive number")
    refresh = raw.get("refresh_token")
    if not isinstance(refresh, str) or not refresh:
        refresh = previous_refresh
    return Token(jwt=raw["jwt"], expires_at=now + float(duration), refresh_token=refresh)
