"""Bench 1: poll cost against history, incremental strategy and ``strategy: full``.

For each history H (finished jobs) and running count R, one simulator process serves one
source (aws) with H finished and R running jobs that stay running (scope times of 10^9 s,
no new jobs), so every cycle after the first is the same steady state. Against it, one
daemon process per strategy polls every second (page size 100). After its baseline cycle
and one more, a window of N cycles is measured, starting and ending right after a cycle
(``cckm_polls_total`` increments):

- requests per cycle (list + get) and bytes received, from the simulator's /sim/v1/stats;
- cycle wall time, from ``cckm_poll_duration_seconds`` (sum/count deltas);
- daemon CPU per cycle, from /proc/<pid>/stat utime+stime deltas.

Targets: incremental requests per cycle do not depend on H and are at most
``ceil(R / page_size) + 2``; at H = 100,000 the incremental strategy makes at least
100x fewer requests than ``full``.

With H = 1,000 and R = 1,000 it also times real scrapes of the daemon's /metrics over
HTTP (1,000 running-job series).
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import procs
from bench.report import median, percentile, save, table

HISTORIES = (1_000, 10_000, 100_000)
RUNNINGS = (10, 1_000)
INTERVAL = 1.0


def _snapshot(sim: procs.Sim, d: procs.Daemon, tail: procs.LogTail) -> dict[str, Any]:
    stats = sim.stats()
    return {
        "t": time.monotonic(),
        "cpu": procs.cpu_seconds(d.pid),
        "polls": len(tail.polls),
        "list": stats["requests"]["list"],
        "get": stats["requests"]["get"],
        "auth": stats["requests"]["auth"],
        "bytes": stats["bytes_sent"],
    }


def measure_strategy(
    sim: procs.Sim, strategy: str, cycles: int, workdir: Path, *, scrape: bool = False
) -> dict[str, Any]:
    port = procs.free_port()
    config = procs.write_config(
        workdir / f"{strategy}.yaml",
        sim.url,
        workdir / f"{strategy}.db",
        http_port=port,
        strategy=strategy,
        interval=INTERVAL,
    )
    log = workdir / f"{strategy}.log"
    with procs.daemon(config, log=log) as d:
        tail = procs.LogTail(log)
        # the baseline cycle and one steady cycle, then the window starts right after one
        tail.wait_polls(d, 2, timeout=900)
        start = _snapshot(sim, d, tail)
        tail.wait_polls(d, start["polls"] + cycles, timeout=900 + 60 * cycles)
        end = _snapshot(sim, d, tail)
        window = tail.polls[start["polls"] : end["polls"]]
        n = len(window)
        wall = end["t"] - start["t"]
        result = {
            "strategy": strategy,
            "cycles": n,
            "requests_per_cycle": (end["list"] + end["get"] - start["list"] - start["get"]) / n,
            "list_per_cycle": (end["list"] - start["list"]) / n,
            "get_per_cycle": (end["get"] - start["get"]) / n,
            "auth_requests": end["auth"] - start["auth"],
            "bytes_per_cycle": (end["bytes"] - start["bytes"]) / n,
            "cycle_seconds": sum(float(p.get("seconds", 0)) for p in window) / n,
            "cycle_seconds_max": max(float(p.get("seconds", 0)) for p in window),
            "cpu_seconds_per_cycle": (end["cpu"] - start["cpu"]) / n,
            "cpu_percent": 100 * (end["cpu"] - start["cpu"]) / wall,
            "failed_cycles": sum(p["event"] != "poll.ok" for p in window),
            "baseline_seconds": float(tail.polls[0].get("seconds", 0)),
            "window_seconds": wall,
        }
        if scrape:
            result["http_scrape"] = _scrapes(d)
        return result


def _scrapes(d: procs.Daemon, rounds: int = 20) -> dict[str, Any]:
    times = []
    size = 0
    for _ in range(rounds):
        started = time.perf_counter()
        body = procs.http_text(d.http_url + "/metrics")
        times.append((time.perf_counter() - started) * 1000)
        size = len(body)
        time.sleep(0.05)
    return {
        "rounds": rounds,
        "bytes": size,
        "ms_median": round(median(times), 2),
        "ms_p90": round(percentile(times, 90), 2),
    }


def run(
    *,
    quick: bool = False,
    histories: tuple[int, ...] = HISTORIES,
    runnings: tuple[int, ...] = RUNNINGS,
    cycles: int | None = None,
) -> dict[str, Any]:
    steady_cycles = cycles or (3 if quick else 10)
    full_cycles = cycles or (2 if quick else 5)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-poll-") as tmp:
        for history in histories:
            for running in runnings:
                work = Path(tmp) / f"h{history}-r{running}"
                work.mkdir()
                with procs.simulator(history=history, running=running, log=work / "sim.log") as sim:
                    incremental = measure_strategy(
                        sim,
                        "incremental",
                        steady_cycles,
                        work,
                        scrape=(history == min(histories) and running == 1_000),
                    )
                    full = measure_strategy(sim, "full", full_cycles, work)
                bound = math.ceil(running / procs.PAGE_SIZE) + 2
                rows.append(
                    {
                        "history": history,
                        "running": running,
                        "bound": bound,
                        "incremental": incremental,
                        "full": full,
                        "ratio": full["requests_per_cycle"] / incremental["requests_per_cycle"],
                    }
                )
                print(
                    f"  poll cost H={history:,} R={running:,}: incremental "
                    f"{incremental['requests_per_cycle']:.2f} req/cycle, full "
                    f"{full['requests_per_cycle']:.2f}",
                    flush=True,
                )
    return {"rows": rows, "checks": checks(rows)}


def checks(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for running in sorted({r["running"] for r in rows}):
        mine = [r for r in rows if r["running"] == running]
        per_cycle = [r["incremental"]["requests_per_cycle"] for r in mine]
        out.append(
            {
                "what": f"R={running:,}: incremental requests/cycle independent of H",
                "value": " / ".join(f"{v:.2f}" for v in per_cycle),
                "target": f"equal, <= {mine[0]['bound']}",
                "met": max(per_cycle) - min(per_cycle) < 0.5 and max(per_cycle) <= mine[0]["bound"],
            }
        )
        big = [r for r in mine if r["history"] == 100_000]
        if big:
            out.append(
                {
                    "what": f"R={running:,}, H=100,000: full / incremental requests",
                    "value": f"{big[0]['ratio']:.1f}x",
                    "target": ">= 100x",
                    "met": big[0]["ratio"] >= 100,
                }
            )
    return out


def render(result: dict[str, Any]) -> str:
    lines = []
    for row in result["rows"]:
        for key in ("incremental", "full"):
            s = row[key]
            lines.append(
                [
                    row["history"],
                    row["running"],
                    key,
                    s["requests_per_cycle"],
                    s["bytes_per_cycle"] / 1024,
                    s["cycle_seconds"] * 1000,
                    s["cpu_seconds_per_cycle"] * 1000,
                    s["cycles"],
                ]
            )
    text = table(
        [
            "history",
            "running",
            "strategy",
            "req/cycle",
            "KiB/cycle",
            "cycle ms",
            "cpu ms/cycle",
            "cycles",
        ],
        lines,
    )
    scrape = next(
        (
            r["incremental"].get("http_scrape")
            for r in result["rows"]
            if r["incremental"].get("http_scrape")
        ),
        None,
    )
    if scrape:
        text += (
            f"\nHTTP GET /metrics of the daemon tracking 1,000 running jobs: "
            f"{scrape['ms_median']} ms median, {scrape['ms_p90']} ms p90, "
            f"{scrape['bytes']:,} bytes"
        )
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--history", type=int, nargs="*", default=list(HISTORIES))
    parser.add_argument("--running", type=int, nargs="*", default=list(RUNNINGS))
    parser.add_argument("--cycles", type=int, default=None)
    args = parser.parse_args()
    result = run(
        quick=args.quick,
        histories=tuple(args.history),
        runnings=tuple(args.running),
        cycles=args.cycles,
    )
    print(render(result))
    for check in result["checks"]:
        print(
            f"{'met ' if check['met'] else 'MISS'}  {check['what']}: {check['value']} "
            f"(target {check['target']})"
        )
    print(save("poll_cost", result))


if __name__ == "__main__":
    main()
