"""Bench 6: /metrics render time with 14 sources x 3 managers and 1,000 running jobs.

Builds the daemon's real Metrics on a fresh registry, fills it as a busy daemon would
(every event type counted, poll and delivery histograms observed, 1,000 running-job
series), then times the text rendering /metrics serves (monitor.exposition),
prometheus_client's own text rendering for comparison, and OpenMetrics (served when a
scraper asks for it).
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import time
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from monitor.exposition import render_text
from monitor.families import SOURCE_NAMES
from monitor.metrics import Metrics
from monitor.model import EventType

MANAGERS = ("prod-eu", "prod-us", "dr")


def build(running: int, sinks: int) -> Metrics:
    pairs = [(m, s) for m in MANAGERS for s in SOURCE_NAMES]
    metrics = Metrics(CollectorRegistry(), pairs, [f"sink-{i}" for i in range(sinks)])
    per_source = running // len(pairs)
    extra = running - per_source * len(pairs)
    for n, (manager, source) in enumerate(pairs):
        count = per_source + (1 if n < extra else 0)
        metrics.set_running(
            manager, source, {f"{manager}-{source}-{i:05d}": 1.7e9 + i for i in range(count)}
        )
        for event in EventType:
            metrics.job_events.labels(manager, source, event.value).inc()
        metrics.job_duration.labels(manager, source, "completed").observe(120)
        metrics.polls.labels(manager, source).inc()
        metrics.poll_duration.labels(manager, source).observe(0.2)
    return metrics


def time_it(render: Any, registry: CollectorRegistry, rounds: int) -> tuple[list[float], bytes]:
    samples = []
    body = b""
    for _ in range(rounds):
        started = time.perf_counter()
        body = render(registry)
        samples.append((time.perf_counter() - started) * 1000)
    return samples, body


def run(running: int, sinks: int, rounds: int) -> dict[str, Any]:
    metrics = build(running, sinks)
    served, body = time_it(render_text, metrics.registry, rounds)
    library, _ = time_it(generate_latest, metrics.registry, rounds)
    openmetrics, om_body = time_it(generate_openmetrics, metrics.registry, rounds)
    return {
        "managers": len(MANAGERS),
        "sources": len(SOURCE_NAMES),
        "running_jobs": running,
        "sinks": sinks,
        "lines": body.count(b"\n"),
        "bytes": len(body),
        "bytes_gzip": len(gzip.compress(body)),
        "text_ms_median": round(statistics.median(served), 2),
        "text_ms_p90": round(sorted(served)[int(len(served) * 0.9)], 2),
        "library_text_ms_median": round(statistics.median(library), 2),
        "openmetrics_ms_median": round(statistics.median(openmetrics), 2),
        "openmetrics_bytes": len(om_body),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--running", type=int, default=1000)
    parser.add_argument("--sinks", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    print(json.dumps(run(args.running, args.sinks, args.rounds), indent=2))


if __name__ == "__main__":
    main()
