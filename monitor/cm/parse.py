"""Validating parsers for the manager's answers (pure; fuzzed in the tests).

An answer is either turned whole into typed values or rejected with
``InvalidResponse``: never half-parsed, never a crash on hostile input. The parsers are
total: whatever the bytes or values (huge integers, NaN, calendar extremes, lone
surrogates, wrong types at any level), they return valid values or raise
``InvalidResponse`` (tests/test_fuzz_parsers.py).

Every text passed on is safe downstream: lone surrogates (valid JSON, but no UTF-8
encoding exists for them) become U+FFFD, configured secrets a manager echoes are
redacted, and long texts are cut. A job id is passed on unchanged or the answer is
rejected: it must round-trip to the job's URL.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

from monitor.cm.errors import InvalidResponse
from monitor.families import Family
from monitor.logs import REDACTOR
from monitor.model import JobSnapshot, normalise_status, parse_timestamp, truncate

MAX_SCOPES = 10_000  # more scopes in one job than any manager has regions or domains
MAX_ID = 200
MAX_COUNT = 2**53 - 1  # skip/limit/total: beyond this no JSON peer reads a count exactly
SHARED_MAX = 4096

_SURROGATE = re.compile(r"[\ud800-\udfff]")
# ids go into URLs and log lines: no C0/C1 control characters, no lone surrogates
_BAD_ID_CHAR = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")

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


def sanitize_text(text: str) -> str:
    """A manager's text made safe to pass on: lone surrogates -> U+FFFD, secrets -> ***.

    Cheap when there is nothing to do: an ASCII string is never scanned for surrogates,
    and the redactor with no secrets returns at once.
    """
    if not text.isascii() and _SURROGATE.search(text) is not None:
        text = _SURROGATE.sub("\ufffd", text)
    scrubbed = REDACTOR.scrub(text)
    return scrubbed if isinstance(scrubbed, str) else text


def _redactor_state() -> tuple[int, int]:
    # cached texts were scrubbed with the secrets known then: a new (or patched) redactor,
    # or a secret added, makes them stale
    return id(REDACTOR), REDACTOR.generation


class _Texts:
    """Raw manager text -> its cleaned, shared value, remembered for the next poll.

    The same statuses and scope texts come back every cycle: cleaned once, each later
    sighting costs one dict look-up. Only texts no longer than ``limit`` are remembered
    (a huge text is cleaned each time and not kept alive); the table starts afresh when
    full or when the redactor's secrets change.
    """

    __slots__ = ("_clean", "_limit", "_state", "_table")

    def __init__(self, limit: int, clean: Callable[[str], str]) -> None:
        self._limit = limit
        self._clean = clean
        self._table: dict[str, str] = {}
        self._state = _redactor_state()

    def __call__(self, raw: str) -> str:
        found = self._table.get(raw)
        if found is None:
            found = _shared(self._clean(sanitize_text(raw)))
            if len(raw) <= self._limit:
                if len(self._table) >= SHARED_MAX:
                    self._table.clear()
                self._table[raw] = found
        return found

    def check(self, state: tuple[int, int]) -> None:
        if state != self._state:
            self._table.clear()
            self._state = state


_STATUS = _Texts(200, normalise_status)
_SCOPE = _Texts(300, lambda text: truncate(text, 300))  # scope names, detailed_status keys
_MESSAGE = _Texts(1024, truncate)  # detailed_status values
_CLOUD = _Texts(100, lambda text: truncate(text, 100))
_TABLES = (_STATUS, _SCOPE, _MESSAGE, _CLOUD)


def _fresh_texts() -> None:
    state = _redactor_state()
    for table in _TABLES:
        table.check(state)


@dataclass(frozen=True, slots=True)
class Page:
    skip: int
    limit: int
    total: int | None
    jobs: list[JobSnapshot]


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {truncate(text, 20)} is out of range")
    return value


def _loads(body: bytes) -> Any:
    """Strict JSON: NaN, Infinity and numbers that overflow to infinity are refused.

    Raises only ValueError (every decoding failure is one, ``JSONDecodeError``, invalid
    UTF-8 and integers over Python's digit limit included) or RecursionError.
    """
    return json.loads(body, parse_constant=_reject_constant, parse_float=_finite_float)


def decode_json(body: bytes, what: str) -> Any:
    """Bytes -> JSON value, or InvalidResponse naming ``what`` was being read."""
    try:
        return _loads(body)
    except (ValueError, RecursionError, TypeError) as exc:
        raise InvalidResponse(f"{what}: the answer is not valid JSON ({_short(exc)})") from None


def _short(exc: BaseException) -> str:
    return truncate(sanitize_text(str(exc)), 120)


def _unwrap(raw: Any) -> Any:
    # some documentation pages show a job wrapped as {"application/json": {...}}
    if isinstance(raw, dict) and len(raw) == 1 and "application/json" in raw:
        return raw["application/json"]
    return raw


def _text(job: dict[Any, Any], key: str, what: str, *, required: bool) -> str | None:
    value = job.get(key)
    if value is None:
        if required:
            raise InvalidResponse(f"{what}: field {key!r} is missing")
        return None
    if not isinstance(value, str):
        raise InvalidResponse(f"{what}: field {key!r} is {type(value).__name__}, not a string")
    return value


def _job_id(job: dict[Any, Any], what: str) -> str:
    job_id = _text(job, "id", what, required=True)
    assert job_id is not None
    if not job_id or len(job_id) > MAX_ID:
        raise InvalidResponse(f"{what}: field 'id' is empty or longer than {MAX_ID} characters")
    # printable ASCII (every UUID) skips the scan
    if not (job_id.isascii() and job_id.isprintable()) and _BAD_ID_CHAR.search(job_id):
        raise InvalidResponse(
            f"{what}: field 'id' holds a control character or an unpaired surrogate: "
            f"{job_id[:40]!r}"
        )
    return job_id


def _stamp(job: dict[Any, Any], key: str, what: str) -> Any:
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
    _fresh_texts()
    return _parse_job(raw, family, what)


def _parse_job(raw: Any, family: Family, what: str) -> JobSnapshot:
    job = _unwrap(raw)
    if not isinstance(job, dict):
        raise InvalidResponse(f"{what}: expected a JSON object, got {type(job).__name__}")
    job_id = _job_id(job, what)
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
    pairs: dict[str, str] = {}
    for key, value in detailed.items():
        if not isinstance(value, str):
            raise InvalidResponse(f"{what}: detailed_status values must be strings")
        if not isinstance(key, str):
            raise InvalidResponse(f"{what}: detailed_status keys must be strings")
        # two keys may clean to one (a cut, a replaced surrogate): the last one wins
        pairs[_SCOPE(key)] = _MESSAGE(value)
    scopes = job.get(family.scope_field) or []
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        raise InvalidResponse(f"{what}: field {family.scope_field!r} is not a list of strings")
    if len(scopes) > MAX_SCOPES:
        raise InvalidResponse(f"{what}: {family.scope_field!r} has more than {MAX_SCOPES} items")
    cloud = _text(job, "cloud", what, required=False)
    return JobSnapshot(
        job_id=job_id,
        status=_STATUS(status),
        abort=abort,
        created_at=_stamp(job, "createdAt", what),
        updated_at=_stamp(job, "updatedAt", what),
        completed_at=_stamp(job, "completed_at", what),
        cloud=None if cloud is None else _CLOUD(cloud),
        scopes=_shared(tuple(_SCOPE(s) for s in scopes)),
        detailed_status=_shared(tuple(sorted(pairs.items()))),
    )


def _int(page: dict[Any, Any], key: str, what: str, *, required: bool) -> int | None:
    value = page.get(key)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
        raise InvalidResponse(f"{what}: field {key!r} is not a non-negative integer (or too large)")
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
    _fresh_texts()
    jobs = [_parse_job(item, family, f"{what}: job") for item in resources]
    return Page(skip=skip, limit=limit, total=total, jobs=jobs)


def error_description(body: bytes) -> str | None:
    """The ``codeDesc`` of an error answer, if it has one: one line, safe to log."""
    try:
        data = _loads(body)
    except (ValueError, RecursionError, TypeError):
        return None
    if isinstance(data, dict) and isinstance(data.get("codeDesc"), str):
        text = sanitize_text(data["codeDesc"])
        return truncate(_CONTROL.sub(" ", text).strip(), 300) or None
    return None
