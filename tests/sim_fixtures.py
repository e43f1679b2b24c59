"""Shared helpers for the simulator tests: a running simulator on loopback, a fake clock,
a logged-in HTTP client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp

from monitor.clock import FakeClock
from monitor.families import FAMILIES
from monitor.model import parse_timestamp
from monitor.simulator import RunningSimulator, SimConfig, running_simulator

JOB_KEYS_RUNNING = frozenset(
    {
        "id",
        "uri",
        "account",
        "application",
        "devAccount",
        "createdAt",
        "updatedAt",
        "overall_status",
        "detailed_status",
        "cloud",
        "abort",
    }
)


def path(source: str) -> str:
    """The list/start path of a source, ``/api/v1/...``."""
    return FAMILIES[source].path


def stamp(value: str) -> float:
    return parse_timestamp(value).timestamp()


@dataclass
class Harness:
    """A simulator on a fake clock with an HTTP session already holding a token."""

    sim: RunningSimulator
    http: aiohttp.ClientSession
    clock: FakeClock
    token: str = ""

    async def call(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        params: Mapping[str, str | int] | None = None,
        auth: bool = True,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, Any]:
        """One request; answers (status, decoded JSON body)."""
        sent = dict(headers or {})
        if auth and url.startswith("/api") and self.token:
            sent.setdefault("Authorization", f"Bearer {self.token}")
        async with self.http.request(
            method, url, json=json, params=params, headers=sent
        ) as response:
            return response.status, await response.json(content_type=None)

    async def advance(self, seconds: float) -> None:
        """Move the fake clock and log in again (the token may have expired meanwhile)."""
        self.clock.advance(seconds)
        self.token = (await self.login())["jwt"]

    async def login(self, **body: Any) -> dict[str, Any]:
        payload = body or {"grant_type": "password", "username": "admin", "password": "admin"}
        status, answer = await self.call("POST", "/api/v1/auth/tokens", json=payload, auth=False)
        assert status == 200, answer
        assert isinstance(answer, dict)
        return answer

    async def get(self, url: str, **params: str | int) -> Any:
        status, body = await self.call("GET", url, params=params or None)
        assert status == 200, body
        return body

    async def start(self, source: str, body: Mapping[str, Any]) -> dict[str, Any]:
        status, job = await self.call("POST", path(source), json=dict(body))
        assert status == 201, job
        assert isinstance(job, dict)
        return job

    async def job(self, source: str, job_id: str) -> dict[str, Any]:
        body = await self.get(f"{path(source)}/{job_id}")
        assert isinstance(body, dict)
        return body

    async def cancel(self, source: str, job_id: str) -> tuple[int, Any]:
        return await self.call("POST", f"{path(source)}/{job_id}/cancel")

    async def scripted(self, **spec: Any) -> dict[str, Any]:
        status, job = await self.call("POST", "/sim/v1/jobs", json=spec)
        assert status == 201, job
        assert isinstance(job, dict)
        return job

    async def transitions(self, since: int = 0) -> list[dict[str, Any]]:
        body = await self.get("/sim/v1/transitions", since=since)
        assert isinstance(body, list)
        return body

    async def walk(self, source: str, limit: int, **params: str | int) -> list[dict[str, Any]]:
        """Every job of a list, page by page (skip += page length, stop on a short page)."""
        jobs: list[dict[str, Any]] = []
        skip = 0
        while True:
            page = await self.get(path(source), skip=skip, limit=limit, **params)
            jobs.extend(page["resources"])
            skip += len(page["resources"])
            if len(page["resources"]) < limit or skip >= page["total"]:
                return jobs


@asynccontextmanager
async def simulated(
    config: SimConfig | None = None, *, login: bool = True, **serve: Any
) -> AsyncIterator[Harness]:
    """A running simulator (loopback, random port) driven by a ``FakeClock``."""
    clock = FakeClock()
    async with (
        running_simulator(config or SimConfig(), clock=clock.time, **serve) as sim,
        aiohttp.ClientSession(sim.url) as http,
    ):
        harness = Harness(sim, http, clock)
        if login:
            harness.token = (await harness.login())["jwt"]
        yield harness
