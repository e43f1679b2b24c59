"""The list fast path (history rows merged with live jobs) against a brute-force order."""

from __future__ import annotations

import contextlib
import random

import pytest
from multidict import MultiDict

from monitor.clock import FakeClock
from monitor.simulator import SimConfig, SimState
from monitor.simulator.jobs import Job
from monitor.simulator.listing import Selection, parse_query
from monitor.simulator.state import JobError
from monitor.simulator.wire import rfc3339


def build(seed: int) -> SimState:
    """History rows, live jobs, jobs backdated into the history and deletions of both."""
    clock = FakeClock()
    state = SimState(SimConfig(seed=seed, history=40, running=3, sources=("aws",)), clock.time)
    rng = random.Random(seed)
    src = state.sources["aws"]
    assert src.history is not None
    for _ in range(8):
        moment = rng.choice([src.history.created[rng.randrange(40)], clock.time()])
        state.scripted({"source": "aws", "created_at": rfc3339(moment), "hang": True})
        if rng.random() < 0.5:
            clock.advance(rng.choice([0, 1, 30]))
    for _ in range(5):
        if rng.random() < 0.5 and src.live:
            state.delete("aws", rng.choice(src.live).job_id)
        else:
            with contextlib.suppress(JobError):  # the row may be gone already
                state.delete("aws", src.history.id_of(rng.randrange(40)))
    return state


def everything_newest_first(state: SimState) -> list[str]:
    src = state.sources["aws"]
    assert src.history is not None
    jobs: list[Job] = [src.history.job(row) for row in src.history.rows()] + list(src.live)
    jobs.sort(key=lambda job: (job.created, job.seq), reverse=True)
    return [job.job_id for job in jobs]


@pytest.mark.parametrize("seed", range(6))
def test_every_page_matches_the_brute_force_order(seed: int) -> None:
    state = build(seed)
    src = state.sources["aws"]
    expected = everything_newest_first(state)
    assert src.total == len(expected)
    for sort, order in (("-createdAt", expected), ("createdAt", expected[::-1])):
        fast = Selection(src, parse_query(MultiDict(sort=sort), "kms", 1000))
        slow = Selection(src, parse_query(MultiDict(sort=f"{sort},id"), "kms", 1000))
        assert fast.total == slow.total == len(order)
        for limit in (1, 3, 7, 100):
            for skip in range(0, len(order) + 2, limit):
                page = [job.job_id for job in fast.page(skip, limit)]
                assert page == order[skip : skip + limit], (sort, skip, limit)
        assert [job.job_id for job in slow.page(0, 1000)] == order


def test_history_ids_are_found_until_deleted() -> None:
    state = build(1)
    history = state.sources["aws"].history
    assert history is not None
    for row in range(history.count):
        job_id = history.id_of(row)
        found = state.sources["aws"].find(job_id)
        assert (found is None) == (row in history.deleted)
        if found is not None:
            assert found.job_id == job_id
    assert state.sources["aws"].find(history.id_of(0).upper().replace("-", "_")) is None
