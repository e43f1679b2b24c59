"""Job life cycles on a fake clock, the ground-truth log, determinism and scale."""

from __future__ import annotations

import itertools
import time
from typing import Any

from monitor.model import is_scope_failure
from monitor.simulator import SimConfig
from tests.sim_fixtures import Harness, path, simulated, stamp

KEY_A = "123456789012/us-east-1"
KEY_B = "123456789012/eu-west-1"


def kinds(log: list[dict[str, Any]], job_id: str) -> list[tuple[str, str | None, str, bool]]:
    return [(t["kind"], t["scope"], t["status"], t["abort"]) for t in log if t["job_id"] == job_id]


async def test_scopes_finish_one_by_one_then_the_job_completes() -> None:
    config = SimConfig(sources=("aws",), scope_seconds=(10.0, 20.0), failure_probability=0.0)
    async with simulated(config) as h:
        job = await h.start("aws", {"kms": ["kms"], "regions": ["us-east-1", "eu-west-1"]})
        h.clock.advance(9.9)
        early = await h.job("aws", job["id"])
        h.clock.advance(10.2)
        done = await h.job("aws", job["id"])
    assert early["overall_status"] == "in_progress" and "completed_at" not in early
    assert set(early["detailed_status"].values()) == {"in_progress"}
    assert done["overall_status"] == "completed"
    assert done["abort"] is False
    assert set(done["detailed_status"].values()) == {"region synchronized successfully"}
    assert (
        stamp(done["createdAt"]) + 10
        <= stamp(done["completed_at"])
        <= stamp(done["createdAt"]) + 20
    )


async def test_a_failed_scope_fails_the_job() -> None:
    async with simulated(SimConfig(sources=("aws",))) as h:
        job = await h.scripted(
            source="aws",
            scopes=[
                {"key": KEY_A, "after_seconds": 3, "result": "success"},
                {"key": KEY_B, "after_seconds": 6, "result": "ThrottlingException: Rate exceeded"},
            ],
        )
        h.clock.advance(4)
        midway = await h.job("aws", job["id"])
        h.clock.advance(3)
        done = await h.job("aws", job["id"])
        log = await h.transitions()
    assert midway["overall_status"] == "in_progress"
    assert midway["detailed_status"] == {
        KEY_A: "region synchronized successfully",
        KEY_B: "in_progress",
    }
    assert done["overall_status"] == "failed"
    assert done["detailed_status"][KEY_B] == "ThrottlingException: Rate exceeded"
    assert done["regions"] == ["us-east-1", "eu-west-1"] and done["kms"] == ["kms"]
    assert kinds(log, job["id"]) == [
        ("created", None, "in_progress", False),
        ("scope_finished", KEY_A, "region synchronized successfully", False),
        ("scope_finished", KEY_B, "ThrottlingException: Rate exceeded", False),
        ("finished", None, "failed", False),
    ]
    # every entry is stamped with the time it was scheduled for
    created, first, second, finished = (t for t in log if t["job_id"] == job["id"])
    assert stamp(first["at"]) - stamp(created["at"]) == 3
    assert stamp(second["at"]) - stamp(created["at"]) == 6
    assert finished["at"] == second["at"]
    assert stamp(done["completed_at"]) == stamp(finished["at"])


async def test_random_failures_use_realistic_messages() -> None:
    config = SimConfig(sources=("aws", "gcp"), failure_probability=1.0, scope_seconds=(1, 2))
    async with simulated(config) as h:
        aws = await h.start("aws", {"kms": ["kms"], "regions": ["us-east-1"]})
        gcp = await h.start("gcp", {"synchronize_all": True})
        h.clock.advance(3)
        aws_done, gcp_done = await h.job("aws", aws["id"]), await h.job("gcp", gcp["id"])
    for job in (aws_done, gcp_done):
        assert job["overall_status"] == "failed"
        assert all(is_scope_failure(text) for text in job["detailed_status"].values())


async def test_cancel_sets_abort_then_the_job_ends_completed_with_abort() -> None:
    async with simulated(SimConfig(sources=("gcp",))) as h:
        ring = "projects/gemalto-kyloeng/locations/global/keyRings/demo-key-ring"
        job = await h.scripted(
            source="gcp",
            scopes=[
                {"key": ring, "after_seconds": 60},
                {"key": ring + "-2", "after_seconds": 0.5},
            ],
        )
        h.clock.advance(1)
        status, cancelled = await h.cancel("gcp", job["id"])
        again_status, again = await h.cancel("gcp", job["id"])
        h.clock.advance(0.5)
        still = await h.job("gcp", job["id"])
        h.clock.advance(5)
        ended = await h.job("gcp", job["id"])
        late_status, late = await h.cancel("gcp", job["id"])
        log = await h.transitions()
    assert status == 200
    assert (cancelled["abort"], cancelled["overall_status"]) == (True, "in_progress")
    assert "completed_at" not in cancelled
    assert again_status == 409 and "already" in again["codeDesc"]
    assert (still["abort"], still["overall_status"]) == (True, "in_progress")
    assert (ended["abort"], ended["overall_status"]) == (True, "completed")
    assert "completed_at" in ended
    # the scope not reached stays in_progress, as in seed 004
    assert ended["detailed_status"] == {
        ring: "in_progress",
        ring + "-2": "key ring synchronized successfully",
    }
    assert (
        late_status == 409 and late["codeDesc"] == "NCERRInvalidParamValue: job is not in progress"
    )
    assert [k[0] for k in kinds(log, job["id"])] == [
        "created",
        "scope_finished",
        "abort_requested",
        "finished",
    ]
    abort_at = next(t for t in log if t["kind"] == "abort_requested")["at"]
    finished_at = next(t for t in log if t["kind"] == "finished")["at"]
    assert 1 <= stamp(finished_at) - stamp(abort_at) <= 3
    assert stamp(ended["completed_at"]) == stamp(finished_at)


async def test_hanging_jobs_never_finish_and_keep_their_spelling() -> None:
    async with simulated(SimConfig(sources=("external_cm",))) as h:
        stuck = await h.scripted(
            source="external_cm",
            scopes=[{"key": "3e732d57-5ea1-491f-b238-9f4a39a9566f", "after_seconds": None}],
            status_text="in progress",
            created_at="2020-08-06T09:49:34.605578452Z",
        )
        hung = await h.scripted(source="external_cm", hang=True)
        await h.advance(7 * 24 * 3600)
        later = await h.job("external_cm", stuck["id"])
        hung_later = await h.job("external_cm", hung["id"])
        newest_first = await h.get(path("external_cm"))
    assert later["overall_status"] == "in progress"  # as in seed 002
    assert later["createdAt"].startswith("2020-08-06T09:49:34.605578")
    assert hung_later["overall_status"] == "in_progress"
    assert [job["id"] for job in newest_first["resources"]] == [hung["id"], stuck["id"]]


async def test_deleted_jobs_vanish() -> None:
    async with simulated(SimConfig(history=5, running=1, sources=("aws",))) as h:
        page = await h.get(path("aws"))
        running = next(job for job in page["resources"] if job["overall_status"] == "in_progress")
        old = page["resources"][-1]
        for job in (running, old):
            status, _ = await h.call("DELETE", f"/sim/v1/jobs/aws/{job['id']}")
            assert status == 200
        gone = [await h.call("GET", f"{path('aws')}/{job['id']}") for job in (running, old)]
        after = await h.walk("aws", 2)
        twice, _ = await h.call("DELETE", f"/sim/v1/jobs/aws/{old['id']}")
        log = await h.transitions()
    assert [status for status, _ in gone] == [404, 404]
    assert len(after) == 4 and {running["id"], old["id"]}.isdisjoint(j["id"] for j in after)
    assert twice == 404
    assert [t["kind"] for t in log if t["job_id"] == running["id"]] == ["created", "deleted"]


async def test_running_jobs_exist_at_start_spread_over_sources() -> None:
    config = SimConfig(running=5, sources=("aws", "dsm"), scope_seconds=(30, 40))
    async with simulated(config) as h:
        aws = await h.get(path("aws"), overall_status="in_progress")
        dsm = await h.get(path("dsm"), overall_status="in_progress")
        log = await h.transitions()
    assert (aws["total"], dsm["total"]) == (3, 2)
    assert len(log) == 5 and {t["kind"] for t in log} == {"created"}


async def auto_run(seed: int) -> list[dict[str, Any]]:
    config = SimConfig(
        seed=seed,
        running=3,
        job_rate=30.0,
        scope_seconds=(2.0, 10.0),
        failure_probability=0.3,
        cancel_probability=0.3,
    )
    async with simulated(config) as h:
        started = await h.start("dsm", {"synchronize_all": True})
        for _ in range(30):
            h.clock.advance(2)
            await h.get(path("aws"), overall_status="in_progress")
        await h.cancel("dsm", started["id"])
        h.clock.advance(60)
        return await h.transitions()


async def test_jobs_start_by_themselves_and_same_seed_gives_same_transitions() -> None:
    first, second, other = await auto_run(5), await auto_run(5), await auto_run(6)
    assert first == second
    assert first != other
    created = [t for t in first if t["kind"] == "created"]
    assert len(created) > 10  # 30 per minute for a minute and a half
    assert any(t["kind"] == "abort_requested" for t in first)
    assert {t["status"] for t in first if t["kind"] == "finished"} <= {"completed", "failed"}
    assert [t["seq"] for t in first] == list(range(1, len(first) + 1))


async def test_log_agrees_with_what_the_api_shows() -> None:
    config = SimConfig(running=4, job_rate=20.0, sources=("gcp", "sap"), scope_seconds=(1, 8))
    async with simulated(config) as h:
        h.clock.advance(120)
        log = await h.transitions()
        for source in ("gcp", "sap"):
            for job in await h.walk(source, 50):
                await check_against_log(h, source, job, log)
        tail = await h.transitions(since=len(log) - 2)
    assert [t["seq"] for t in tail] == [len(log) - 1, len(log)]


async def check_against_log(
    h: Harness, source: str, job: dict[str, Any], log: list[dict[str, Any]]
) -> None:
    mine = [t for t in log if t["job_id"] == job["id"]]
    assert mine[0]["kind"] == "created" and mine[0]["source"] == source
    assert stamp(mine[0]["at"]) == stamp(job["createdAt"])
    finished = [t for t in mine if t["kind"] == "finished"]
    if job["overall_status"] == "in_progress":
        assert not finished
    else:
        assert finished[0]["status"] == job["overall_status"]
        assert stamp(finished[0]["at"]) == stamp(job["completed_at"])
    scopes = {t["scope"]: t["status"] for t in mine if t["kind"] == "scope_finished"}
    for key, text in job["detailed_status"].items():
        assert text == scopes.get(key, "in_progress")


async def test_live_config_changes() -> None:
    async with simulated(SimConfig(job_rate=60.0, sources=("dsm",))) as h:
        h.clock.advance(60)
        before = len(await h.transitions())
        status, settings = await h.call("PATCH", "/sim/v1/config", json={"job_rate": 0})
        created_then = (await h.get(path("dsm")))["total"]
        await h.advance(600)
        created_later = (await h.get(path("dsm")))["total"]
        bad, _ = await h.call("PATCH", "/sim/v1/config", json={"error_rate": 2})
        unknown, _ = await h.call("PATCH", "/sim/v1/config", json={"history": 2})
    assert before > 0
    assert status == 200 and settings["job_rate"] == 0.0
    assert created_then == created_later > 0
    assert bad == unknown == 400


async def test_stats_count_requests_and_jobs() -> None:
    async with simulated(SimConfig(history=10, running=2, sources=("aws", "gcp"))) as h:
        await h.get(path("aws"))
        job = await h.start("gcp", {"synchronize_all": True})
        await h.job("gcp", job["id"])
        await h.cancel("gcp", job["id"])
        stats = await h.get("/sim/v1/stats")
    assert stats["requests"] == {
        "list": 1,
        "get": 1,
        "start": 1,
        "cancel": 1,
        "auth": 1,
        "other": 0,
    }
    assert stats["bytes_sent"] > 1000
    assert stats["jobs"]["in_progress"] == 3
    assert sum(stats["jobs"].values()) == 23
    assert stats["jobs_by_source"] == {"aws": 11, "gcp": 12}


async def test_a_hundred_thousand_history_jobs() -> None:
    began = time.perf_counter()
    async with simulated(SimConfig(history=100_000, running=1, sources=("aws",))) as h:
        built = time.perf_counter() - began
        first = await h.get(path("aws"), limit=100)
        last = await h.get(path("aws"), skip=99_951, limit=100)
        oldest = await h.get(path("aws"), sort="createdAt", limit=1)
        running = await h.get(path("aws"), overall_status="in_progress")
        picked = first["resources"][57]
        by_id = await h.job("aws", picked["id"])
    print(f"history 100,000 on one source built in {built:.2f}s")
    assert first["total"] == 100_001
    assert first["resources"][0]["overall_status"] == "in_progress"
    created = [stamp(job["createdAt"]) for job in first["resources"]]
    assert all(a > b for a, b in itertools.pairwise(created))
    assert len(last["resources"]) == 50
    assert last["resources"][-1]["id"] == oldest["resources"][0]["id"]
    assert running["total"] == 1
    assert by_id == picked
