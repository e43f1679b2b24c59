"""kill -9 at random moments of a busy run, many times in a row, restarting each time.

At the end, against the simulator's ground truth: every transition was delivered to the
webhook receiver at least once, no event id was ever reused for a different transition,
and nothing was missed. CI runs a quick loop; ``CCKM_CRASH_LOOPS=200`` (and
``CCKM_CRASH_SEED``) runs a long one by hand:

    CCKM_CRASH_LOOPS=200 .venv/bin/pytest tests/test_e2e_crash.py -s
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections import defaultdict
from pathlib import Path

import pytest

from tests.ground_truth import SIM_OPTIONS, all_finished, created_since, expected_events
from tests.http_receiver import ReceiverState, http_receiver
from tests.processes import (
    free_port,
    simulator,
    start_daemon,
    wait_ready,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.e2e

LOOPS = int(os.environ.get("CCKM_CRASH_LOOPS", "8"))
SEED = int(os.environ.get("CCKM_CRASH_SEED", "11"))


def delivered_terminal(receiver: ReceiverState, jobs: set[str]) -> bool:
    ended = {
        b["data"]["job_id"]
        for b in receiver.bodies()
        if b["type"] in ("job.completed", "job.failed", "job.aborted", "job.vanished")
    }
    return jobs <= ended


def test_kill_9_loop_delivers_every_transition_at_least_once(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    port = free_port()
    log = tmp_path / "daemon.log"
    kills = 0
    with simulator(*SIM_OPTIONS) as sim, http_receiver() as (url, receiver):
        config = write_config(
            tmp_path / "monitor.yaml",
            sim.url,
            tmp_path / "state.db",
            http_port=port,
            interval=0.3,
            extra={
                "sinks": [
                    {
                        "type": "webhook",
                        "name": "hook",
                        "url": url + "/hook",
                        "retry": {"initial_seconds": 0.05, "max_seconds": 0.5},
                    }
                ]
            },
        )
        daemon = start_daemon(config, log, port)
        wait_ready(daemon)
        mark = len(sim.transitions())
        sim.control("PATCH", "/sim/v1/config", {"job_rate": 150})
        for _ in range(LOOPS):
            time.sleep(rng.uniform(0.05, 1.0))  # anywhere: mid-poll, mid-commit, mid-POST
            assert daemon.stop(signal.SIGKILL) == -signal.SIGKILL
            kills += 1
            if rng.random() < 0.3:
                receiver.fail_next = rng.randint(1, 5)  # and sometimes the receiver fails
            daemon = start_daemon(config, log, port)
        sim.control("PATCH", "/sim/v1/config", {"job_rate": 0})
        jobs = created_since(sim.transitions(), mark)
        wait_until(lambda: all_finished(sim, jobs), 60, "jobs to finish")
        wait_until(lambda: delivered_terminal(receiver, jobs), 60, "the daemon to catch up")
        assert daemon.stop() == 0
        truth = sim.transitions()
        bodies = receiver.bodies()

    assert kills == LOOPS
    assert len(jobs) >= 5
    seen: dict[str, set[str]] = defaultdict(set)
    identity: dict[str, tuple[str, str, str | None]] = {}
    for body in bodies:
        data = body["data"]
        seen[data.get("job_id") or ""].add(body["type"])
        key = (data.get("job_id") or data["source"], body["type"], data.get("scope"))
        # an id always names the same transition, however often it is re-delivered
        assert identity.setdefault(body["id"], key) == key, body["id"]
    for job, kinds in expected_events(truth, jobs).items():
        assert set(kinds) <= seen[job], (job, seen[job], kinds)
    domain_failures = {
        (t["job_id"], t["scope"])
        for t in truth
        if t["job_id"] in jobs
        and t["kind"] == "scope_finished"
        and not t["status"].endswith("successfully")
    }
    delivered_failures = {
        (b["data"]["job_id"], b["data"]["scope"])
        for b in bodies
        if b["type"] == "job.domain_failed"
    }
    assert domain_failures <= delivered_failures
