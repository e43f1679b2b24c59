"""Bench 4: delivery throughput through the durable outbox to a webhook receiver, at a
small and a big backlog (1,000 and 50,000 events; 1,000 and 10,000 with ``--quick``).

For each backlog, the outbox of a fresh state file is filled directly with
``Store.commit_poll``: jobs x ``--per-job`` events, one commit per "poll" holding the
next event of every job, so the events of one job are spread over the whole outbox and
interleaved with every other job's. Each event carries ``data.bench_seq``, its place in
its job's life.

Then the daemon's own delivery path runs in this process: ``DeliveryWorker`` (the real
one, with ``Telemetry`` and ``Metrics`` as the daemon wires them, ``max_in_flight`` as
configured by default) and ``WebhookSink`` (signed, ``max_batch`` 1: one POST per event)
against a receiver process that answers 204 at once and checks per-job order and
duplicates. Throughput = events / time until the outbox is empty; the CPU seconds of
this process and of the receiver show which one is the bottleneck. Target: >= 2,000
events/s at both backlogs, per-job order kept, nothing left, no duplicate.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from bench import procs
from bench.report import save, table
from monitor.clock import SystemClock
from monitor.config import SinkSettings
from monitor.health import SourceHealth
from monitor.logs import get_logger
from monitor.metrics import Metrics
from monitor.model import Event, EventType, event_id
from monitor.sinks.base import DeliveryWorker, Filters, RetryPolicy, Wakeup
from monitor.sinks.webhook import WebhookSink
from monitor.store import Store
from monitor.telemetry import Telemetry

SECRET = b"bench-secret-key-0123456789abcdef"
TARGET = 2_000.0
BACKLOGS = (1_000, 50_000)
QUICK_BACKLOGS = (1_000, 10_000)
# issue 11's "today": one POST at a time, the queue recounted on every page
TODAY = {1_000: 1_376.0, 50_000: 919.0}
MAX_IN_FLIGHT = int(SinkSettings.model_fields["max_in_flight"].default)


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


async def deliver(store: Store, url: str, max_in_flight: int = MAX_IN_FLIGHT) -> float:
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
        max_in_flight=max_in_flight,
    )
    started = time.perf_counter()
    await worker.deliver_pending()
    elapsed = time.perf_counter() - started
    await worker.close()
    return elapsed


def run_one(
    backlog: int,
    *,
    per_job: int = 10,
    max_in_flight: int = MAX_IN_FLIGHT,
    profile: Path | None = None,
) -> dict[str, Any]:
    """Fill a fresh outbox with ``backlog`` events and drain it; the figures of one run."""
    jobs = max(1, backlog // per_job)
    with tempfile.TemporaryDirectory(prefix="bench-delivery-") as tmp:
        work = Path(tmp)
        store = Store.open(work / "state.db")
        store.register_sinks(["bench"])
        fill_started = time.perf_counter()
        queued = fill(store, jobs, per_job)
        fill_seconds = time.perf_counter() - fill_started
        with procs.receiver(log=work / "receiver.log") as rec:
            receiver_cpu = procs.cpu_seconds(rec.process.pid)
            own_cpu = time.process_time()
            if profile is not None:
                from pyinstrument import Profiler  # noqa: PLC0415 - optional, for --profile

                profiler = Profiler(async_mode="enabled")
                profiler.start()
            elapsed = asyncio.run(deliver(store, rec.url, max_in_flight))
            if profile is not None:
                profiler.stop()
                profile.write_text(profiler.output_text(unicode=True, show_all=False))
            own_cpu = time.process_time() - own_cpu
            receiver_cpu = procs.cpu_seconds(rec.process.pid) - receiver_cpu
            stats = rec.stats()
        remaining = store.queue_depth("bench")
        store.close()
    delivered = stats["events"]
    rate = round(delivered / elapsed, 1)
    return {
        "backlog": backlog,
        "jobs": jobs,
        "events_per_job": per_job,
        "max_in_flight": max_in_flight,
        "queued": queued,
        "fill_seconds": round(fill_seconds, 3),
        "delivered": delivered,
        "requests": stats["requests"],
        "remaining": remaining,
        "seconds": round(elapsed, 3),
        "events_per_second": rate,
        "today_events_per_second": TODAY.get(backlog),
        "worker_cpu_us_per_event": round(own_cpu / max(delivered, 1) * 1e6),
        "receiver_cpu_us_per_event": round(receiver_cpu / max(delivered, 1) * 1e6),
        "out_of_order": stats["out_of_order"],
        "duplicates": stats["duplicates"],
        "order_examples": stats["examples"],
        "met": rate >= TARGET
        and stats["out_of_order"] == 0
        and stats["duplicates"] == 0
        and remaining == 0
        and delivered == queued,
    }


def run(
    *,
    quick: bool = False,
    backlogs: Sequence[int] | None = None,
    per_job: int = 10,
    max_in_flight: int = MAX_IN_FLIGHT,
    profile: Path | None = None,
) -> dict[str, Any]:
    """Every backlog in turn. The top-level figures are the worst run's (the slowest
    rate; order problems, duplicates and leftovers summed), so one check covers both."""
    sizes = tuple(backlogs or (QUICK_BACKLOGS if quick else BACKLOGS))
    runs = [
        run_one(size, per_job=per_job, max_in_flight=max_in_flight, profile=profile)
        for size in sizes
    ]
    return {
        "mode": "in-process DeliveryWorker + WebhookSink (max_batch 1), receiver process",
        "runs": runs,
        "max_in_flight": max_in_flight,
        "queued": sum(r["queued"] for r in runs),
        "delivered": sum(r["delivered"] for r in runs),
        "remaining": sum(r["remaining"] for r in runs),
        "events_per_second": min(r["events_per_second"] for r in runs),
        "out_of_order": sum(r["out_of_order"] for r in runs),
        "duplicates": sum(r["duplicates"] for r in runs),
        "target_events_per_second": TARGET,
        "met": all(r["met"] for r in runs),
    }


def render(result: dict[str, Any]) -> str:
    return table(
        [
            "backlog",
            "in flight",
            "seconds",
            "events/s",
            "today",
            "worker µs/event",
            "receiver µs/event",
            "out of order",
            "duplicates",
            "left",
            "met",
        ],
        [
            [
                r["backlog"],
                r["max_in_flight"],
                r["seconds"],
                r["events_per_second"],
                "—" if r["today_events_per_second"] is None else r["today_events_per_second"],
                r["worker_cpu_us_per_event"],
                r["receiver_cpu_us_per_event"],
                r["out_of_order"],
                r["duplicates"],
                r["remaining"],
                r["met"],
            ]
            for r in result["runs"]
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="backlogs of 1,000 and 10,000")
    parser.add_argument(
        "--backlogs",
        type=lambda text: tuple(int(x) for x in text.split(",")),
        default=None,
        help="comma-separated backlog sizes (default 1000,50000)",
    )
    parser.add_argument("--per-job", type=int, default=10)
    parser.add_argument("--max-in-flight", type=int, default=MAX_IN_FLIGHT)
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="write a pyinstrument profile of the delivery to this file",
    )
    args = parser.parse_args()
    result = run(
        quick=args.quick,
        backlogs=args.backlogs,
        per_job=args.per_job,
        max_in_flight=args.max_in_flight,
        profile=args.profile,
    )
    print(render(result))
    print(
        f"{'met ' if result['met'] else 'MISS'}  slowest {result['events_per_second']:,.0f} "
        f"events/s (target >= {TARGET:,.0f} at every backlog, per-job order kept, no "
        "duplicate, nothing left)"
    )
    print(save("delivery", result))


if __name__ == "__main__":
    main()
