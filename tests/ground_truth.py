"""What the simulator's ground truth (``/sim/v1/transitions``) implies, for e2e tests."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from monitor.model import TERMINAL_EVENTS, EventType
from tests.processes import Simulator, job_events

# a lively simulator that starts no job by itself until a test says so
SIM_OPTIONS = (
    "--history",
    "5",
    "--job-rate",
    "0",
    "--running",
    "0",
    "--scope-seconds",
    "0.2,1.5",
    "--failure-probability",
    "0.3",
    "--cancel-probability",
    "0.2",
    "--seed",
    "5",
)


def expected_events(truth: list[dict[str, Any]], jobs: set[str]) -> dict[str, list[str]]:
    """The events the ground truth implies for each job, in order."""
    out: dict[str, list[str]] = {job: ["job.started"] for job in jobs}
    for t in truth:
        job = t["job_id"]
        if job not in jobs:
            continue
        if t["kind"] == "scope_finished" and not t["status"].endswith("successfully"):
            out[job].append("job.domain_failed")
        if t["kind"] == "finished":
            out[job].append(
                "job.aborted"
                if t["abort"]
                else "job.completed"
                if t["status"] == "completed"
                else "job.failed"
            )
    return out


def created_since(truth: list[dict[str, Any]], mark: int) -> set[str]:
    return {t["job_id"] for t in truth[mark:] if t["kind"] == "created"}


def all_finished(sim: Simulator, jobs: set[str]) -> bool:
    done = {t["job_id"] for t in sim.transitions() if t["kind"] == "finished"}
    return jobs <= done


def announced_terminal(log: Path, jobs: set[str]) -> bool:
    ended = {e["job_id"] for e in job_events(log) if EventType(e["event"]) in TERMINAL_EVENTS}
    return jobs <= ended


def burst(sim: Simulator, seconds: float, rate: float = 120.0) -> None:
    """Let the simulator start jobs by itself for a while."""
    sim.control("PATCH", "/sim/v1/config", {"job_rate": rate})
    time.sleep(seconds)  # real processes: the simulator runs on wall time
    sim.control("PATCH", "/sim/v1/config", {"job_rate": 0})
