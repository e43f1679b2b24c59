"""Metrics: the contract's names, types and labels, pre-created series, bounded labels,
updates through Telemetry, and the /metrics endpoint. Always an injected registry."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from monitor.app import DaemonInfo, run_daemon
from monitor.clock import FakeClock
from monitor.cm.errors import REASONS, CMError, HTTPStatusError, RequestTimeout
from monitor.config import Settings, parse_config
from monitor.http import build_app
from monitor.metrics import JOB_DURATION_BUCKETS, OUTCOMES, Metrics
from monitor.model import Event, EventType, JobEssence, event_id
from monitor.simulator import SimConfig, running_simulator
from monitor.sinks.base import FAILURE_REASONS, DeliveryError
from monitor.store import Store
from monitor.telemetry import Telemetry
from tests.factories import T0, essence, snap

ROOT = Path(__file__).resolve().parent.parent
PAIRS = [("prod", "aws"), ("prod", "gcp"), ("dr", "aws")]
SINKS = ["log", "ops"]
MS = {"manager", "source"}

# contract.md, Metrics: sample name -> (type, labels)
CONTRACT: dict[str, tuple[str, set[str]]] = {
    "cckm_job_events_total": ("counter", {*MS, "event"}),
    "cckm_jobs_running": ("gauge", MS),
    "cckm_job_start_timestamp_seconds": ("gauge", {*MS, "job_id"}),
    "cckm_job_duration_seconds": ("histogram", {*MS, "outcome"}),
    "cckm_polls_total": ("counter", MS),
    "cckm_poll_errors_total": ("counter", {*MS, "reason"}),
    "cckm_poll_duration_seconds": ("histogram", MS),
    "cckm_last_successful_poll_timestamp_seconds": ("gauge", MS),
    "cckm_source_up": ("gauge", MS),
    "cckm_api_requests_total": ("counter", {"manager", "code"}),
    "cckm_notifications_total": ("counter", {"sink", "event"}),
    "cckm_notification_failures_total": ("counter", {"sink", "reason"}),
    "cckm_notification_queue_depth": ("gauge", {"sink"}),
    "cckm_notification_latency_seconds": ("histogram", {"sink"}),
    "cckm_build_info": ("gauge", {"version"}),
}
# ours, documented in docs/metrics.md
ADDED: dict[str, tuple[str, set[str]]] = {
    "cckm_sink_disabled": ("gauge", {"sink"}),
    "cckm_poll_interval_seconds": ("gauge", set()),
    "cckm_stuck_after_seconds": ("gauge", set()),
}


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> Metrics:
    return Metrics(registry, PAIRS, SINKS, version="1.2.3", stuck_after_seconds=600)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def telemetry(metrics: Metrics, clock: FakeClock) -> Telemetry:
    return Telemetry(None, metrics, clock=clock)


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def families(registry: CollectorRegistry) -> dict[str, tuple[str, set[str]]]:
    """Exposed name -> (type, label names), as a scraper sees them."""
    out: dict[str, tuple[str, set[str]]] = {}
    for family in registry.collect():
        name = family.name + ("_total" if family.type == "counter" else "")
        labels = {k for s in family.samples for k in s.labels if k != "le"}
        out[name] = (family.type, labels)
    return out


def job_event(kind: EventType, job_id: str = "j1", **data: Any) -> Event:
    return Event(event_id(job_id, kind.value), kind, T0, "prod", "aws", job_id, data)


def running(*jobs: tuple[str, int]) -> dict[str, JobEssence]:
    """Running essences: (job id, seconds after T0 it was created)."""
    return {j: essence(snap(job_id=j, created_at=T0 + timedelta(seconds=s))) for j, s in jobs}


# --- names, types, labels ---------------------------------------------------------------


def test_every_metric_of_the_contract_and_nothing_undocumented(
    registry: CollectorRegistry, telemetry: Telemetry
) -> None:
    # a good poll with a running job and a finished one: the series that wait for them
    ended = [job_event(EventType.JOB_COMPLETED, "b", duration_seconds=12.0)]
    telemetry.poll_succeeded("prod", "aws", seconds=0.1, events=ended, running=running(("a", 0)))
    assert families(registry) == CONTRACT | ADDED


def test_every_metric_is_documented_with_its_labels(registry: CollectorRegistry) -> None:
    doc = (ROOT / "docs" / "metrics.md").read_text()
    for name, (_, labels) in (CONTRACT | ADDED).items():
        assert f"`{name}`" in doc, name
        for label in labels:
            assert f"`{label}`" in doc, (name, label)


def test_no_created_series_and_help_says_values_come_from_polling(
    registry: CollectorRegistry, metrics: Metrics
) -> None:
    text = _render(registry)
    assert "_created" not in text
    for name in ("cckm_job_events", "cckm_jobs_running", "cckm_source_up"):
        help_line = next(line for line in text.splitlines() if line.startswith(f"# HELP {name}"))
        assert "polling" in help_line


def test_build_info_and_configuration_gauges(registry: CollectorRegistry, metrics: Metrics) -> None:
    assert value(registry, "cckm_build_info", version="1.2.3") == 1
    assert value(registry, "cckm_poll_interval_seconds") == 30
    assert value(registry, "cckm_stuck_after_seconds") == 600


# --- pre-created series -----------------------------------------------------------------


def test_series_are_pre_created_at_zero(registry: CollectorRegistry, metrics: Metrics) -> None:
    for manager, source in PAIRS:
        pair = {"manager": manager, "source": source}
        for event in EventType:
            assert value(registry, "cckm_job_events_total", **pair, event=event.value) == 0
        for reason in REASONS:
            assert value(registry, "cckm_poll_errors_total", **pair, reason=reason) == 0
        for outcome in OUTCOMES:  # histograms appear with their first job, not before
            assert (
                value(registry, "cckm_job_duration_seconds_count", **pair, outcome=outcome) is None
            )
        assert value(registry, "cckm_polls_total", **pair) == 0
        assert value(registry, "cckm_jobs_running", **pair) == 0
        assert value(registry, "cckm_source_up", **pair) == 0  # up only after a good poll
        assert value(registry, "cckm_poll_duration_seconds_count", **pair) == 0
        # "never" is no series rather than 1970
        assert value(registry, "cckm_last_successful_poll_timestamp_seconds", **pair) is None
    for sink in SINKS:
        for event in EventType:
            assert value(registry, "cckm_notifications_total", sink=sink, event=event.value) == 0
        for reason in FAILURE_REASONS:
            assert (
                value(registry, "cckm_notification_failures_total", sink=sink, reason=reason) == 0
            )
        assert value(registry, "cckm_notification_queue_depth", sink=sink) == 0
        assert value(registry, "cckm_sink_disabled", sink=sink) == 0
    assert OUTCOMES == ("aborted", "completed", "failed", "vanished")


# --- polling ------------------------------------------------------------------------------


def test_a_good_poll_counts_events_durations_and_running_jobs(
    registry: CollectorRegistry, telemetry: Telemetry, clock: FakeClock
) -> None:
    events = [
        job_event(EventType.JOB_STARTED, "j2"),
        job_event(EventType.JOB_DOMAIN_FAILED, "j1"),
        job_event(EventType.JOB_DOMAIN_FAILED, "j1"),
        job_event(EventType.JOB_FAILED, "j1", duration_seconds=90.0),
        job_event(EventType.JOB_VANISHED, "j3", duration_seconds=None),
    ]
    clock.advance(5)
    telemetry.poll_succeeded(
        "prod", "aws", seconds=0.25, events=events, running=running(("j2", 60), ("j4", 0))
    )
    pair = {"manager": "prod", "source": "aws"}
    assert value(registry, "cckm_job_events_total", **pair, event="job.domain_failed") == 2
    assert value(registry, "cckm_job_events_total", **pair, event="job.failed") == 1
    assert value(registry, "cckm_job_events_total", **pair, event="job.vanished") == 1
    assert value(registry, "cckm_job_duration_seconds_sum", **pair, outcome="failed") == 90
    assert (
        value(registry, "cckm_job_duration_seconds_count", **pair, outcome="vanished") is None
    )  # no duration: no series
    assert value(registry, "cckm_polls_total", **pair) == 1
    assert value(registry, "cckm_poll_duration_seconds_sum", **pair) == 0.25
    assert value(registry, "cckm_source_up", **pair) == 1
    stamp = value(registry, "cckm_last_successful_poll_timestamp_seconds", **pair)
    assert stamp == T0.timestamp() + 5
    assert value(registry, "cckm_jobs_running", **pair) == 2
    assert value(registry, "cckm_job_start_timestamp_seconds", **pair, job_id="j2") == (
        T0.timestamp() + 60
    )
    # other sources untouched
    assert value(registry, "cckm_polls_total", manager="prod", source="gcp") == 0


def test_the_start_timestamp_falls_back_to_first_seen(
    registry: CollectorRegistry, telemetry: Telemetry
) -> None:
    seen = T0 + timedelta(minutes=3)
    job = {"j1": essence(snap(job_id="j1", created_at=None), first_seen=seen)}
    telemetry.poll_succeeded("prod", "aws", seconds=0.1, events=[], running=job)
    start = value(
        registry, "cckm_job_start_timestamp_seconds", manager="prod", source="aws", job_id="j1"
    )
    assert start == seen.timestamp()


def test_job_start_series_exist_for_running_jobs_only(
    registry: CollectorRegistry, telemetry: Telemetry
) -> None:
    def started() -> set[str]:
        return {
            s.labels["job_id"]
            for f in registry.collect()
            if f.name == "cckm_job_start_timestamp_seconds"
            for s in f.samples
        }

    telemetry.running_jobs("prod", "aws", running(("a", 0), ("b", 1)))  # loaded at start
    telemetry.poll_succeeded("prod", "gcp", seconds=0.1, events=[], running=running(("c", 0)))
    assert started() == {"a", "b", "c"}
    telemetry.poll_succeeded("prod", "aws", seconds=0.1, events=[], running=running(("b", 1)))
    assert started() == {"b", "c"}
    assert value(registry, "cckm_jobs_running", manager="prod", source="aws") == 1
    telemetry.poll_succeeded("prod", "aws", seconds=0.1, events=[], running={})
    assert started() == {"c"}
    assert value(registry, "cckm_jobs_running", manager="prod", source="aws") == 0


def test_a_failed_poll_counts_its_reason_and_keeps_the_running_jobs(
    registry: CollectorRegistry, telemetry: Telemetry
) -> None:
    pair = {"manager": "prod", "source": "aws"}
    telemetry.poll_succeeded("prod", "aws", seconds=0.1, events=[], running=running(("a", 0)))
    down = Event(event_id("down"), EventType.SOURCE_DOWN, T0, "prod", "aws")
    for error, events in (
        (RequestTimeout("timed out"), []),
        (HTTPStatusError("bad gateway", status=502), [down]),
    ):
        telemetry.poll_failed(
            "prod", "aws", seconds=3.0, error=error, events=events, consecutive_failures=3
        )
    assert value(registry, "cckm_poll_errors_total", **pair, reason="timeout") == 1
    assert value(registry, "cckm_poll_errors_total", **pair, reason="http_5xx") == 1
    assert value(registry, "cckm_polls_total", **pair) == 3
    assert value(registry, "cckm_source_up", **pair) == 0
    assert value(registry, "cckm_job_events_total", **pair, event="source.down") == 1
    assert value(registry, "cckm_jobs_running", **pair) == 1
    assert value(registry, "cckm_job_start_timestamp_seconds", **pair, job_id="a") is not None


def test_label_values_stay_bounded(registry: CollectorRegistry, telemetry: Telemetry) -> None:
    odd = CMError("odd")
    odd.reason = "something new"
    telemetry.poll_failed("prod", "aws", seconds=1, error=odd, events=[], consecutive_failures=1)
    for code in ("200", "503", "timeout", "connection", "999", "<html>", ""):
        telemetry.api_response("prod", code)
    event = job_event(EventType.JOB_FAILED)
    weird = DeliveryError("?", reason="teapot", retryable=False)
    telemetry.failed("ops", [event], weird, attempt=1, final=False)
    reasons = _label_values(registry, "cckm_poll_errors", "reason")
    assert reasons == {*REASONS, "other"}
    assert _label_values(registry, "cckm_api_requests", "code") == {
        "200",
        "503",
        "timeout",
        "connection",
        "other",
    }
    assert _label_values(registry, "cckm_notification_failures", "reason") == {
        *FAILURE_REASONS,
        "other",
    }


def _label_values(registry: CollectorRegistry, family: str, label: str) -> set[str]:
    return {s.labels[label] for f in registry.collect() if f.name == family for s in f.samples}


# --- delivery -------------------------------------------------------------------------------


def test_deliveries_failures_queue_and_disabled_sinks(
    registry: CollectorRegistry, telemetry: Telemetry, clock: FakeClock
) -> None:
    event = job_event(EventType.JOB_FAILED)  # detected at T0
    clock.advance(12)
    telemetry.delivered("ops", event, 0.05)
    assert value(registry, "cckm_notifications_total", sink="ops", event="job.failed") == 1
    # latency: from detection, not the request's own 50 ms
    assert value(registry, "cckm_notification_latency_seconds_sum", sink="ops") == 12
    error = DeliveryError("503", reason="http_5xx", retryable=True)
    telemetry.failed("ops", [event], error, attempt=1, final=False)
    telemetry.failed("ops", [event], error, attempt=2, final=True)
    failures = {
        r: value(registry, "cckm_notification_failures_total", sink="ops", reason=r)
        for r in ("http_5xx", "dead_letter")
    }
    assert failures == {"http_5xx": 2, "dead_letter": 1}
    telemetry.queue_depth("ops", 7)
    assert value(registry, "cckm_notification_queue_depth", sink="ops") == 7
    telemetry.sink_disabled("ops", "410 Gone")
    assert value(registry, "cckm_sink_disabled", sink="ops") == 1
    assert value(registry, "cckm_sink_disabled", sink="log") == 0


def test_telemetry_without_metrics_only_logs() -> None:
    telemetry = Telemetry(None)
    telemetry.poll_succeeded("prod", "aws", seconds=0.1, events=[], running=running(("a", 0)))
    telemetry.delivered("ops", job_event(EventType.JOB_STARTED), 0.1)
    telemetry.api_response("prod", "200")
    telemetry.queue_depth("ops", 1)


def test_duration_buckets_cover_seconds_to_a_day() -> None:
    assert JOB_DURATION_BUCKETS[0] <= 1
    assert 86400 in JOB_DURATION_BUCKETS


# --- /metrics ----------------------------------------------------------------------------------


def _render(registry: CollectorRegistry) -> str:
    return generate_latest(registry).decode()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "state.db")
    yield s
    s.close()


@pytest.fixture
async def client(
    store: Store, registry: CollectorRegistry, metrics: Metrics
) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    app = build_app(store, list, version="1.2.3", registry=registry)
    async with TestClient(TestServer(app)) as c:
        yield c


async def test_metrics_in_the_text_format(
    client: TestClient,  # type: ignore[type-arg]
    telemetry: Telemetry,
) -> None:
    telemetry.poll_succeeded("prod", "aws", seconds=0.1, events=[], running=running(("j9", 0)))
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = await resp.text()
    parsed = {f.name: f for f in text_string_to_metric_families(text)}
    assert parsed["cckm_job_events"].type == "counter"
    assert 'cckm_job_start_timestamp_seconds{job_id="j9",manager="prod",source="aws"}' in text


async def test_metrics_in_openmetrics_when_asked(
    client: TestClient,  # type: ignore[type-arg]
) -> None:
    accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
    resp = await client.get("/metrics", headers={"Accept": accept})
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("application/openmetrics-text")
    text = await resp.text()
    assert text.endswith("# EOF\n")
    assert "# TYPE cckm_job_events counter" in text


async def test_metrics_are_compressed_for_a_scraper_that_accepts_gzip(
    client: TestClient,  # type: ignore[type-arg]
) -> None:
    resp = await client.get("/metrics", headers={"Accept-Encoding": "gzip"})
    assert resp.headers.get("Content-Encoding") == "gzip"
    assert "cckm_build_info" in await resp.text()  # the client decompresses


async def test_no_metrics_route_without_a_registry(store: Store) -> None:
    async with TestClient(TestServer(build_app(store, list, version="1"))) as c:
        assert (await c.get("/metrics")).status == 404


# --- the daemon ---------------------------------------------------------------------------------


# run_daemon adds the password to the process-wide log redactor: not a word other tests log
PASSWORD = "metrics-test-password"


def _settings(url: str, state: Path) -> Settings:
    return parse_config(
        {
            "managers": [
                {
                    "name": "sim",
                    "url": url,
                    "username": "admin",
                    "password": PASSWORD,
                    "sources": ["aws"],
                }
            ],
            # one poll at start, then none for the length of the test
            "poll": {"interval_seconds": 3600, "timeout_seconds": 2},
            "state_path": str(state),
            "http": {"listen": "127.0.0.1:0"},
            "sinks": [{"type": "log"}],
        }
    )


@asynccontextmanager
async def daemon(settings: Settings) -> AsyncIterator[tuple[str, aiohttp.ClientSession]]:
    """run_daemon in this process; yields its URL and a session, stops it afterwards."""
    ready: list[DaemonInfo] = []
    started = anyio.Event()
    stop = anyio.Event()

    def on_ready(info: DaemonInfo) -> None:
        ready.append(info)
        started.set()

    async with anyio.create_task_group() as tg, aiohttp.ClientSession() as session:
        tg.start_soon(
            partial(run_daemon, settings, stop=stop, handle_signals=False, on_ready=on_ready)
        )
        with anyio.fail_after(10):
            await started.wait()
        yield str(ready[0].http_url), session
        stop.set()


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def _scrape(session: aiohttp.ClientSession, url: str) -> Samples:
    async with session.get(url + "/metrics") as resp:
        assert resp.status == 200
        text = await resp.text()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


async def _wait_for(session: aiohttp.ClientSession, url: str, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    with anyio.fail_after(10):
        while True:
            found = (await _scrape(session, url)).get(key)
            if found:
                return float(found)
            await anyio.sleep(0.02)


async def test_the_daemon_serves_metrics_without_calling_the_manager(tmp_path: Path) -> None:
    config = SimConfig(
        sources=("aws",),
        history=3,
        running=2,
        scope_seconds=(3600.0, 7200.0),
        password=PASSWORD,
    )
    async with running_simulator(config) as sim:
        settings = _settings(sim.url, tmp_path / "state.db")
        async with daemon(settings) as (url, session):
            pair = {"manager": "sim", "source": "aws"}
            await _wait_for(session, url, "cckm_polls_total", **pair)
            before = sim.simulator.stats.as_dict()
            samples = [await _scrape(session, url) for _ in range(5)]
            assert sim.simulator.stats.as_dict() == before  # five scrapes, no request
        running_jobs = samples[-1][("cckm_jobs_running", tuple(sorted(pair.items())))]
        assert running_jobs == 2
        assert samples[-1][("cckm_source_up", tuple(sorted(pair.items())))] == 1

    # the manager is gone now: after a restart the running jobs of the state file show
    # at once, though no poll succeeds
    async with daemon(settings) as (url, session):
        await _wait_for(session, url, "cckm_poll_errors_total", **pair, reason="connection")
        after = await _scrape(session, url)
    assert after[("cckm_jobs_running", tuple(sorted(pair.items())))] == 2
    assert after[("cckm_source_up", tuple(sorted(pair.items())))] == 0
    starts = [k for k in after if k[0] == "cckm_job_start_timestamp_seconds"]
    assert len(starts) == 2
