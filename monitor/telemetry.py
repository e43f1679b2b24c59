"""Where pollers and delivery workers report what happened: one place for logs (and, with
the metrics sink, counters), so the two cannot drift apart."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from monitor.cm.errors import CMError
from monitor.logs import get_logger
from monitor.model import Event, JobEssence
from monitor.sinks.base import DeliveryError


class Telemetry:
    """Implements both PollObserver and DeliveryObserver."""

    def __init__(self, log: Any = None) -> None:
        self._log = log or get_logger("cckm_monitor")

    # --- polling ------------------------------------------------------------------

    def poll_succeeded(
        self,
        manager: str,
        source: str,
        *,
        seconds: float,
        events: Sequence[Event],
        running: Mapping[str, JobEssence],
    ) -> None:
        self._log.debug(
            "poll.ok",
            manager=manager,
            source=source,
            seconds=round(seconds, 3),
            events=len(events),
            running=len(running),
        )

    def poll_failed(
        self,
        manager: str,
        source: str,
        *,
        seconds: float,
        error: CMError,
        events: Sequence[Event],
        consecutive_failures: int,
    ) -> None:
        self._log.warning(
            "poll.failed",
            manager=manager,
            source=source,
            reason=error.reason,
            error=error.message,
            consecutive_failures=consecutive_failures,
        )

    # --- delivery -----------------------------------------------------------------

    def delivered(self, sink: str, event: Event, seconds: float) -> None:
        pass

    def failed(
        self, sink: str, event: Event, error: DeliveryError, attempt: int, final: bool
    ) -> None:
        level = "error" if final else "warning"
        getattr(self._log, level)(
            "notification.failed",
            sink=sink,
            event_id=event.id,
            event_type=event.type.value,
            reason=error.reason,
            error=error.message,
            attempt=attempt,
            gave_up=final,
        )

    def queue_depth(self, sink: str, depth: int) -> None:
        pass

    def sink_disabled(self, sink: str, reason: str) -> None:
        self._log.error(
            "sink.disabled",
            sink=sink,
            error=reason,
            hint="the receiver says it is gone (410); fix the sink and restart cckm-monitor",
        )

    # --- the manager's API ----------------------------------------------------------

    def api_response(self, manager: str, code: str) -> None:
        """One answer (an HTTP status, or timeout/connection) from a manager."""
