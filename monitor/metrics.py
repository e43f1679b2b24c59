"""Every Prometheus metric of the daemon, built once on an injected ``CollectorRegistry``.

The names and labels are a public contract (docs/metrics.md, contract.md): dashboards and
alert rules query them. Label values are bounded: manager and source names come from the
configuration, events from ``EventType``, reasons from fixed tuples, and the only job id
label is on ``cckm_job_start_timestamp_seconds``, which holds running jobs only.

Series are pre-created at 0 for every configured manager x source (x event, x reason) and
every sink, so ``rate()`` and ``increase()`` see the first increment and dashboards show
every source before anything happens (celery-exporter's lesson).

Nothing here does I/O, and nothing is computed at scrape time: ``Telemetry`` updates these
objects where things happen, and rendering ``/metrics`` only reads them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from monitor import __version__
from monitor.cm.errors import REASONS
from monitor.config import Settings
from monitor.model import TERMINAL_EVENTS, EventType
from monitor.sinks.base import FAILURE_REASONS
from monitor.textblocks import Block, Prerendered, escape_value, number

# A job runs from seconds (one region, one key) to many hours (thousands of keys).
JOB_DURATION_BUCKETS = (
    1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 28800, 86400, float("inf")
)  # fmt: skip
# One poll cycle: a few requests, each bounded by poll.timeout_seconds (plus retries).
POLL_DURATION_BUCKETS = (
    0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, float("inf")
)  # fmt: skip
# Event timestamp to delivery: a second when healthy, up to a day (max_age) when retrying.
LATENCY_BUCKETS = (
    0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400, float("inf")
)  # fmt: skip

OUTCOMES = tuple(sorted(t.value.removeprefix("job.") for t in TERMINAL_EVENTS))
OTHER = "other"  # the one label value for a reason or code outside the fixed sets
API_CODES = ("timeout", "connection")  # besides HTTP statuses: no answer at all

_POLLED = "Values come from polling the manager's job API every poll.interval_seconds."


def _help(text: str) -> str:
    return f"{text} {_POLLED}"


def bounded_reason(reason: str, allowed: Iterable[str]) -> str:
    """``reason`` if it is one of ``allowed``, else ``other``: label values stay bounded."""
    return reason if reason in allowed else OTHER


def bounded_code(code: str) -> str:
    """An HTTP status (100-599), ``timeout`` or ``connection``; anything else ``other``."""
    if code in API_CODES:
        return code
    if len(code) == 3 and code.isdigit() and 100 <= int(code) <= 599:
        return code
    return OTHER


class _Running:
    """One source's running jobs (job id -> start time) and, once a scrape asked, their
    sample lines rendered (``block``). Replaced whole when the running set changes."""

    __slots__ = ("block", "labels", "started")

    def __init__(self, manager: str, source: str, started: dict[str, float]) -> None:
        self.started = started
        self.labels = (manager, source)
        self.block: Block | None = None


class StartTimes(Collector):
    """``cckm_job_start_timestamp_seconds``: one sample per running job, from plain dicts.

    A ``Gauge`` child per job costs about 650 bytes (a lock, a value object, label
    tuples): 65 MB for 100,000 running jobs (bench/memory.py). Here a job costs one dict
    entry. Each source's sample lines are rendered by the first scrape after its running
    set changed and kept deflated (``exposition.Block``, about 6 bytes a job): later
    scrapes send them as they are, so a scrape costs what changed since the last one
    (bench/scrape.py). Each source's entry is replaced whole, never changed in place, so
    rendering in another thread (``/metrics`` does) always reads one consistent poll.
    """

    def __init__(self, name: str, documentation: str, registry: CollectorRegistry) -> None:
        self.name = name
        self.documentation = documentation
        self._labels = ["manager", "source", "job_id"]
        self._by_source: dict[tuple[str, str], _Running] = {}
        registry.register(self)

    def set(self, manager: str, source: str, started: Mapping[str, float]) -> None:
        key = (manager, source)
        current = self._by_source.get(key)
        if current is not None and current.started == started:
            return  # the same jobs, the same start times: the rendered lines stay
        self._by_source[key] = _Running(manager, source, dict(started))

    def describe(self) -> list[Metric]:
        return [GaugeMetricFamily(self.name, self.documentation, labels=self._labels)]

    def collect(self) -> Iterator[Metric]:
        rows = list(self._by_source.values())
        family = Prerendered(self.name, self.documentation, "gauge", lambda: self._blocks(rows))
        # a generator, read once by whichever renderer of prometheus_client (ours reads
        # the blocks instead)
        family.samples = self._samples(rows)  # type: ignore[assignment]
        yield family

    def _samples(self, rows: list[_Running]) -> Iterator[Sample]:
        name = self.name
        for row in rows:
            manager, source = row.labels
            for job_id, at in row.started.items():
                yield Sample(name, {"manager": manager, "source": source, "job_id": job_id}, at)

    def _blocks(self, rows: list[_Running]) -> Iterator[Block]:
        for row in rows:
            block = row.block
            if block is None:
                # two scrapes at once may both render it: the same bytes, harmless
                block = row.block = Block.of(self._lines(row))
            yield block

    def _lines(self, row: _Running, per_piece: int = 4096) -> Iterator[str]:
        # the label names in sorted order, as the text format has them: job_id, manager,
        # source; only the job id and the value differ from line to line
        manager, source = row.labels
        head = self.name + '{job_id="'
        tail = f'",manager="{escape_value(manager)}",source="{escape_value(source)}"}} '
        items = list(row.started.items())
        for at in range(0, len(items), per_piece):
            yield "".join(
                [
                    f"{head}{escape_value(job_id)}{tail}{number(value)}\n"
                    for job_id, value in items[at : at + per_piece]
                ]
            )


class Metrics:
    """The daemon's metric objects, with their series pre-created.

    ``managers_sources``: every configured (manager, source) pair; ``sinks``: every sink
    name. ``poll_interval_seconds`` and ``stuck_after_seconds`` are exported as gauges so
    that the alert rules follow the configuration instead of repeating it.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        managers_sources: Iterable[tuple[str, str]],
        sinks: Iterable[str],
        *,
        version: str = __version__,
        poll_interval_seconds: float = 30.0,
        stuck_after_seconds: float = 3600.0,
    ) -> None:
        # Process-wide switch of prometheus_client: without it every counter and histogram
        # gets a second series family, ``*_created``, which Prometheus 2.x stores as gauges.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = registry
        self.pairs = tuple(dict.fromkeys(managers_sources))
        self.sinks = tuple(dict.fromkeys(sinks))
        ms = ("manager", "source")
        r = registry

        self.job_events = Counter(
            "cckm_job_events",
            _help("Job and source events detected, by event type."),
            [*ms, "event"],
            registry=r,
        )
        self.jobs_running = Gauge(
            "cckm_jobs_running", _help("Jobs running at the last successful poll."), ms, registry=r
        )
        self.job_start = StartTimes(
            "cckm_job_start_timestamp_seconds",
            _help(
                "Start time (the manager's createdAt, else when first seen) of each running "
                "job, in Unix seconds; the series disappears when the job ends."
            ),
            r,
        )
        self.job_duration = Histogram(
            "cckm_job_duration_seconds",
            _help("Duration of finished jobs (createdAt to completion), by outcome."),
            [*ms, "outcome"],
            buckets=JOB_DURATION_BUCKETS,
            registry=r,
        )
        self.polls = Counter(
            "cckm_polls", _help("Poll cycles attempted, failed or not."), ms, registry=r
        )
        self.poll_errors = Counter(
            "cckm_poll_errors",
            _help("Poll cycles that failed, by reason."),
            [*ms, "reason"],
            registry=r,
        )
        self.poll_duration = Histogram(
            "cckm_poll_duration_seconds",
            _help("Wall time of one poll cycle, failed ones included."),
            ms,
            buckets=POLL_DURATION_BUCKETS,
            registry=r,
        )
        self.last_success = Gauge(
            "cckm_last_successful_poll_timestamp_seconds",
            _help("When the last successful poll ended, in Unix seconds; absent until one has."),
            ms,
            registry=r,
        )
        self.source_up = Gauge(
            "cckm_source_up",
            _help("1 if the last poll of the source succeeded, 0 if it failed or none has yet."),
            ms,
            registry=r,
        )
        self.api_requests = Counter(
            "cckm_api_requests",
            _help("Answers from the manager's API by HTTP status, or timeout/connection."),
            ["manager", "code"],
            registry=r,
        )
        self.notifications = Counter(
            "cckm_notifications",
            "Events delivered to a sink, by event type.",
            ["sink", "event"],
            registry=r,
        )
        self.notification_failures = Counter(
            "cckm_notification_failures",
            "Failed delivery attempts by reason; dead_letter counts events given up on.",
            ["sink", "reason"],
            registry=r,
        )
        self.queue_depth = Gauge(
            "cckm_notification_queue_depth",
            "Events waiting for delivery to a sink, as last counted by its delivery worker.",
            ["sink"],
            registry=r,
        )
        self.notification_latency = Histogram(
            "cckm_notification_latency_seconds",
            "Time from an event's detection (its timestamp) to its delivery to a sink.",
            ["sink"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.sink_disabled = Gauge(
            "cckm_sink_disabled",
            "1 when a sink was disabled (the receiver answered 410 Gone) until restart.",
            ["sink"],
            registry=r,
        )
        self.build_info = Gauge(
            "cckm_build_info",
            "Always 1; the version label says which build runs.",
            ["version"],
            registry=r,
        )
        self.poll_interval = Gauge(
            "cckm_poll_interval_seconds",
            "The configured poll.interval_seconds (the alert rules read it).",
            registry=r,
        )
        self.stuck_after = Gauge(
            "cckm_stuck_after_seconds",
            "The configured stuck_after_seconds (the alert rules read it).",
            registry=r,
        )
        self.build_info.labels(version=version).set(1)
        self.poll_interval.set(poll_interval_seconds)
        self.stuck_after.set(stuck_after_seconds)
        for pair in self.pairs:
            self._precreate_source(*pair)
        for sink in self.sinks:
            self._precreate_sink(sink)

    @classmethod
    def from_settings(
        cls, registry: CollectorRegistry, settings: Settings, sinks: Iterable[str]
    ) -> Metrics:
        """Metrics for every manager x source of ``settings`` and the given sink names."""
        return cls(
            registry,
            ((m.name, s) for m in settings.managers for s in m.sources),
            sinks,
            poll_interval_seconds=settings.poll.interval_seconds,
            stuck_after_seconds=settings.stuck_after_seconds,
        )

    def _precreate_source(self, manager: str, source: str) -> None:
        for event in EventType:
            self.job_events.labels(manager, source, event.value)
        # job_duration is not pre-created: 42 sources x 4 outcomes x 17 lines of empty
        # histogram were half of every scrape; a histogram appears with its first job.
        for reason in REASONS:
            self.poll_errors.labels(manager, source, reason)
        self.jobs_running.labels(manager, source).set(0)
        self.polls.labels(manager, source)
        self.poll_duration.labels(manager, source)
        self.source_up.labels(manager, source).set(0)
        self.api_requests.labels(manager, "200")

    def _precreate_sink(self, sink: str) -> None:
        for event in EventType:
            self.notifications.labels(sink, event.value)
        for reason in FAILURE_REASONS:
            self.notification_failures.labels(sink, reason)
        self.queue_depth.labels(sink).set(0)
        self.notification_latency.labels(sink)
        self.sink_disabled.labels(sink).set(0)

    def set_running(self, manager: str, source: str, started: Mapping[str, float]) -> None:
        """The running jobs of one source now: job id -> start time (Unix seconds).

        Sets ``cckm_jobs_running`` and one start-time series per job; the series of jobs
        no longer running go, so the job id label stays bounded by running jobs.
        """
        self.jobs_running.labels(manager, source).set(len(started))
        self.job_start.set(manager, source, started)
