"""The simulator's settings: fixed ones in ``SimConfig``, live-tunable ones in ``LiveSettings``."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from monitor.families import SOURCE_NAMES

DEFAULT_LIMIT = 10  # the manager's default page size when ``limit`` is not given


@dataclass(frozen=True)
class SimConfig:
    """How one simulated CipherTrust Manager behaves.

    ``history`` finished jobs are pre-created per source, ``running`` running jobs are
    spread over the sources, and ``job_rate`` jobs per minute start by themselves. Each
    scope of a job finishes after a random time in ``scope_seconds``; it fails with
    ``failure_probability``. A cancelled job stops ``abort_seconds`` after the request.
    ``schedules`` sync schedules are pre-created, each with the runs of its last
    ``schedule_history`` due times (and their jobs) already behind it.
    Everything random is drawn from generators seeded with ``seed``.
    """

    seed: int = 1
    history: int = 0
    latency_ms: float = 0
    error_rate: float = 0.0
    token_ttl: float = 300.0
    job_rate: float = 0.0
    running: int = 0
    scope_seconds: tuple[float, float] = (5.0, 60.0)
    failure_probability: float = 0.1
    cancel_probability: float = 0.0
    sources: tuple[str, ...] = SOURCE_NAMES
    username: str = "admin"
    password: str = "admin"  # noqa: S105 - the simulator's documented demo login
    max_limit: int = 1000
    abort_seconds: tuple[float, float] = (1.0, 3.0)
    refresh_token_ttl: float | None = None  # None: refresh tokens never expire
    ignore_sort: bool = False  # answer lists oldest first whatever ``sort`` asks
    schedules: int = 0  # sync schedules pre-created over the sources (scheduler.py)
    schedule_history: int = 5  # past due runs materialised per pre-created schedule

    def __post_init__(self) -> None:
        unknown = [s for s in self.sources if s not in SOURCE_NAMES]
        if unknown:
            raise ValueError(f"unknown simulator sources: {', '.join(unknown)}")
        if not self.sources:
            raise ValueError("the simulator needs at least one source")
        for name in ("history", "running", "max_limit", "schedules", "schedule_history"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.max_limit < 1:
            raise ValueError("max_limit must be at least 1")
        for name in ("scope_seconds", "abort_seconds"):
            low, high = getattr(self, name)
            if not 0 <= low <= high:
                raise ValueError(f"{name} must be (min, max) with 0 <= min <= max")
        if self.token_ttl <= 0 or (
            self.refresh_token_ttl is not None and self.refresh_token_ttl <= 0
        ):
            raise ValueError("token lifetimes must be positive")
        LiveSettings.from_config(self)  # validates the live-tunable fields too


def seeded(seed: int, purpose: str) -> random.Random:
    """A generator for one purpose, so that one stream's draws never shift another's."""
    return random.Random(f"{seed}:{purpose}")  # noqa: S311 - a simulation, not cryptography


_LIVE_FIELDS = ("job_rate", "failure_probability", "cancel_probability", "latency_ms", "error_rate")
_PROBABILITIES = frozenset({"failure_probability", "cancel_probability", "error_rate"})


@dataclass
class LiveSettings:
    """The settings ``PATCH /sim/v1/config`` may change while the simulator runs."""

    job_rate: float = 0.0
    failure_probability: float = 0.1
    cancel_probability: float = 0.0
    latency_ms: float = 0.0
    error_rate: float = 0.0

    @classmethod
    def from_config(cls, config: SimConfig) -> LiveSettings:
        live = cls()
        live.update({name: getattr(config, name) for name in _LIVE_FIELDS})
        return live

    def update(self, values: dict[str, Any]) -> None:
        """Validate every value first, then apply them all; ``ValueError`` on any problem."""
        unknown = sorted(set(values) - set(_LIVE_FIELDS))
        if unknown:
            raise ValueError(f"unknown setting: {', '.join(unknown)}")
        checked: dict[str, float] = {}
        for name, value in values.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name} must be a number")
            number = float(value)
            if number < 0 or not math.isfinite(number):
                raise ValueError(f"{name} must be a finite non-negative number")
            if name in _PROBABILITIES and number > 1:
                raise ValueError(f"{name} must be between 0 and 1")
            checked[name] = number
        for name, number in checked.items():
            setattr(self, name, number)

    def as_dict(self) -> dict[str, float]:
        return {name: float(getattr(self, name)) for name in _LIVE_FIELDS}
