"""End to end with the real Alertmanager, configured by config/alertmanager's example.

Alerts posted by the sink appear in ``GET /api/v2/alerts`` with the right labels,
resolve when they should (stuck -> the job ends, source.down -> source.up), reach a
local webhook receiver through Alertmanager's routing, and two monitors posting the
same event make one alert.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.request import urlopen

import aiohttp
import anyio
import pytest
import yaml

from monitor.model import Event, EventType
from monitor.sinks.base import Sink
from tests.binaries import require
from tests.processes import ROOT, free_port, wait_until
from tests.sink_kit import Receiver, job_event, make_sink, receiver_in_thread
from tests.sink_kit import source_event as make_source_event

pytestmark = pytest.mark.e2e
T = TypeVar("T")
EXAMPLE = ROOT / "config" / "alertmanager" / "alertmanager.example.yml"


@dataclass
class Alertmanager:
    url: str
    hooks: Receiver  # where Alertmanager's own webhooks arrive

    async def alerts(self, **labels: str) -> list[dict[str, Any]]:
        """Active alerts whose labels match."""
        query = [("filter", f'{k}="{v}"') for k, v in labels.items()]
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{self.url}/api/v2/alerts", params=query) as response,
        ):
            assert response.status == 200
            found: list[dict[str, Any]] = await response.json()
            return found

    async def notified(self, job_id: str, status: str | None = None) -> list[dict[str, Any]]:
        """Alerts of Alertmanager's notifications about one job, with their status."""
        return [
            alert
            for request in list(self.hooks.requests)
            for alert in json.loads(request.body)["alerts"]
            if alert["labels"].get("job_id") == job_id and status in (None, alert["status"])
        ]


def config_for_tests(hooks_url: str) -> dict[str, Any]:
    """The example, pointed at the local receiver, with timings for a test."""
    config: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    config["route"].update(group_wait="100ms", group_interval="200ms")
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = f"{hooks_url}/{receiver['name']}"
    return config


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Alertmanager]:
    binary = require("prometheus-alertmanager")
    where = tmp_path_factory.mktemp("alertmanager")
    with receiver_in_thread() as hooks:
        config = where / "alertmanager.yml"
        config.write_text(yaml.safe_dump(config_for_tests(hooks.base)))
        port = free_port()
        log = (where / "alertmanager.log").open("wb")
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.path={where / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",  # clustering off
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until(lambda: ready(url), what="alertmanager")
            yield Alertmanager(url, hooks)
        finally:
            process.terminate()
            process.wait(10)
            log.close()


async def post(sink: Sink, *events: Event) -> None:
    try:
        await sink.send(list(events))
    finally:
        await sink.close()


async def eventually(check: Callable[[], Awaitable[T]], what: str, within: float = 10.0) -> T:
    """The first truthy answer of ``check``, asked every 50 ms (Alertmanager's own
    group_wait and resolve timers run on real time)."""
    for _ in range(int(within / 0.05)):
        value = await check()
        if value:
            return value
        await anyio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def ready(url: str) -> bool:
    try:
        with urlopen(url + "/-/ready", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def now() -> datetime:
    return datetime.now(UTC)


def names(alerts: list[dict[str, Any]]) -> list[str]:
    return sorted(a["labels"]["alertname"] for a in alerts)


async def test_alerts_appear_with_labels_and_are_routed(alertmanager: Alertmanager) -> None:
    am = alertmanager
    failed_scope = job_event(
        EventType.JOB_DOMAIN_FAILED, job="e2e-1", scope="acct/us-east-1", message="Denied", at=now()
    )
    failed = job_event(EventType.JOB_FAILED, job="e2e-1", at=now())
    await post(make_sink("alertmanager", am.url, timeout=5), failed_scope, failed)
    alerts = await am.alerts(job_id="e2e-1")
    assert names(alerts) == [
        "CCKMDomainFailed",
        "CCKMJobFailed",
    ]  # the stuck resolution is not active
    scope_alert = next(a for a in alerts if a["labels"]["alertname"] == "CCKMDomainFailed")
    assert scope_alert["labels"] == {
        "alertname": "CCKMDomainFailed",
        "severity": "critical",
        "manager": "prod",
        "source": "aws",
        "job_id": "e2e-1",
        "scope": "acct/us-east-1",
    }
    assert scope_alert["annotations"]["summary"] == "Scope failed: aws job e2e-1 on prod"

    async def both_notified() -> set[str]:
        found = {a["labels"]["alertname"] for a in await am.notified("e2e-1")}
        return found if len(found) == 2 else set()

    assert await eventually(both_notified, "routing") == {"CCKMDomainFailed", "CCKMJobFailed"}
    notified = await am.notified("e2e-1")
    assert all(a["status"] == "firing" for a in notified)
    paths = {r.path for r in am.hooks.requests}
    assert "/cckm-oncall" in paths and "/cckm-team" in paths  # the job failure paged


async def test_stuck_resolves_when_the_job_ends(alertmanager: Alertmanager) -> None:
    am = alertmanager
    await post(
        make_sink("alertmanager", am.url), job_event(EventType.JOB_STUCK, job="e2e-2", at=now())
    )
    assert names(await am.alerts(job_id="e2e-2")) == ["CCKMJobStuck"]
    await eventually(lambda: am.notified("e2e-2"), "the stuck notification")
    done = job_event(EventType.JOB_COMPLETED, job="e2e-2", at=now())
    await post(make_sink("alertmanager", am.url), done)
    assert await am.alerts(job_id="e2e-2") == []
    resolved = await eventually(lambda: am.notified("e2e-2", "resolved"), "the resolution")
    assert resolved[0]["labels"]["alertname"] == "CCKMJobStuck"


async def test_source_down_resolves_on_source_up(alertmanager: Alertmanager) -> None:
    am = alertmanager
    down = make_source_event(EventType.SOURCE_DOWN, source="gcp", at=now())
    await post(make_sink("alertmanager", am.url), down)
    (alert,) = await am.alerts(alertname="CCKMSourceDown", source="gcp")
    assert alert["labels"] == {
        "alertname": "CCKMSourceDown",
        "severity": "critical",
        "manager": "prod",
        "source": "gcp",
    }
    up = make_source_event(EventType.SOURCE_UP, source="gcp", at=now())
    await post(make_sink("alertmanager", am.url), up)
    assert await am.alerts(alertname="CCKMSourceDown", source="gcp") == []


async def test_two_monitors_posting_one_event_make_one_alert(alertmanager: Alertmanager) -> None:
    am = alertmanager
    seen_by_a = job_event(EventType.JOB_FAILED, job="e2e-3", at=now())
    # monitor B polled seven seconds earlier, and delivers after A
    seen_by_b = job_event(EventType.JOB_FAILED, job="e2e-3", at=now() - timedelta(seconds=7))
    assert seen_by_a.id == seen_by_b.id  # the same transition, seen by two daemons
    await post(make_sink("alertmanager", am.url, name="am-a"), seen_by_a)
    await post(make_sink("alertmanager", am.url, name="am-b"), seen_by_b)
    (alert,) = await am.alerts(job_id="e2e-3")
    assert alert["labels"]["alertname"] == "CCKMJobFailed"
    await eventually(lambda: am.notified("e2e-3"), "the notification")
    await anyio.sleep(0.5)  # two group intervals: a second notification would be here
    fingerprints = {a["fingerprint"] for a in await am.notified("e2e-3")}
    assert len(fingerprints) == 1


async def test_a_one_shot_alert_ends_after_resolve_after(alertmanager: Alertmanager) -> None:
    am = alertmanager
    sink = make_sink("alertmanager", am.url, resolve_after_seconds=1)
    await post(sink, job_event(EventType.JOB_ABORTED, job="e2e-4", at=now()))
    assert names(await am.alerts(job_id="e2e-4")) == ["CCKMJobAborted"]

    async def expired() -> bool:
        return await am.alerts(job_id="e2e-4") == []

    await eventually(expired, "the alert to end")
