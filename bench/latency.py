"""Bench 3: detection latency, from a transition in the simulator to the webhook receiver.

A simulator process (one source, aws) starts jobs by itself at ``--rate`` per minute; each
scope ends after 1-4 s and fails with probability 0.2, so jobs start, fail scopes and
finish all the time. The daemon polls every ``interval`` (1 s, 5 s and 30 s; the default
``jitter_fraction: 0.1``, which only ever shortens a gap: cycle starts are 0.9-1.0
intervals apart) and delivers through the webhook sink (one POST per event) to a
receiver process that notes each arrival's wall time.

Each interval runs until the receiver holds the wanted events and at least a number of
cycles have passed: ``--quick`` 600 events / 6 cycles at 1 s and 5 s, 400 events / 6
cycles at 30 s (about 4 minutes in all for the three); the full run 2,000 events /
20 cycles, 1,800 / 20 at 30 s (a 10-minute load at 30 s, about 15 minutes in all). At
30 s jobs start at 60 per minute instead of 600, so that one cycle's burst of events
(~90) is delivered in well under 250 ms and the figure stays about detection.

Each received event is matched to the simulator's ground truth (/sim/v1/transitions):
``job.started`` to the job's ``created`` transition, ``job.domain_failed`` to the
``scope_finished`` of that scope, ``job.abort_requested`` to ``abort_requested``, the
terminal events to ``finished``. Latency = arrival - transition time, both on this
machine's wall clock. It splits into *detection* (the event's timestamp, stamped when the
poll's answers were in, minus the transition) and *delivery* (arrival minus that stamp).

Target: p99 <= interval + 250 ms at each interval. A transition waits for the next
cycle: on average half a period, at most one interval (jitter only shortens a gap, an
overrun does not push the next start: monitor/cadence.py); the rest is the poll, the
commit and the delivery.
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
INTERVALS = (1.0, 5.0, 30.0)
JITTER = 0.1
TARGET_MS = INTERVAL * 1000 + 250
SLOW = 30.0  # from this interval on: fewer jobs per minute, fewer events wanted

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


def target_ms(interval: float) -> float:
    return interval * 1000 + 250


def run(
    *,
    quick: bool = False,
    events: int | None = None,
    rate: float | None = None,
    jitter: float = JITTER,
    interval: float = INTERVAL,
) -> dict[str, Any]:
    slow = interval >= SLOW
    wanted = events or ((400 if quick else 1_800) if slow else (600 if quick else 2_000))
    rate = rate if rate is not None else (60.0 if slow else 600.0)
    min_seconds = (6 if quick else 20) * interval
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
                interval=interval,
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
                    lambda: (
                        d.check_alive(),
                        rec.stats()["events"] >= wanted
                        and time.monotonic() - started >= min_seconds,
                    )[1],
                    timeout=60 + min_seconds + wanted / max(rate / 60, 0.1) * 2,
                    what=f"{wanted} events at the receiver",
                    every=0.5,
                )
                sim.patch_config(job_rate=0)
                # running jobs end (scopes take at most 4 s), are seen and delivered
                time.sleep(6.0 + interval)
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
        "interval_seconds": interval,
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
        "target_p99_ms": target_ms(interval),
    }
    result["met"] = (
        result["latency_ms"]["p99"] <= target_ms(interval)
        and len(total) >= 0.8 * wanted
        and stats["out_of_order"] == 0
    )
    return result


def run_intervals(
    intervals: tuple[float, ...] = INTERVALS, *, quick: bool = False, jitter: float = JITTER
) -> dict[str, Any]:
    """The bench at each interval, one after the other (one daemon each)."""
    rows = []
    for interval in intervals:
        result = run(quick=quick, jitter=jitter, interval=interval)
        print(render(result), flush=True)
        rows.append(result)
    return {"rows": rows, "met": all(r["met"] for r in rows)}


def render_intervals(result: dict[str, Any]) -> str:
    return table(
        ["interval s", "matched", "p50 ms", "p99 ms", "detect p99", "deliver p99", "target", "met"],
        [
            [
                f"{r['interval_seconds']:g}",
                r["matched"],
                r["latency_ms"]["p50"],
                r["latency_ms"]["p99"],
                r["detection_ms"]["p99"],
                r["delivery_ms"]["p99"],
                r["target_p99_ms"],
                r["met"],
            ]
            for r in result["rows"]
        ],
    )


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
    parser.add_argument(
        "--rate", type=float, default=None, help="new jobs per minute (600; 60 at 30 s)"
    )
    parser.add_argument("--jitter", type=float, default=JITTER)
    parser.add_argument(
        "--intervals",
        default=",".join(f"{i:g}" for i in INTERVALS),
        help="comma-separated poll intervals in seconds (default 1,5,30)",
    )
    args = parser.parse_args()
    intervals = tuple(float(i) for i in args.intervals.split(","))
    if len(intervals) == 1:
        result = run(
            quick=args.quick,
            events=args.events,
            rate=args.rate,
            jitter=args.jitter,
            interval=intervals[0],
        )
        print(render(result))
        rows = [result]
    else:
        result = run_intervals(intervals, quick=args.quick, jitter=args.jitter)
        print(render_intervals(result))
        rows = result["rows"]
    for row in rows:
        print(
            f"{'met ' if row['met'] else 'MISS'}  @{row['interval_seconds']:g} s: p99 "
            f"{row['latency_ms']['p99']} ms (target <= {row['target_p99_ms']:g} ms)"
        )
    print(save("latency", result))


if __name__ == "__main__":
    main()
