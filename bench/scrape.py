"""Bench 6: /metrics render time with 14 sources x 3 managers and 1,000 running jobs.

Builds the daemon's real Metrics on a fresh registry, fills it as a busy daemon would
(every event type counted, poll and delivery histograms observed, 1,000 running-job
series), then times the text rendering /metrics serves (monitor.exposition),
prometheus_client's own text rendering for comparison, and OpenMetrics (served when a
scraper asks for it).

``--http``: /metrics CPU per scrape at 100,000 running jobs (``--running``), over HTTP.
A server process (``--serve``: the daemon's real ``Metrics`` and ``build_app``, nothing
else) holds the jobs; the bench scrapes it as Prometheus does (gzip) and as a plain
client does, and reads the server's CPU (utime + stime) around each batch of scrapes.
*unchanged*: the running sets stay as they are between scrapes (jobs that run for hours);
*changed*: before every scrape one job of every source ends and another starts, so every
source's lines are rendered again (what every scrape cost before they were kept).
``--baseline-tree DIR`` runs the same server on another checkout's ``monitor`` (e.g.
``git archive HEAD | tar -x -C /tmp/before``) for a before/after figure.
Target: <= 200 ms of CPU per scrape at 100,000 running jobs, plain and gzip.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any
from urllib.request import Request, urlopen

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from bench import procs
from monitor.exposition import render_text
from monitor.families import SOURCE_NAMES
from monitor.http import HttpServer, build_app
from monitor.metrics import Metrics
from monitor.model import EventType
from monitor.store import Store

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


# --- over HTTP: CPU per scrape at 100,000 running jobs ------------------------------------

HTTP_RUNNING = 100_000
TARGET_CPU_MS = 200.0


def churn(metrics: Metrics, turn: int, running: int) -> None:
    """One job of every source ends and another starts (``turn`` numbers the change)."""
    pairs = [(m, s) for m in MANAGERS for s in SOURCE_NAMES]
    per_source = running // len(pairs)
    for manager, source in pairs:
        jobs = {f"{manager}-{source}-{i:05d}": 1.7e9 + i for i in range(1, per_source)}
        jobs[f"{manager}-{source}-churn-{turn}"] = 1.7e9 + turn
        metrics.set_running(manager, source, jobs)


def serve(port: int, running: int) -> None:
    """The server process: real Metrics and build_app, ``POST /bench/churn`` to change."""
    metrics = build(running, 3)
    turns = [0]

    async def change(request: web.Request) -> web.Response:
        turns[0] += 1
        churn(metrics, turns[0], running)
        return web.Response(text="ok")

    async def main() -> None:
        store = Store.open(":memory:")
        app = build_app(
            store,
            list,
            version="bench",
            registry=metrics.registry,
            extra_routes=[web.post("/bench/churn", change)],
        )
        server = HttpServer(app, "127.0.0.1", port)
        await server.start()
        await asyncio.Event().wait()

    asyncio.run(main())


def _get(url: str, encoding: str) -> int:
    request = Request(url, headers={"Accept-Encoding": encoding, "Accept": "text/plain"})
    with urlopen(request, timeout=120) as resp:
        return len(resp.read())


_BASELINE = """
import importlib.util, sys
sys.path.insert(0, {tree!r})
spec = importlib.util.spec_from_file_location("baseline_scrape", {me!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
module.main()
"""


def http_cpu(
    *, running: int = HTTP_RUNNING, scrapes: int = 10, tree: Path | None = None
) -> dict[str, Any]:
    """CPU ms per /metrics scrape of a server holding ``running`` jobs (see the module)."""
    port = procs.free_port()
    command = [sys.executable, "-m", "bench.scrape"]
    if tree is not None:
        # this file, run against the other tree's monitor (and its bench.procs): -P keeps
        # this checkout off sys.path
        command = [sys.executable, "-P", "-c", _BASELINE.format(tree=str(tree), me=__file__)]
    process = procs.spawn([*command, "--serve", str(port), "--running", str(running)])
    url = f"http://127.0.0.1:{port}"
    try:
        procs.wait_until(lambda: procs.http_text(url + "/healthz"), 300, "the scrape server")
        result: dict[str, Any] = {"running_jobs": running, "scrapes": scrapes}
        for encoding in ("gzip", "identity"):
            wire = _get(url + "/metrics", encoding)  # the first renders everything
            for case in ("unchanged", "changed"):
                spent = 0.0
                for _ in range(scrapes):
                    if case == "changed":
                        urlopen(Request(url + "/bench/churn", method="POST"), timeout=60).read()
                    before = procs.cpu_seconds(process.pid)
                    wire = _get(url + "/metrics", encoding)
                    spent += procs.cpu_seconds(process.pid) - before
                key = "gzip" if encoding == "gzip" else "plain"
                result[f"{key}_{case}_cpu_ms"] = round(spent / scrapes * 1000, 1)
                result[f"{key}_bytes"] = wire
    finally:
        procs.stop(process)
    result["target_cpu_ms"] = TARGET_CPU_MS
    result["met"] = all(result[f"{k}_unchanged_cpu_ms"] <= TARGET_CPU_MS for k in ("gzip", "plain"))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--running", type=int, default=None)
    parser.add_argument("--sinks", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--http", action="store_true", help="CPU per scrape over HTTP")
    parser.add_argument("--baseline-tree", type=Path, default=None)
    parser.add_argument("--serve", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve, args.running or HTTP_RUNNING)
        return
    if args.http:
        running = args.running or HTTP_RUNNING
        if args.baseline_tree is not None:
            before = http_cpu(running=running, scrapes=args.rounds, tree=args.baseline_tree)
            print("before:", json.dumps(before), flush=True)
        print("after:", json.dumps(http_cpu(running=running, scrapes=args.rounds)))
        return
    print(json.dumps(run(args.running or 1000, args.sinks, args.rounds), indent=2))


if __name__ == "__main__":
    main()
