"""Run every bench, print their tables and one table of targets, write bench/results/.

    .venv/bin/python -m bench            # the full run (about 25 minutes: a 10-minute soak)
    .venv/bin/python -m bench --quick    # a few minutes: shorter windows, a 60 s soak
    .venv/bin/python -m bench --only latency,delivery
    .venv/bin/python -m bench.memory --soak-hour    # the manual 1 h soak (RSS, last 30 min)

Each bench starts its own processes (simulator, daemon, webhook receiver) on 127.0.0.1
and stops them when it ends, fails, or is interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

from bench import bounds, delivery, differ_store, latency, memory, poll_cost, procs, scrape
from bench.report import save, table

BENCHES = ("differ_store", "scrape", "delivery", "latency", "poll_cost", "memory", "bounds")


def _differ_store(quick: bool, args: argparse.Namespace) -> tuple[dict[str, Any], list[dict]]:
    result = differ_store.run(10_000, 0.01, 10 if quick else 30)
    print(
        table(
            ["running", "changed/cycle", "cycles", "events", "jobs/s", "cycle ms", "txn/cycle"],
            [
                [
                    result["running_jobs"],
                    result["changed_per_cycle"],
                    result["cycles"],
                    result["events"],
                    result["jobs_per_second"],
                    result["cycle_ms"],
                    result["transactions_per_cycle"],
                ]
            ],
        )
    )
    return result, [
        _check(
            "2. differ + store: jobs/s (10,000 running, 1% change, one core)",
            f"{result['jobs_per_second']:,}",
            ">= 50,000",
            result["jobs_per_second"] >= 50_000,
        ),
        _check(
            "2. differ + store: transactions per cycle",
            f"{result['transactions_per_cycle']:g}",
            "1",
            result["transactions_per_cycle"] == 1,
        ),
    ]


def _scrape(quick: bool, args: argparse.Namespace) -> tuple[dict[str, Any], list[dict]]:
    result = scrape.run(1000, 3, 10 if quick else 30)
    print(
        table(
            [
                "managers x sources",
                "running",
                "lines",
                "bytes",
                "text ms",
                "p90 ms",
                "prometheus_client ms",
                "OpenMetrics ms",
            ],
            [
                [
                    f"{result['managers']} x {result['sources']}",
                    result["running_jobs"],
                    result["lines"],
                    result["bytes"],
                    result["text_ms_median"],
                    result["text_ms_p90"],
                    result["library_text_ms_median"],
                    result["openmetrics_ms_median"],
                ]
            ],
        )
    )
    http = scrape.http_cpu(scrapes=3 if quick else 10)
    result["http"] = http
    print(
        table(
            ["running", "gzip ms", "gzip ms, all changed", "plain ms", "plain ms, all changed"],
            [
                [
                    http["running_jobs"],
                    http["gzip_unchanged_cpu_ms"],
                    http["gzip_changed_cpu_ms"],
                    http["plain_unchanged_cpu_ms"],
                    http["plain_changed_cpu_ms"],
                ]
            ],
        )
    )
    return result, [
        _check(
            "6. /metrics render, 14 sources x 3 managers, 1,000 running (median)",
            f"{result['text_ms_median']} ms",
            "<= 50 ms",
            result["text_ms_median"] <= 50,
        ),
        *(
            _check(
                f"6. /metrics CPU per {kind} scrape, {http['running_jobs']:,} running jobs",
                f"{http[f'{kind}_unchanged_cpu_ms']} ms "
                f"({http[f'{kind}_changed_cpu_ms']} ms when every source changed)",
                f"<= {scrape.TARGET_CPU_MS:.0f} ms",
                http[f"{kind}_unchanged_cpu_ms"] <= scrape.TARGET_CPU_MS,
            )
            for kind in ("gzip", "plain")
        ),
    ]


def _delivery(quick: bool, args: argparse.Namespace) -> tuple[dict[str, Any], list[dict]]:
    result = delivery.run(quick=quick)
    print(delivery.render(result))
    return result, [
        _check(
            "4. delivery: outbox -> webhook, one POST per event",
            f"{result['events_per_second']:,.0f} events/s",
            ">= 2,000/s",
            result["events_per_second"] >= 2_000,
        ),
        _check(
            "4. delivery: per-job order at the receiver",
            f"{result['out_of_order']} out of order, {result['duplicates']} duplicates, "
            f"{result['delivered']:,}/{result['queued']:,} delivered",
            "0 out of order, all delivered",
            result["out_of_order"] == 0 and result["delivered"] == result["queued"],
        ),
    ]


def _latency(quick: bool, args: argparse.Namespace) -> tuple[dict[str, Any], list[dict]]:
    result = latency.run(quick=quick)
    print(latency.render(result))
    lat = result["latency_ms"]
    return result, [
        _check(
            "3. detection latency p50 (transition -> webhook receiver)",
            f"{lat['p50']:.0f} ms",
            "(about interval / 2)",
            None,
        ),
        _check(
            f"3. detection latency p99 over {lat['n']:,} transitions",
            f"{lat['p99']:.0f} ms",
            f"<= {latency.TARGET_MS:.0f} ms",
            lat["p99"] <= latency.TARGET_MS and lat["n"] >= 500,
        ),
    ]


def _poll_cost(quick: bool, args: argparse.Namespace) -> tuple[dict[str, Any], list[dict]]:
    result = poll_cost.run(quick=quick)
    print(poll_cost.render(result))
    checks = [
        _check(f"1. poll cost: {c['what']}", c["value"], c["target"], c["met"])
        for c in result["checks"]
    ]
    scrape_http = next(
        (
            r["incremental"].get("http_scrape")
            for r in result["rows"]
            if r["incremental"].get("http_scrape")
        ),
        None,
    )
    if scrape_http:
        checks.append(
            _check(
                "6. GET /metrics over HTTP, daemon tracking 1,000 running (median)",
                f"{scrape_http['ms_median']} ms",
                "<= 50 ms",
                scrape_http["ms_median"] <= 50,
            )
        )
    return result, checks


def _memory(quick: bool, args: argparse.Namespace) -> tuple[dict[str, Any], list[dict]]:
    result = memory.run(quick=quick, soak_seconds=args.soak_seconds)
    print(memory.render(result))
    p, s = result["peak"], result["soak"]
    return result, [
        _check(
            f"5. peak RSS tracking {p['tracked']:,} running jobs, {p['scrapes']} scrapes",
            f"{p['peak_rss_after_scrapes_mb']} MB",
            "<= 150 MB",
            p["peak_rss_after_scrapes_mb"] <= memory.TARGET_MB,
        ),
        _check(
            f"5. RSS over the last {s['tail_seconds']:.0f} s of a {s['seconds']:.0f} s soak",
            f"{s['tail_growth_mb']:+.2f} MB (range {s['tail_range_mb']} MB)",
            "<= +1 MB in all (1 h soak: --soak-seconds 3600)",
            s["tail_growth_mb"] <= memory.TAIL_GROWTH_MB,
        ),
        _check(
            f"5. RSS trend over a {s['seconds']:.0f} s soak after warm-up",
            f"{s['slope_mb_per_minute']:+.3f} MB/min ({s['rss_after_warmup_mb']} -> "
            f"{s['rss_end_mb']} MB)",
            "no growth",
            s["met"],
        ),
    ]


def _bounds(quick: bool, args: argparse.Namespace) -> tuple[dict[str, Any], list[dict]]:
    result = bounds.run(quick=quick)
    print(bounds.render(result))
    b, e = result["big_job"], result["endless"]
    return result, [
        _check(
            f"7. job with {b['scopes']:,} failing scopes: job.domain_failed delivered",
            f"{b['domain_failed_delivered']:,} ({b['distinct_failed_scopes']:,} scopes)",
            f"all {b['scopes']:,}",
            b["domain_failed_delivered"] == b["distinct_failed_scopes"] == b["scopes"],
        ),
        _check(
            f"7. job with {b['scopes']:,} failing scopes: peak RSS",
            f"{b['peak_rss_mb']} MB",
            f"< {bounds.TARGET_RSS_MB:.0f} MB",
            b["peak_rss_mb"] < bounds.TARGET_RSS_MB,
        ),
        _check(
            f"7. job with {b['scopes']:,} failing scopes: state file after",
            f"{b['state_mb']} MB",
            f"< {bounds.TARGET_STATE_MB:.0f} MB",
            b["state_mb"] < bounds.TARGET_STATE_MB,
        ),
        _check(
            f"7. endless list ({e['cycles']} cycles of poll.max_pages 1,000): peak RSS",
            f"{e['peak_rss_mb']} MB",
            f"< {bounds.TARGET_RSS_MB:.0f} MB",
            e["peak_rss_mb"] < bounds.TARGET_RSS_MB,
        ),
        _check(
            "7. endless list: counted invalid_response, one sentence, nothing committed",
            f"{e['invalid_response']:g} invalid_response, {len(e['error_sentences'])} "
            f"sentence(s), {e['jobs_in_state']} jobs in state",
            f">= {e['cycles']}, 1, 0",
            e["met"],
        ),
    ]


RUNNERS: dict[str, Callable[[bool, argparse.Namespace], tuple[dict[str, Any], list[dict]]]] = {
    "differ_store": _differ_store,
    "scrape": _scrape,
    "delivery": _delivery,
    "latency": _latency,
    "poll_cost": _poll_cost,
    "memory": _memory,
    "bounds": _bounds,
}


def _check(what: str, value: str, target: str, met: bool | None) -> dict[str, Any]:
    return {"what": what, "value": value, "target": target, "met": met}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick", action="store_true", help="shorter windows and a 60 s soak: a few minutes in all"
    )
    parser.add_argument(
        "--only", default=",".join(BENCHES), help=f"comma-separated subset of: {', '.join(BENCHES)}"
    )
    parser.add_argument(
        "--soak-seconds",
        type=float,
        default=None,
        help="memory soak length (default 600, or 60 with --quick)",
    )
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in RUNNERS]
    if unknown:
        parser.error(f"unknown bench: {', '.join(unknown)} (have: {', '.join(BENCHES)})")
    machine = procs.machine()
    print(
        f"machine: {machine['nproc']} CPUs, {machine['cpu_model']}, "
        f"{machine['memory_gib']} GiB, Python {machine['python']}; "
        f"{'quick' if args.quick else 'full'} run",
        flush=True,
    )
    checks: list[dict[str, Any]] = []
    seconds: dict[str, float] = {}
    started = time.monotonic()
    try:
        for name in chosen:
            print(f"\n== {name} ==", flush=True)
            t0 = time.monotonic()
            result, found = RUNNERS[name](args.quick, args)
            seconds[name] = round(time.monotonic() - t0, 1)
            save(name, {"quick": args.quick, "machine": machine, **result})
            checks.extend(found)
            print(f"({seconds[name]:.0f} s)", flush=True)
    except KeyboardInterrupt:
        print("\ninterrupted: processes stopped", file=sys.stderr)
        return 130
    print("\n== targets ==")
    print(
        table(
            ["", "measured", "target", "met"],
            [
                [c["what"], c["value"], c["target"], "-" if c["met"] is None else c["met"]]
                for c in checks
            ],
        )
    )
    total = round(time.monotonic() - started, 1)
    path = save(
        "summary",
        {
            "quick": args.quick,
            "machine": machine,
            "seconds": seconds,
            "total_seconds": total,
            "checks": checks,
        },
    )
    print(f"\n{total:.0f} s in all; figures in {path.parent}/")
    return 0 if all(c["met"] is not False for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
