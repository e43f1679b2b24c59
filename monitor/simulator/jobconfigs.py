"""The scheduler's job configurations: the one ``cloud_name`` table, bodies checked, JSON out.

A create request names its parameters ``<operation>_params`` (``cckm_synchronization_params``);
answers carry them as ``job_config_params`` (cckm-api.md, "The scheduler"). Every bad
field is a ``ValueError`` with one sentence, answered 400.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from monitor.families import CLOUD_SOURCES
from monitor.model import parse_timestamp
from monitor.simulator.cron import check_cron
from monitor.simulator.wire import rfc3339

SYNC = "cckm_synchronization"
OPERATIONS = (SYNC, "cckm_key_rotation", "database_backup", "system_auto_key_rotation")

# cloud_name -> (our source name, the scope list field of the parameters). The only place
# the simulator spells this mapping (cckm-api.md; several entries are unconfirmed there).
# the manager's cloud_name -> (source, scope field): the one table, in families.py
SYNC_CLOUDS: dict[str, tuple[str, str]] = {
    cloud: (mapped.source, mapped.scope_field) for cloud, mapped in CLOUD_SOURCES.items()
}
CLOUD_OF_SOURCE = {source: cloud for cloud, (source, _) in SYNC_CLOUDS.items()}

_FIELDS = frozenset(
    {"name", "description", "operation", "run_at", "run_on", "disabled", "start_date", "end_date"}
)
_ACCOUNT = "kylo:kylo:admin:accounts:kylo"
MAX_NAME = 256


@dataclass(frozen=True)
class ConfigSpec:
    """What a configuration says, checked."""

    name: str
    description: str
    operation: str
    run_at: str
    run_on: str
    disabled: bool
    start: float | None
    end: float | None
    params: dict[str, Any]

    def active(self, moment: float) -> bool:
        """Whether a run due at ``moment`` fires: enabled and inside start/end dates."""
        if self.disabled:
            return False
        if self.start is not None and moment < self.start:
            return False
        return self.end is None or moment <= self.end

    def sync_target(self) -> tuple[str, str] | None:
        """(source, scope field) of a synchronization; None for other operations."""
        if self.operation != SYNC:
            return None
        return SYNC_CLOUDS[self.params["cloud_name"]]

    def as_body(self) -> dict[str, Any]:
        """The create body that gives this spec (PATCH merges into it)."""
        return {
            "name": self.name,
            "description": self.description,
            "operation": self.operation,
            "run_at": self.run_at,
            "run_on": self.run_on,
            "disabled": self.disabled,
            "start_date": None if self.start is None else rfc3339(self.start),
            "end_date": None if self.end is None else rfc3339(self.end),
            f"{self.operation}_params": copy.deepcopy(self.params),
        }


def _string(
    body: Mapping[str, Any], name: str, default: str | None = None, *, empty: bool = False
) -> str:
    value = body.get(name, default)
    if not isinstance(value, str) or (not empty and not value.strip()):
        word = "a string" if empty else "a non-empty string"
        raise ValueError(f"{name} must be {word}")
    if len(value) > MAX_NAME:
        raise ValueError(f"{name} must be at most {MAX_NAME} characters")
    return value


def _date(body: Mapping[str, Any], name: str) -> float | None:
    value = body.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"{name} must be an RFC 3339 timestamp or null")
    try:
        return parse_timestamp(value).timestamp()
    except ValueError:
        raise ValueError(f"{name} must be an RFC 3339 timestamp or null") from None


def _sync_params(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ValueError(f"{SYNC}_params must be an object naming cloud_name and the scope")
    cloud = raw.get("cloud_name")
    if cloud not in SYNC_CLOUDS:
        raise ValueError(f"cloud_name must be one of {', '.join(SYNC_CLOUDS)}")
    _, field = SYNC_CLOUDS[cloud]
    allowed = {"cloud_name", "synchronize_all", field} | ({"regions"} if cloud == "aws" else set())
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ValueError(f"unknown {SYNC}_params field for cloud {cloud}: {', '.join(unknown)}")
    sync_all = raw.get("synchronize_all", False)
    if not isinstance(sync_all, bool):
        raise ValueError("synchronize_all must be true or false")
    lists = {}
    for name in (field, "regions"):
        if name in raw:
            values = raw[name]
            if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
                raise ValueError(f"{name} must be an array of non-empty strings")
            lists[name] = list(values)
    if sync_all and lists.get(field):
        raise ValueError(f"{field} and synchronize_all: true are mutually exclusive")
    if not sync_all and not lists.get(field):
        raise ValueError(f"either {field} or synchronize_all: true must be given")
    return {"cloud_name": cloud, "synchronize_all": sync_all, **lists}


def check_body(body: Mapping[str, Any]) -> ConfigSpec:
    """A create body -> ConfigSpec; ``ValueError`` naming the first bad field."""
    unknown = sorted(k for k in body if k not in _FIELDS and not k.endswith("_params"))
    if unknown:
        raise ValueError(f"unknown job configuration field: {', '.join(unknown)}")
    operation = body.get("operation")
    if operation not in OPERATIONS:
        raise ValueError(f"operation must be one of {', '.join(OPERATIONS)}")
    disabled = body.get("disabled", False)
    if not isinstance(disabled, bool):
        raise ValueError("disabled must be true or false")
    start, end = _date(body, "start_date"), _date(body, "end_date")
    if start is not None and end is not None and end < start:
        raise ValueError("end_date must not be before start_date")
    raw_params = body.get(f"{operation}_params")
    if operation == SYNC:
        params = _sync_params(raw_params)
    elif raw_params is None or isinstance(raw_params, dict):
        params = copy.deepcopy(raw_params or {})
    else:
        raise ValueError(f"{operation}_params must be an object")
    return ConfigSpec(
        name=_string(body, "name").strip(),
        description=_string(body, "description", "", empty=True),
        operation=str(operation),
        run_at=check_cron(body.get("run_at")),
        run_on=_string(body, "run_on", "any"),
        disabled=disabled,
        start=start,
        end=end,
        params=params,
    )


def patched(spec: ConfigSpec, changes: Mapping[str, Any]) -> ConfigSpec:
    """``spec`` with a PATCH body applied (parameters are replaced whole)."""
    if "operation" in changes and changes["operation"] != spec.operation:
        raise ValueError("operation cannot be changed; create a new job configuration")
    if "job_config_params" in changes:
        raise ValueError(f"send the parameters as {spec.operation}_params")
    merged = spec.as_body()
    merged.update(changes)
    return check_body(merged)


@dataclass
class JobConfig:
    """One stored configuration; ``generation`` changes whenever its runs must re-arm."""

    id: str
    created: float
    updated: float
    spec: ConfigSpec
    generation: int = 0
    deleted: bool = False

    def render(self) -> dict[str, Any]:
        spec = self.spec
        return {
            "id": self.id,
            "uri": f"kylo:kylo:scheduler:jobconfig:{self.id}",
            "account": _ACCOUNT,
            "createdAt": rfc3339(self.created),
            "updatedAt": rfc3339(self.updated),
            "name": spec.name,
            "description": spec.description,
            "operation": spec.operation,
            "run_at": spec.run_at,
            "run_on": spec.run_on,
            "disabled": spec.disabled,
            "start_date": None if spec.start is None else rfc3339(spec.start),
            "end_date": None if spec.end is None else rfc3339(spec.end),
            "job_config_params": copy.deepcopy(spec.params),
        }
