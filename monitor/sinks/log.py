"""The ``log`` sink: each event as one structlog line (contract.md).

JSON when stdout is not a terminal: ``{"event": "<type>", "event_id": …, "timestamp": …,
"level": …, …the data fields, flattened…}``; on a terminal, a short readable line.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from monitor.logs import get_logger
from monitor.model import Event, EventType, format_timestamp

_LEVELS = {
    EventType.JOB_FAILED: "error",
    EventType.JOB_DOMAIN_FAILED: "error",
    EventType.JOB_STUCK: "warning",
    EventType.JOB_VANISHED: "warning",
    EventType.JOB_ABORTED: "warning",
    EventType.JOB_ABORT_REQUESTED: "warning",
    EventType.SOURCE_DOWN: "error",
}
# what a person wants to see on a terminal; the JSON line carries every field
_CONSOLE_FIELDS = (
    "manager",
    "source",
    "job_id",
    "status",
    "scope",
    "scope_status",
    "duration_seconds",
    "reason",
    "error",
)


class LogSink:
    """Writes each event of a batch as one line; nothing to retry, nothing to close."""

    max_batch = 1

    def __init__(self, name: str = "log", *, console: bool = False) -> None:
        self.name = name
        self._console = console
        self._log = get_logger("cckm_monitor.events")

    async def send(self, events: Sequence[Event]) -> None:
        for event in events:
            self._write(event)

    async def close(self) -> None:
        pass

    def _write(self, event: Event) -> None:
        fields: dict[str, Any]
        if self._console:
            fields = {k: event.data[k] for k in _CONSOLE_FIELDS if event.data.get(k) is not None}
        else:
            fields = dict(event.data)
        level = _LEVELS.get(event.type, "info")
        getattr(self._log, level)(
            event.type.value,
            event_id=event.id,
            timestamp=format_timestamp(event.timestamp),
            **fields,
        )
