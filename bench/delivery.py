"""Bench 4: delivery throughput through the durable outbox to a webhook receiver.

The outbox of a fresh state file is filled directly with ``Store.commit_poll``: ``--jobs``
jobs x ``--per-job`` events each, one commit per "poll" holding the next event of every
job, so the events of one job are spread over the whole outbox and interleaved with every
other job's. Each event carries ``data.bench_seq``, its place in its job's life.

Then the daemon's own delivery path runs in this process: ``DeliveryWorker`` (the real
one, with ``Telemetry`` and ``Metrics`` as the daemon wires them) and ``WebhookSink``
(signed, ``max_batch`` 1: one POST per event) against a receiver process that answers
204 at once and checks per-job order. Throughput = events / time until the outbox is
empty. Target: >= 1,000 events/s sustained, per-job order kept.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from bench import procs
from bench.report import save, table
from monitor.clock import SystemClock
from monitor.health import SourceHealth
from monitor.logs import get_logger
from monitor.metrics import Metrics
from monitor.model import Event, EventType, event_id
from monitor.sinks.base import DeliveryWorker, Filters, RetryPolicy, Wakeup
from monitor.sinks.webhook import WebhookSink
from monitor.store import Store
from monitor.telemetry import Telemetry

SECRET = b"bench-secret-key-0123456789abcdef"
TARGET = 1_000.0


def _kind(step: int, last: int) -> EventType:
    if step == 0:
        return EventType.JOB_STARTED
    if step == last:
        return EventType.JOB_FAILED
    return EventType.JOB_DOMAIN_FAILED


def fill(store: Store, jobs: int, per_job: int) -> int:
    """Queue ``jobs * per_job`` events, one commit per step; returns how many."""
    start = datetime.now(UTC) - timedelta(minutes=1)
    queued = 0
    for step in range(per_job):
        now = start + timedelta(milliseconds=step)
        events = []
        for j in range(jobs):
            job = f"00000000-0000-4000-8000-{j:012d}"
            kind = _kind(step, per_job - 1)
            scope = f"123456789012/region-{step}" if kind == EventType.JOB_DOMAIN_FAILED else ""
            events.append(
                Event(
                    id=event_id("bench", "aws", job, kind.value, scope, str(step)),
                    type=kind,
                    timestamp=now,
                    manager="bench",
                    source="aws",
                    job_id=job,
                    data={
                        "manager": "bench",
                        "source": "aws",
                        "cloud": "aws",
                        "job_id": job,
                        "status": "in_progress",
                        "scope": scope or None,
                        "scope_status": "AccessDenied: not authorized" if scope else None,
                        "detailed_status": {
                            f"123456789012/region-{k}": "in_progress" for k in range(4)
                        },
                        "bench_seq": step,
                    },
                )
            )
        queued += store.commit_poll(
            "bench",
            "aws",
            changed={},
            events=events,
            watermark=None,
            health=SourceHealth(),
            now=now.timestamp(),
        )
    return queued


async def deliver(store: Store, url: str) -> tuple[float, Metrics]:
    registry = CollectorRegistry()
    metrics = Metrics(registry, [("bench", "aws")], ["bench"])
    clock = SystemClock()
    sink = WebhookSink("bench", url, where="http://127.0.0.1/…", signing_key=SECRET, clock=clock)
    worker = DeliveryWorker(
        sink,
        store,
        policy=RetryPolicy(),
        filters=Filters(),
        clock=clock,
        wakeup=Wakeup(),
        observer=Telemetry(get_logger("bench"), metrics, clock=clock),
    )
    started = time.perf_counter()
    await worker.deliver_pending()
    elapsed = time.perf_counter() - started
    await worker.close()
    return elapsed, metrics


def run(
    *, quick: bool = False, jobs: int | None = None, per_job: int = 10, profile: Path | None = None
) -> dict[str, Any]:
    jobs = jobs or (1_000 if quick else 5_000)
    with tempfile.TemporaryDirectory(prefix="bench-delivery-") as tmp:
        work = Path(tmp)
        store = Store.open(work / "state.db")
        store.register_sinks(["bench"])
        fill_started = time.perf_counter()
        queued = fill(store, jobs, per_job)
        fill_seconds = time.perf_counter() - fill_started
        with procs.receiver(log=work / "receiver.log") as rec:
            if profile is not None:
                from pyinstrument import Profiler  # noqa: PLC0415 - optional, for --profile

                profiler = Profiler(async_mode="enabled")
                profiler.start()
            elapsed, _ = asyncio.run(deliver(store, rec.url))
            if profile is not None:
                profiler.stop()
                profile.write_text(profiler.output_text(unicode=True, show_all=False))
            stats = rec.stats()
        remaining = store.queue_depth("bench")
        store.close()
    receiver_seconds = (stats["last"] - stats["first"]) if stats["first"] else 0.0
    result = {
        "mode": "in-process DeliveryWorker + WebhookSink (max_batch 1), receiver process",
        "jobs": jobs,
        "events_per_job": per_job,
        "queued": queued,
        "fill_seconds": round(fill_seconds, 3),
        "delivered": stats["events"],
        "requests": stats["requests"],
        "remaining": remaining,
        "seconds": round(elapsed, 3),
        "events_per_second": round(stats["events"] / elapsed, 1),
        "receiver_events_per_second": round(stats["events"] / receiver_seconds, 1)
        if receiver_seconds
        else None,
        "out_of_order": stats["out_of_order"],
        "duplicates": stats["duplicates"],
        "order_examples": stats["examples"],
        "target_events_per_second": TARGET,
    }
    result["met"] = (
        result["events_per_second"] >= TARGET
        and stats["out_of_order"] == 0
        and remaining == 0
        and stats["events"] == queued
    )
    return result


def render(result: dict[str, Any]) -> str:
    return table(
        ["events", "jobs", "seconds", "events/s", "POSTs", "out of order", "duplicates", "left"],
        [
            [
                result["delivered"],
                result["jobs"],
                result["seconds"],
                result["events_per_second"],
                result["requests"],
                result["out_of_order"],
                result["duplicates"],
                result["remaining"],
            ]
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--jobs", type=int, default=None)
    parser.add_argument("--per-job", type=int, default=10)
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="write a pyinstrument profile of the delivery to this file",
    )
    args = parser.parse_args()
    result = run(quick=args.quick, jobs=args.jobs, per_job=args.per_job, profile=args.profile)
    print(render(result))
    print(
        f"{'met ' if result['met'] else 'MISS'}  {result['events_per_second']:,.0f} events/s "
        f"(target >= {TARGET:,.0f}, order kept)"
    )
    print(save("delivery", result))


if __name__ == "__main__":
    main()
