"""Injected faults: ``POST /sim/v1/faults`` queues them, /api requests consume them.

Each fault applies to the next ``count`` /api requests whose path starts with
``path_prefix`` (default ``/api``: auth requests included). Faults are consumed in the
order they were queued; ``duplicate_ids`` waits for a list request.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from aiohttp import web

from monitor.simulator.wire import error_body, json_response, status_error

KINDS = (
    "status",
    "malformed",
    "truncated",
    "html",
    "drop",
    "slow",
    "wrong_types",
    "duplicate_ids",
)
# The kinds that answer without running the handler (no side effects, no auth check).
SHORT_CIRCUIT = frozenset({"status", "malformed", "html", "drop"})

_HTML = (
    "<html>\r\n<head><title>{status} {phrase}</title></head>\r\n<body>\r\n"
    "<center><h1>{status} {phrase}</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)
_MALFORMED = b'{"skip":0,"limit":10,"total":1,"resources":[{"id":"3b0c5a52",,"abort":fal'


@dataclass
class Fault:
    id: int
    kind: str
    count: int
    status: int | None
    delay_ms: float
    path_prefix: str
    retry_after: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "count": self.count,
            "status": self.status,
            "delay_ms": self.delay_ms,
            "path_prefix": self.path_prefix,
            "retry_after": self.retry_after,
        }


class FaultQueue:
    """Pending faults, plus the page shift a ``duplicate_ids`` fault leaves behind."""

    def __init__(self) -> None:
        self.pending: list[Fault] = []
        self._ids = itertools.count(1)
        self._shifts: dict[str, int] = {}  # source -> skip at which a list walk shifted

    def add(self, body: Mapping[str, Any]) -> Fault:
        """Queue a fault described by a control request; ``ValueError`` if it makes no sense."""
        kind = body.get("kind")
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}")
        count = body.get("count", 1)
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError("count must be a positive integer")
        status = body.get("status")
        if status is None and kind in ("status", "html"):
            status = 503 if kind == "status" else 502
        if status is not None and (
            isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599
        ):
            raise ValueError("status must be an HTTP status code")
        delay = body.get("delay_ms", 2000 if kind == "slow" else 0)
        if isinstance(delay, bool) or not isinstance(delay, int | float) or delay < 0:
            raise ValueError("delay_ms must be a non-negative number")
        prefix = body.get("path_prefix", "/api")
        if not isinstance(prefix, str) or not prefix.startswith("/api"):
            raise ValueError("path_prefix must start with /api")
        retry = body.get("retry_after")
        if retry is not None and (isinstance(retry, bool) or not isinstance(retry, int | str)):
            raise ValueError("retry_after must be seconds (integer) or an HTTP date")
        fault = Fault(
            next(self._ids),
            kind,
            count,
            status,
            float(delay),
            prefix,
            None if retry is None else str(retry),
        )
        self.pending.append(fault)
        return fault

    def clear(self) -> int:
        cleared = len(self.pending)
        self.pending.clear()
        self._shifts.clear()
        return cleared

    def take(self, path: str, route_kind: str) -> Fault | None:
        """The fault this request gets, if any (consuming one of its ``count``)."""
        for fault in self.pending:
            if not path.startswith(fault.path_prefix):
                continue
            if fault.kind == "duplicate_ids" and route_kind != "list":
                continue
            fault.count -= 1
            if fault.count == 0:
                self.pending.remove(fault)
            return fault
        return None

    def list_shift(self, source: str, skip: int, fired: bool) -> bool:
        """Whether this list page is answered one position early.

        A ``duplicate_ids`` fault acts like a job inserted at the top while a client
        walks the pages: from the faulted page on, every page of that walk starts one
        job earlier, so the previous page's last job shows up again, nothing is lost and
        ``total`` is one higher. A request with ``skip`` before the fault's (a new walk)
        ends the shift.
        """
        if fired:
            self._shifts[source] = skip
            return True
        start = self._shifts.get(source)
        if start is None:
            return False
        if skip >= start and skip > 0:
            return True
        del self._shifts[source]
        return False


def short_circuit(fault: Fault) -> web.Response:
    """The answer of a fault that replaces the whole response."""
    headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else None
    if fault.kind == "html":
        status = fault.status or 502
        text = _HTML.format(status=status, phrase=_phrase(status))
        return web.Response(status=status, text=text, content_type="text/html", headers=headers)
    if fault.kind == "malformed":
        return web.Response(status=200, body=_MALFORMED, content_type="application/json")
    status = fault.status or 503
    return json_response(status, error_body(status_error(status), _reason(status)), headers)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _reason(status: int) -> str:
    if status == 429:
        return "too many requests"
    if status >= 500:
        return (
            "service temporarily unavailable" if status in (502, 503, 504) else "unexpected error"
        )
    return f"request refused ({status})"


def truncate(body: bytes) -> bytes:
    return body[: len(body) // 2]


def wrong_types(body: Any) -> Any:
    """The same answer with fields of the wrong JSON types (a schema-drift test)."""
    if isinstance(body, dict) and "resources" in body:
        resources = body.get("resources") or []
        return {
            "skip": str(body.get("skip")),
            "limit": str(body.get("limit")),
            "total": "many",
            "resources": {str(i): _wrong_job(job) for i, job in enumerate(resources)},
        }
    if isinstance(body, dict) and "jwt" in body:
        return {**body, "jwt": 12345, "duration": "300 seconds"}
    if isinstance(body, dict):
        return _wrong_job(body)
    return body


def _wrong_job(job: Any) -> Any:
    if not isinstance(job, dict):
        return job
    return {
        **job,
        "id": 42,
        "overall_status": 5,
        "abort": "yes",
        "createdAt": 1604558426,
        "detailed_status": ["in_progress"],
    }
