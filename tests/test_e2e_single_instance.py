"""Issue 10, items 5 and 6 with real processes: ``cckm-monitor run`` against the simulator.

One daemon per state file; a state file deleted, replaced, full or corrupted under the
running daemon ends it with one sentence and exit 1 (never a TaskGroup traceback), and
what was committed before stays in the file; a command holding the write lock does not
stall ``/healthz`` nor lose a poll.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.processes import (
    ROOT,
    Daemon,
    Simulator,
    command,
    free_port,
    http,
    simulator,
    start_daemon,
    wait_ready,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.e2e

ENV = {**os.environ, "CM_PASSWORD": "admin"}
# jobs start and end quickly: every cycle has something to commit
SIM = ("--job-rate", "120", "--scope-seconds", "0.2,1", "--history", "5")
INTERVAL = 0.5

# `cckm-monitor` itself, with SQLite's page limit lowered once a trigger file exists: the
# same SQLITE_FULL as a full disk, without needing a filesystem to fill
FULL_DISK_HOOK = """
import os, sys
from pathlib import Path
from monitor import store
from monitor.cli import main
trigger = Path(os.environ["CCKM_TEST_FULL_TRIGGER"])
original = store.Store.commit_poll
def commit_poll(self, *args, **kwargs):
    if trigger.exists():
        pages = self._conn.execute("PRAGMA page_count").fetchone()[0]
        self._conn.execute(f"PRAGMA max_page_count = {pages}")
    return original(self, *args, **kwargs)
store.Store.commit_poll = commit_poll
sys.exit(main(sys.argv[1:]))
"""


@dataclass
class Setup:
    sim: Simulator
    config: Path
    state: Path
    log: Path
    port: int


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    port = free_port()
    state = tmp_path / "state.db"
    with simulator(*SIM) as sim:
        config = write_config(
            tmp_path / "monitor.yaml",
            sim.url,
            state,
            http_port=port,
            sources=["aws"],
            interval=INTERVAL,
        )
        yield Setup(sim, config, state, tmp_path / "daemon.log", port)


@pytest.fixture
def daemon(setup: Setup) -> Iterator[Daemon]:
    d = start_daemon(setup.config, setup.log, setup.port)
    try:
        wait_ready(d)
        yield d
    finally:
        d.stop()


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(*args), check=False, capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=30
    )


def event_count(state: Path) -> int:
    conn = sqlite3.connect(f"file:{state}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])
    finally:
        conn.close()


def wait_for_events(state: Path, at_least: int = 1) -> int:
    return int(wait_until(lambda: (n := event_count(state)) >= at_least and n, 20, "events"))


def exits_with_one_sentence(daemon: Daemon, log: Path, timeout: float = 10.0) -> str:
    """The daemon ends by itself with exit 1; returns the one error sentence it wrote."""
    assert daemon.process.wait(timeout) == 1
    text = log.read_text()
    assert "TaskGroup" not in text
    assert "Traceback" not in text
    plain = [line for line in text.splitlines() if line.strip() and not line.startswith("{")]
    assert len(plain) == 1, plain
    (sentence,) = plain
    assert sentence.startswith("cckm-monitor: ")
    return sentence


# --- 5. one daemon per state file ----------------------------------------------------------


def test_a_second_run_refuses_and_names_the_holder(setup: Setup, daemon: Daemon) -> None:
    for extra in ([], ["--once"]):
        second = run_cli("run", "--config", str(setup.config), *extra)
        assert second.returncode == 1
        assert second.stderr == (
            f"cckm-monitor: state file {setup.state} is in use by another cckm-monitor "
            f"(PID {daemon.process.pid}, lock {setup.state}.lock); stop that one first, "
            "or give this one another state_path\n"
        )
    # read-only and queueing commands work beside it
    assert run_cli("deliveries", "--config", str(setup.config)).returncode == 0
    replay = run_cli("replay", "--config", str(setup.config), "--sink", "log")
    assert replay.returncode == 0, replay.stderr
    assert daemon.process.poll() is None
    assert http("GET", daemon.http_url + "/healthz")[0] == 200


def test_the_lock_of_a_killed_daemon_does_not_block_the_next(setup: Setup) -> None:
    first = start_daemon(setup.config, setup.log, setup.port)
    try:
        wait_ready(first)
        first.process.kill()  # no clean-up at all: the kernel drops the flock
        first.process.wait(10)
        assert (setup.state.parent / "state.db.lock").read_text() == f"{first.process.pid}\n"
        second = start_daemon(setup.config, setup.log, setup.port)
        try:
            wait_ready(second)
        finally:
            assert second.stop() == 0
    finally:
        first.stop()


# --- 5. the state file under the running daemon -------------------------------------------


def test_a_deleted_state_file_ends_the_daemon_within_a_cycle(setup: Setup, daemon: Daemon) -> None:
    wait_for_events(setup.state)
    setup.state.unlink()
    started = time.monotonic()
    sentence = exits_with_one_sentence(daemon, setup.log)
    assert time.monotonic() - started < 3 * INTERVAL + 2  # a cycle, and the exit
    assert sentence == (
        f"cckm-monitor: state file {setup.state} was deleted while in use; "
        "restart cckm-monitor to open the file now at that path"
    )


def test_a_replaced_state_file_ends_the_daemon_and_both_files_stay_whole(
    setup: Setup, daemon: Daemon
) -> None:
    wait_for_events(setup.state)
    old = setup.state.with_name("old.db")
    os.link(setup.state, old)  # `mv state.db old.db; mv new.db state.db`
    new = setup.state.with_name("new.db")
    sqlite3.connect(new).close()
    os.replace(new, setup.state)
    sentence = exits_with_one_sentence(daemon, setup.log)
    assert "was replaced by another file while in use" in sentence
    assert event_count(old) >= 1  # everything committed is in the file it was written to
    conn = sqlite3.connect(setup.state)
    try:  # and nothing of it leaked into the new file through a leftover -wal
        assert conn.execute("SELECT name FROM sqlite_master").fetchall() == []
    finally:
        conn.close()


def test_a_full_disk_is_one_sentence_and_keeps_what_was_committed(
    setup: Setup, tmp_path: Path
) -> None:
    trigger = tmp_path / "full"
    out = setup.log.open("ab")
    process = subprocess.Popen(
        [command()[0], "-c", FULL_DISK_HOOK, "run", "--config", str(setup.config)],
        stdout=out,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        env={**ENV, "CCKM_TEST_FULL_TRIGGER": str(trigger)},
    )
    out.close()
    daemon = Daemon(process, setup.log, f"http://127.0.0.1:{setup.port}")
    try:
        wait_ready(daemon)
        before = wait_for_events(setup.state)
        trigger.touch()
        sentence = exits_with_one_sentence(daemon, setup.log, timeout=30)
    finally:
        daemon.stop()
    assert sentence == f"cckm-monitor: cannot write state file {setup.state}: disk full"
    assert event_count(setup.state) >= before


def test_a_file_corrupted_mid_run_is_one_sentence_and_keeps_the_events(
    setup: Setup, daemon: Daemon
) -> None:
    wait_for_events(setup.state)
    conn = sqlite3.connect(setup.state, isolation_level=None, timeout=5)
    wal = Path(f"{setup.state}-wal")
    # hold the lock with everything checkpointed into the main file, then damage a page
    # every poll writes (the sources table)
    for _ in range(100):
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("BEGIN IMMEDIATE")
        if wal.stat().st_size == 0:
            break
        conn.execute("ROLLBACK")
    else:
        pytest.fail("could not catch the WAL empty")
    before = int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])
    page = int(conn.execute("PRAGMA page_size").fetchone()[0])
    (root,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name='sources'").fetchone()
    with setup.state.open("r+b") as f:
        f.seek((root - 1) * page)
        f.write(b"\xa5" * page)
    conn.execute("ROLLBACK")
    conn.close()
    sentence = exits_with_one_sentence(daemon, setup.log)
    assert sentence == (f"cckm-monitor: cannot write state file {setup.state}: the file is corrupt")
    assert event_count(setup.state) >= before


# --- 6. the event loop never waits on another process ---------------------------------------


def test_healthz_and_polls_go_on_while_another_process_holds_the_write_lock(
    setup: Setup, daemon: Daemon
) -> None:
    wait_for_events(setup.state)
    conn = sqlite3.connect(setup.state, isolation_level=None, timeout=5)
    conn.execute("BEGIN IMMEDIATE")  # as `replay` would, for ~3 s
    before = int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])
    # a new job while the lock is held: its job.started waits for the release
    setup.sim.control("POST", "/sim/v1/jobs", {"source": "aws", "hang": True})
    latencies = []
    held_until = time.monotonic() + 3.0
    while time.monotonic() < held_until:
        started = time.monotonic()
        status, _ = http("GET", daemon.http_url + "/healthz")
        latencies.append(time.monotonic() - started)
        assert status == 200
        time.sleep(0.05)
    conn.execute("ROLLBACK")
    released = time.monotonic()
    wait_until(lambda: event_count(setup.state) > before, 5, "the poll's commit")
    after_release = time.monotonic() - released
    conn.close()
    latencies.sort()
    print(
        f"/healthz during a 3 s lock: {len(latencies)} requests, "
        f"median {latencies[len(latencies) // 2] * 1000:.1f} ms, "
        f"max {latencies[-1] * 1000:.1f} ms; first commit {after_release * 1000:.0f} ms "
        "after the release"
    )
    assert latencies[-1] < 0.1
    assert after_release < INTERVAL + 1.0
    assert daemon.process.poll() is None
