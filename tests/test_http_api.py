"""The daemon's own HTTP endpoints: health, readiness, jobs, events, dead letters."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from monitor.health import SourceHealth
from monitor.http import SourceStatus, build_app
from monitor.model import Event, EventType, JobEssence, JobSnapshot, event_id
from monitor.store import Store

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "state.db")
    s.register_sinks(["hook"])
    running = JobEssence(JobSnapshot("job-1", "in_progress", False, T0), first_seen=T0)
    events = [
        Event(
            event_id(str(i)),
            EventType.JOB_STARTED,
            T0,
            "prod",
            "aws",
            f"job-{i}",
            {"job_id": f"job-{i}"},
        )
        for i in range(3)
    ]
    s.commit_poll(
        "prod",
        "aws",
        changed={"job-1": running},
        events=events,
        watermark=T0,
        health=SourceHealth(),
        now=T0.timestamp(),
    )
    yield s
    s.close()


STATUSES: list[SourceStatus] = []


@pytest.fixture
async def client(store: Store) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    app = build_app(store, lambda: STATUSES, version="9.9.9")
    async with TestClient(TestServer(app)) as c:
        yield c


async def test_healthz(client: TestClient) -> None:  # type: ignore[type-arg]
    resp = await client.get("/healthz")
    assert resp.status == 200
    assert (await resp.json())["version"] == "9.9.9"


async def test_readyz_follows_the_sources(client: TestClient) -> None:  # type: ignore[type-arg]
    STATUSES[:] = [
        SourceStatus("prod", "aws", ready=True, down=False, last_success_age=1.0),
        SourceStatus("prod", "gcp", ready=False, down=True, last_success_age=None),
    ]
    resp = await client.get("/readyz")
    assert resp.status == 503
    body = await resp.json()
    assert body["ready"] is False
    assert [s["source"] for s in body["sources"] if not s["ready"]] == ["gcp"]
    STATUSES[1] = SourceStatus("prod", "gcp", ready=True, down=False, last_success_age=2.0)
    assert (await client.get("/readyz")).status == 200
    STATUSES.clear()
    assert (await client.get("/readyz")).status == 503  # nothing polled yet: not ready


async def test_jobs(client: TestClient) -> None:  # type: ignore[type-arg]
    body = await (await client.get("/api/v1/jobs")).json()
    assert [(j["manager"], j["source"], j["job_id"], j["status"]) for j in body["jobs"]] == [
        ("prod", "aws", "job-1", "in_progress")
    ]
    assert body["jobs"][0]["created_at"] == "2026-11-23T10:00:00.000Z"


async def test_events_newest_first_with_limit(client: TestClient) -> None:  # type: ignore[type-arg]
    body = await (await client.get("/api/v1/events?limit=2")).json()
    assert [e["data"]["job_id"] for e in body["events"]] == ["job-2", "job-1"]
    assert set(body["events"][0]) == {"id", "type", "timestamp", "data"}


@pytest.mark.parametrize("limit", ["0", "-1", "abc", "100000"])
async def test_events_bad_limit(client: TestClient, limit: str) -> None:  # type: ignore[type-arg]
    resp = await client.get(f"/api/v1/events?limit={limit}")
    assert resp.status == 400
    assert "limit must be" in (await resp.json())["error"]


async def test_deadletters(client: TestClient, store: Store) -> None:  # type: ignore[type-arg]
    first = store.pending("hook")[0]
    store.dead_letter(
        "hook", first.seq, reason="receiver answered 404", attempts=1, now=T0.timestamp()
    )
    body = await (await client.get("/api/v1/deadletters")).json()
    assert [
        (d["sink"], d["reason"], d["event"]["data"]["job_id"]) for d in body["deadletters"]
    ] == [("hook", "receiver answered 404", "job-0")]


async def test_bearer_token_protects_metrics_and_api_not_probes(store: Store) -> None:
    app = build_app(
        store, lambda: [], version="1", registry=CollectorRegistry(), auth_token="t0ken-abc"
    )
    async with TestClient(TestServer(app)) as c:
        for path in ("/metrics", "/api/v1/jobs", "/api/v1/events", "/api/v1/deadletters"):
            resp = await c.get(path)
            assert resp.status == 401, path
            assert resp.headers["WWW-Authenticate"].startswith("Bearer")
            wrong = await c.get(path, headers={"Authorization": "Bearer nope"})
            assert wrong.status == 401
            ok = await c.get(path, headers={"Authorization": "Bearer t0ken-abc"})
            assert ok.status == 200, path
        assert (await c.get("/healthz")).status == 200
        assert (await c.get("/readyz")).status == 503  # open, and honest: nothing polled
