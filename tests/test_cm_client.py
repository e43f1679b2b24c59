"""The manager client against a scripted loopback server: token renewal, concurrency cap,
Retry-After, what is retried and what is not, oversized answers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from monitor.clock import FakeClock
from monitor.cm.client import ManagerClient
from monitor.cm.errors import AuthError, HTTPStatusError, InvalidResponse
from monitor.families import FAMILIES
from tests.pipeline_harness import client_options

AWS = FAMILIES["aws"]
JOB = {
    "id": "j1",
    "overall_status": "in_progress",
    "abort": False,
    "createdAt": "2026-11-23T10:00:00Z",
    "kms": ["kms"],
    "detailed_status": {},
}


@dataclass
class Manager:
    """A scripted manager: answers from queues, records what it was asked."""

    grants: list[dict[str, Any]] = field(default_factory=list)
    refuse_refresh: bool = False
    answers: list[tuple[int, dict[str, str], bytes]] = field(default_factory=list)
    in_flight: int = 0
    peak: int = 0
    delay: float = 0.0
    calls: int = 0

    async def tokens(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.grants.append(body)
        if body.get("grant_type") == "refresh_token" and self.refuse_refresh:
            return web.json_response(
                {"code": 0, "codeDesc": "NCERRUnauthorizedAccess: no"}, status=401
            )
        n = len(self.grants)
        return web.json_response(
            {"jwt": f"jwt-{n}", "duration": 300, "refresh_token": f"refresh-{n}"}
        )

    async def job(self, request: web.Request) -> web.Response:
        self.calls += 1
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await anyio.sleep(self.delay)
            if self.answers:
                status, headers, body = self.answers.pop(0)
                return web.Response(
                    status=status, headers=headers, body=body, content_type="application/json"
                )
            return web.json_response({**JOB, "id": request.match_info["id"]})
        finally:
            self.in_flight -= 1


@pytest.fixture
async def manager() -> AsyncIterator[tuple[Manager, str]]:
    state = Manager()
    app = web.Application()
    app.router.add_post("/api/v1/auth/tokens/", state.tokens)
    app.router.add_get(AWS.path + "/{id}", state.job)
    async with TestServer(app, host="127.0.0.1") as server:
        yield state, str(server.make_url("")).rstrip("/")


async def test_renews_a_minute_before_expiry_with_the_refresh_grant(
    manager: tuple[Manager, str],
) -> None:
    state, url = manager
    clock = FakeClock(autojump=True)
    async with ManagerClient(client_options(url), clock=clock) as client:
        await client.get_job(AWS, "a")
        clock.advance(200)  # 100 s left: still fresh
        await client.get_job(AWS, "b")
        assert [g["grant_type"] for g in state.grants] == ["password"]
        clock.advance(50)  # 50 s left: renew
        await client.get_job(AWS, "c")
    assert [g["grant_type"] for g in state.grants] == ["password", "refresh_token"]
    assert state.grants[1]["refresh_token"] == "refresh-1"
    assert state.grants[0]["domain"] == "root"


async def test_password_is_the_fallback_when_refresh_is_refused(
    manager: tuple[Manager, str],
) -> None:
    state, url = manager
    state.refuse_refresh = True
    clock = FakeClock(autojump=True)
    async with ManagerClient(client_options(url), clock=clock) as client:
        await client.get_job(AWS, "a")
        clock.advance(280)
        await client.get_job(AWS, "b")
    assert [g["grant_type"] for g in state.grants] == ["password", "refresh_token", "password"]


async def test_a_401_logs_in_again_once(manager: tuple[Manager, str]) -> None:
    state, url = manager
    unauthorized: tuple[int, dict[str, str], bytes] = (
        401,
        {},
        b'{"codeDesc": "NCERRUnauthorizedAccess: Token is expired"}',
    )
    state.answers = [unauthorized]
    async with ManagerClient(client_options(url), clock=FakeClock(autojump=True)) as client:
        job = await client.get_job(AWS, "a")
    assert job.job_id == "a"
    assert len(state.grants) == 2
    state.answers = [unauthorized, unauthorized]
    async with ManagerClient(client_options(url), clock=FakeClock(autojump=True)) as client:
        with pytest.raises(AuthError, match="refused a fresh token"):
            await client.get_job(AWS, "a")


async def test_at_most_max_concurrency_requests_in_flight(manager: tuple[Manager, str]) -> None:
    state, url = manager
    state.delay = 0.05
    async with (
        ManagerClient(client_options(url, max_concurrency=3)) as client,
        anyio.create_task_group() as tg,
    ):
        for i in range(12):
            tg.start_soon(client.get_job, AWS, f"job-{i}")
    assert state.calls == 12
    assert state.peak == 3


async def test_retry_after_on_429_is_honoured(manager: tuple[Manager, str]) -> None:
    state, url = manager
    state.answers = [(429, {"Retry-After": "7"}, b"{}")]
    clock = FakeClock(autojump=True)
    start = clock.monotonic()
    async with ManagerClient(client_options(url, backoff_cap=30.0), clock=clock) as client:
        await client.get_job(AWS, "a")
    assert clock.monotonic() - start >= 7
    assert state.calls == 2


@pytest.mark.parametrize("status", [400, 403, 404, 409])
async def test_other_4xx_are_never_retried(manager: tuple[Manager, str], status: int) -> None:
    state, url = manager
    body = json.dumps({"code": 5, "codeDesc": "NCERRInvalidParamValue: bad"}).encode()
    state.answers = [(status, {}, body)]
    async with ManagerClient(client_options(url), clock=FakeClock(autojump=True)) as client:
        with pytest.raises(HTTPStatusError, match=f"answered {status}: NCERRInvalidParamValue"):
            await client.get_job(AWS, "a")
    assert state.calls == 1


async def test_5xx_retried_then_given_up(manager: tuple[Manager, str]) -> None:
    state, url = manager
    state.answers = [(503, {}, b"{}")] * 5
    async with ManagerClient(
        client_options(url, retries=2), clock=FakeClock(autojump=True)
    ) as client:
        with pytest.raises(HTTPStatusError) as err:
            await client.get_job(AWS, "a")
    assert err.value.reason == "http_5xx"
    assert state.calls == 3


async def test_an_oversized_answer_is_invalid_not_read_whole(
    manager: tuple[Manager, str],
) -> None:
    state, url = manager
    huge = json.dumps({**JOB, "id": "a", "padding": "x" * 200_000}).encode()
    state.answers = [(200, {}, huge)]
    async with ManagerClient(client_options(url, max_response_bytes=65_536)) as client:
        with pytest.raises(InvalidResponse, match="larger than 65536 bytes"):
            await client.get_job(AWS, "a")


async def test_an_answer_about_another_job_is_invalid(manager: tuple[Manager, str]) -> None:
    state, url = manager
    state.answers = [(200, {}, json.dumps({**JOB, "id": "other"}).encode())]
    async with ManagerClient(client_options(url)) as client:
        with pytest.raises(InvalidResponse, match="about job other"):
            await client.get_job(AWS, "a")
