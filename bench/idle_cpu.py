"""Bench: daemon CPU per idle source-poll, 50 managers x 14 sources at ``interval_seconds: 30``.

One simulator process serves all 14 sources, each with ``--history`` finished jobs and a
few running jobs that never end, no new jobs: every cycle after the first finds nothing
new (the idle steady state of a large deployment). The daemon watches 50 "managers"
that all point at that one simulator under different names (700 source-polls per 30 s,
default jitter, default page size 100, log level info, the log sink).

After every source has polled twice (the baseline cycle and one steady cycle), a window of
``--seconds`` (120 with ``--quick``, 300 by default) is measured: source-polls from
``cckm_polls_total`` (one scrape at each end of the window), daemon CPU from
``/proc/<pid>/stat`` utime+stime deltas (10 ms ticks; the one scrape at the end is
included). Figures: CPU ms per source-poll and % of one core.

``--code DIR`` runs the daemon from another checkout of the project (e.g. the previous
commit: ``git worktree add /tmp/p2-old HEAD``), so today's code can be measured side by side.

Targets (issue 11): <= 3 ms per idle source-poll and <= 6 % of one core.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from bench import procs
from bench.report import save, table
from monitor.families import FAMILIES

MANAGERS = 50
INTERVAL = 30.0
TARGET_MS = 3.0
TARGET_PERCENT = 6.0


def write_config(path: Path, sim_url: str, state: Path, *, managers: int, port: int) -> Path:
    config = {
        "managers": [
            {
                "name": f"cm{n:02d}",
                "url": sim_url,
                "username": "admin",
                "password": "admin",
                "sources": list(FAMILIES),
            }
            for n in range(managers)
        ],
        "poll": {"interval_seconds": INTERVAL, "page_size": procs.PAGE_SIZE},
        "stuck_after_seconds": 10**8,
        "state_path": str(state),
        "http": {"listen": f"127.0.0.1:{port}"},
        "sinks": [{"type": "log"}],
        "log": {"format": "json", "level": "info"},
    }
    path.write_text(yaml.safe_dump(config))
    return path


@contextlib.contextmanager
def daemon(config: Path, *, code: Path | None, log: Path) -> Iterator[procs.Daemon]:
    """The daemon, from this checkout or from ``code`` (``-P``: the cwd is not on the path)."""
    cfg = yaml.safe_load(config.read_text())
    url = "http://" + cfg["http"]["listen"]
    env = {} if code is None else {"PYTHONPATH": str(code)}
    args = [sys.executable, "-P", "-m", "monitor", "run", "--config", str(config)]
    process = procs.spawn(args, log=log, env=env)
    d = procs.Daemon(process, url, log)
    try:

        def up() -> bool:
            d.check_alive()
            procs.http_text(url + "/healthz")
            return True

        procs.wait_until(up, 120, "the daemon", every=0.2)
        yield d
    finally:
        procs.stop(process)


def _polls(d: procs.Daemon) -> tuple[float, float]:
    values = d.metrics()
    done = procs.metric(values, "cckm_polls_total")
    failed = procs.metric(values, "cckm_poll_errors_total")
    return done, failed


def run(
    *,
    quick: bool = False,
    seconds: float | None = None,
    managers: int = MANAGERS,
    history: int = 1_000,
    code: Path | None = None,
) -> dict[str, Any]:
    window = seconds or (120.0 if quick else 300.0)
    sources = list(FAMILIES)
    per_cycle = managers * len(sources)
    with tempfile.TemporaryDirectory(prefix="bench-idle-") as tmp:
        work = Path(tmp)
        with procs.simulator(
            sources=sources, history=history, running=len(sources), log=work / "sim.log"
        ) as sim:
            config = write_config(
                work / "monitor.yaml",
                sim.url,
                work / "state.db",
                managers=managers,
                port=procs.free_port(),
            )
            with daemon(config, code=code, log=work / "daemon.log") as d:
                # every source: the baseline cycle and one steady cycle
                procs.wait_until(
                    lambda: (d.check_alive(), _polls(d)[0] >= 2 * per_cycle)[1],
                    timeout=6 * INTERVAL,
                    what=f"{2 * per_cycle} source-polls",
                    every=2.0,
                )
                polls0, failed0 = _polls(d)
                cpu0, t0 = procs.cpu_seconds(d.pid), time.monotonic()
                time.sleep(window)
                d.check_alive()
                polls1, failed1 = _polls(d)
                cpu1, t1 = procs.cpu_seconds(d.pid), time.monotonic()
                rss = procs.memory_kib(d.pid)
            requests = sim.stats()["requests"]
    polls = polls1 - polls0
    cpu = cpu1 - cpu0
    result = {
        "code": str(code) if code else "this checkout",
        "managers": managers,
        "sources": len(sources),
        "history_per_source": history,
        "interval_seconds": INTERVAL,
        "window_seconds": round(t1 - t0, 1),
        "source_polls": int(polls),
        "failed_polls": int(failed1 - failed0),
        "cpu_seconds": round(cpu, 2),
        "cpu_ms_per_poll": round(1000 * cpu / max(polls, 1), 2),
        "cpu_percent": round(100 * cpu / (t1 - t0), 2),
        "rss_mib": round(rss.get("VmRSS", 0) / 1024, 1),
        "simulator_requests": requests,
        "target_ms": TARGET_MS,
        "target_percent": TARGET_PERCENT,
    }
    result["met"] = (
        result["cpu_ms_per_poll"] <= TARGET_MS
        and result["cpu_percent"] <= TARGET_PERCENT
        and result["failed_polls"] == 0
    )
    return result


def render(result: dict[str, Any]) -> str:
    return table(
        ["code", "managers x sources", "window s", "polls", "failed", "cpu ms/poll", "% core"],
        [
            [
                result["code"],
                f"{result['managers']} x {result['sources']}",
                result["window_seconds"],
                result["source_polls"],
                result["failed_polls"],
                result["cpu_ms_per_poll"],
                result["cpu_percent"],
            ]
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a 120 s window (default 300 s)")
    parser.add_argument("--seconds", type=float, default=None, help="the window's length")
    parser.add_argument("--managers", type=int, default=MANAGERS)
    parser.add_argument("--history", type=int, default=1_000, help="finished jobs per source")
    parser.add_argument(
        "--code", type=Path, default=None, help="run the daemon from this checkout instead"
    )
    args = parser.parse_args()
    result = run(
        quick=args.quick,
        seconds=args.seconds,
        managers=args.managers,
        history=args.history,
        code=args.code,
    )
    print(render(result))
    print(
        f"{'met ' if result['met'] else 'MISS'}  {result['cpu_ms_per_poll']} ms per idle "
        f"source-poll, {result['cpu_percent']} % of a core "
        f"(targets <= {TARGET_MS:g} ms, <= {TARGET_PERCENT:g} %)"
    )
    print(save("idle_cpu" if args.code is None else "idle_cpu_other", result))


if __name__ == "__main__":
    main()
