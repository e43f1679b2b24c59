"""Issue 10, class 7: inputs from the command line are validated before anything is sent.

A job id never climbs out of its family's path: the client puts it in the URL as one
percent-encoded segment and refuses ids no encoding makes safe; ``cancel`` refuses such
an id with exit 2 and sends nothing. ``jobs --status`` and ``--limit`` take known values.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import pytest
import yarl
from hypothesis import given
from hypothesis import strategies as st

from monitor.cli import LIST_STATUSES, build_parser, main
from monitor.cm.client import ManagerClient
from monitor.cm.errors import HTTPStatusError, InvalidJobId
from monitor.cm.paths import MAX_JOB_ID, job_id_problem, job_path
from monitor.families import FAMILIES
from monitor.logs import REDACTOR
from tests.pipeline_harness import client_options
from tests.processes import Simulator, simulator, write_config
from tests.sim_fixtures import Harness, simulated

AWS = FAMILIES["aws"]
AZURE = FAMILIES["azure"]


@pytest.fixture(autouse=True)
def _forget_secrets() -> Iterator[None]:
    """``main`` registers the config's password ("admin") with the process-wide redactor."""
    known = set(REDACTOR._secrets)
    yield
    REDACTOR._secrets.intersection_update(known)


def climbing_ids(target: str) -> list[str]:
    """Ids under the aws path that would reach the azure job ``target`` if pasted raw."""
    return [
        f"../../azure/synchronization-jobs/{target}",
        f"../../azure/{target}",
        f"..%2F..%2Fazure%2Fsynchronization-jobs%2F{target}",
        f"%2e%2e/%2e%2e/azure/synchronization-jobs/{target}",
        f"./../../azure/synchronization-jobs/{target}",
        f"..\\..\\azure\\synchronization-jobs\\{target}",
    ]


async def running_azure_job(h: Harness) -> str:
    job = await h.scripted(
        source="azure", scopes=[{"key": "vault-1", "after_seconds": None, "result": "success"}]
    )
    return str(job["id"])


# --- the client ------------------------------------------------------------------------


async def test_an_id_cannot_cancel_a_job_of_another_family() -> None:
    async with simulated() as h:
        target = await running_azure_job(h)
        async with ManagerClient(client_options(h.sim.url, retries=0)) as client:
            for job_id in climbing_ids(target):
                with pytest.raises(HTTPStatusError) as caught:
                    await client.cancel_job(AWS, job_id)
                assert caught.value.status == 404, job_id
                with pytest.raises(HTTPStatusError):
                    await client.get_job(AWS, job_id)
            job = await h.job("azure", target)
            assert (job["overall_status"], job["abort"]) == ("in_progress", False)
            # the normal cancel still works
            cancelled = await client.cancel_job(AZURE, target)
            assert (cancelled.job_id, cancelled.abort) == (target, True)
        assert (await h.job("azure", target))["abort"] is True


@pytest.mark.parametrize(
    "job_id", ["", ".", "..", "a" * (MAX_JOB_ID + 1), "a\nb", "a\x00b", "\x7f", "a\ud800"]
)
async def test_unsafe_ids_are_refused_before_anything_is_sent(job_id: str) -> None:
    codes: list[str] = []
    async with (
        simulated() as h,
        ManagerClient(client_options(h.sim.url, retries=0), on_response=codes.append) as client,
    ):
        with pytest.raises(InvalidJobId, match="refused"):
            await client.cancel_job(AWS, job_id)
        with pytest.raises(InvalidJobId):
            await client.get_job(AWS, job_id)
    assert codes == []  # not even a login


@given(st.text(max_size=80))
def test_an_accepted_id_is_exactly_one_path_segment(job_id: str) -> None:
    if job_id_problem(job_id) is not None:
        with pytest.raises(InvalidJobId):
            job_path(AWS.path, job_id, "/cancel")
        return
    path = job_path(AWS.path, job_id, "/cancel")
    url = yarl.URL("https://cm.example:8443" + path, encoded=True)
    base = AWS.path.split("/")
    segments = url.raw_path.split("/")
    assert segments[: len(base)] == base
    assert segments[len(base) + 1 :] == ["cancel"]
    assert unquote(segments[len(base)]) == job_id
    assert url.raw_path == path  # sent as built: nothing normalises it


# --- the command line ------------------------------------------------------------------


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with simulator("--history", "2", "--job-rate", "0", "--running", "0") as running:
        yield running


def cli_config(tmp_path: Path, sim: Simulator) -> Path:
    return write_config(
        tmp_path / "monitor.yaml",
        sim.url,
        tmp_path / "state.db",
        http_port=1,
        sources=["aws", "azure"],
    )


def azure_aborted(sim: Simulator, job_id: str) -> bool:
    return any(t["job_id"] == job_id and t["kind"] == "abort_requested" for t in sim.transitions())


def test_cancel_refuses_a_climbing_id_and_sends_nothing(
    tmp_path: Path,
    sim: Simulator,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CM_PASSWORD", "admin")
    config = cli_config(tmp_path, sim)
    job = sim.control(
        "POST",
        "/sim/v1/jobs",
        {"source": "azure", "scopes": [{"key": "v", "after_seconds": None, "result": "success"}]},
    )
    target = str(job["id"])
    before = sim.control("GET", "/sim/v1/stats")
    for job_id in [*climbing_ids(target), "", "..", "x" * 300, "a\tb"]:
        code = main(["cancel", "--config", str(config), "--source", "aws", "--yes", job_id])
        assert code == 2, job_id
        err = capsys.readouterr().err.strip()
        assert err.startswith("cckm-monitor: refusing to cancel job"), err
        assert len(err.splitlines()) == 1
    after = sim.control("GET", "/sim/v1/stats")
    assert after["requests"] == before["requests"]  # nothing was sent, not even a login
    assert not azure_aborted(sim, target)
    # the same job, named properly, is cancelled
    code = main(["cancel", "--config", str(config), "--source", "azure", "--yes", target])
    assert code == 0
    assert "abort=true" in capsys.readouterr().out
    assert azure_aborted(sim, target)


def test_jobs_status_must_be_a_known_value(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        build_parser().parse_args(["jobs", "--config", "x.yaml", "--status", "bogus"])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert "unknown status 'bogus'" in err
    for known in LIST_STATUSES:
        assert known in err
    args = build_parser().parse_args(["jobs", "--config", "x.yaml", "--status", "In Progress"])
    assert args.status == "in_progress"


@pytest.mark.parametrize("limit", ["0", "-1", "1001", "abc", "1e3", "٣"])
def test_jobs_limit_is_bounded(limit: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        build_parser().parse_args(["jobs", "--config", "x.yaml", "--limit", limit])
    assert caught.value.code == 2
    assert "from 1 to 1000" in capsys.readouterr().err


def test_jobs_limit_in_range_is_taken() -> None:
    assert build_parser().parse_args(["jobs", "--config", "x", "--limit", "1000"]).limit == 1000
