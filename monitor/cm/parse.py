"""Validating parsers for the manager's answers (pure; fuzzed in the tests).

An answer is either turned whole into typed values or rejected with
``InvalidResponse``: never half-parsed, never a crash on hostile input.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, TypeVar

from monitor.cm.errors import InvalidResponse
from monitor.families import Family
from monitor.model import JobSnapshot, normalise_status, parse_timestamp, truncate

MAX_SCOPES = 10_000  # more scopes in one job than any manager has regions or domains
MAX_ID = 200
SHARED_MAX = 4096

_T = TypeVar("_T", str, tuple[str, ...], tuple[tuple[str, str], ...])
_shared_values: dict[object, object] = {}


def _shared(value: _T) -> _T:
    """One object for equal values.

    Statuses, clouds, scope names and whole ``detailed_status`` tuples repeat across
    thousands of running jobs; kept once each, a tracked job costs a third of the memory
    (bench/memory.py). Bounded: the table starts afresh when full.
    """
    found = _shared_values.get(value)
    if found is None:
        if len(_shared_values) >= SHARED_MAX:
            _shared_values.clear()
        _shared_values[value] = found = value
    return found  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class Page:
    skip: int
    limit: int
    total: int | None
    jobs: list[JobSnapshot]


def decode_json(body: bytes, what: str) -> Any:
    """Bytes -> JSON value, or InvalidResponse naming ``what`` was being read."""
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise InvalidResponse(f"{what}: the answer is not valid JSON ({_short(exc)})") from None


def _short(exc: Exception) -> str:
    return truncate(str(exc), 120)


def _unwrap(raw: Any) -> Any:
    # some documentation pages show a job wrapped as {"application/json": {...}}
    if isinstance(raw, dict) and len(raw) == 1 and "application/json" in raw:
        return raw["application/json"]
    return raw


def _text(job: dict[str, Any], key: str, what: str, *, required: bool) -> str | None:
    value = job.get(key)
    if value is None:
        if required:
            raise InvalidResponse(f"{what}: field {key!r} is missing")
        return None
    if not isinstance(value, str):
        raise InvalidResponse(f"{what}: field {key!r} is {type(value).__name__}, not a string")
    return value


def _stamp(job: dict[str, Any], key: str, what: str) -> Any:
    value = _text(job, key, what, required=False)
    if value is None or value == "":
        return None
    try:
        return parse_timestamp(value)
    except ValueError:
        raise InvalidResponse(
            f"{what}: field {key!r} is not a timestamp: {truncate(value, 40)!r}"
        ) from None


def parse_job(raw: Any, family: Family, what: str = "job") -> JobSnapshot:
    """One job object -> JobSnapshot; InvalidResponse for any shape the API does not use."""
    job = _unwrap(raw)
    if not isinstance(job, dict):
        raise InvalidResponse(f"{what}: expected a JSON object, got {type(job).__name__}")
    job_id = _text(job, "id", what, required=True)
    assert job_id is not None
    if not job_id or len(job_id) > MAX_ID:
        raise InvalidResponse(f"{what}: field 'id' is empty or longer than {MAX_ID} characters")
    what = f"{what} {job_id}"
    status = _text(job, "overall_status", what, required=True)
    assert status is not None
    abort = job.get("abort", False)
    if abort is None:
        abort = False
    if not isinstance(abort, bool):
        raise InvalidResponse(f"{what}: field 'abort' is {type(abort).__name__}, not a boolean")
    detailed = job.get("detailed_status") or {}
    if not isinstance(detailed, dict):
        raise InvalidResponse(f"{what}: field 'detailed_status' is not an object")
    if len(detailed) > MAX_SCOPES:
        raise InvalidResponse(f"{what}: 'detailed_status' has more than {MAX_SCOPES} entries")
    pairs: list[tuple[str, str]] = []
    for key, value in detailed.items():
        if not isinstance(value, str):
            raise InvalidResponse(f"{what}: detailed_status values must be strings")
        pairs.append((_shared(truncate(key, 300)), _shared(truncate(value))))
    scopes = job.get(family.scope_field) or []
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        raise InvalidResponse(f"{what}: field {family.scope_field!r} is not a list of strings")
    if len(scopes) > MAX_SCOPES:
        raise InvalidResponse(f"{what}: {family.scope_field!r} has more than {MAX_SCOPES} items")
    cloud = _text(job, "cloud", what, required=False)
    return JobSnapshot(
        job_id=job_id,
        status=_shared(normalise_status(status)),
        abort=abort,
        created_at=_stamp(job, "createdAt", what),
        updated_at=_stamp(job, "updatedAt", what),
        completed_at=_stamp(job, "completed_at", what),
        cloud=None if cloud is None else _shared(truncate(cloud, 100)),
        scopes=_shared(tuple(_shared(truncate(s, 300)) for s in scopes)),
        detailed_status=_shared(tuple(sorted(pairs))),
    )


def _int(page: dict[str, Any], key: str, what: str, *, required: bool) -> int | None:
    value = page.get(key)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidResponse(f"{what}: field {key!r} is not a non-negative integer")
    return value


def parse_page(raw: Any, family: Family, what: str = "job list") -> Page:
    """A list answer ``{"skip","limit","total","resources"}`` -> Page."""
    if not isinstance(raw, dict):
        raise InvalidResponse(f"{what}: expected a JSON object, got {type(raw).__name__}")
    resources = raw.get("resources")
    if resources is None:
        resources = []
    if not isinstance(resources, list):
        raise InvalidResponse(f"{what}: field 'resources' is not a list")
    skip = _int(raw, "skip", what, required=False) or 0
    limit = _int(raw, "limit", what, required=False) or 0
    total = _int(raw, "total", what, required=False)
    jobs = [parse_job(item, family, f"{what}: job") for item in resources]
    return Page(skip=skip, limit=limit, total=total, jobs=jobs)


def error_description(body: bytes) -> str | None:
    """The ``codeDesc`` of an error answer, if it has one."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
    if isinstance(data, dict) and isinstance(data.get("codeDesc"), str):
        return truncate(data["codeDesc"], 300)
    return None
