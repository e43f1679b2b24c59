"""JSON encoding of essences and events for the state file.

Kept apart from the store so that the schema of what is persisted is readable in one
place and round-trips are testable without SQLite.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from monitor.model import (
    Event,
    EventType,
    JobEssence,
    JobSnapshot,
    format_optional,
    parse_timestamp,
)


def _stamp(value: Any) -> datetime | None:
    return None if value is None else parse_timestamp(str(value))


def _iso(moment: datetime | None) -> str | None:
    # full precision: the watermark compares createdAt values to the microsecond
    return None if moment is None else moment.isoformat()


def snapshot_to_dict(snapshot: JobSnapshot) -> dict[str, Any]:
    return {
        "id": snapshot.job_id,
        "status": snapshot.status,
        "abort": snapshot.abort,
        "created_at": _iso(snapshot.created_at),
        "updated_at": _iso(snapshot.updated_at),
        "completed_at": _iso(snapshot.completed_at),
        "cloud": snapshot.cloud,
        "scopes": list(snapshot.scopes),
        "detailed_status": [list(pair) for pair in snapshot.detailed_status],
    }


def snapshot_from_dict(data: dict[str, Any]) -> JobSnapshot:
    return JobSnapshot(
        job_id=data["id"],
        status=data["status"],
        abort=bool(data["abort"]),
        created_at=_stamp(data.get("created_at")),
        updated_at=_stamp(data.get("updated_at")),
        completed_at=_stamp(data.get("completed_at")),
        cloud=data.get("cloud"),
        scopes=tuple(data.get("scopes", ())),
        detailed_status=tuple((str(k), str(v)) for k, v in data.get("detailed_status", ())),
    )


def encode_essence(essence: JobEssence) -> str:
    return json.dumps(
        {
            "snapshot": snapshot_to_dict(essence.snapshot),
            "first_seen": _iso(essence.first_seen),
            "terminal": essence.terminal,
            "stuck_reported": essence.stuck_reported,
            "baseline": essence.baseline,
        },
        separators=(",", ":"),
    )


def decode_essence(text: str) -> JobEssence:
    data = json.loads(text)
    first_seen = _stamp(data["first_seen"])
    assert first_seen is not None  # always written
    return JobEssence(
        snapshot=snapshot_from_dict(data["snapshot"]),
        first_seen=first_seen,
        terminal=data.get("terminal"),
        stuck_reported=bool(data.get("stuck_reported")),
        baseline=bool(data.get("baseline")),
    )


def encode_event(event: Event) -> str:
    return json.dumps(
        {
            "id": event.id,
            "type": event.type.value,
            "timestamp": _iso(event.timestamp),
            "manager": event.manager,
            "source": event.source,
            "job_id": event.job_id,
            "data": dict(event.data),
        },
        separators=(",", ":"),
    )


def decode_event(text: str) -> Event:
    data = json.loads(text)
    timestamp = _stamp(data["timestamp"])
    assert timestamp is not None
    return Event(
        id=data["id"],
        type=EventType(data["type"]),
        timestamp=timestamp,
        manager=data["manager"],
        source=data["source"],
        job_id=data.get("job_id"),
        data=data["data"],
    )


def essence_summary(manager: str, source: str, essence: JobEssence) -> dict[str, Any]:
    """A tracked job as ``/api/v1/jobs`` and ``jobs`` show it."""
    snap = essence.snapshot
    return {
        "manager": manager,
        "source": source,
        "job_id": snap.job_id,
        "status": snap.status,
        "abort": snap.abort,
        "created_at": format_optional(snap.created_at),
        "updated_at": format_optional(snap.updated_at),
        "completed_at": format_optional(snap.completed_at),
        "first_seen": format_optional(essence.first_seen),
        "terminal": essence.terminal,
        "stuck": essence.stuck_reported,
        "scopes": list(snap.scopes),
        "detailed_status": dict(snap.detailed_status),
    }
