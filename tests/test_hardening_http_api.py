"""Issue 10, class 7: the HTTP API validates what it is asked and answers errors in JSON.

Unknown sinks are a JSON 404 naming the configured ones; unknown routes and wrong methods
answer ``{"error": …}``; every query parameter is checked (400 with one sentence); the
``Bearer`` scheme is case-insensitive (RFC 7235); every time is ISO 8601.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from monitor.health import SourceHealth
from monitor.http import build_app
from monitor.model import Event, EventType, event_id
from monitor.store import Store

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
TOKEN = "t0ken-abc"
Client = TestClient[web.Request, web.Application]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "state.db")
    s.register_sinks(["hook", "team"])
    event = Event(event_id("e1"), EventType.JOB_FAILED, T0, "prod", "aws", "job-1", {})
    s.commit_poll(
        "prod",
        "aws",
        changed={},
        events=[event],
        watermark=T0,
        health=SourceHealth(),
        now=T0.timestamp(),
    )
    first = s.pending("hook")[0]
    s.dead_letter("hook", first.seq, reason="receiver answered 404", attempts=1, now=1e9)
    yield s
    s.close()


@pytest.fixture
async def client(store: Store) -> AsyncIterator[Client]:
    app = build_app(store, lambda: [], version="1", sinks=["hook", "team"])
    async with TestClient(TestServer(app)) as c:
        yield c


async def error_of(resp: ClientResponse, status: int) -> str:
    assert resp.status == status
    assert resp.content_type == "application/json"
    body = await resp.json()
    assert set(body) == {"error"}
    assert isinstance(body["error"], str) and body["error"]
    return str(body["error"])


async def test_unknown_sink_is_a_json_404_naming_the_known_ones(client: Client) -> None:
    message = await error_of(await client.get("/api/v1/deadletters?sink=nosuch"), 404)
    assert "'nosuch'" in message
    assert "hook, team" in message
    ok = await client.get("/api/v1/deadletters?sink=team")
    assert (ok.status, await ok.json()) == (200, {"deadletters": []})
    await error_of(await client.get("/api/v1/deadletters?sink="), 400)


async def test_without_sink_names_any_sink_is_looked_up(store: Store) -> None:
    async with TestClient(TestServer(build_app(store, lambda: [], version="1"))) as c:
        resp = await c.get("/api/v1/deadletters?sink=nosuch")
        assert (resp.status, await resp.json()) == (200, {"deadletters": []})


async def test_deadletter_times_are_iso_8601(client: Client) -> None:
    body = await (await client.get("/api/v1/deadletters?sink=hook")).json()
    (letter,) = body["deadletters"]
    assert letter["at"] == "2001-09-09T01:46:40.000Z"
    assert ISO.match(letter["event"]["timestamp"])


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("/api/v1/jobs?running=maybe", "running must be true or false"),
        ("/api/v1/jobs?limit=abc", "limit must be"),
        ("/api/v1/jobs?limit=%EF%BC%93", "limit must be"),  # a full-width digit
        ("/api/v1/jobs?limit=%2B5", "limit must be"),
        ("/api/v1/events?limit=0", "limit must be"),
        ("/api/v1/events?limit=1&limit=2", "more than once"),
        ("/api/v1/events?lmit=5", "unknown query parameter 'lmit'"),
        ("/api/v1/deadletters?sink=hook&x=1", "unknown query parameter 'x'"),
    ],
)
async def test_query_parameters_are_validated(client: Client, path: str, words: str) -> None:
    assert words in await error_of(await client.get(path), 400)


@pytest.mark.parametrize("word", ["true", "1", "YES", "false", "0", "no"])
async def test_running_takes_the_usual_words(client: Client, word: str) -> None:
    assert (await client.get(f"/api/v1/jobs?running={word}")).status == 200


async def test_unknown_routes_and_wrong_methods_answer_json(client: Client) -> None:
    message = await error_of(await client.get("/api/v1/nothing"), 404)
    assert "/api/v1/jobs" in message
    await error_of(await client.get("/nowhere"), 404)
    resp = await client.post("/api/v1/jobs")
    message = await error_of(resp, 405)
    assert "POST is not allowed" in message
    assert "GET" in resp.headers["Allow"]


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
async def test_the_bearer_scheme_is_case_insensitive(store: Store, scheme: str) -> None:
    app = build_app(store, lambda: [], version="1", registry=CollectorRegistry(), auth_token=TOKEN)
    async with TestClient(TestServer(app)) as c:
        for path in ("/metrics", "/api/v1/jobs"):
            ok = await c.get(path, headers={"Authorization": f"{scheme} {TOKEN}"})
            assert ok.status == 200, (scheme, path)
            for wrong in (f"{scheme} {TOKEN.upper()}", f"{scheme} x{TOKEN}", f"Basic {TOKEN}"):
                refused = await c.get(path, headers={"Authorization": wrong})
                assert refused.status == 401, wrong
        # an unknown route behind the token: still refused first, in JSON
        await error_of(await c.get("/api/v1/nothing"), 401)
