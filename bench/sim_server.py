"""The simulator as a process for the benches: ``simulate`` plus the knobs it lacks.

``python -m bench.sim_server --port P --sources aws --history 100000 --running 1000
--scope-seconds 1e9 1e9`` serves ``monitor.simulator.serve`` with a ``SimConfig`` built
from the options (the ``simulate`` command has no ``--sources`` and fixes some fields).
Loopback only. Stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

from monitor.simulator import SimConfig, serve


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--sources", default="aws", help="comma-separated source names")
    parser.add_argument("--history", type=int, default=0, help="finished jobs per source")
    parser.add_argument("--running", type=int, default=0, help="running jobs at start (total)")
    parser.add_argument("--job-rate", type=float, default=0.0, help="new jobs per minute")
    parser.add_argument(
        "--scope-seconds", type=float, nargs=2, default=(5.0, 60.0), metavar=("MIN", "MAX")
    )
    parser.add_argument("--failure-probability", type=float, default=0.1)
    parser.add_argument("--cancel-probability", type=float, default=0.0)
    parser.add_argument("--token-ttl", type=float, default=300.0)
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args(argv)


async def _main(args: argparse.Namespace) -> None:
    config = SimConfig(
        seed=args.seed,
        history=args.history,
        running=args.running,
        job_rate=args.job_rate,
        scope_seconds=tuple(args.scope_seconds),  # type: ignore[arg-type]
        failure_probability=args.failure_probability,
        cancel_probability=args.cancel_probability,
        token_ttl=args.token_ttl,
        sources=tuple(s.strip() for s in args.sources.split(",") if s.strip()),
        max_limit=1000,
    )
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)

    def announce(line: str) -> None:
        print(line, flush=True)

    with contextlib.suppress(asyncio.CancelledError):
        await serve(
            config, host="127.0.0.1", port=args.port, tls=False, cert_dir=None, announce=announce
        )


def main(argv: list[str] | None = None) -> int:
    asyncio.run(_main(parse(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
