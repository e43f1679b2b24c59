"""What one simulator instance holds, shared by the /api and /sim/v1 handlers."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from monitor.simulator.auth import TokenIssuer
from monitor.simulator.config import SimConfig, seeded
from monitor.simulator.faults import FaultQueue
from monitor.simulator.scheduler import Scheduler
from monitor.simulator.state import SimState

REQUEST_KINDS = ("list", "get", "start", "cancel", "auth", "other")  # and "scheduler":
# the scheduler's requests are counted by operation in Scheduler.requests


@dataclass
class Stats:
    """Request counts by route kind, HTTP status, and bytes of /api bodies sent."""

    requests: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    bytes_sent: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": {kind: self.requests.get(kind, 0) for kind in REQUEST_KINDS},
            "responses": {str(code): n for code, n in sorted(self.statuses.items())},
            "bytes_sent": self.bytes_sent,
        }


@dataclass
class Simulator:
    """One simulated manager: its jobs, scheduler, tokens, pending faults and counters."""

    config: SimConfig
    state: SimState
    scheduler: Scheduler
    tokens: TokenIssuer
    faults: FaultQueue
    stats: Stats
    error_rng: random.Random  # draws for error_rate, apart from the job generators

    @classmethod
    def create(cls, config: SimConfig, clock: Callable[[], float]) -> Simulator:
        tokens = TokenIssuer(
            username=config.username,
            password=config.password,
            token_ttl=config.token_ttl,
            refresh_ttl=(
                None
                if config.refresh_token_ttl is None
                else max(config.refresh_token_ttl, config.token_ttl)
            ),
            clock=clock,
        )
        state = SimState(config, clock)
        return cls(
            config=config,
            state=state,
            scheduler=Scheduler(state, config),
            tokens=tokens,
            faults=FaultQueue(),
            stats=Stats(),
            error_rng=seeded(config.seed, "errors"),
        )


SIMULATOR = web.AppKey("simulator", Simulator)
