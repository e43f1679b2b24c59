"""Client + poller + differ + store against the simulator, every event type of the contract.

Simulator and pollers share one fake clock: jobs run for minutes in milliseconds.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor.clock import FakeClock
from monitor.families import FAMILIES
from monitor.model import TERMINAL_EVENTS, EventType, format_timestamp
from monitor.simulator import SimConfig, running_simulator
from tests.pipeline_harness import pipeline
from tests.tcp_proxy import TcpProxy

AWS_EAST = "123456789012/us-east-1"
AWS_WEST = "123456789012/us-west-2"
DENIED = "AccessDeniedException: User is not authorized to perform: kms:ListKeys"


async def test_first_start_is_silent_then_changes_are_announced(tmp_path: Path) -> None:
    async with pipeline(tmp_path) as p:
        before = await p.script_job("aws", [(AWS_EAST, None, "success")])
        assert await p.cycle() == []  # baseline: the history and the running job, silently
        assert before in p.pollers["aws"].running
        job = await p.script_job("aws", [(AWS_EAST, 5, "success")])
        assert p.types(await p.cycle()) == ["job.started"]
        p.clock.advance(6)
        events = await p.cycle()
        assert [(e.type.value, e.job_id) for e in events] == [("job.completed", job)]
        assert events[0].data["duration_seconds"] == pytest.approx(5, abs=0.01)


async def test_region_failure_then_job_failed(tmp_path: Path) -> None:
    async with pipeline(tmp_path) as p:
        await p.cycle()
        job = await p.script_job("aws", [(AWS_EAST, 2, "success"), (AWS_WEST, 4, DENIED)])
        assert p.types(await p.cycle()) == ["job.started"]
        p.clock.advance(3)
        assert await p.cycle() == []  # a region that succeeds is no news
        p.clock.advance(2)
        events = await p.cycle()
        assert p.types(events) == ["job.domain_failed", "job.failed"]
        failed = events[0]
        assert failed.job_id == job
        assert failed.data["scope"] == AWS_WEST
        assert failed.data["scope_status"] == DENIED
        assert failed.data["status"] == "in_progress" or failed.data["status"] == "failed"
        assert events[1].data["status"] == "failed"


async def test_job_that_started_and_ended_between_polls(tmp_path: Path) -> None:
    async with pipeline(tmp_path) as p:
        await p.cycle()
        job = await p.script_job("aws", [(AWS_EAST, 1, DENIED)])
        p.clock.advance(30)
        events = await p.cycle()
        assert [(e.type.value, e.job_id) for e in events] == [
            ("job.started", job),
            ("job.domain_failed", job),
            ("job.failed", job),
        ]


async def test_cancel_abort_requested_then_aborted(tmp_path: Path) -> None:
    async with pipeline(tmp_path, sources=("gcp",)) as p:
        await p.cycle()
        ring = "projects/p/locations/global/keyRings/r"
        job = await p.script_job("gcp", [(ring, None, "success")], hang=True)
        assert p.types(await p.cycle()) == ["job.started"]
        cancelled = await p.client.cancel_job(FAMILIES["gcp"], job)
        assert cancelled.abort is True
        assert cancelled.running
        assert p.types(await p.cycle()) == ["job.abort_requested"]
        p.clock.advance(10)
        events = await p.cycle()
        assert p.types(events) == ["job.aborted"]
        assert events[0].data["status"] == "completed"
        assert events[0].data["abort"] is True


async def test_stuck_once(tmp_path: Path) -> None:
    async with pipeline(tmp_path, stuck_after_seconds=600) as p:
        await p.cycle()
        job = await p.script_job("aws", [(AWS_EAST, None, "success")], hang=True)
        assert p.types(await p.cycle()) == ["job.started"]
        p.clock.advance(601)
        events = await p.cycle()
        assert [(e.type.value, e.job_id) for e in events] == [("job.stuck", job)]
        p.clock.advance(601)
        assert await p.cycle() == []


async def test_stuck_for_a_job_already_running_at_first_start(tmp_path: Path) -> None:
    async with pipeline(tmp_path, stuck_after_seconds=600) as p:
        old = p.clock.now() - timedelta(hours=2)
        job = await p.script_job(
            "aws", [(AWS_EAST, None, "success")], hang=True, created_at=format_timestamp(old)
        )
        assert await p.cycle() == []  # baseline is silent, even for an old job
        events = await p.cycle()
        assert [(e.type.value, e.job_id) for e in events] == [("job.stuck", job)]


async def test_vanished(tmp_path: Path) -> None:
    async with pipeline(tmp_path) as p:
        await p.cycle()
        job = await p.script_job("aws", [(AWS_EAST, None, "success")], hang=True)
        await p.cycle()
        await p.control("DELETE", f"/sim/v1/jobs/aws/{job}")
        events = await p.cycle()
        assert [(e.type.value, e.job_id) for e in events] == [("job.vanished", job)]
        assert events[0].data["status"] == "vanished"
        assert p.pollers["aws"].running == {}


async def test_source_down_after_three_failed_cycles_then_up(tmp_path: Path) -> None:
    async with pipeline(tmp_path, client={"retries": 0}) as p:
        await p.cycle()
        await p.fault("status", count=50, status=500)
        assert await p.cycle() == []
        assert await p.cycle() == []
        events = await p.cycle()
        assert p.types(events) == ["source.down"]
        assert events[0].data["reason"] == "http_5xx"
        assert await p.cycle() == []  # once per outage
        assert p.recorder.failures == [("aws", "http_5xx")] * 4
        await p.control("DELETE", "/sim/v1/faults")
        assert p.types(await p.cycle()) == ["source.up"]


async def test_partial_poll_is_discarded_and_nothing_vanishes(tmp_path: Path) -> None:
    async with pipeline(tmp_path, client={"retries": 0}) as p:
        await p.cycle()
        job = await p.script_job("aws", [(AWS_EAST, None, "success")], hang=True)
        await p.cycle()
        # the running list answers with wrong field types: the whole poll is void
        await p.fault("wrong_types", count=1)
        assert await p.cycle() == []
        assert p.recorder.failures == [("aws", "invalid_response")]
        assert job in p.pollers["aws"].running
        assert await p.cycle() == []  # and the next good poll sees nothing new


@pytest.mark.parametrize(
    ("kind", "extra", "reason"),
    [
        ("malformed", {}, "invalid_response"),
        ("truncated", {}, "invalid_response"),
        ("html", {"status": 502}, "http_5xx"),
        # aiohttp itself retries a GET once on a kept-alive connection the server closed
        ("drop", {"count": 2}, "connection"),
        ("status", {"status": 404}, "http_4xx"),
    ],
)
async def test_bad_answers_are_counted_by_reason(
    tmp_path: Path, kind: str, extra: dict[str, Any], reason: str
) -> None:
    async with pipeline(tmp_path, client={"retries": 0}) as p:
        await p.cycle()
        await p.fault(kind, **{"count": 1, "path_prefix": "/api/v1/cckm", **extra})
        assert await p.cycle() == []
        assert p.recorder.failures == [("aws", reason)]


async def test_slow_answer_past_the_timeout(tmp_path: Path) -> None:
    async with pipeline(tmp_path, client={"retries": 0, "timeout_seconds": 0.3}) as p:
        await p.cycle()
        await p.fault("slow", count=1, delay_ms=1500, path_prefix="/api/v1/cckm")
        assert await p.cycle() == []
        assert p.recorder.failures == [("aws", "timeout")]
        assert "timeout" in p.codes


async def test_5xx_burst_is_retried_within_one_poll(tmp_path: Path) -> None:
    async with pipeline(tmp_path, client={"retries": 2}) as p:
        await p.cycle()
        await p.fault("status", count=2, status=503, retry_after=1)
        job = await p.script_job("aws", [(AWS_EAST, None, "success")], hang=True)
        assert p.types(await p.cycle()) == ["job.started"]
        assert p.codes.count("503") == 2
        assert p.recorder.failures == []
        assert job in p.pollers["aws"].running


async def test_token_expiry_and_revocation_mid_run(tmp_path: Path) -> None:
    config = SimConfig(sources=("aws",), history=3, token_ttl=120)
    async with pipeline(tmp_path, sim=config) as p:
        await p.cycle()
        p.clock.advance(500)  # long past the token's life: renewed before use
        assert await p.cycle() == []
        await p.control("POST", "/sim/v1/revoke-tokens")  # a 401 mid-run: log in again
        job = await p.script_job("aws", [(AWS_EAST, None, "success")], hang=True)
        assert p.types(await p.cycle()) == ["job.started"]
        assert "401" in p.codes
        assert p.recorder.failures == []
        assert job in p.pollers["aws"].running


async def test_duplicated_ids_across_pages_give_one_event(tmp_path: Path) -> None:
    async with pipeline(tmp_path, page_size=2) as p:
        await p.cycle()
        jobs = [
            await p.script_job("aws", [(AWS_EAST, None, "success")], hang=True) for _ in range(5)
        ]
        await p.fault("duplicate_ids", count=2)
        events = await p.cycle()
        assert sorted(e.job_id or "" for e in events) == sorted(jobs)
        assert p.types(events) == ["job.started"] * 5


async def test_full_strategy_sees_the_same_transitions(tmp_path: Path) -> None:
    async with pipeline(tmp_path, strategy="full", page_size=3) as p:
        await p.cycle()
        job = await p.script_job("aws", [(AWS_EAST, 2, DENIED)])
        assert p.types(await p.cycle()) == ["job.started"]
        p.clock.advance(3)
        events = await p.cycle()
        assert [(e.type.value, e.job_id) for e in events] == [
            ("job.domain_failed", job),
            ("job.failed", job),
        ]
        assert await p.cycle() == []  # history is not news, cycle after cycle


async def test_restart_emits_exactly_the_missed_transitions(tmp_path: Path) -> None:
    clock = FakeClock(autojump=True)
    config = SimConfig(sources=("aws",), history=5)
    async with running_simulator(config, clock=clock.time) as sim:
        async with pipeline(tmp_path, clock=clock, running_sim=sim) as first:
            await first.cycle()
            running = await first.script_job("aws", [(AWS_EAST, 20, "success")])
            await first.cycle()
            seen_ids = {e.id for e in first.events}
        # the daemon is down: one job ends, one starts and ends, one starts
        async with pipeline(tmp_path, clock=clock, running_sim=sim) as down:
            quick = await down.script_job("aws", [(AWS_EAST, 5, DENIED)])
            clock.advance(30)
            later = await down.script_job("aws", [(AWS_WEST, None, "success")], hang=True)
        async with pipeline(tmp_path, clock=clock, running_sim=sim) as second:
            events = await second.cycle()
            got = sorted((e.job_id or "", e.type.value) for e in events)
            assert got == sorted(
                [
                    (running, "job.completed"),
                    (quick, "job.started"),
                    (quick, "job.domain_failed"),
                    (quick, "job.failed"),
                    (later, "job.started"),
                ]
            )
            assert not seen_ids & {e.id for e in events}
            assert await second.cycle() == []


async def test_lively_run_matches_the_ground_truth(tmp_path: Path) -> None:
    """The invariant, against the simulator's own log of what it did."""
    sources = ("aws", "gcp", "dsm")
    config = SimConfig(
        sources=sources,
        history=3,
        running=3,
        job_rate=30.0,
        seed=11,
        scope_seconds=(1.0, 20.0),
        failure_probability=0.3,
        cancel_probability=0.2,
    )
    async with pipeline(tmp_path, sources=sources, sim=config, page_size=5) as p:
        await p.cycle()
        baseline = await p.transitions()
        baseline_jobs = {t["job_id"] for t in baseline}
        for _ in range(40):
            p.clock.advance(3)
            await p.cycle()
        await p.control("PATCH", "/sim/v1/config", {"job_rate": 0})
        for _ in range(20):  # let everything finish
            p.clock.advance(30)
            await p.cycle()
        truth = await p.transitions()

    created = {t["job_id"] for t in truth if t["kind"] == "created"} - baseline_jobs
    finished = {t["job_id"]: t for t in truth if t["kind"] == "finished"}
    assert len(created) > 20
    per_job: dict[str, list[str]] = defaultdict(list)
    for e in p.events:
        per_job[e.job_id or ""].append(e.type.value)
    for job in created:
        kinds = per_job[job]
        assert kinds[0] == "job.started", (job, kinds)
        terminal = [k for k in kinds if EventType(k) in TERMINAL_EVENTS]
        assert terminal == [kinds[-1]], (job, kinds)
        end = finished[job]
        expected = (
            "job.aborted"
            if end["abort"]
            else "job.completed"
            if end["status"] == "completed"
            else "job.failed"
        )
        assert kinds[-1] == expected, (job, kinds, end)
        failed_scopes = {
            t["scope"]
            for t in truth
            if t["job_id"] == job
            and t["kind"] == "scope_finished"
            and not t["status"].endswith("successfully")
        }
        assert kinds.count("job.domain_failed") == len(failed_scopes), (job, kinds)
    ids = Counter(e.id for e in p.events)
    assert max(ids.values()) == 1


async def test_manager_restart_connection_refused_for_a_minute(tmp_path: Path) -> None:
    """Refused connections for a minute: source.down, no false transition, then source.up
    and exactly what changed meanwhile."""
    clock = FakeClock(autojump=True)
    config = SimConfig(sources=("aws",), history=3)
    async with running_simulator(config, clock=clock.time) as sim:
        proxy = TcpProxy("127.0.0.1", sim.port)
        await proxy.up()
        async with pipeline(
            tmp_path, clock=clock, running_sim=sim, client={"url": proxy.url, "retries": 1}
        ) as p:
            await p.cycle()
            hanging = await p.script_job("aws", [(AWS_EAST, None, "success")], hang=True)
            ending = await p.script_job("aws", [(AWS_WEST, 40, DENIED)])
            assert p.types(await p.cycle()) == ["job.started", "job.started"]
            await proxy.down()
            outage: list[str] = []
            for _ in range(4):  # a minute of refused connections, a cycle every 15 s
                clock.advance(15)
                outage += p.types(await p.cycle())
            assert outage == ["source.down"]
            assert {reason for _, reason in p.recorder.failures} == {"connection"}
            assert set(p.pollers["aws"].running) == {hanging, ending}
            await proxy.up()
            events = await p.cycle()
            assert [(e.type.value, e.job_id) for e in events] == [
                ("job.domain_failed", ending),
                ("job.failed", ending),
                ("source.up", None),
            ]
            await proxy.down()


async def test_a_manager_that_ignores_sort_falls_back_to_full_listing(tmp_path: Path) -> None:
    """Oldest-first answers to sort=-createdAt: walking 'down to the watermark' would take
    old finished jobs for new ones; the poller notices and lists everything instead."""
    config = SimConfig(sources=("aws",), history=30, ignore_sort=True)
    async with pipeline(tmp_path, sim=config, page_size=5) as p:
        assert await p.cycle() == []
        assert p.recorder.strategy_changes == [("aws", "full")]
        assert p.pollers["aws"].strategy == "full"
        assert await p.cycle() == []  # history stays history
        job = await p.script_job("aws", [(AWS_EAST, 1, "success")])
        p.clock.advance(5)
        events = await p.cycle()
        assert [(e.type.value, e.job_id) for e in events] == [
            ("job.started", job),
            ("job.completed", job),
        ]
        assert p.recorder.strategy_changes == [("aws", "full")]  # said once
