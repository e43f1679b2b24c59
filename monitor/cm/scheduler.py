"""Reading the manager's scheduler: job configurations and runs (pure; fuzzed in the tests).

The HTTP calls are the client's (``monitor/cm/client.py``); this module turns their
decoded JSON into typed values. Like ``monitor/cm/parse.py`` the parsers are total: any
input gives typed values or ``InvalidResponse`` with one sentence, never half a page.

What is known of the API is in cckm-api.md ("The scheduler"); much of it is
*unconfirmed*, so the reading is tolerant where the manager may differ and strict where
a wrong value would mislead:

- only ``operation: cckm_synchronization`` is kept (a manager may ignore unknown filters,
  so the filtering is ours); other operations are skipped after a shape check. A run
  that names no operation is kept: it is matched to a watched schedule by
  ``job_config_id`` or name later, and dropped when none matches;
- ``families.CLOUD_SOURCES`` is the one table from a configuration's ``cloud_name`` to our source
  name and the parameter naming its scopes. An unknown cloud is kept with source None
  (shown, not watched);
- the parameters are read from ``job_config_params`` (answers) or
  ``cckm_synchronization_params`` (the create request's name);
- ``run_at`` is passed on as text (cut at ``MAX_RUN_AT``): whether it is a cron the
  monitor understands is decided by ``monitor/schedules.py`` and is a state there, not a
  parse error; a missing ``name`` becomes the id; a missing ``disabled`` is False;
  missing or null dates are None;
- a wrong type (``disabled: "yes"``, a date that is no RFC 3339 stamp, scopes that are
  not a list of strings, a bad id) rejects the whole page: a half-read page would make
  schedules look deleted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from monitor.cm.errors import InvalidResponse
from monitor.cm.parse import sanitize_text
from monitor.families import CLOUD_SOURCES
from monitor.model import parse_timestamp, truncate

SYNC_OPERATION: Final = "cckm_synchronization"
MAX_ID = 200
MAX_NAME = 200
MAX_RUN_AT = 200  # a 5-field cron with names is ~40 characters
MAX_SCOPES = 10_000
MAX_COUNT = 2**53 - 1

_BAD_ID_CHAR = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")


@dataclass(frozen=True, slots=True)
class ScheduleConfig:
    """One ``cckm_synchronization`` job configuration."""

    id: str
    name: str
    operation: str
    run_at: str  # as the manager spells it (monitor/schedules.py reads it)
    disabled: bool
    start_date: datetime | None
    end_date: datetime | None
    cloud_name: str | None
    source: str | None  # None: a cloud CLOUD_SOURCES does not know (kept, not watched)
    scopes: tuple[str, ...]
    synchronize_all: bool
    created_at: datetime | None = None  # due times before it are not judged
    updated_at: datetime | None = None  # bounds the due times after a change of timing

    def ref(self) -> dict[str, str | None]:
        """``data.schedule`` of an event (contract.md)."""
        return {
            "id": self.id,
            "name": self.name,
            "run_at": self.run_at,
            "cloud_name": self.cloud_name,
        }


@dataclass(frozen=True, slots=True)
class SchedulerRun:
    """One scheduler run (``GET /v1/scheduler/jobs``)."""

    id: str
    name: str | None  # the configuration's name
    operation: str | None
    status: str  # normalised: lower case, ``_`` for blanks and dashes
    created_at: datetime | None
    processing_node: str | None
    job_config_id: str | None  # *unconfirmed* field name


@dataclass(frozen=True, slots=True)
class ConfigPage:
    skip: int
    limit: int
    total: int | None
    count: int  # items on the page, every operation (to page on)
    schedules: tuple[ScheduleConfig, ...]  # the cckm_synchronization ones


@dataclass(frozen=True, slots=True)
class RunPage:
    skip: int
    limit: int
    total: int | None
    count: int
    runs: tuple[SchedulerRun, ...]  # the cckm_synchronization ones (or unnamed)


def parse_config_page(raw: Any, what: str = "job configuration list") -> ConfigPage:
    """``{"skip","limit","total","resources"}`` of job configurations -> ConfigPage."""
    skip, limit, total, items = _page(raw, what)
    schedules = []
    for index, item in enumerate(items):
        config = _object(item, f"{what}: item {index}")
        operation = _text(config, "operation", f"{what}: item {index}", limit=MAX_NAME)
        if operation != SYNC_OPERATION:
            continue
        schedules.append(parse_config(config, f"{what}: configuration"))
    return ConfigPage(skip, limit, total, len(items), tuple(schedules))


def parse_run_page(raw: Any, what: str = "scheduler run list") -> RunPage:
    """``{"skip","limit","total","resources"}`` of scheduler runs -> RunPage."""
    skip, limit, total, items = _page(raw, what)
    runs = []
    for index, item in enumerate(items):
        run = parse_run(item, f"{what}: item {index}")
        if run.operation in (None, SYNC_OPERATION):
            runs.append(run)
    return RunPage(skip, limit, total, len(items), tuple(runs))


def parse_config(raw: Any, what: str = "job configuration") -> ScheduleConfig:
    """One configuration object -> ScheduleConfig (whatever its operation)."""
    config = _object(raw, what)
    config_id = _id(config, what)
    what = f"{what} {config_id}"
    params_raw = config.get("job_config_params")
    if params_raw is None:
        params_raw = config.get("cckm_synchronization_params")
    params = {} if params_raw is None else _object(params_raw, f"{what}: job_config_params")
    cloud_name = _text(params, "cloud_name", what, limit=MAX_NAME)
    mapped = None if cloud_name is None else CLOUD_SOURCES.get(cloud_name)
    return ScheduleConfig(
        id=config_id,
        name=_text(config, "name", what, limit=MAX_NAME) or config_id,
        operation=_text(config, "operation", what, limit=MAX_NAME) or "",
        run_at=_text(config, "run_at", what, limit=MAX_RUN_AT) or "",
        disabled=_bool(config, "disabled", what),
        start_date=_stamp(config, "start_date", what),
        end_date=_stamp(config, "end_date", what),
        cloud_name=cloud_name,
        source=None if mapped is None else mapped.source,
        scopes=() if mapped is None else _strings(params, mapped.scope_field, what),
        synchronize_all=_bool(params, "synchronize_all", what),
        created_at=_stamp(config, "createdAt", what),
        updated_at=_stamp(config, "updatedAt", what),
    )


def parse_run(raw: Any, what: str = "scheduler run") -> SchedulerRun:
    """One run object -> SchedulerRun (whatever its operation)."""
    run = _object(raw, what)
    run_id = _id(run, what)
    what = f"{what} {run_id}"
    status = _text(run, "status", what, limit=MAX_NAME)
    if status is None:
        raise InvalidResponse(f"{what}: field 'status' is missing")
    config_id = run.get("job_config_id")
    return SchedulerRun(
        id=run_id,
        name=_text(run, "name", what, limit=MAX_NAME),
        operation=_text(run, "operation", what, limit=MAX_NAME),
        status=normalise_run_status(status),
        created_at=_stamp(run, "createdAt", what),
        processing_node=_text(run, "processing_node", what, limit=MAX_NAME),
        job_config_id=None if config_id is None else _id(run, what, key="job_config_id"),
    )


def normalise_run_status(raw: str) -> str:
    """``"In Progress"`` -> ``"in_progress"``: lower case, blanks and dashes to ``_``."""
    return truncate(re.sub(r"[\s\-]+", "_", raw.strip().lower()), 100)


# --- the shapes -------------------------------------------------------------------------


def _page(raw: Any, what: str) -> tuple[int, int, int | None, list[Any]]:
    page = _object(raw, what)
    items = page.get("resources")
    if items is None:
        items = []
    if not isinstance(items, list):
        raise InvalidResponse(f"{what}: field 'resources' is not a list")
    skip = _count(page, "skip", what) or 0
    limit = _count(page, "limit", what) or 0
    return skip, limit, _count(page, "total", what), items


def _object(raw: Any, what: str) -> dict[Any, Any]:
    if isinstance(raw, dict) and len(raw) == 1 and "application/json" in raw:
        raw = raw["application/json"]  # the wrapping some documentation pages show
    if not isinstance(raw, dict):
        raise InvalidResponse(f"{what}: expected a JSON object, got {type(raw).__name__}")
    return raw


def _count(page: dict[Any, Any], key: str, what: str) -> int | None:
    value = page.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
        raise InvalidResponse(f"{what}: field {key!r} is not a non-negative integer (or too large)")
    return value


def _id(item: dict[Any, Any], what: str, key: str = "id") -> str:
    value = item.get(key)
    if value is None:
        raise InvalidResponse(f"{what}: field {key!r} is missing")
    if not isinstance(value, str):
        raise InvalidResponse(f"{what}: field {key!r} is {type(value).__name__}, not a string")
    if not value or len(value) > MAX_ID:
        raise InvalidResponse(f"{what}: field {key!r} is empty or longer than {MAX_ID} characters")
    if not (value.isascii() and value.isprintable()) and _BAD_ID_CHAR.search(value):
        raise InvalidResponse(
            f"{what}: field {key!r} holds a control character or an unpaired surrogate"
        )
    return value


def _clean(text: str, limit: int) -> str:
    """A manager's text made safe to log and show: no secrets, surrogates or controls."""
    return truncate(_CONTROL.sub(" ", sanitize_text(text)), limit)


def _text(item: dict[Any, Any], key: str, what: str, *, limit: int) -> str | None:
    value = item.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidResponse(f"{what}: field {key!r} is {type(value).__name__}, not a string")
    return _clean(value, limit)


def _bool(item: dict[Any, Any], key: str, what: str) -> bool:
    value = item.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidResponse(f"{what}: field {key!r} is {type(value).__name__}, not a boolean")
    return value


def _stamp(item: dict[Any, Any], key: str, what: str) -> datetime | None:
    value = item.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidResponse(f"{what}: field {key!r} is {type(value).__name__}, not a string")
    try:
        return parse_timestamp(value)
    except ValueError:
        shown = truncate(_clean(value, 40), 40)
        raise InvalidResponse(f"{what}: field {key!r} is not a timestamp: {shown!r}") from None


def _strings(item: dict[Any, Any], key: str, what: str) -> tuple[str, ...]:
    value = item.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise InvalidResponse(f"{what}: field {key!r} is not a list of strings")
    if len(value) > MAX_SCOPES:
        raise InvalidResponse(f"{what}: field {key!r} has more than {MAX_SCOPES} items")
    return tuple(_clean(s, 300) for s in value)
