"""Bench 2: jobs diffed and persisted per second.

10,000 running jobs, 1% of them change per cycle; each cycle is what a poll does after
its requests: diff_source over every running job, then ONE commit of the changes and
events. Prints jobs/s (diffed + persisted) and the commit count per cycle.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from monitor.differ import diff_source
from monitor.health import SourceHealth
from monitor.model import JobSnapshot
from monitor.store import Store

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
REGIONS = [f"123456789012/{r}" for r in ("us-east-1", "us-west-2", "eu-west-1", "ap-south-1")]


def make_jobs(n: int) -> list[JobSnapshot]:
    return [
        JobSnapshot(
            job_id=str(uuid.UUID(int=i)),
            status="in_progress",
            abort=False,
            created_at=T0 + timedelta(seconds=i),
            updated_at=T0 + timedelta(seconds=i),
            cloud="aws",
            scopes=("kms",),
            detailed_status=tuple((r, "in_progress") for r in REGIONS),
        )
        for i in range(n)
    ]


def run(running: int, change: float, cycles: int) -> dict[str, Any]:
    rng = random.Random(1)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(Path(tmp) / "state.db")
        store.register_sinks(["log"])
        jobs = make_jobs(running)
        now = T0 + timedelta(hours=1)
        first = diff_source(
            "prod", "aws", {}, jobs, [], now, stuck_after_seconds=1e9, baseline=True, watermark=None
        )
        store.commit_poll(
            "prod",
            "aws",
            changed=first.changed,
            events=first.events,
            watermark=first.watermark,
            health=SourceHealth(),
            now=now.timestamp(),
        )
        tracked = dict(first.changed)
        watermark = first.watermark
        transactions = 0

        def count(sql: str) -> None:
            nonlocal transactions
            transactions += sql.startswith("BEGIN")

        store._conn.set_trace_callback(count)
        diffed = 0
        events = 0
        elapsed = 0.0
        for cycle in range(cycles):
            now += timedelta(seconds=30)
            current = list(jobs)
            for idx in rng.sample(range(len(current)), int(len(current) * change)):
                job = current[idx]
                scopes = list(job.detailed_status)
                k = rng.randrange(len(scopes))
                scopes[k] = (
                    scopes[k][0],
                    "region synchronized successfully"
                    if cycle % 2
                    else "AccessDenied: not authorized",
                )
                current[idx] = replace(job, detailed_status=tuple(scopes), updated_at=now)
            started = time.perf_counter()
            result = diff_source(
                "prod",
                "aws",
                tracked,
                current,
                [],
                now,
                stuck_after_seconds=1e9,
                baseline=False,
                watermark=watermark,
            )
            store.commit_poll(
                "prod",
                "aws",
                changed=result.changed,
                events=result.events,
                watermark=result.watermark,
                health=SourceHealth(),
                now=now.timestamp(),
            )
            elapsed += time.perf_counter() - started
            tracked.update(result.changed)
            jobs = current
            diffed += len(current)
            events += len(result.events)
        store.close()
    return {
        "running_jobs": running,
        "changed_per_cycle": int(running * change),
        "cycles": cycles,
        "events": events,
        "seconds": round(elapsed, 4),
        "jobs_per_second": round(diffed / elapsed),
        "cycle_ms": round(elapsed / cycles * 1000, 2),
        "transactions_per_cycle": transactions / cycles,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--running", type=int, default=10_000)
    parser.add_argument("--change", type=float, default=0.01)
    parser.add_argument("--cycles", type=int, default=20)
    args = parser.parse_args()
    result = run(args.running, args.change, args.cycles)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
