"""What goes over the wire: the manager's timestamp spelling and its error bodies."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# The error words and numbers the simulator answers with. 14 and 16 are documented
# (cckm-api.md); the others are our choice and only need to stay stable.
NOT_FOUND = (16, "NCERRResourceNotFound")
INTERNAL = (14, "NCERRInternalServerError")
UNAUTHORIZED = (0, "NCERRUnauthorizedAccess")
INVALID_PARAM = (15, "NCERRInvalidParamValue")
BAD_REQUEST = (1, "NCERRBadRequest")
METHOD_NOT_ALLOWED = (17, "NCERRMethodNotAllowed")
UNAVAILABLE = (18, "NCERRServiceUnavailable")
TOO_MANY = (19, "NCERRTooManyRequests")


def rfc3339(moment: float, *, nanos: bool = False, extra_ns: int = 0) -> str:
    """``moment`` (epoch seconds) the way the manager (Go's RFC3339Nano) writes it.

    Go trims trailing zeros of the fraction (seed 000 shows ``21.50388Z``) and drops the
    dot when nothing is left. ``nanos`` adds ``extra_ns`` (0-999) below the microsecond,
    giving the 9-digit stamps of seed 002.
    """
    micros = round(moment * 1_000_000)
    seconds, fraction_us = divmod(micros, 1_000_000)
    stamp = (_EPOCH + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S")
    digits = f"{fraction_us * 1000 + extra_ns:09d}" if nanos else f"{fraction_us:06d}"
    digits = digits.rstrip("0")
    return f"{stamp}.{digits}Z" if digits else f"{stamp}Z"


def error_body(error: tuple[int, str], message: str) -> dict[str, Any]:
    code, word = error
    return {"code": code, "codeDesc": f"{word}: {message}"}


def dumps(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, body=dumps(body), content_type="application/json", headers=headers
    )


def error_response(
    status: int, error: tuple[int, str], message: str, headers: dict[str, str] | None = None
) -> web.Response:
    return json_response(status, error_body(error, message), headers)


def status_error(status: int) -> tuple[int, str]:
    """A plausible NCERR word for an arbitrary HTTP status (injected faults)."""
    known = {401: UNAUTHORIZED, 404: NOT_FOUND, 405: METHOD_NOT_ALLOWED, 429: TOO_MANY}
    if status in known:
        return known[status]
    if status in (502, 503, 504):
        return UNAVAILABLE
    return INTERNAL if status >= 500 else BAD_REQUEST


def go_duration(seconds: float) -> str:
    """Go's ``time.Duration`` text at second precision: ``50s``, ``1m40s``, ``2h0m5s``."""
    total = max(int(seconds), 0)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


class BadBody(ValueError):
    """A request body that is not a JSON object."""


async def json_object_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object body ({} when empty); BadBody otherwise."""
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise BadBody("request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise BadBody("request body must be a JSON object")
    return body
