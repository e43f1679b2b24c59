"""The work behind each ``cckm-monitor`` command (argument parsing lives in cli.py)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

import anyio

from monitor.app import client_options, register_secrets, run_daemon
from monitor.cm.client import ManagerClient
from monitor.cm.paths import job_id_problem, shown
from monitor.config import ConfigError, ManagerSettings, Settings, SinkSettings, load_config
from monitor.exits import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, UsageError
from monitor.families import FAMILIES
from monitor.logs import configure_logging
from monitor.model import (
    Event,
    EventType,
    JobSnapshot,
    event_id,
    format_optional,
    format_timestamp,
    is_scope_failure,
)
from monitor.sinks.base import DeliveryError
from monitor.sinks.registry import UnsupportedSink, build_sink
from monitor.store import Store


def _load(args: argparse.Namespace) -> Settings:
    """The configuration, its secrets registered for redaction before anything logs."""
    try:
        settings = load_config(args.config)
    except ConfigError as exc:
        raise UsageError(f"{args.config} is not a valid configuration:\n{exc}") from None
    register_secrets(settings)
    return settings


def cmd_check_config(args: argparse.Namespace) -> int:
    try:
        settings = load_config(args.config)
    except ConfigError as exc:
        print(f"{args.config}: {len(exc.problems)} problem(s):", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_USAGE
    sources = sum(len(m.sources) for m in settings.managers)
    print(
        f"{args.config}: OK — {len(settings.managers)} manager(s), {sources} source(s), "
        f"{len(settings.sinks)} sink(s)"
    )
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    settings = _load(args)
    console = configure_logging(settings.log.level, settings.log.format)
    try:
        anyio.run(lambda: run_daemon(settings, once=args.once, console=console))
    except UnsupportedSink as exc:
        raise UsageError(str(exc)) from None
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from monitor.demo import run_demo  # noqa: PLC0415 - the demo pulls in the simulator

    anyio.run(run_demo)
    return EXIT_OK


def cmd_simulate(args: argparse.Namespace) -> int:
    from monitor.simulator import SimConfig, serve  # noqa: PLC0415

    def announce(line: str) -> None:
        print(line, flush=True)

    try:  # a bad option value or a non-loopback bind without --allow-remote
        config = SimConfig(
            seed=args.seed,
            history=args.history,
            latency_ms=args.latency_ms,
            error_rate=args.error_rate,
            token_ttl=args.token_ttl,
            job_rate=args.job_rate,
            running=args.running,
            scope_seconds=args.scope_seconds,
            failure_probability=args.failure_probability,
            cancel_probability=args.cancel_probability,
            schedules=args.schedules,
        )
        anyio.run(
            lambda: serve(
                config,
                host=args.host,
                port=args.port,
                tls=args.tls,
                cert_dir=args.cert_dir,
                announce=announce,
                allow_remote=args.allow_remote,
            )
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return EXIT_OK


def _pick_manager(settings: Settings, name: str | None) -> list[ManagerSettings]:
    if name is None:
        return list(settings.managers)
    chosen = [m for m in settings.managers if m.name == name]
    if not chosen:
        names = ", ".join(m.name for m in settings.managers)
        raise UsageError(f"no manager named {name!r} in the configuration (have: {names})")
    return chosen


def _check_source(name: str, manager: ManagerSettings) -> None:
    if name not in FAMILIES:
        raise UsageError(f"unknown source {name!r}; valid sources: {', '.join(FAMILIES)}")
    if name not in manager.sources:
        raise UsageError(f"source {name!r} is not enabled for manager {manager.name!r}")


def _row(manager: str, source: str, job: JobSnapshot) -> list[str]:
    failed = sum(1 for _, v in job.detailed_status if is_scope_failure(v))
    return [
        manager,
        source,
        job.job_id,
        job.status,
        "yes" if job.abort else "",
        format_optional(job.created_at) or "",
        format_optional(job.completed_at) or "",
        f"{len(job.detailed_status) - failed}/{len(job.detailed_status)}"
        + (f" ({failed} failed)" if failed else ""),
    ]


def format_table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=False)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def cmd_jobs(args: argparse.Namespace) -> int:
    settings = _load(args)
    managers = _pick_manager(settings, args.manager)
    wanted = args.source
    for m in managers:
        for s in wanted or []:
            _check_source(s, m)

    async def collect() -> list[list[str]]:
        rows: list[list[str]] = []
        for m in managers:
            async with ManagerClient(client_options(m, settings)) as client:
                for source in wanted or list(m.sources):
                    filters = {"sort": "-createdAt"}
                    if args.status:
                        filters["overall_status"] = args.status
                    page = await client.list_page(
                        FAMILIES[source], skip=0, limit=args.limit, filters=filters
                    )
                    rows += [_row(m.name, source, job) for job in page.jobs]
        return rows

    rows = anyio.run(collect)
    header = ["MANAGER", "SOURCE", "JOB ID", "STATUS", "ABORT", "CREATED", "COMPLETED", "SCOPES OK"]
    print(format_table(rows, header) if rows else "no jobs")
    return EXIT_OK


def cmd_cancel(args: argparse.Namespace) -> int:
    # before anything else: an id that could climb out of its family's path never leaves
    problem = job_id_problem(args.job_id, strict=True)
    if problem is not None:
        raise UsageError(f"refusing to cancel job {shown(args.job_id)}: {problem}")
    settings = _load(args)
    managers = _pick_manager(settings, args.manager)
    if len(managers) > 1:
        raise UsageError("several managers are configured: say which with --manager")
    manager = managers[0]
    _check_source(args.source, manager)
    if not args.yes:
        if not sys.stdin.isatty():
            raise UsageError("refusing to cancel without confirmation: pass --yes")
        answer = input(f"Cancel {args.source} job {args.job_id} on {manager.name}? [y/N] ")
        if answer.strip().lower() not in {"y", "yes"}:
            print("not cancelled")
            return EXIT_FAILURE

    async def cancel() -> JobSnapshot:
        async with ManagerClient(client_options(manager, settings)) as client:
            return await client.cancel_job(FAMILIES[args.source], args.job_id)

    job = anyio.run(cancel)
    print(
        f"cancel requested: {args.source} job {job.job_id} is {job.status}, "
        f"abort={str(job.abort).lower()}"
    )
    return EXIT_OK


def synthetic_event(now: datetime | None = None) -> Event:
    """A synthetic event, labelled as a test everywhere a person looks."""
    moment = now or datetime.now(UTC)
    stamp = moment.strftime("%Y%m%dT%H%M%S%f")
    return Event(
        id=event_id("test-notification", stamp),
        type=EventType.JOB_FAILED,
        timestamp=moment,
        manager="cckm-monitor-test",
        source="test",
        job_id="test-notification",
        data={
            "manager": "cckm-monitor-test",
            "source": "test",
            "cloud": None,
            "job_id": "test-notification",
            "status": "failed",
            "previous_status": "in_progress",
            "abort": False,
            "created_at": None,
            "updated_at": None,
            "completed_at": None,
            "duration_seconds": None,
            "scopes": [],
            "detailed_status": {},
            "scope": None,
            "scope_status": None,
            "test": True,
            "summary": "TEST NOTIFICATION from cckm-monitor: not a real job failure",
        },
    )


def _chosen_sinks(settings: Settings, name: str | None) -> list[SinkSettings]:
    chosen: list[SinkSettings] = [s for s in settings.sinks if name is None or s.name == name]
    if not chosen:
        have = ", ".join(s.name for s in settings.sinks) or "none"
        raise UsageError(f"no sink named {name!r} in the configuration (have: {have})")
    return chosen


def cmd_test_notification(args: argparse.Namespace) -> int:
    settings = _load(args)
    console = configure_logging(settings.log.level, settings.log.format)
    chosen = _chosen_sinks(settings, args.sink)
    event = synthetic_event()

    async def send_all() -> int:
        failures = 0
        for sink_settings in chosen:
            where = f"{sink_settings.name} ({sink_settings.type}, {sink_settings.display_url})"
            try:
                sink = build_sink(sink_settings, console=console)
            except UnsupportedSink as exc:
                failures += 1
                print(f"{where}: {exc}", file=sys.stderr)
                continue
            try:
                await sink.send([event])
            except DeliveryError as exc:
                failures += 1
                kind = "retryable" if exc.retryable else "permanent"
                print(f"{where}: failed ({exc.reason}, {kind}): {exc.message}", file=sys.stderr)
            else:
                print(f"{where}: sent test event {event.id}", file=sys.stderr)
            finally:
                await sink.close()
        return failures

    return EXIT_FAILURE if anyio.run(send_all) else EXIT_OK


def _open_state(settings: Settings) -> Store | None:
    """The state file if it exists: these commands never create one."""
    if not settings.state_path.exists():
        return None
    return Store.open(settings.state_path)


def _when(at: float) -> str:
    return format_timestamp(datetime.fromtimestamp(at, UTC))


def cmd_deliveries(args: argparse.Namespace) -> int:
    """Per sink, what waits; with --failed, every dead letter as a table."""
    settings = _load(args)
    names = [s.name for s in _chosen_sinks(settings, args.sink)]
    store = _open_state(settings)
    if store is None:
        print(f"no state file at {settings.state_path} yet: nothing was delivered or failed")
        return EXIT_OK
    try:
        if args.failed:
            letters = [d for name in names for d in store.dead_letters(name)]
            rows = [
                [
                    d.sink,
                    str(d.seq),
                    d.event.type.value,
                    d.event.manager,
                    d.event.source,
                    d.event.job_id or "",
                    str(d.attempts),
                    _when(d.at),
                    d.reason,
                ]
                for d in sorted(letters, key=lambda d: (d.sink, d.seq))
            ]
            header = ["SINK", "SEQ", "EVENT", "MANAGER", "SOURCE", "JOB ID", "ATTEMPTS"]
            header += ["FAILED AT", "REASON"]
            print(format_table(rows, header) if rows else "no failed deliveries")
            return EXIT_OK
        rows = [
            [name, str(store.queue_depth(name)), str(len(store.dead_letters(name)))]
            for name in names
        ]
        print(format_table(rows, ["SINK", "QUEUED", "FAILED"]))
    finally:
        store.close()
    return EXIT_OK


def cmd_replay(args: argparse.Namespace) -> int:
    """Put one sink's dead letters back into its queue, ahead of newer events."""
    settings = _load(args)
    (sink,) = _chosen_sinks(settings, args.sink)
    store = _open_state(settings)
    if store is None:
        print(f"no state file at {settings.state_path} yet: nothing to replay")
        return EXIT_OK
    try:
        moved = store.replay(sink.name)
    finally:
        store.close()
    print(
        f"{sink.name}: {moved} failed deliver{'y' if moved == 1 else 'ies'} queued again; "
        "a running daemon sends them within seconds, otherwise the next start does"
    )
    return EXIT_OK
