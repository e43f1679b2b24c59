"""The delivery commands as users meet them: test-notification to every sink type,
``deliveries`` (``--failed``) and ``replay``, run in-process against loopback receivers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from standardwebhooks import Webhook

from monitor.cli import main
from monitor.health import SourceHealth
from monitor.logs import REDACTOR
from monitor.model import Event, EventType
from monitor.store import Store
from tests.processes import Simulator, free_port, simulator
from tests.sink_kit import (
    PATH_SECRET,
    SECRET,
    T0,
    Receiver,
    Reply,
    job_event,
    receiver_in_thread,
)


@pytest.fixture(autouse=True)
def _forget_secrets() -> Iterator[None]:
    """The commands register the config's secrets (password "admin") with the process-wide
    redactor; forget them afterwards so later tests' log lines are not redacted."""
    known = set(REDACTOR._secrets)
    yield
    REDACTOR._secrets.intersection_update(known)


@pytest.fixture
def rcv() -> Iterator[Receiver]:
    with receiver_in_thread() as running:
        yield running


def write_config(
    tmp_path: Path, rcv: Receiver, manager_url: str = "http://127.0.0.1:1", **extra: Any
) -> Path:
    data = {
        "managers": [
            {
                "name": "prod",
                "url": manager_url,
                "username": "admin",
                "password": "admin",
                "sources": ["aws"],
            }
        ],
        "state_path": str(tmp_path / "state.db"),
        "http": {"listen": f"127.0.0.1:{free_port()}"},
        "log": {"format": "json"},
        "sinks": [
            {"type": "log"},
            {"type": "webhook", "name": "ops", "url": rcv.url("webhook"), "secret": SECRET},
            {"type": "slack", "name": "team", "url": rcv.url("slack")},
            {"type": "alertmanager", "name": "am", "url": rcv.url("alertmanager")},
        ],
        **extra,
    }
    path = tmp_path / "monitor.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def by_path(rcv: Receiver, path: str) -> list[Any]:
    return [r for r in rcv.requests if r.path == path]


def test_test_notification_reaches_every_sink_signed_and_labelled(
    tmp_path: Path, rcv: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, rcv)
    assert main(["test-notification", "--config", str(config)]) == 0
    captured = capsys.readouterr()
    assert captured.err.count("sent test event evt_") == 4
    assert PATH_SECRET not in captured.err + captured.out

    (hook,) = by_path(rcv, f"/hooks/{PATH_SECRET}")
    envelope = Webhook(SECRET).verify(hook.body, hook.headers)
    assert envelope["type"] == "job.failed"
    assert envelope["data"]["test"] is True
    assert "TEST NOTIFICATION" in envelope["data"]["summary"]

    (slack,) = by_path(rcv, f"/services/T000/B000/{PATH_SECRET}")
    message = json.loads(slack.body)
    assert message["text"].startswith("[TEST] Job failed")
    assert "TEST NOTIFICATION" in json.dumps(message)

    (am,) = by_path(rcv, "/api/v2/alerts")
    alerts = json.loads(am.body)
    assert alerts[0]["labels"]["alertname"] == "CCKMJobFailed"
    assert alerts[0]["labels"]["test"] == "true"
    assert alerts[0]["annotations"]["summary"].startswith("[TEST]")

    (line,) = [json.loads(x) for x in captured.out.splitlines() if '"job.failed"' in x]
    assert line["test"] is True  # the log sink's line


def test_test_notification_to_one_sink_and_its_failure(
    tmp_path: Path, rcv: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, rcv)
    assert main(["test-notification", "--config", str(config), "--sink", "team"]) == 0
    assert [r.path for r in rcv.requests] == [f"/services/T000/B000/{PATH_SECRET}"]
    rcv.answer(Reply(404, body="no_service"))
    assert main(["test-notification", "--config", str(config), "--sink", "team"]) == 1
    err = capsys.readouterr().err
    assert "team (slack, http://127.0.0.1:" in err
    assert "failed (http_4xx, permanent)" in err and "404 Not Found: no_service" in err
    assert PATH_SECRET not in err
    assert main(["test-notification", "--config", str(config), "--sink", "nope"]) == 2
    assert "no sink named 'nope'" in capsys.readouterr().err


# --- dead letters ---------------------------------------------------------------------


def dead_letters_in(config: Path, sink: str, events: list[Event]) -> None:
    """A state file in which ``sink`` gave up on ``events`` (as the daemon would)."""
    state = yaml.safe_load(config.read_text())["state_path"]
    store = Store.open(state)
    try:
        store.register_sinks([sink, "team"])
        store.commit_poll(
            "decommissioned",  # not the configured manager: its first poll stays a baseline
            "aws",
            changed={},
            events=events,
            watermark=None,
            health=SourceHealth(),
            now=T0.timestamp(),
        )
        for entry in store.pending(sink):
            store.dead_letter(
                sink,
                entry.seq,
                reason="POST to http://127.0.0.1:9/… answered 404 Not Found",
                attempts=1,
                now=T0.timestamp(),
            )
    finally:
        store.close()


def test_deliveries_failed_lists_dead_letters_and_replay_requeues_them(
    tmp_path: Path, rcv: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, rcv)
    assert main(["deliveries", "--config", str(config), "--failed"]) == 0
    assert "no state file" in capsys.readouterr().out

    events = [job_event(job="job-1"), job_event(EventType.JOB_STUCK, job="job-2")]
    dead_letters_in(config, "ops", events)
    assert main(["deliveries", "--config", str(config), "--failed"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "SINK", "SEQ", "EVENT", "MANAGER", "SOURCE", "JOB", "ID", "ATTEMPTS", "FAILED", "AT",
        "REASON",
    ]  # fmt: skip
    assert len(lines) == 3
    assert lines[1].split()[:6] == ["ops", "1", "job.failed", "prod", "aws", "job-1"]
    assert "2026-11-23T10:00:00.000Z" in lines[1] and "404 Not Found" in lines[1]
    assert main(["deliveries", "--config", str(config), "--failed", "--sink", "team"]) == 0
    assert capsys.readouterr().out.strip() == "no failed deliveries"

    assert main(["replay", "--config", str(config), "--sink", "ops"]) == 0
    assert "ops: 2 failed deliveries queued again" in capsys.readouterr().out
    assert main(["deliveries", "--config", str(config)]) == 0
    summary = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert ["ops", "2", "0"] in summary
    assert main(["deliveries", "--config", str(config), "--failed"]) == 0
    assert capsys.readouterr().out.strip() == "no failed deliveries"


def test_replay_needs_a_configured_sink(
    tmp_path: Path, rcv: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, rcv)
    assert main(["replay", "--config", str(config), "--sink", "opps"]) == 2
    assert "no sink named 'opps'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["replay", "--config", str(config)])
    assert exited.value.code == 2


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with simulator("--history", "2", "--job-rate", "0", "--running", "0") as running:
        yield running


@pytest.mark.e2e
def test_the_daemon_delivers_replayed_events(
    sim: Simulator, tmp_path: Path, rcv: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, rcv, manager_url=sim.url)
    events = [job_event(job="job-1"), job_event(EventType.JOB_STUCK, job="job-2")]
    dead_letters_in(config, "ops", events)
    assert main(["replay", "--config", str(config), "--sink", "ops"]) == 0
    assert main(["run", "--config", str(config), "--once"]) == 0
    delivered = [json.loads(r.body)["id"] for r in by_path(rcv, f"/hooks/{PATH_SECRET}")]
    assert delivered == [e.id for e in events]
    assert main(["deliveries", "--config", str(config)]) == 0
    assert ["ops", "0", "0"] in [line.split() for line in capsys.readouterr().out.splitlines()]
