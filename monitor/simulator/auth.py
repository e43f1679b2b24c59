"""``POST /api/v1/auth/tokens``: JWTs and refresh tokens, on the injected clock.

Access tokens are real HS256 JWTs (header.payload.signature, base64url) signed with a
per-simulator random key and carrying ``iat``/``exp`` in whole seconds (as third-party
clients read them). Revoking rotates the key (old tokens then fail their signature
check, answered as "revoked") and forgets every refresh token.

A password grant answers a refresh token; a refresh grant answers a new ``jwt`` and a
new ``refresh_token`` only when asked with ``"renew_refresh_token": true`` (the old one
then stops working). Refresh tokens never expire unless ``refresh_ttl`` is set
(``refresh_token_expires_in`` is then 0, the manager's word for "never").
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import secrets
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from monitor.simulator.wire import go_duration

_ZERO_ID = "00000000-0000-0000-0000-000000000000"


class AuthError(Exception):
    """A refused login or token; ``status`` is 400 (bad body) or 401."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class _Refresh:
    token_id: str
    username: str
    client_id: str
    expires: float | None  # None: never


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else round(value, 6)


class TokenIssuer:
    """Issues and checks tokens for one simulated manager."""

    def __init__(
        self,
        *,
        username: str,
        password: str,
        token_ttl: float,
        refresh_ttl: float | None,
        clock: Callable[[], float],
    ) -> None:
        self._username = username
        self._password = password
        self._ttl = token_ttl
        self._refresh_ttl = refresh_ttl
        self._clock = clock
        self._key = secrets.token_bytes(32)
        self._old_keys: list[bytes] = []
        self._refresh: dict[str, _Refresh] = {}
        self._user_id = str(uuid.uuid4())

    def revoke(self) -> None:
        """Every access and refresh token issued so far stops working."""
        self._old_keys.append(self._key)
        self._key = secrets.token_bytes(32)
        self._refresh.clear()

    # --- login ------------------------------------------------------------------------

    def login(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Answer a token request (password grant, older name/password style, refresh)."""
        grant = body.get("grant_type", "password")
        now = self._clock()
        if grant == "refresh_token":
            token = body.get("refresh_token")
            record = self._refresh.get(token) if isinstance(token, str) else None
            if record is None or not isinstance(token, str):
                raise AuthError(401, "Invalid refresh token")
            if record.expires is not None and now >= record.expires:
                del self._refresh[token]
                raise AuthError(401, "Refresh token is expired")
            renew = body.get("renew_refresh_token", False)
            if not isinstance(renew, bool):
                raise AuthError(400, "renew_refresh_token must be true or false")
            if not renew:
                answer = self._answer(record.username, token, record, now)
                del answer["refresh_token"], answer["refresh_token_expires_in"]
                return answer
            del self._refresh[token]  # the renewed token replaces the old one
            return self._issue(record.username, record.client_id, now)
        if grant != "password":
            raise AuthError(400, f"unsupported grant_type {grant!r}")
        username = body.get("username", body.get("name"))
        password = body.get("password")
        if not isinstance(username, str) or not isinstance(password, str):
            raise AuthError(400, "username and password are required")
        user_ok = hmac.compare_digest(username.encode(), self._username.encode())
        password_ok = hmac.compare_digest(password.encode(), self._password.encode())
        if not (user_ok and password_ok):
            raise AuthError(401, "Invalid username or password")
        return self._issue(username, str(uuid.uuid4()), now)

    def _issue(self, username: str, client_id: str, now: float) -> dict[str, Any]:
        """A new refresh token for ``username`` and the answer carrying it."""
        token = secrets.token_urlsafe(48)
        expires = None if self._refresh_ttl is None else now + self._refresh_ttl
        record = _Refresh(str(uuid.uuid4()), username, client_id, expires)
        self._refresh[token] = record
        return self._answer(username, token, record, now)

    def _answer(self, username: str, refresh: str, record: _Refresh, now: float) -> dict[str, Any]:
        return {
            "jwt": self._jwt(username, record.client_id, now),
            "duration": _number(self._ttl),
            "token_type": "Bearer",
            "client_id": record.client_id,
            "refresh_token_id": record.token_id,
            "refresh_token": refresh,
            "refresh_token_expires_in": (
                0 if record.expires is None else max(int(record.expires - now), 1)
            ),
        }

    def _jwt(self, username: str, client_id: str, now: float) -> str:
        header = {"alg": "HS256", "typ": "JWT"}
        payload = {
            "aud": client_id,
            "sub": f"local|{self._user_id}",
            "iss": "kylo",
            "acc": "kylo",
            "preferred_username": username,
            "cust": {
                "domain_id": _ZERO_ID,
                "groups": ["admin"],
                "sid": str(uuid.uuid4()),
                "zone_id": _ZERO_ID,
            },
            "jwtid": str(uuid.uuid4()),
            "iat": int(now),
            "exp": int(now) + math.ceil(self._ttl),
        }
        signing_input = ".".join(
            _b64(json.dumps(part, separators=(",", ":")).encode()) for part in (header, payload)
        )
        return f"{signing_input}.{_b64(self._sign(self._key, signing_input))}"

    @staticmethod
    def _sign(key: bytes, signing_input: str) -> bytes:
        return hmac.new(key, signing_input.encode(), hashlib.sha256).digest()

    # --- checking ---------------------------------------------------------------------

    def check(self, authorization: str | None) -> None:
        """Raise ``AuthError(401)`` unless the Authorization header holds a valid JWT."""
        if not authorization:
            raise AuthError(401, "Bearer token not found in request")
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError(401, "Authorization header must be 'Bearer <token>'")
        parts = token.strip().split(".")
        if len(parts) != 3:
            raise AuthError(
                401, "Bearer token malformed: token contains an invalid number of segments"
            )
        signing_input = f"{parts[0]}.{parts[1]}"
        try:
            signature = _unb64(parts[2])
            payload = json.loads(_unb64(parts[1]))
        except (binascii.Error, ValueError):
            raise AuthError(401, "Bearer token malformed: illegal base64 data") from None
        if not hmac.compare_digest(signature, self._sign(self._key, signing_input)):
            if any(
                hmac.compare_digest(signature, self._sign(key, signing_input))
                for key in self._old_keys
            ):
                raise AuthError(401, "Token has been revoked")
            raise AuthError(401, "Bearer token malformed: signature is invalid")
        expires = payload.get("exp") if isinstance(payload, dict) else None
        if not isinstance(expires, int | float):
            raise AuthError(401, "Bearer token malformed: token has no expiry")
        now = self._clock()
        if now >= expires:
            late = go_duration(now - expires)
            raise AuthError(401, f"Bearer token malformed: Token is expired by {late}")
