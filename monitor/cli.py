"""``cckm-monitor``: argument parsing, then hand over to the part that does the work.

Exit codes: 0 success, 1 runtime failure, 2 bad usage or bad configuration. Errors are
one sentence on stderr; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import anyio

from monitor import __version__
from monitor.exits import EXIT_FAILURE, EXIT_USAGE, UsageError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        print(f"cckm-monitor: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def _add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config", required=True, type=Path, metavar="FILE", help="the YAML configuration file"
    )


def _pair(text: str) -> tuple[float, float]:
    try:
        low, high = (float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MIN,MAX seconds, got {text!r}") from None
    return (low, high)


# the overall_status values the manager's list filter takes (cckm-api.md: the documented
# three, and "aborted" seen in a seed); input is normalised as the manager's words are
LIST_STATUSES = ("in_progress", "completed", "failed", "aborted")
MAX_JOBS_LIMIT = 1000  # the largest page clients are known to ask of a manager


def _status(text: str) -> str:
    word = "_".join(text.strip().lower().replace("-", " ").split())
    if word not in LIST_STATUSES:
        raise argparse.ArgumentTypeError(
            f"unknown status {text[:60]!r}; the known values: {', '.join(LIST_STATUSES)}"
        )
    return word


def _jobs_limit(text: str) -> int:
    raw = text.strip()
    if not (raw.isascii() and raw.isdigit() and 1 <= int(raw) <= MAX_JOBS_LIMIT):
        raise argparse.ArgumentTypeError(
            f"expected a whole number from 1 to {MAX_JOBS_LIMIT}, got {text[:60]!r}"
        )
    return int(raw)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="cckm-monitor",
        description="Watches CipherTrust Manager synchronization and refresh jobs and alerts.",
    )
    parser.add_argument("--version", action="version", version=f"cckm-monitor {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )

    run = sub.add_parser("run", help="the daemon: poll, diff, deliver, serve HTTP")
    _add_config(run)
    run.add_argument(
        "--once", action="store_true", help="one poll cycle of every source, deliver, persist, exit"
    )

    sub.add_parser("demo", help="the built-in simulator and the daemon against it, live")

    sim = sub.add_parser("simulate", help="the CipherTrust Manager simulator alone")
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=8443)
    sim.add_argument("--seed", type=int, default=1)
    sim.add_argument(
        "--history",
        type=int,
        default=25,
        metavar="N",
        help="finished jobs pre-created per source (default 25)",
    )
    sim.add_argument("--latency-ms", type=float, default=0.0, metavar="MS")
    sim.add_argument(
        "--error-rate",
        type=float,
        default=0.0,
        metavar="R",
        help="probability that an API request answers 500",
    )
    sim.add_argument("--token-ttl", type=float, default=300.0, metavar="S")
    sim.add_argument(
        "--job-rate",
        type=float,
        default=6.0,
        metavar="PER_MIN",
        help="jobs started by themselves per minute (default 6)",
    )
    sim.add_argument(
        "--running",
        type=int,
        default=3,
        metavar="N",
        help="jobs already running at start (default 3)",
    )
    sim.add_argument(
        "--scope-seconds",
        type=_pair,
        default=(5.0, 60.0),
        metavar="MIN,MAX",
        help="how long one scope of a job takes, at random in this range (default 5,60)",
    )
    sim.add_argument(
        "--failure-probability",
        type=float,
        default=0.1,
        metavar="P",
        help="probability that one scope fails (default 0.1)",
    )
    sim.add_argument(
        "--cancel-probability",
        type=float,
        default=0.0,
        metavar="P",
        help="probability that the simulator cancels a job it started itself (default 0)",
    )
    sim.add_argument(
        "--schedules",
        type=int,
        default=0,
        metavar="N",
        help="sync schedules (scheduler job configurations) pre-created, with their "
        "recent runs (default 0)",
    )
    sim.add_argument(
        "--tls", action="store_true", help="serve HTTPS with a generated self-signed certificate"
    )
    sim.add_argument(
        "--cert-dir",
        type=Path,
        default=None,
        help="where --tls writes cert.pem (default: a temporary directory)",
    )
    sim.add_argument(
        "--allow-remote", action="store_true", help="allow binding a non-loopback address"
    )

    check = sub.add_parser("check-config", help="validate a configuration file")
    _add_config(check)

    jobs = sub.add_parser("jobs", help="a table of jobs as the manager reports them now")
    _add_config(jobs)
    jobs.add_argument(
        "--source", action="append", metavar="S", help="only this source (repeatable)"
    )
    jobs.add_argument(
        "--status",
        type=_status,
        metavar="ST",
        help=f"only jobs with this overall_status ({', '.join(LIST_STATUSES)})",
    )
    jobs.add_argument("--manager", metavar="NAME", help="only this manager")
    jobs.add_argument(
        "--limit",
        type=_jobs_limit,
        default=20,
        metavar="N",
        help=f"newest N jobs per source, 1 to {MAX_JOBS_LIMIT} (default 20)",
    )

    cancel = sub.add_parser("cancel", help="cancel a running job")
    _add_config(cancel)
    cancel.add_argument("--source", required=True, metavar="S")
    cancel.add_argument(
        "--manager", metavar="NAME", help="which manager (needed when several are configured)"
    )
    cancel.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    cancel.add_argument("job_id", metavar="JOB_ID")

    test = sub.add_parser(
        "test-notification", help="send a synthetic, clearly labelled event to sinks"
    )
    _add_config(test)
    test.add_argument("--sink", metavar="NAME", help="only this sink")

    deliveries = sub.add_parser(
        "deliveries", help="what waits for each sink; --failed lists the dead letters"
    )
    _add_config(deliveries)
    deliveries.add_argument(
        "--failed", action="store_true", help="list the deliveries that were given up on"
    )
    deliveries.add_argument("--sink", metavar="NAME", help="only this sink")

    replay = sub.add_parser(
        "replay", help="queue a sink's failed deliveries again (the daemon may be running)"
    )
    _add_config(replay)
    replay.add_argument("--sink", required=True, metavar="NAME", help="the sink to replay")
    return parser


def _commands() -> dict[str, Callable[[argparse.Namespace], int]]:
    from monitor import commands  # noqa: PLC0415 - keep `--help` fast

    return {
        "run": commands.cmd_run,
        "demo": commands.cmd_demo,
        "simulate": commands.cmd_simulate,
        "check-config": commands.cmd_check_config,
        "jobs": commands.cmd_jobs,
        "cancel": commands.cmd_cancel,
        "test-notification": commands.cmd_test_notification,
        "deliveries": commands.cmd_deliveries,
        "replay": commands.cmd_replay,
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _commands()[args.command](args)
    except BaseExceptionGroup as group:  # task groups: report what ended them, once
        return _fail_group(args, group)
    except KeyboardInterrupt:
        return EXIT_FAILURE
    except UsageError as exc:
        _fail(args, exc)
        return EXIT_USAGE
    except Exception as exc:
        _fail(args, exc)
        return EXIT_FAILURE


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        out.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return out


def _fail_group(args: Any, group: BaseExceptionGroup[BaseException]) -> int:
    """One sentence for the first real error in the group, never "unhandled errors in a
    TaskGroup"; a group of interrupts alone is a quiet exit 1."""
    leaves = _leaves(group)
    errors = [e for e in leaves if not isinstance(e, KeyboardInterrupt | SystemExit)]
    if not errors:
        return EXIT_FAILURE
    if getattr(args, "debug", False):
        traceback.print_exception(group)
    first = errors[0]
    print(f"cckm-monitor: {str(first) or type(first).__name__}", file=sys.stderr)
    return EXIT_USAGE if isinstance(first, UsageError) else EXIT_FAILURE


def _fail(args: Any, exc: BaseException) -> None:
    if getattr(args, "debug", False):
        traceback.print_exception(exc)
    message = str(exc) or type(exc).__name__
    print(f"cckm-monitor: {message}", file=sys.stderr)


def run_async(func: Callable[[], Any]) -> Any:
    return anyio.run(func)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
