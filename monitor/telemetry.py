"""Where pollers, delivery workers and manager clients report what happened.

One place for log lines and Prometheus metrics, so the two cannot drift apart: every
metric of ``monitor.metrics`` is updated here and nowhere else. Without ``metrics``
(unit tests, ``--once`` runs that serve nothing) only the logs are written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from monitor.clock import Clock, SystemClock
from monitor.cm.errors import REASONS, CMError
from monitor.logs import get_logger
from monitor.metrics import Metrics, bounded_code, bounded_reason
from monitor.model import TERMINAL_EVENTS, Event, JobEssence
from monitor.sinks.base import DEAD_LETTER, FAILURE_REASONS, INTERNAL, DeliveryError


def start_times(running: Mapping[str, JobEssence]) -> dict[str, float]:
    """Job id -> start time in Unix seconds: the manager's createdAt, else first seen."""
    return {
        job_id: (essence.snapshot.created_at or essence.first_seen).timestamp()
        for job_id, essence in running.items()
    }


class Telemetry:
    """Implements PollObserver and DeliveryObserver, and counts the manager's answers.

    ``clock`` gives the wall time of successful polls and of deliveries (the latency is
    measured from the event's timestamp, which the same clock stamped).
    """

    def __init__(
        self, log: Any = None, metrics: Metrics | None = None, *, clock: Clock | None = None
    ) -> None:
        self._log = log or get_logger("cckm_monitor")
        self._metrics = metrics
        self._clock = clock or SystemClock()

    # --- polling ------------------------------------------------------------------

    def running_jobs(self, manager: str, source: str, running: Mapping[str, JobEssence]) -> None:
        """The running jobs of one source, as loaded from the state file at start."""
        if self._metrics is not None:
            self._metrics.set_running(manager, source, start_times(running))

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
        m = self._metrics
        if m is None:
            return
        m.polls.labels(manager, source).inc()
        m.poll_duration.labels(manager, source).observe(seconds)
        m.last_success.labels(manager, source).set(self._clock.now().timestamp())
        m.source_up.labels(manager, source).set(1)
        self._count_events(m, manager, source, events)
        m.set_running(manager, source, start_times(running))

    def strategy_changed(self, manager: str, source: str, *, strategy: str, reason: str) -> None:
        self._log.warning(
            "poll.strategy_changed",
            manager=manager,
            source=source,
            strategy=strategy,
            reason=reason,
            hint="set poll.strategy: full to start this way",
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
        m = self._metrics
        if m is None:
            return
        m.polls.labels(manager, source).inc()
        m.poll_errors.labels(manager, source, bounded_reason(error.reason, REASONS)).inc()
        m.poll_duration.labels(manager, source).observe(seconds)
        m.source_up.labels(manager, source).set(0)
        self._count_events(m, manager, source, events)
        # a failed poll learns nothing about jobs: the running gauges keep their values

    def poll_crashed(
        self, manager: str, source: str, *, error: BaseException, traceback: bool
    ) -> None:
        # counted by the poll_failed that follows (reason="internal")
        self._log.error(
            "poll.internal_error",
            manager=manager,
            source=source,
            error=f"{type(error).__name__}: {error}",
            hint="a bug in cckm-monitor; the source polls again next cycle",
            exc_info=error if traceback else None,
        )

    @staticmethod
    def _count_events(m: Metrics, manager: str, source: str, events: Sequence[Event]) -> None:
        for event in events:
            m.job_events.labels(manager, source, event.type.value).inc()
            if event.type in TERMINAL_EVENTS:
                duration = event.data.get("duration_seconds")
                if isinstance(duration, int | float):
                    outcome = event.type.value.removeprefix("job.")
                    m.job_duration.labels(manager, source, outcome).observe(duration)

    # --- delivery -----------------------------------------------------------------

    def delivered(self, sink: str, event: Event, seconds: float) -> None:
        m = self._metrics
        if m is None:
            return
        m.notifications.labels(sink, event.type.value).inc()
        # from detection to delivery: outbox wait and retries included, which is what an
        # alert on late notifications needs (``seconds`` is only the last request's time)
        latency = (self._clock.now() - event.timestamp).total_seconds()
        m.notification_latency.labels(sink).observe(max(latency, 0.0))

    def failed(
        self, sink: str, events: Sequence[Event], error: DeliveryError, attempt: int, final: bool
    ) -> None:
        # one line per attempt at a batch, not one per event: 40 failed regions of one job
        # travel as one Slack message and fail as one
        level = "error" if final else "warning"
        getattr(self._log, level)(
            "notification.failed",
            sink=sink,
            event_id=events[0].id if events else None,
            event_type=events[0].type.value if events else None,
            events=len(events),
            reason=error.reason,
            error=error.message,
            attempt=attempt,
            gave_up=final,
        )
        m = self._metrics
        if m is None:
            return
        failures = m.notification_failures
        reason = failures.labels(sink, bounded_reason(error.reason, FAILURE_REASONS))
        reason.inc(len(events))
        if final and error.reason != DEAD_LETTER:
            failures.labels(sink, DEAD_LETTER).inc(len(events))

    def queue_depth(self, sink: str, depth: int) -> None:
        if self._metrics is not None:
            self._metrics.queue_depth.labels(sink).set(depth)

    def sink_disabled(self, sink: str, reason: str) -> None:
        self._log.error(
            "sink.disabled",
            sink=sink,
            error=reason,
            hint="the receiver says it is gone (410); fix the sink and restart cckm-monitor",
        )
        if self._metrics is not None:
            self._metrics.sink_disabled.labels(sink).set(1)

    def delivery_crashed(self, sink: str, *, error: BaseException, traceback: bool) -> None:
        self._log.error(
            "delivery.internal_error",
            sink=sink,
            error=f"{type(error).__name__}: {error}",
            hint="a bug in cckm-monitor; nothing was lost, delivery tries again shortly",
            exc_info=error if traceback else None,
        )
        if self._metrics is not None:
            self._metrics.notification_failures.labels(sink, INTERNAL).inc()

    # --- the manager's API ----------------------------------------------------------

    def api_response(self, manager: str, code: str) -> None:
        """One answer (an HTTP status, or timeout/connection) from a manager."""
        if self._metrics is not None:
            self._metrics.api_requests.labels(manager, bounded_code(code)).inc()
