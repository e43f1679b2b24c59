"""The command line as users meet it: exit codes, one-sentence errors, real answers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from monitor.cli import main
from tests.processes import Simulator, free_port, log_lines, simulator


def write(path: Path, data: object) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with simulator("--history", "3", "--job-rate", "0", "--running", "2") as running:
        yield running


def config_for(tmp_path: Path, url: str, **extra: object) -> Path:
    data = {
        "managers": [
            {
                "name": "sim",
                "url": url,
                "username": "admin",
                "password": "admin",
                "sources": ["aws", "gcp", "dsm"],
            }
        ],
        "poll": {"interval_seconds": 1},
        "state_path": str(tmp_path / "state.db"),
        "http": {"listen": f"127.0.0.1:{free_port()}"},
        "log": {"format": "json"},
        **extra,
    }
    return write(tmp_path / "monitor.yaml", data)


def test_check_config_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = config_for(tmp_path, "http://127.0.0.1:1")
    assert main(["check-config", "--config", str(path)]) == 0
    assert "OK" in capsys.readouterr().out


def test_check_config_lists_every_problem_with_its_key_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CM_PASSWORD_MISSING", raising=False)
    path = write(
        tmp_path / "bad.yaml",
        {
            "managers": [
                {
                    "name": "prod",
                    "url": "https://cm.example.com",
                    "username": "admin",
                    "password": "${CM_PASSWORD_MISSING}",
                }
            ],
            "poll": {"intervall_seconds": 5},
        },
    )
    assert main(["check-config", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "managers[0].password" in err
    assert "CM_PASSWORD_MISSING" in err
    assert "poll.intervall_seconds" in err
    assert "Traceback" not in err


def test_missing_config_file_is_one_sentence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--config", str(tmp_path / "nope.yaml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("cckm-monitor:")
    assert "nope.yaml" in "\n".join(err)
    assert "Traceback" not in "\n".join(err)


def test_bad_usage_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["run"])
    assert exit_info.value.code == 2
    assert "--config" in capsys.readouterr().err


def test_simulate_refuses_a_remote_bind(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--host", "0.0.0.0", "--port", "0"]) == 2
    assert "allow-remote" in capsys.readouterr().err


def test_jobs_table(sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = config_for(tmp_path, sim.url)
    assert main(["jobs", "--config", str(path), "--source", "aws", "--limit", "50"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:4] == ["MANAGER", "SOURCE", "JOB", "ID"]
    rows = [line for line in out[1:] if line.startswith("sim")]
    assert len(rows) >= 3
    assert all(line.split()[1] == "aws" for line in rows)


def test_jobs_filters_by_status(
    sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config_for(tmp_path, sim.url)
    assert main(["jobs", "--config", str(path), "--status", "completed"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("sim")]
    assert rows
    assert all(line.split()[3] == "completed" for line in rows)


def test_jobs_with_a_wrong_password_fails_in_one_sentence(
    sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = yaml.safe_load(config_for(tmp_path, sim.url).read_text())
    data["managers"][0]["password"] = "wrong-password-123"
    path = write(tmp_path / "wrong.yaml", data)
    assert main(["jobs", "--config", str(path)]) == 1
    err = capsys.readouterr().err
    assert "refused" in err
    assert "wrong-password-123" not in err
    assert "Traceback" not in err


def test_cancel_needs_confirmation_then_cancels(
    sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    job = sim.control(
        "POST",
        "/sim/v1/jobs",
        {
            "source": "gcp",
            "hang": True,
            "scopes": [{"key": "projects/p/locations/global/keyRings/r", "after_seconds": None}],
        },
    )
    path = config_for(tmp_path, sim.url)
    # no terminal to ask on: refuse rather than cancel unasked
    assert main(["cancel", "--config", str(path), "--source", "gcp", job["id"]]) == 2
    assert "--yes" in capsys.readouterr().err
    assert main(["cancel", "--config", str(path), "--source", "gcp", "--yes", job["id"]]) == 0
    assert "abort=true" in capsys.readouterr().out
    # a second cancel: the manager's own 4xx, as one sentence
    assert main(["cancel", "--config", str(path), "--source", "gcp", "--yes", job["id"]]) == 1
    err = capsys.readouterr().err
    assert "409" in err
    assert "Traceback" not in err


def test_cancel_unknown_job_is_404(
    sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config_for(tmp_path, sim.url)
    code = main(["cancel", "--config", str(path), "--source", "aws", "--yes", "no-such-job"])
    assert code == 1
    assert "NCERRResourceNotFound" in capsys.readouterr().err


def test_run_once_baseline_then_announces(
    sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config_for(tmp_path, sim.url)
    assert main(["run", "--config", str(path), "--once"]) == 0
    first = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    assert not [line for line in first if line["event"].startswith("job.")]  # silent baseline
    job = sim.control(
        "POST",
        "/sim/v1/jobs",
        {
            "source": "dsm",
            "scopes": [
                {
                    "key": "89c49e63-b5c9-46be-9371-0d8b0649e289",
                    "after_seconds": 0,
                    "result": "connection refused",
                }
            ],
        },
    )
    assert main(["run", "--config", str(path), "--once"]) == 0
    out = tmp_path / "out.log"
    out.write_text(capsys.readouterr().out)
    events = [
        (line["event"], line.get("job_id"))
        for line in log_lines(out)
        if line["event"].startswith("job.")
    ]
    assert events == [
        ("job.started", job["id"]),
        ("job.domain_failed", job["id"]),
        ("job.failed", job["id"]),
    ]


def test_unreachable_state_path_is_one_sentence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    path = config_for(tmp_path, "http://127.0.0.1:1", state_path=str(blocker / "state.db"))
    assert main(["run", "--config", str(path), "--once"]) == 1
    err = capsys.readouterr().err
    assert "cannot open state file" in err
    assert "Traceback" not in err
