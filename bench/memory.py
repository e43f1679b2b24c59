"""Bench 5: the daemon's memory tracking 100,000 running jobs, and a soak for growth.

Peak: a simulator process holds 100,000 running jobs that stay running, spread over all
14 sources (one source would make the *simulator* slow: its ``in_progress`` filter costs
O(running) per page); the daemon polls them every second with the default page size
(1,000 pages per cycle). After the baseline and three more cycles of every source (one
with ``--quick``) the daemon's RSS and peak RSS (VmHWM of /proc/<pid>/status) are read,
then again after five scrapes of /metrics as Prometheus makes them (gzip; 100,000
start-time series, 13 MB of text). Target: peak <= 150 MB.

Soak: another simulator starts 1,200 jobs a minute by itself (scopes end after 5-30 s,
20% fail), so jobs start, fail scopes and end all the time (about 80 transitions a
second, 400 jobs running); the daemon polls every second, delivers to a webhook
receiver and is scraped (gzip) every 15 s (``--scrape-every``) as Prometheus would. After
a 90 s warm-up (jobs last up to 30 s: by then as many end as start, and SQLite's page
cache, 2 MB, and the interpreter's pools have filled) RSS is sampled every 2 s for
``--soak-seconds`` (default 600; ``--quick``: 60) and a least-squares slope is fitted;
``--soak-log FILE`` appends each sample to FILE as it is taken. Target: no growth (the
trend adds less than 1 MB an hour, or the RSS at the end is within 0.5 MB of the RSS
after warm-up).

The manual one-hour soak: ``python -m bench.memory --soak-hour`` (3,600 s after the
warm-up, about 62 minutes). Its figure is the RSS over the last 30 minutes (``tail_*``:
median of the last 5 samples minus median of the first 5 of the window, and the range).
Target: at most +1 MB in all. Shorter soaks report the same figures over their second
half.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import procs
from bench.report import save, slope_per_minute, table
from monitor.families import SOURCE_NAMES

TARGET_MB = 150.0
TRACKED = 100_000
WARMUP = 90.0  # jobs end as fast as they start after 30 s; SQLite's 2 MB page cache fills
SOAK_RATE = 1200.0  # jobs per minute
SCRAPE_EVERY = 15.0  # the soak scrapes /metrics (gzip) as Prometheus would
HOUR = 3600.0  # --soak-hour: the manual one-hour soak
TAIL = 1800.0  # its figure: the RSS over the last 30 minutes...
TAIL_GROWTH_MB = 1.0  # ...grows by at most this much


def _mb(kib: int) -> float:
    return round(kib / 1024, 1)


def peak(*, running: int = TRACKED, cycles: int = 3) -> dict[str, Any]:
    sources = SOURCE_NAMES
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        work = Path(tmp)
        with procs.simulator(
            sources=sources, running=running, log=work / "sim.log", start_timeout=300
        ) as sim:
            config = procs.write_config(
                work / "monitor.yaml",
                sim.url,
                work / "state.db",
                http_port=procs.free_port(),
                sources=sources,
                interval=1.0,
            )
            with procs.daemon(config, log=work / "daemon.log") as d:
                tail = procs.LogTail(work / "daemon.log")
                started = time.monotonic()
                samples: list[tuple[float, float]] = []

                def cycles_done() -> bool:
                    d.check_alive()
                    tail.read()
                    mem = procs.memory_kib(d.pid)
                    samples.append((time.monotonic() - started, _mb(mem["VmRSS"])))
                    per_source: dict[str, int] = {}
                    for p in tail.polls:
                        per_source[p["source"]] = per_source.get(p["source"], 0) + 1
                    return (
                        len(per_source) == len(sources) and min(per_source.values()) >= 1 + cycles
                    )

                procs.wait_until(cycles_done, 1800, "the cycles over 100,000 jobs", every=1.0)
                seconds = time.monotonic() - started
                polled = [p for p in tail.polls if p["event"] == "poll.ok"]
                tracked = sum(int(p["running"]) for p in polled[-len(sources) :])
                by_source = {}
                for p in polled:
                    by_source[p["source"]] = int(p["running"])
                mem = procs.memory_kib(d.pid)
                cycle = [float(p["seconds"]) for p in polled[len(sources) :]]
                scrape_started = time.perf_counter()
                wire, text_bytes = procs.scrape(d.http_url + "/metrics")
                scrape_ms = (time.perf_counter() - scrape_started) * 1000
                after = procs.memory_kib(d.pid)
                more = [procs.scrape(d.http_url + "/metrics") for _ in range(4)]
                after_more = procs.memory_kib(d.pid)
                cpu = procs.cpu_seconds(d.pid)
    return {
        "running_jobs": running,
        "sources": len(sources),
        "tracked": sum(by_source.values()),
        "tracked_last_cycles": tracked,
        "page_size": procs.PAGE_SIZE,
        "steady_cycles": cycles,
        "seconds_to_measure": round(seconds, 1),
        "cycle_seconds_mean": round(sum(cycle) / len(cycle), 2) if cycle else None,
        "rss_mb": _mb(mem["VmRSS"]),
        "peak_rss_mb": _mb(mem["VmHWM"]),
        "metrics_scrape_ms": round(scrape_ms, 1),
        "metrics_bytes": text_bytes,
        "metrics_bytes_gzip": wire,
        "rss_after_scrape_mb": _mb(after["VmRSS"]),
        "peak_rss_after_scrape_mb": _mb(after["VmHWM"]),
        "scrapes": 1 + len(more),
        "rss_after_scrapes_mb": _mb(after_more["VmRSS"]),
        "peak_rss_after_scrapes_mb": _mb(after_more["VmHWM"]),
        "daemon_cpu_seconds": cpu,
        "rss_samples_mb": samples,
        "target_mb": TARGET_MB,
        "met": _mb(after_more["VmHWM"]) <= TARGET_MB and sum(by_source.values()) == running,
    }


def _median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def tail_figures(
    samples: list[tuple[float, float]], *, end: float, window: float
) -> dict[str, float]:
    """RSS over the last ``window`` seconds before ``end``: the growth (median of the
    last 5 samples minus median of the first 5 of the window, so one sample's noise does
    not decide it), the range (max - min) and the fitted slope."""
    tail = [s for s in samples if s[0] >= end - window]
    values = [v for _, v in tail] or [0.0]
    return {
        "tail_seconds": round(window, 1),
        "tail_samples": len(tail),
        "tail_growth_mb": round(_median(values[-5:]) - _median(values[:5]), 2),
        "tail_range_mb": round(max(values) - min(values), 2),
        "tail_slope_mb_per_minute": round(slope_per_minute(tail), 4),
    }


def soak(
    *,
    seconds: float,
    rate: float = SOAK_RATE,
    warmup: float = WARMUP,
    scrape_every: float = SCRAPE_EVERY,
    log: Path | None = None,
) -> dict[str, Any]:
    """The soak; ``log``: a file that gets one ``elapsed_s rss_mb`` line per sample as it
    is taken, to watch a long soak (``tail -f``)."""
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp:
        work = Path(tmp)
        with (
            procs.receiver(log=work / "receiver.log") as rec,
            procs.simulator(
                history=1_000,
                job_rate=rate,
                scope_seconds=(5.0, 30.0),
                failure_probability=0.2,
                log=work / "sim.log",
            ) as sim,
        ):
            config = procs.write_config(
                work / "monitor.yaml",
                sim.url,
                work / "state.db",
                http_port=procs.free_port(),
                interval=1.0,
                log_level="info",
                sinks=[{"type": "webhook", "name": "bench", "url": rec.url}],
            )
            with procs.daemon(config, log=work / "daemon.log") as d:
                started = time.monotonic()
                samples: list[tuple[float, float]] = []
                scrapes = 0
                next_scrape = 0.0
                out = log.open("a", buffering=1) if log else None
                try:
                    while (elapsed := time.monotonic() - started) < warmup + seconds:
                        d.check_alive()
                        if scrape_every and elapsed >= next_scrape:
                            # as Prometheus does: gzip, every scrape_interval
                            procs.scrape(d.http_url + "/metrics")
                            scrapes += 1
                            next_scrape = elapsed + scrape_every
                        rss = procs.memory_kib(d.pid)["VmRSS"] / 1024
                        samples.append((elapsed, rss))
                        if out is not None:
                            out.write(f"{elapsed:.1f} {rss:.2f}\n")
                        time.sleep(2.0)
                finally:
                    if out is not None:
                        out.close()
                mem = procs.memory_kib(d.pid)
                values = d.metrics()
                events = rec.stats()["events"]
                transitions = sim.stats()["transitions"]
                running = procs.metric(values, "cckm_jobs_running")
    settled = [s for s in samples if s[0] >= warmup]
    slope = slope_per_minute(settled)
    first, last = settled[0][1], settled[-1][1]
    result = {
        "seconds": seconds,
        "warmup_seconds": warmup,
        "running_at_end": running,
        "job_rate_per_minute": rate,
        "transitions": transitions,
        "events_delivered": events,
        "polls": int(procs.metric(values, "cckm_polls_total")),
        "rss_start_mb": round(samples[0][1], 1),
        "rss_after_warmup_mb": round(first, 1),
        "rss_end_mb": round(last, 1),
        "peak_rss_mb": _mb(mem["VmHWM"]),
        "slope_mb_per_minute": round(slope, 3),
        "growth_after_warmup_mb": round(last - first, 1),
        "scrapes": scrapes,
        "scrape_every_seconds": scrape_every,
        **tail_figures(samples, end=warmup + seconds, window=min(TAIL, seconds / 2)),
        "samples_mb": [(round(t, 1), round(v, 2)) for t, v in samples],
    }
    if seconds >= HOUR:
        # the target: over the last 30 minutes of an hour, at most +1 MB in all
        result["met"] = result["tail_growth_mb"] <= TAIL_GROWTH_MB
    else:
        # "no growth": the fitted trend over the settled part would add less than 1 MB an
        # hour, or the RSS at the end is within 0.5 MB of the RSS after warm-up
        result["met"] = slope * 60 < 1.0 or (last - first) <= 0.5
    return result


def run(
    *, quick: bool = False, soak_seconds: float | None = None, running: int = TRACKED
) -> dict[str, Any]:
    result = {"peak": peak(running=running, cycles=1 if quick else 3)}
    print(
        f"  memory: peak {result['peak']['peak_rss_after_scrape_mb']} MB tracking "
        f"{result['peak']['tracked']:,} jobs",
        flush=True,
    )
    result["soak"] = soak(seconds=soak_seconds or (60.0 if quick else 600.0))
    result["met"] = result["peak"]["met"] and result["soak"]["met"]
    return result


def render(result: dict[str, Any]) -> str:
    p, s = result["peak"], result["soak"]
    text = table(
        [
            "tracked jobs",
            "sources",
            "cycle s",
            "RSS MB",
            "peak MB",
            "peak MB after scrape",
            "scrape ms",
        ],
        [
            [
                p["tracked"],
                p["sources"],
                p["cycle_seconds_mean"],
                p["rss_mb"],
                p["peak_rss_mb"],
                p["peak_rss_after_scrape_mb"],
                p["metrics_scrape_ms"],
            ]
        ],
    )
    text += "\n\n" + table(
        [
            "soak s",
            "transitions",
            "events",
            "polls",
            "RSS start",
            "after warm-up",
            "end",
            "slope MB/min",
        ],
        [
            [
                s["seconds"],
                s["transitions"],
                s["events_delivered"],
                s["polls"],
                s["rss_start_mb"],
                s["rss_after_warmup_mb"],
                s["rss_end_mb"],
                s["slope_mb_per_minute"],
            ]
        ],
    )
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--soak-seconds", type=float, default=None)
    parser.add_argument("--running", type=int, default=TRACKED)
    parser.add_argument("--peak-only", action="store_true")
    parser.add_argument("--soak-only", action="store_true")
    parser.add_argument(
        "--soak-hour",
        action="store_true",
        help="the manual one-hour soak (soak only): RSS over its last 30 minutes, <= +1 MB",
    )
    parser.add_argument(
        "--soak-log", type=Path, default=None, help="append each RSS sample to this file"
    )
    parser.add_argument(
        "--scrape-every",
        type=float,
        default=SCRAPE_EVERY,
        help="seconds between the soak's /metrics scrapes (0: none)",
    )
    args = parser.parse_args()
    if args.soak_hour:
        args.soak_only = True
        args.soak_seconds = args.soak_seconds or HOUR
    if args.peak_only:
        result = {"peak": peak(running=args.running)}
        print({k: v for k, v in result["peak"].items() if k != "rss_samples_mb"})
        return
    if args.soak_only:
        result = {
            "soak": soak(
                seconds=args.soak_seconds or (60.0 if args.quick else 600.0),
                scrape_every=args.scrape_every,
                log=args.soak_log,
            )
        }
        print({k: v for k, v in result["soak"].items() if k != "samples_mb"})
        print(save("memory_soak", result))
        # CI runs ``--soak-only --quick`` (about 2.5 minutes) and fails on a missed target
        sys.exit(0 if result["soak"]["met"] else 1)
    result = run(quick=args.quick, soak_seconds=args.soak_seconds, running=args.running)
    print(render(result))
    print(save("memory", result))


if __name__ == "__main__":
    main()
