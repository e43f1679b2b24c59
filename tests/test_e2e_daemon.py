"""End to end, in processes: ``cckm-monitor simulate`` + ``cckm-monitor run``.

The simulator's ground-truth log (``/sim/v1/transitions``) says what happened; the
daemon's JSON log lines (the log sink) say what was announced. They must agree, across a
graceful restart and across ``kill -9``.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import time
from collections import defaultdict
from pathlib import Path

import pytest

from tests.ground_truth import (
    SIM_OPTIONS,
    all_finished,
    announced_terminal,
    burst,
    created_since,
    expected_events,
)
from tests.processes import (
    command,
    free_port,
    http,
    job_events,
    log_lines,
    simulator,
    start_daemon,
    wait_ready,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.e2e


def test_run_matches_ground_truth_and_a_restart_emits_exactly_the_missed(
    tmp_path: Path,
) -> None:
    port = free_port()
    log = tmp_path / "daemon.log"
    with simulator(*SIM_OPTIONS) as sim:
        config = write_config(
            tmp_path / "monitor.yaml", sim.url, tmp_path / "state.db", http_port=port
        )
        daemon = start_daemon(config, log, port)
        wait_ready(daemon)
        mark = len(sim.transitions())
        burst(sim, 3.0)
        first = created_since(sim.transitions(), mark)
        wait_until(lambda: all_finished(sim, first), 30, "jobs to finish")
        wait_until(lambda: announced_terminal(log, first), 30, "the daemon to announce them")
        status, events = http("GET", daemon.http_url + "/api/v1/events?limit=5")
        assert status == 200
        assert len(events["events"]) == 5
        assert daemon.stop() == 0

        # while the daemon is down, jobs start and end
        mark2 = len(sim.transitions())
        burst(sim, 2.0)
        missed = created_since(sim.transitions(), mark2)
        wait_until(lambda: all_finished(sim, missed), 30, "jobs to finish")
        daemon = start_daemon(config, log, port)
        wait_until(lambda: announced_terminal(log, first | missed), 30, "the missed events")
        time.sleep(1.0)  # a few more cycles: nothing else may appear
        assert daemon.stop() == 0
        truth = sim.transitions()

    assert len(first) >= 3
    assert len(missed) >= 2
    lines = job_events(log)
    per_job: dict[str, list[str]] = defaultdict(list)
    for line in lines:
        per_job[line.get("job_id", "")].append(line["event"])
    for job, kinds in expected_events(truth, first | missed).items():
        assert per_job[job] == kinds, (job, per_job[job], kinds)
    ids = [line["event_id"] for line in lines]
    assert len(ids) == len(set(ids)), "an event was delivered twice"
    every = log_lines(log)
    assert sum(1 for line in every if line["event"] == "daemon.stopped") == 2
    assert all("admin" not in str(line.get("password", "")) for line in every)


def test_kill_9_during_a_busy_run_loses_nothing(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "daemon.log"
    rng = random.Random(7)
    with simulator(*SIM_OPTIONS) as sim:
        config = write_config(
            tmp_path / "monitor.yaml", sim.url, tmp_path / "state.db", http_port=port, interval=0.3
        )
        daemon = start_daemon(config, log, port)
        wait_ready(daemon)
        mark = len(sim.transitions())
        sim.control("PATCH", "/sim/v1/config", {"job_rate": 150})
        for _ in range(4):
            time.sleep(rng.uniform(0.4, 1.2))
            assert daemon.stop(signal.SIGKILL) == -signal.SIGKILL
            daemon = start_daemon(config, log, port)
        sim.control("PATCH", "/sim/v1/config", {"job_rate": 0})
        jobs = created_since(sim.transitions(), mark)
        wait_until(lambda: all_finished(sim, jobs), 30, "jobs to finish")
        wait_until(lambda: announced_terminal(log, jobs), 40, "the daemon to catch up")
        assert daemon.stop() == 0
        truth = sim.transitions()

    assert len(jobs) >= 5
    lines = job_events(log)
    seen: dict[str, set[str]] = defaultdict(set)
    identity: dict[str, tuple[str, str, str | None]] = {}
    for line in lines:
        seen[line.get("job_id", "")].add(line["event"])
        key = (line.get("job_id", ""), line["event"], line.get("scope"))
        # an id always names the same transition, however often it is re-delivered
        assert identity.setdefault(line["event_id"], key) == key
    for job, kinds in expected_events(truth, jobs).items():
        assert set(kinds) <= seen[job], (job, seen[job], kinds)


def test_second_signal_forces_the_exit_and_the_queue_survives(tmp_path: Path) -> None:
    """SIGTERM drains sinks for up to 10 s; a second SIGTERM exits at once; what was not
    delivered is still queued for the next start."""
    port = free_port()
    log = tmp_path / "daemon.log"
    silent = socket.socket()  # accepts connections, never answers: a hung receiver
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    hung = f"http://127.0.0.1:{silent.getsockname()[1]}/hook"
    try:
        with simulator(*SIM_OPTIONS) as sim:
            config = write_config(
                tmp_path / "monitor.yaml",
                sim.url,
                tmp_path / "state.db",
                http_port=port,
                extra={
                    "sinks": [
                        {"type": "log"},
                        {"type": "webhook", "name": "hook", "url": hung, "timeout_seconds": 60},
                    ]
                },
            )
            daemon = start_daemon(config, log, port)
            wait_ready(daemon)
            job = sim.control(
                "POST",
                "/sim/v1/jobs",
                {
                    "source": "aws",
                    "hang": True,
                    "scopes": [{"key": "123456789012/us-east-1", "after_seconds": None}],
                },
            )
            wait_until(
                lambda: any(e.get("job_id") == job["id"] for e in job_events(log)),
                20,
                "the event in the log sink",
            )
            daemon.process.send_signal(signal.SIGTERM)
            time.sleep(1.5)
            assert daemon.process.poll() is None  # still draining the hung webhook
            started = time.monotonic()
            daemon.process.send_signal(signal.SIGTERM)
            daemon.process.wait(10)
            assert time.monotonic() - started < 5
            lines = log_lines(log)
            assert any(line.get("action") == "forced exit" for line in lines)
    finally:
        silent.close()
    out = subprocess.run(
        command("deliveries", "--config", str(config)),
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "CM_PASSWORD": "admin"},
    ).stdout
    hook_line = next(line for line in out.splitlines() if line.startswith("hook"))
    assert hook_line.split()[1] != "0", out  # the undelivered event waits for next start
