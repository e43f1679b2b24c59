"""Properties of the differ over random job histories seen through random polling.

A simulated manager runs jobs on a discrete clock (one step a minute). Each job is a
sequence of versions: running versions (abort may turn true, scopes progress from
``in_progress`` to success or to a failure whose text may change), then terminal
versions; a job may also be deleted at any time (404 from then on). The monitor polls at
random steps, so it may miss versions, first see a job already finished, or never see a
short-lived job at all. Whatever happens, every job the monitor announces gets exactly
one ``job.started`` first and exactly one terminal event last, and no id twice.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import event as label
from hypothesis import strategies as st

from monitor.differ import diff_job, diff_source
from monitor.health import SourceHealth, diff_health
from monitor.model import Event, JobEssence, JobSnapshot
from tests.factories import (
    MANAGER,
    SOURCE,
    SUCCESS_TEXT,
    T0,
    expected_terminal,
    is_running_word,
    snap,
)

STEP = timedelta(minutes=1)
SCOPE_KEYS = ["123456789012/us-east-1", "123456789012/eu-west-1", "projects/p/locations/l"]
FAILURES = ["AccessDenied: no", "Throttling: slow down", "KMS disabled", "x" * 2000]
RUNNING = ["in_progress", "in progress", "In_Progress", "running"]
STOPPED = ["completed", "failed", "aborted", "cancelled", "errored", "Completed"]
TERMINAL = {"job.completed", "job.failed", "job.aborted", "job.vanished"}
SETTINGS = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def moment(step: int) -> datetime:
    return T0 + step * STEP


@dataclass(frozen=True)
class Job:
    job_id: str
    created: int  # step
    starts: tuple[int, ...]  # step at which each version begins (ascending)
    versions: tuple[JobSnapshot, ...]
    deleted: int | None  # step from which the manager answers 404

    def at(self, step: int) -> JobSnapshot | None:
        """What the manager returns for this job at ``step`` (None: not there)."""
        if step < self.created or (self.deleted is not None and step >= self.deleted):
            return None
        current = self.versions[0]
        for start, version in zip(self.starts, self.versions, strict=True):
            if start <= step:
                current = version
        return current

    @property
    def end(self) -> int:
        """The step from which the job is stopped (or gone) for good."""
        first_stop = next(
            s for s, v in zip(self.starts, self.versions, strict=True) if not v.running
        )
        return first_stop if self.deleted is None else min(first_stop, self.deleted)


@st.composite
def jobs(draw: st.DrawFn, job_id: str) -> Job:
    created = draw(st.integers(0, 30))
    n_running = draw(st.integers(0, 5))
    n_stopped = draw(st.integers(1, 3))
    n = n_running + n_stopped
    lengths = draw(st.lists(st.integers(1, 40), min_size=n, max_size=n))
    starts = [created + sum(lengths[:i]) for i in range(n)]
    abort_from = draw(st.none() | st.integers(0, n - 1))  # abort only ever turns true
    keys = draw(st.lists(st.sampled_from(SCOPE_KEYS), unique=True, max_size=3))
    trajectories: dict[str, list[str | None]] = {}
    for key in keys:
        appear = draw(st.integers(0, n - 1))
        settle = draw(st.integers(appear, n))  # n: still in progress at the end
        success = draw(st.booleans())
        messages = draw(st.lists(st.sampled_from(FAILURES), min_size=1, max_size=3))
        values: list[str | None] = []
        for i in range(n):
            if i < appear:
                values.append(None)
            elif i < settle:
                values.append(draw(st.sampled_from(["in_progress", "in progress"])))
            elif success:
                values.append(SUCCESS_TEXT)
            else:
                values.append(messages[min(i - settle, len(messages) - 1)])
        trajectories[key] = values
    versions = []
    first_stop = starts[n_running]
    for i in range(n):
        running = i < n_running
        word = draw(st.sampled_from(RUNNING if running else STOPPED))
        detailed = {k: value for k, v in trajectories.items() if (value := v[i]) is not None}
        versions.append(
            snap(
                word,
                job_id=job_id,
                abort=abort_from is not None and i >= abort_from,
                created_at=moment(created),
                updated_at=moment(starts[i]),
                completed_at=None if running else moment(first_stop),
                scopes=keys,
                detailed=detailed,
            )
        )
    deleted = draw(st.none() | st.integers(created, starts[-1] + 50))
    return Job(job_id, created, tuple(starts), tuple(versions), deleted)


@st.composite
def worlds(draw: st.DrawFn) -> tuple[list[Job], list[int], bool, float]:
    count = draw(st.integers(1, 6))
    world = [draw(jobs(f"job-{i}")) for i in range(count)]
    horizon = max(job.end for job in world) + 1
    polls = sorted(draw(st.sets(st.integers(0, horizon), max_size=12)) | {horizon + 1})
    first_is_baseline = draw(st.booleans())
    stuck_after = draw(st.sampled_from([0.0, 60.0, 600.0, 3600.0, 1e9]))
    return world, polls, first_is_baseline, stuck_after


def _check_job_history(job_id: str, events: list[Event], announced: bool) -> None:
    kinds = [str(e.type) for e in events]
    ids = [e.id for e in events]
    assert len(set(ids)) == len(ids), f"{job_id}: an id twice in {kinds}"
    terminals = [k for k in kinds if k in TERMINAL]
    assert len(terminals) == 1, f"{job_id}: {kinds}"
    assert kinds[-1] in TERMINAL, f"{job_id}: terminal not last in {kinds}"
    if announced:
        assert kinds.count("job.started") == 1, f"{job_id}: {kinds}"
        assert kinds[0] == "job.started", f"{job_id}: {kinds}"
    else:
        assert "job.started" not in kinds, f"{job_id}: baseline job announced: {kinds}"
    assert kinds.count("job.abort_requested") <= 1
    assert kinds.count("job.stuck") <= 1
    scopes = [e.data["scope"] for e in events if e.type == "job.domain_failed"]
    assert len(set(scopes)) == len(scopes)


@given(worlds(), st.randoms(use_true_random=False))
@SETTINGS
def test_random_histories_through_diff_source(
    world: tuple[list[Job], list[int], bool, float], rnd: random.Random
) -> None:
    jobs_, polls, first_is_baseline, stuck_after = world
    state: dict[str, JobEssence] = {}
    watermark: datetime | None = None
    emitted: dict[str, list[Event]] = defaultdict(list)
    baseline_jobs: set[str] = set()
    # what an observer of the manager's answers expects, independently of the differ
    expected_terminal_of: dict[str, str] = {}
    seen_running: set[str] = set()
    ignored: set[str] = set()

    for index, step in enumerate(polls):
        baseline = first_is_baseline and index == 0
        now = moment(step)
        listing = [s for s in (job.at(step) for job in jobs_) if s is not None]
        # paging shifts: the same job may be listed twice, in any order
        listing += rnd.sample(listing, k=rnd.randint(0, len(listing)))
        rnd.shuffle(listing)
        listed = {s.job_id for s in listing}
        gone = [j for j, e in state.items() if e.terminal is None and j not in listed]
        gone.append("never-seen-job")

        # the oracle: the first non-running sighting (or a 404) fixes the outcome
        for job in jobs_:
            current = job.at(step)
            jid = job.job_id
            if jid in expected_terminal_of or jid in ignored:
                continue
            if current is None:
                if jid in seen_running:
                    expected_terminal_of[jid] = "job.vanished"
                continue
            if current.running:
                if jid not in seen_running and baseline:
                    baseline_jobs.add(jid)
                seen_running.add(jid)
            elif jid not in seen_running and baseline:
                ignored.add(jid)  # finished before the first start: history
            else:
                expected_terminal_of[jid] = expected_terminal(current.status, current.abort)

        result = diff_source(
            MANAGER,
            SOURCE,
            state,
            listing,
            gone,
            now,
            stuck_after_seconds=stuck_after,
            baseline=baseline,
            watermark=watermark,
        )
        # determinism: the same inputs give the very same answer
        again = diff_source(
            MANAGER,
            SOURCE,
            state,
            list(reversed(listing)),
            gone,
            now,
            stuck_after_seconds=stuck_after,
            baseline=baseline,
            watermark=watermark,
        )
        assert again == result

        for event in result.events:
            assert event.job_id is not None
            assert event.timestamp == now
            emitted[event.job_id].append(event)
        for jid, essence in result.changed.items():
            assert state.get(jid) != essence
        state = {**state, **result.changed}
        assert result.watermark is not None or watermark is None
        if watermark is not None and result.watermark is not None:
            assert result.watermark >= watermark
        watermark = result.watermark

        # a restart re-diffs the same answer against what was stored: silence, except
        # that the first start defers job.stuck of the jobs it recorded to the next cycle
        replay = diff_source(
            MANAGER,
            SOURCE,
            state,
            listing,
            gone,
            now,
            stuck_after_seconds=stuck_after,
            baseline=False,
            watermark=watermark,
        )
        if baseline:
            assert all(e.type == "job.stuck" and e.job_id in baseline_jobs for e in replay.events)
            assert set(replay.changed) == {e.job_id for e in replay.events}
        else:
            assert replay.events == []
            assert replay.changed == {}
        assert replay.watermark == watermark

    assert set(emitted) <= set(expected_terminal_of)
    for jid, expected in expected_terminal_of.items():
        events = emitted[jid]
        for kind in {str(e.type) for e in events}:
            label(kind)
        _check_job_history(jid, events, announced=jid not in baseline_jobs)
        assert str(events[-1].type) == expected, (jid, [str(e.type) for e in events])
    for jid in ignored:
        assert jid not in emitted
    # every tracked job reached its end: nothing is left running in the state
    assert all(e.terminal is not None for e in state.values())


@given(jobs("solo"), st.data())
@SETTINGS
def test_one_job_through_diff_job(job: Job, data: st.DataObject) -> None:
    """The same property one job at a time (cleaner shrinking)."""
    last = job.end + 1
    polls = sorted(data.draw(st.sets(st.integers(0, last), max_size=10)) | {last})
    baseline_first = data.draw(st.booleans())
    stuck_after = data.draw(st.sampled_from([0.0, 120.0, 1e9]))
    state: JobEssence | None = None
    events: list[Event] = []
    first_sighting: JobSnapshot | None = None
    first_index = -1
    for index, step in enumerate(polls):
        current = job.at(step)
        if first_sighting is None and current is not None:
            first_sighting, first_index = current, index
        baseline = baseline_first and index == 0
        state, new = diff_job(
            MANAGER,
            SOURCE,
            state,
            current,
            moment(step),
            stuck_after_seconds=stuck_after,
            baseline=baseline,
        )
        if baseline and current is not None and not current.running:
            # finished before the first start: not remembered by diff_job; recognising
            # it later is the watermark's job, which test_random_histories covers
            assert (state, new) == (None, [])
            return
        events.extend(new)
        again, repeated = diff_job(
            MANAGER,
            SOURCE,
            state,
            current,
            moment(step),
            stuck_after_seconds=stuck_after,
        )
        if baseline and state is not None:  # the first start defers job.stuck
            assert [str(e.type) for e in repeated] in ([], ["job.stuck"])
        else:
            assert repeated == []
            assert again == state

    if first_sighting is None:  # created and deleted between two polls
        assert events == []
        assert state is None
        return
    baseline = baseline_first and first_index == 0
    _check_job_history(job.job_id, events, announced=not baseline)
    assert state is not None
    assert state.terminal == str(events[-1].type)
    assert state.baseline is baseline
    if state.terminal != "job.vanished":
        stopped = state.snapshot
        assert not stopped.running
        assert state.terminal == expected_terminal(stopped.status, stopped.abort)
    # stuck only ever for a job seen running
    if any(e.type == "job.stuck" for e in events):
        stuck = next(e for e in events if e.type == "job.stuck")
        assert is_running_word(stuck.data["status"])


@given(st.lists(st.booleans(), max_size=60))
def test_health_sequences(outcomes: list[bool]) -> None:
    health = SourceHealth()
    kinds: list[str] = []
    ids: list[str] = []
    run = 0
    expected: list[str] = []
    for ok in outcomes:
        if ok:
            if run >= 3:
                expected.append("source.up")
            run = 0
        else:
            run += 1
            if run == 3:
                expected.append("source.down")
        health, events = diff_health(MANAGER, SOURCE, health, ok=ok, now=T0)
        kinds.extend(str(e.type) for e in events)
        ids.extend(e.id for e in events)
        assert health.consecutive_failures == run
        assert health.down is (run >= 3)
    assert kinds == expected
    assert len(set(ids)) == len(ids)
