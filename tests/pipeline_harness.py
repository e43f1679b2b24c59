"""A whole pipeline in one process: the simulator and the pollers share one fake clock.

Real HTTP on loopback, a real SQLite file; only time is simulated, so a test can let a
job run for an hour without waiting for it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import anyio

from monitor.clock import FakeClock
from monitor.cm.auth import Credentials
from monitor.cm.client import ClientOptions, ManagerClient
from monitor.cm.errors import CMError
from monitor.families import FAMILIES
from monitor.model import Event, JobEssence
from monitor.poller import PollOptions, SourcePoller
from monitor.simulator import RunningSimulator, SimConfig, running_simulator
from monitor.store import Store


@dataclass
class PollRecorder:
    """A PollObserver that keeps every outcome."""

    failures: list[tuple[str, str]] = field(default_factory=list)  # (source, reason)
    successes: int = 0
    strategy_changes: list[tuple[str, str]] = field(default_factory=list)
    crashes: list[tuple[str, str, bool]] = field(default_factory=list)  # (source, error, tb)

    def poll_crashed(
        self, manager: str, source: str, *, error: BaseException, traceback: bool
    ) -> None:
        self.crashes.append((source, f"{type(error).__name__}: {error}", traceback))

    def strategy_changed(self, manager: str, source: str, *, strategy: str, reason: str) -> None:
        self.strategy_changes.append((source, strategy))

    def poll_succeeded(
        self,
        manager: str,
        source: str,
        *,
        seconds: float,
        events: Sequence[Event],
        running: Mapping[str, JobEssence],
    ) -> None:
        self.successes += 1

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
        self.failures.append((source, error.reason))


@dataclass
class Pipeline:
    sim: RunningSimulator
    clock: FakeClock
    store: Store
    client: ManagerClient
    pollers: dict[str, SourcePoller]
    http: aiohttp.ClientSession
    recorder: PollRecorder
    codes: list[str]
    events: list[Event] = field(default_factory=list)

    async def cycle(self) -> list[Event]:
        """One poll of every source, concurrently; returns (and keeps) the new events."""
        found: dict[str, list[Event]] = {}

        async def one(name: str, poller: SourcePoller) -> None:
            found[name] = await poller.poll_once()

        async with anyio.create_task_group() as tg:
            for name, poller in self.pollers.items():
                tg.start_soon(one, name, poller)
        new = [e for name in self.pollers for e in found[name]]
        self.events.extend(new)
        return new

    async def control(self, method: str, path: str, body: Any = None) -> Any:
        async with self.http.request(method, self.sim.url + path, json=body) as resp:
            answer = await resp.json(content_type=None)
            assert resp.status < 300, answer
            return answer

    async def script_job(
        self, source: str, scopes: list[tuple[str, float | None, str]], **extra: Any
    ) -> str:
        """A job whose scopes finish after the given seconds with the given result."""
        body = {
            "source": source,
            "scopes": [
                {"key": k, "after_seconds": after, "result": result} for k, after, result in scopes
            ],
            **extra,
        }
        job = await self.control("POST", "/sim/v1/jobs", body)
        return str(job["id"])

    async def fault(self, kind: str, count: int = 1, **extra: Any) -> None:
        await self.control("POST", "/sim/v1/faults", {"kind": kind, "count": count, **extra})

    async def transitions(self) -> list[dict[str, Any]]:
        answer = await self.control("GET", "/sim/v1/transitions")
        return list(answer["transitions"] if isinstance(answer, dict) else answer)

    def types(self, events: Sequence[Event] | None = None) -> list[str]:
        return [e.type.value for e in (self.events if events is None else events)]


def client_options(url: str, **overrides: Any) -> ClientOptions:
    values: dict[str, Any] = {
        "name": "sim",
        "url": url,
        "credentials": Credentials(
            username="admin", password="admin", refresh_token=None, domain="root"
        ),
        "timeout_seconds": 2.0,
        "retries": 2,
        "backoff_initial": 0.01,
        "backoff_cap": 0.05,
    }
    values.update(overrides)
    return ClientOptions(**values)


@asynccontextmanager
async def pipeline(
    tmp_path: Path,
    *,
    sources: Sequence[str] = ("aws",),
    sim: SimConfig | None = None,
    clock: FakeClock | None = None,
    state_file: str = "state.db",
    strategy: str = "incremental",
    stuck_after_seconds: float = 3600.0,
    page_size: int = 100,
    client: dict[str, Any] | None = None,
    running_sim: RunningSimulator | None = None,
) -> AsyncIterator[Pipeline]:
    clock = clock or FakeClock(autojump=True)
    config = sim or SimConfig(sources=tuple(sources), history=5, job_rate=0.0)
    async with AsyncExitStack() as stack:
        if running_sim is None:
            running_sim = await stack.enter_async_context(
                running_simulator(config, clock=clock.time)
            )
        codes: list[str] = []
        manager = await stack.enter_async_context(
            ManagerClient(
                client_options(**{"url": running_sim.url, **(client or {})}),
                clock=clock,
                on_response=codes.append,
            )
        )
        store = Store.open(tmp_path / state_file)
        stack.callback(store.close)
        http = await stack.enter_async_context(aiohttp.ClientSession())
        recorder = PollRecorder()
        options = PollOptions(
            interval_seconds=30,
            page_size=page_size,
            strategy=strategy,
            stuck_after_seconds=stuck_after_seconds,
        )
        pollers = {
            s: SourcePoller(
                manager="sim",
                family=FAMILIES[s],
                client=manager,
                store=store,
                options=options,
                clock=clock,
                observer=recorder,
            )
            for s in sources
        }
        yield Pipeline(
            sim=running_sim,
            clock=clock,
            store=store,
            client=manager,
            pollers=pollers,
            http=http,
            recorder=recorder,
            codes=codes,
        )
