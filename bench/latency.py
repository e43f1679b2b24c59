"""Bench 3: detection latency, from a transition in the simulator to the webhook receiver.

A simulator process (one source, aws) starts jobs by itself at ``--rate`` per minute; each
scope ends after 1-4 s and fails with probability 0.2, so jobs start, fail scopes and
finish all the time. The daemon polls every second (``interval_seconds: 1``, the default
``jitter_fraction: 0.1``, so the gap between two cycle starts is 0.9-1.1 s) and delivers
through the webhook sink (one POST per event) to a receiver process that notes each
arrival's wall time.

Each received event is matched to the simulator's ground truth (/sim/v1/transitions):
``job.started`` to the job's ``created`` transition, ``job.domain_failed`` to the
``scope_finished`` of that scope, ``job.abort_requested`` to ``abort_requested``, the
terminal events to ``finished``. Latency = arrival - transition time, both on this
machine's wall clock. It splits into *detection* (the event's timestamp, stamped when the
poll's answers were in, minus the transition) and *delivery* (arrival minus that stamp).

Target: p99 <= interval + 250 ms. A transition waits for the next cycle: on average half
a period, at most a period (1.1 s with jitter); the rest is the poll, the commit and the
delivery.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import procs
from bench.report import median, percentile, save, table
from monitor.model import parse_timestamp

INTERVAL = 1.0
JITTER = 0.1
TARGET_MS = INTERVAL * 1000 + 250

TERMINAL = {"job.completed", "job.failed", "job.aborted"}


def _key(kind: str, job: str, scope: str | None) -> tuple[str, str, str | None] | None:
    if kind == "job.started":
        return ("created", job, None)
    if kind in TERMINAL:
        return ("finished", job, None)
    if kind == "job.domain_failed":
        return ("scope_finished", job, scope)
    if kind == "job.abort_requested":
        return ("abort_requested", job, None)
    return None


def run(
    *, quick: bool = False, events: int | None = None, rate: float = 600.0, jitter: float = JITTER
) -> dict[str, Any]:
    wanted = events or (600 if quick else 2_000)
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
        work = Path(tmp)
        with (
            procs.receiver(log=work / "receiver.log") as rec,
            procs.simulator(
                history=1_000,
                scope_seconds=(1.0, 4.0),
                failure_probability=0.2,
                log=work / "sim.log",
            ) as sim,
        ):
            config = procs.write_config(
                work / "monitor.yaml",
                sim.url,
                work / "state.db",
                http_port=procs.free_port(),
                interval=INTERVAL,
                jitter_fraction=jitter,
                sinks=[{"type": "webhook", "name": "bench", "url": rec.url}],
            )
            with procs.daemon(config, log=work / "daemon.log") as d:
                tail = procs.LogTail(work / "daemon.log")
                tail.wait_polls(d, 2, timeout=60)
                since = len(sim.transitions())
                started = time.monotonic()
                sim.patch_config(job_rate=rate)
                procs.wait_until(
                    lambda: (d.check_alive(), rec.stats()["events"] >= wanted)[1],
                    timeout=60 + wanted / max(rate / 60, 0.1) * 2,
                    what=f"{wanted} events at the receiver",
                    every=0.5,
                )
                sim.patch_config(job_rate=0)
                time.sleep(6.0)  # running jobs end (scopes take at most 4 s) and are delivered
                load_seconds = time.monotonic() - started
                transitions = sim.transitions(since)
                received = rec.received()
                stats = rec.stats()
                tail.read()
                cpu = procs.cpu_seconds(d.pid)
    truth: dict[tuple[str, str, str | None], float] = {}
    for t in transitions:
        truth.setdefault((t["kind"], t["job_id"], t["scope"]), parse_timestamp(t["at"]).timestamp())
    total, detect, deliver, unmatched = [], [], [], 0
    for arrival, _id, kind, job, scope, stamp in received:
        key = _key(kind, job, scope) if job else None
        at = truth.get(key) if key else None
        if at is None:
            unmatched += 1
            continue
        detected = parse_timestamp(stamp).timestamp()
        total.append((arrival - at) * 1000)
        detect.append((detected - at) * 1000)
        deliver.append((arrival - detected) * 1000)
    cycles = [p for p in tail.polls if p.get("event") == "poll.ok"][2:]
    result = {
        "interval_seconds": INTERVAL,
        "jitter_fraction": jitter,
        "job_rate_per_minute": rate,
        "load_seconds": round(load_seconds, 1),
        "transitions": len(transitions),
        "events_received": len(received),
        "matched": len(total),
        "unmatched": unmatched,
        "out_of_order": stats["out_of_order"],
        "duplicates": stats["duplicates"],
        "latency_ms": _summary(total),
        "detection_ms": _summary(detect),
        "delivery_ms": _summary(deliver),
        "cycle_ms_median": round(median([float(p["seconds"]) * 1000 for p in cycles]), 1),
        "cycle_ms_p99": round(percentile([float(p["seconds"]) * 1000 for p in cycles], 99), 1),
        "events_per_cycle_max": max((int(p.get("events", 0)) for p in cycles), default=0),
        "daemon_cpu_seconds": cpu,
        "target_p99_ms": TARGET_MS,
    }
    result["met"] = (
        result["latency_ms"]["p99"] <= TARGET_MS
        and len(total) >= 500
        and stats["out_of_order"] == 0
    )
    return result


def _summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "min": round(min(values), 1) if values else float("nan"),
        "p50": round(percentile(values, 50), 1),
        "p90": round(percentile(values, 90), 1),
        "p99": round(percentile(values, 99), 1),
        "max": round(max(values), 1) if values else float("nan"),
    }


def render(result: dict[str, Any]) -> str:
    rows = [
        [name, s["n"], s["min"], s["p50"], s["p90"], s["p99"], s["max"]]
        for name, s in (
            ("transition -> receiver", result["latency_ms"]),
            ("  transition -> detected", result["detection_ms"]),
            ("  detected -> receiver", result["delivery_ms"]),
        )
    ]
    text = table(["ms", "n", "min", "p50", "p90", "p99", "max"], rows)
    text += (
        f"\n{result['matched']} events matched to transitions "
        f"({result['unmatched']} unmatched, {result['out_of_order']} out of order); "
        f"interval {result['interval_seconds']} s, jitter {result['jitter_fraction']}, "
        f"{result['job_rate_per_minute']:g} jobs/min; poll cycle median "
        f"{result['cycle_ms_median']} ms, p99 {result['cycle_ms_p99']} ms"
    )
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--events", type=int, default=None)
    parser.add_argument("--rate", type=float, default=600.0, help="new jobs per minute")
    parser.add_argument("--jitter", type=float, default=JITTER)
    args = parser.parse_args()
    result = run(quick=args.quick, events=args.events, rate=args.rate, jitter=args.jitter)
    print(render(result))
    print(
        f"{'met ' if result['met'] else 'MISS'}  p99 {result['latency_ms']['p99']} ms "
        f"(target <= {TARGET_MS:g} ms)"
    )
    print(save("latency", result))


if __name__ == "__main__":
    main()
