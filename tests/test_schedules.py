"""The schedule judge as a matrix: every rule of "what counts as missed" is a row.

Expectations are written from contract.md / cckm-api.md / the issue, not read back from
monitor/schedules.py. Times: D is Monday 2026-11-23 02:00 UTC, the due time of the daily
schedule ``0 2 * * *``; the grace is 15 minutes.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.cm.scheduler import ScheduleConfig, SchedulerRun
from monitor.model import Event, event_id, format_timestamp
from monitor.schedules import (
    MAX_DUE_TIMES,
    SCHEDULE_DATA_KEYS,
    RunsState,
    ScheduleState,
    SourceJobs,
    cron_error,
    due_times,
    judge_runs,
    judge_schedules,
    missed_schedule_for,
    next_due,
    period_seconds,
    remember_jobs,
    source_periods,
)

MANAGER = "prod"
D = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # a Monday
GRACE = 900.0
G = timedelta(seconds=GRACE)
H = timedelta(hours=1)
M = timedelta(minutes=1)
S = timedelta(seconds=1)
EVT_ID = re.compile(r"^evt_[0-9a-f]{32}$")


def sched(**changes: Any) -> ScheduleConfig:
    base = ScheduleConfig(
        id="cfg-1",
        name="aws-nightly",
        operation="cckm_synchronization",
        run_at="0 2 * * *",
        disabled=False,
        start_date=None,
        end_date=None,
        cloud_name="aws",
        source="aws",
        scopes=("kms-prod",),
        synchronize_all=False,
        created_at=D - timedelta(days=30),
        updated_at=D - timedelta(days=30),
    )
    return replace(base, **changes)


def jobs(*created: datetime, seen_until: datetime | None = None) -> SourceJobs:
    return SourceJobs(tuple(sorted(created)), seen_until or datetime(2100, 1, 1, tzinfo=UTC))


def judged(schedule: ScheduleConfig, judged_until: datetime, **changes: Any) -> ScheduleState:
    """A state as left by a judgement of the same schedule up to ``judged_until``."""
    return ScheduleState(
        schedule=schedule, changed_at=D - timedelta(days=1), judged_until=judged_until, **changes
    )


def due_ats(events: list[Event]) -> list[str]:
    return [e.data["due_at"] for e in events if e.type == "schedule.missed"]


def iso(moment: datetime) -> str:
    return format_timestamp(moment)


# --- cron: due times ---------------------------------------------------------------------

DUE_CASES = {
    # run_at, window (after, until], expected due times
    "daily": ("0 2 * * *", D - H, D + 2 * H, [D]),
    "daily_until_is_inclusive": ("0 2 * * *", D - H, D, [D]),
    "daily_after_is_exclusive": ("0 2 * * *", D, D + 2 * H, []),
    "question_mark_weekday": ("0 2 ? * MON", D - timedelta(days=7) + H, D + H, [D]),
    "question_mark_day_of_month": ("0 2 23 * ?", D - H, D + H, [D]),
    "weekday_name_other_day": ("0 2 ? * TUE", D - H, D + H, []),
    "month_and_day_names": ("0 2 * NOV MON-FRI", D - H, D + H, [D]),
    "month_name_other_month": ("0 2 * DEC *", D - H, D + H, []),
    "lower_case_names": ("0 2 * nov mon", D - H, D + H, [D]),
    "steps": ("*/20 2 * * *", D - H, D + H, [D, D + 20 * M, D + 40 * M]),
    "ranges_and_lists": (
        "0,30 1-2 * * *",
        D - 2 * H,
        D + H,
        [D - H, D - H + 30 * M, D, D + 30 * M],
    ),
    "sunday_as_7": ("0 2 * * 7", D - timedelta(days=2), D, [D - timedelta(days=1)]),
    "macro_daily": ("@daily", D - 3 * H, D, [D - 2 * H]),
    "extra_blanks": ("  0  2 * * *  ", D - H, D + H, [D]),
}


@pytest.mark.parametrize("case", DUE_CASES, ids=str)
def test_due_times(case: str) -> None:
    run_at, after, until, expected = DUE_CASES[case]
    assert cron_error(run_at) is None
    found = due_times(run_at, after=after, until=until)
    assert list(found.times) == expected
    assert not found.capped
    assert all(t.tzinfo is not None and t.utcoffset() == timedelta(0) for t in found.times)


def test_due_times_since_is_inclusive_and_bounds() -> None:
    found = due_times("*/20 2 * * *", after=None, until=D + H, since=D + 20 * M)
    assert list(found.times) == [D + 20 * M, D + 40 * M]


def test_due_times_keep_the_most_recent_within_the_limit() -> None:
    found = due_times("* * * * *", after=D - timedelta(days=7), until=D, limit=5)
    assert list(found.times) == [D - 4 * M, D - 3 * M, D - 2 * M, D - M, D]
    assert found.capped


INVALID_CRONS = {
    "empty": "",
    "words": "every night",
    "six_fields": "0 0 2 * * *",
    "four_fields": "0 2 * *",
    "minute_out_of_range": "61 * * * *",
    "step_zero": "*/0 * * * *",
    "never_exists": "0 0 31 2 *",
    "hashed": "H 2 * * *",
    "control_character": "0 2 * * *\x00",
    "unknown_macro": "@fortnightly",
    "non_ascii": "0 2 * * lündi",
}


@pytest.mark.parametrize("case", INVALID_CRONS, ids=str)
def test_an_unreadable_run_at_is_a_state_not_an_exception(case: str) -> None:
    run_at = INVALID_CRONS[case]
    reason = cron_error(run_at)
    assert reason is not None
    assert reason.startswith("run_at ")
    assert due_times(run_at, after=None, until=D).times == ()
    schedule = sched(run_at=run_at)
    assert next_due(schedule, D) is None
    assert period_seconds(run_at, D) is None
    result = judge_schedules(
        MANAGER, {}, [schedule], {"aws": jobs()}, D + H, grace_seconds=GRACE, first_cycle=True
    )
    state = result.states["cfg-1"]
    assert (state.status, state.error, result.events) == ("invalid", reason, [])


# --- missed: the matrix --------------------------------------------------------------------


@dataclass(frozen=True)
class MissCase:
    schedule: ScheduleConfig = field(default_factory=sched)
    jobs: tuple[datetime, ...] = ()
    now: datetime = D + H
    seen_until: datetime | None = None
    previous: str = "judged"  # judged (up to D - 1h) | none (first seen) | first (first start)
    manager_up: bool = True
    polled: bool = True  # the source is in ``jobs``
    missed: tuple[datetime, ...] = ()
    status: str = "ok"
    judged_until: datetime | None = None  # default: now - grace, or unchanged when nothing


MISS_CASES = {
    "job_at_T": MissCase(jobs=(D,)),
    "job_at_T_plus_grace": MissCase(jobs=(D + G,)),
    "job_inside_window": MissCase(jobs=(D + 5 * M,)),
    "job_just_after_grace": MissCase(jobs=(D + G + S,), missed=(D,)),  # late: resolves at once
    "job_just_before_T": MissCase(jobs=(D - S,), missed=(D,), status="missed"),
    "no_job": MissCase(missed=(D,), status="missed"),
    "grace_not_yet_passed": MissCase(now=D + G - S),  # judged up to D - 1 s: D waits
    "grace_passed_exactly": MissCase(now=D + G, missed=(D,), status="missed"),
    "job_list_known_only_before_grace": MissCase(seen_until=D + 10 * M),  # D waits
    "job_list_known_past_grace": MissCase(seen_until=D + G, missed=(D,), status="missed"),
    "disabled": MissCase(
        schedule=sched(disabled=True), previous="none", status="disabled", judged_until=None
    ),
    "due_before_start_date": MissCase(schedule=sched(start_date=D + S)),
    "due_at_start_date": MissCase(schedule=sched(start_date=D), missed=(D,), status="missed"),
    "end_date_after_now": MissCase(
        schedule=sched(end_date=D + 2 * H), missed=(D,), status="missed"
    ),
    "ended": MissCase(
        schedule=sched(end_date=D + 30 * M), previous="none", status="disabled", judged_until=None
    ),
    "question_mark_due": MissCase(
        schedule=sched(run_at="0 2 ? * MON"), missed=(D,), status="missed"
    ),
    "question_mark_not_due": MissCase(schedule=sched(run_at="0 2 ? * TUE")),
    "names_due": MissCase(schedule=sched(run_at="0 2 * NOV MON"), missed=(D,), status="missed"),
    "steps_each_due_time": MissCase(
        schedule=sched(run_at="*/20 2 * * *"),
        jobs=(D + 21 * M,),  # covers D+20 only
        now=D + H + 5 * M,
        missed=(D, D + 40 * M),
        status="missed",
    ),
    "manager_down": MissCase(manager_up=False, judged_until=D - H),
    "source_not_polled": MissCase(polled=False, judged_until=D - H),
    "unknown_cloud": MissCase(
        schedule=sched(cloud_name="alibaba", source=None), status="unwatched", judged_until=D - H
    ),
    "new_schedule_created_after_T": MissCase(schedule=sched(created_at=D + 5 * M), previous="none"),
    "new_schedule_created_before_T": MissCase(
        schedule=sched(created_at=D - 5 * M), previous="none", missed=(D,), status="missed"
    ),
    "new_schedule_creation_unknown": MissCase(schedule=sched(created_at=None), previous="none"),
    "first_start_judges_the_latest": MissCase(
        schedule=sched(run_at="0 * * * *"),
        now=D + 5 * H,
        previous="first",
        missed=(D + 4 * H,),  # D+4h45 is the cutoff: D..D+3h are history
        status="missed",
    ),
    "first_start_latest_covered": MissCase(
        schedule=sched(run_at="0 * * * *"),
        jobs=(D + 4 * H + M,),
        now=D + 5 * H,
        previous="first",
    ),
    "first_start_created_after_latest": MissCase(
        schedule=sched(run_at="0 * * * *", created_at=D + 4 * H + M),
        now=D + 5 * H,
        previous="first",
    ),
    "first_start_already_disabled": MissCase(
        schedule=sched(disabled=True), previous="first", status="disabled", judged_until=None
    ),
}


def run_case(case: MissCase) -> tuple[ScheduleState, list[Event]]:
    previous: dict[str, ScheduleState] = {}
    if case.previous == "judged":
        previous["cfg-1"] = judged(case.schedule, D - H)
    source_jobs = {"aws": jobs(*case.jobs, seen_until=case.seen_until)} if case.polled else {}
    result = judge_schedules(
        MANAGER,
        previous,
        [case.schedule],
        source_jobs,
        case.now,
        grace_seconds=GRACE,
        first_cycle=case.previous == "first",
        manager_up=case.manager_up,
    )
    return result.states["cfg-1"], result.events


@pytest.mark.parametrize("name", MISS_CASES, ids=str)
def test_missed_matrix(name: str) -> None:
    case = MISS_CASES[name]
    state, events = run_case(case)
    assert {e.type for e in events} <= {"schedule.missed"}
    assert due_ats(events) == [iso(t) for t in case.missed]
    assert state.status == case.status
    if case.judged_until is not None or case.status == "disabled":
        assert state.judged_until == case.judged_until
    else:
        cutoff = min(case.now, case.seen_until or case.now) - G
        assert state.judged_until == cutoff
    for event in events:
        check_schedule_event(event, case.schedule, now=case.now)
        assert event.data["grace_seconds"] == GRACE
        assert event.id == event_id(
            MANAGER, "schedule.missed", case.schedule.id, event.data["due_at"]
        )


def check_schedule_event(event: Event, schedule: ScheduleConfig, *, now: datetime) -> None:
    """What every schedule event carries (contract.md, "Second round")."""
    assert EVT_ID.match(event.id)
    assert tuple(event.data) == SCHEDULE_DATA_KEYS
    assert event.timestamp == now
    assert (event.manager, event.source, event.job_id) == (MANAGER, schedule.source, None)
    assert event.data["manager"] == MANAGER
    assert event.data["source"] == schedule.source
    assert event.data["schedule"] == {
        "id": schedule.id,
        "name": schedule.name,
        "run_at": schedule.run_at,
        "cloud_name": schedule.cloud_name,
    }


# --- across cycles ---------------------------------------------------------------------------


def cycle_through(
    schedule: ScheduleConfig,
    moments: list[datetime],
    created: tuple[datetime, ...] = (),
    *,
    up: set[int] | None = None,
) -> tuple[list[Event], dict[str, ScheduleState]]:
    states: dict[str, ScheduleState] = {}
    events: list[Event] = []
    for index, now in enumerate(moments):
        known = tuple(t for t in created if t <= now)
        result = judge_schedules(
            MANAGER,
            states,
            [schedule],
            {"aws": jobs(*known, seen_until=now)},
            now,
            grace_seconds=GRACE,
            first_cycle=index == 0,
            manager_up=up is None or index in up,
        )
        states = result.states
        events.extend(result.events)
    return events, states


def test_each_due_time_is_judged_once_across_cycles() -> None:
    hourly = sched(run_at="0 * * * *")
    moments = [D + k * 5 * M for k in range(12 * 4)]  # every 5 minutes for 4 hours
    events, _ = cycle_through(hourly, moments)
    # the first cycle (at D) judges the latest due time past its grace, D - 1h
    assert due_ats(events) == [iso(D + k * H) for k in range(-1, 4)]
    assert len({e.id for e in events}) == len(events)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(min_value=1, max_value=200), min_size=1, max_size=12),
    st.lists(st.integers(min_value=-30, max_value=600), max_size=12),
)
def test_misses_do_not_depend_on_when_the_cycles_run(
    gaps: list[int], job_minutes: list[int]
) -> None:
    """Any cycle spacing finds exactly the misses the rules name, each once."""
    every_20 = sched(run_at="*/20 * * * *")
    created = tuple(D + m * M for m in job_minutes)
    moments = [D]
    for gap in gaps:
        moments.append(moments[-1] + gap * M)
    got, _ = cycle_through(every_20, moments, created)
    # the oracle: the first cycle judges the latest due time past grace (D - 20 min);
    # later, every due time whose grace has passed by the last cycle
    dues = [D - 20 * M + k * 20 * M for k in range(10_000)]
    judged_dues = [t for t in dues if t + G <= moments[-1]]
    want = [t for t in judged_dues if not any(t <= c <= t + G for c in created)]
    assert due_ats(got) == [iso(t) for t in want]
    assert len({e.id for e in got}) == len(got)


def test_no_decision_while_the_manager_is_down_then_judged_when_back() -> None:
    hourly = sched(run_at="0 * * * *")
    moments = [D, D + H + 20 * M, D + 2 * H + 20 * M, D + 3 * H + 20 * M]
    events, states = cycle_through(hourly, moments, up={0, 3})
    assert due_ats(events) == [iso(D + k * H) for k in range(-1, 4)]
    assert states["cfg-1"].judged_until == D + 3 * H + 5 * M


def test_manager_down_returns_the_state_untouched() -> None:
    previous = {"cfg-1": judged(sched(), D - H)}
    result = judge_schedules(
        MANAGER,
        previous,
        [],  # an empty read while down is not "every schedule deleted"
        {},
        D + H,
        grace_seconds=GRACE,
        first_cycle=False,
        manager_up=False,
    )
    assert (result.states, result.events) == (previous, [])


def test_downtime_look_back_is_capped() -> None:
    """A ``* * * * *`` schedule after a week: MAX_DUE_TIMES steps, the most recent ones."""
    every_minute = sched(run_at="* * * * *")
    now = D + timedelta(days=7)
    previous = {"cfg-1": judged(every_minute, D)}
    started = time.perf_counter()
    result = judge_schedules(
        MANAGER,
        previous,
        [every_minute],
        {"aws": jobs()},
        now,
        grace_seconds=GRACE,
        first_cycle=False,
    )
    elapsed = time.perf_counter() - started
    missed = due_ats(result.events)
    assert len(missed) == MAX_DUE_TIMES
    assert missed[-1] == iso(now - G)
    assert missed[0] == iso(now - G - (MAX_DUE_TIMES - 1) * M)
    assert result.capped == ("cfg-1",)
    assert result.states["cfg-1"].judged_until == now - G
    assert elapsed < 2.0  # 10,080 due times would take far longer; noisy machine: generous


def test_a_steady_schedule_is_not_capped() -> None:
    hourly = sched(run_at="0 * * * *")
    previous = {"cfg-1": judged(hourly, D)}
    result = judge_schedules(
        MANAGER,
        previous,
        [hourly],
        {"aws": jobs()},
        D + 2 * H,
        grace_seconds=GRACE,
        first_cycle=False,
    )
    assert (due_ats(result.events), result.capped) == ([iso(D + H)], ())


def test_the_next_job_resolves_a_miss_and_names_the_schedule() -> None:
    schedule = sched()
    first = judge_schedules(
        MANAGER,
        {"cfg-1": judged(schedule, D - H)},
        [schedule],
        {"aws": jobs()},
        D + H,
        grace_seconds=GRACE,
        first_cycle=False,
    )
    assert first.states["cfg-1"].status == "missed"
    assert missed_schedule_for(first.states, "aws", D + 2 * H) == schedule.ref()
    assert missed_schedule_for(first.states, "aws", D - S) is None  # before the miss
    assert missed_schedule_for(first.states, "azure", D + 2 * H) is None
    later = judge_schedules(
        MANAGER,
        first.states,
        [schedule],
        {"aws": jobs(D + 2 * H)},
        D + 3 * H,
        grace_seconds=GRACE,
        first_cycle=False,
    )
    state = later.states["cfg-1"]
    assert (state.status, state.open_miss, state.last_missed) == ("ok", None, D)
    assert state.last_job_at == D + 2 * H
    assert missed_schedule_for(later.states, "aws", D + 4 * H) is None
    assert later.events == []


# --- disabled / enabled ----------------------------------------------------------------------

NOW = D + 10 * M  # before D's grace: only transitions show

TRANSITIONS = {
    # previous schedule (None: deleted / not known), current (None: absent) -> events
    "turns_disabled": (sched(), sched(disabled=True), [("schedule.disabled", "disabled")]),
    "passes_end_date": (sched(), sched(end_date=NOW - S), [("schedule.disabled", "ended")]),
    "disappears": (sched(), None, [("schedule.disabled", "deleted")]),
    "enabled_again": (sched(disabled=True), sched(), [("schedule.enabled", None)]),
    "end_date_extended": (
        sched(end_date=NOW - 2 * H),
        sched(end_date=NOW + H),
        [("schedule.enabled", None)],
    ),
    "disabled_then_ended": (sched(disabled=True), sched(end_date=NOW - S), []),
    "disabled_then_deleted": (sched(disabled=True), None, []),
    "stays_active": (sched(), sched(name="renamed"), []),
    "stays_disabled": (sched(disabled=True), sched(disabled=True), []),
    "unwatched_turns_disabled": (
        sched(source=None, cloud_name="x"),
        sched(source=None, cloud_name="x", disabled=True),
        [],
    ),
}


@pytest.mark.parametrize("name", TRANSITIONS, ids=str)
def test_disabled_enabled_matrix(name: str) -> None:
    before, after, expected = TRANSITIONS[name]
    old = judge_schedules(MANAGER, {}, [before], {}, NOW - H, grace_seconds=GRACE, first_cycle=True)
    assert old.events == []  # first sight: state, not news
    result = judge_schedules(
        MANAGER,
        old.states,
        [] if after is None else [after],
        {},
        NOW,
        grace_seconds=GRACE,
        first_cycle=False,
    )
    assert [(e.type, e.data["reason"]) for e in result.events] == expected
    for event in result.events:
        check_schedule_event(event, after or before, now=NOW)
    state = result.states["cfg-1"]
    assert state.status == (
        "ok"
        if name in {"enabled_again", "end_date_extended", "stays_active"}
        else "disabled"  # an unwatched schedule's disabled state shows too
    )


def test_disabled_ids_are_per_episode_and_enabled_matches() -> None:
    states: dict[str, ScheduleState] = {}
    seen: list[Event] = []
    for k, disabled in enumerate([False, True, False, True]):
        result = judge_schedules(
            MANAGER,
            states,
            [sched(disabled=disabled)],
            {},
            NOW + k * M,
            grace_seconds=GRACE,
            first_cycle=k == 0,
        )
        states = result.states
        seen.extend(result.events)
    kinds = [e.type for e in seen]
    assert kinds == ["schedule.disabled", "schedule.enabled", "schedule.disabled"]
    assert seen[0].id != seen[2].id
    assert seen[0].id == event_id(MANAGER, "schedule.disabled", "cfg-1", "1")
    assert seen[1].id == event_id(MANAGER, "schedule.enabled", "cfg-1", "1")


def test_a_deleted_schedule_is_kept_then_pruned() -> None:
    first = judge_schedules(MANAGER, {}, [sched()], {}, NOW, grace_seconds=GRACE, first_cycle=True)
    gone = judge_schedules(
        MANAGER, first.states, [], {}, NOW, grace_seconds=GRACE, first_cycle=False
    )
    assert gone.states["cfg-1"].reason == "deleted"
    again = judge_schedules(
        MANAGER,
        gone.states,
        [],
        {},
        NOW + timedelta(days=29),
        grace_seconds=GRACE,
        first_cycle=False,
    )
    assert (again.events, again.states["cfg-1"].reason) == ([], "deleted")
    pruned = judge_schedules(
        MANAGER,
        gone.states,
        [],
        {},
        NOW + timedelta(days=31),
        grace_seconds=GRACE,
        first_cycle=False,
    )
    assert pruned.states == {}


def test_due_times_while_disabled_are_not_judged_after_enabling() -> None:
    off = sched(disabled=True)
    on = sched(updated_at=D + 3 * H)  # enabled again at D+3h
    first = judge_schedules(
        MANAGER,
        {"cfg-1": judged(sched(), D - H)},
        [off],
        {"aws": jobs()},
        D + H,
        grace_seconds=GRACE,
        first_cycle=False,
    )
    assert [e.type for e in first.events] == ["schedule.disabled"]
    later = judge_schedules(
        MANAGER,
        first.states,
        [on],
        {"aws": jobs()},
        D + timedelta(days=1, hours=1),
        grace_seconds=GRACE,
        first_cycle=False,
    )
    assert [e.type for e in later.events] == ["schedule.enabled", "schedule.missed"]
    assert due_ats(later.events) == [iso(D + timedelta(days=1))]  # not D


def test_a_changed_run_at_is_judged_from_its_change() -> None:
    hourly = sched(run_at="0 * * * *", updated_at=D + 2 * H + 30 * M)
    previous = {"cfg-1": judged(sched(), D - H)}
    result = judge_schedules(
        MANAGER,
        previous,
        [hourly],
        {"aws": jobs()},
        D + 4 * H,
        grace_seconds=GRACE,
        first_cycle=False,
    )
    assert due_ats(result.events) == [iso(D + 3 * H)]


# --- runs ----------------------------------------------------------------------------------


def run(
    run_id: str,
    status: str,
    created: datetime,
    *,
    config: str | None = "cfg-1",
    name: str | None = "aws-nightly",
) -> SchedulerRun:
    return SchedulerRun(run_id, name, "cckm_synchronization", status, created, "node-2", config)


STATES = {"cfg-1": ScheduleState(schedule=sched())}


def runs_after(
    first: list[SchedulerRun], second: list[SchedulerRun], states: dict[str, ScheduleState] = STATES
) -> list[Event]:
    state, events = judge_runs(MANAGER, None, first, states, D)
    assert events == []  # the first read: finished runs are history
    _, events = judge_runs(MANAGER, state, second, states, D + H)
    return events


RUN_CASES = {
    # first read, second read -> run ids announced
    "failed_at_first_start_is_history": (
        [run("r1", "failed", D - H)],
        [run("r1", "failed", D - H)],
        [],
    ),
    "in_progress_then_failed": ([run("r1", "in_progress", D)], [run("r1", "failed", D)], ["r1"]),
    "scheduled_then_aborted": ([run("r1", "scheduled", D)], [run("r1", "aborted", D)], ["r1"]),
    "new_failed_run": ([run("r0", "completed", D)], [run("r1", "failed", D + M)], ["r1"]),
    "new_run_at_the_watermark": ([run("r0", "completed", D)], [run("r1", "failed", D)], ["r1"]),
    "unknown_older_run_is_history": ([run("r0", "completed", D)], [run("r1", "failed", D - M)], []),
    "completed": ([run("r1", "in_progress", D)], [run("r1", "completed", D)], []),
    "cancelled_is_aborted": ([run("r1", "in_progress", D)], [run("r1", "cancelled", D)], ["r1"]),
    "unknown_word_is_running": ([run("r1", "in_progress", D)], [run("r1", "exploded", D)], []),
    "matched_by_name": (
        [run("r1", "in_progress", D, config=None)],
        [run("r1", "failed", D, config=None)],
        ["r1"],
    ),
    "matches_no_schedule": (
        [run("r1", "in_progress", D, config="other", name="other")],
        [run("r1", "failed", D, config="other", name="other")],
        [],
    ),
    "duplicate_in_one_read": (
        [run("r0", "completed", D)],
        [run("r1", "failed", D + M), run("r1", "failed", D + M)],
        ["r1"],
    ),
}


@pytest.mark.parametrize("name", RUN_CASES, ids=str)
def test_run_failed_matrix(name: str) -> None:
    first, second, expected = RUN_CASES[name]
    events = runs_after(first, second)
    assert [e.data["run_id"] for e in events] == expected
    for event in events:
        assert event.type == "schedule.run_failed"
        check_schedule_event(event, sched(), now=D + H)
        assert event.data["processing_node"] == "node-2"
        assert event.data["run_status"] in {"failed", "aborted", "cancelled"}
        assert event.id == event_id(MANAGER, "schedule.run_failed", "cfg-1", event.data["run_id"])


def test_a_failed_run_is_announced_once() -> None:
    state, _ = judge_runs(MANAGER, None, [run("r1", "in_progress", D)], STATES, D)
    state, events = judge_runs(MANAGER, state, [run("r1", "failed", D)], STATES, D + M)
    assert len(events) == 1
    state, events = judge_runs(MANAGER, state, [run("r1", "failed", D)], STATES, D + 2 * M)
    assert events == []
    assert state == RunsState(frozenset(), frozenset({"r1"}), D)


def test_runs_of_unwatched_schedules_are_ignored() -> None:
    unwatched = {"cfg-1": ScheduleState(schedule=sched(source=None, cloud_name="x"))}
    events = runs_after([run("r1", "in_progress", D)], [run("r1", "failed", D)], unwatched)
    assert events == []


def test_runs_wait_while_the_manager_is_down() -> None:
    state, _ = judge_runs(MANAGER, None, [run("r1", "in_progress", D)], STATES, D)
    same, events = judge_runs(MANAGER, state, [], STATES, D + M, manager_up=False)
    assert (same, events) == (state, [])


def test_a_run_stamped_in_the_future_does_not_hide_later_runs() -> None:
    state, _ = judge_runs(MANAGER, None, [run("r0", "completed", D + timedelta(days=1))], STATES, D)
    assert state.watermark == D
    _, events = judge_runs(MANAGER, state, [run("r1", "failed", D + M)], STATES, D + H)
    assert [e.data["run_id"] for e in events] == ["r1"]


# --- timing ----------------------------------------------------------------------------------

NEXT_CASES = {
    "daily": (sched(), D - H, D),
    "after_due": (sched(), D, D + timedelta(days=1)),
    "start_date_later": (sched(start_date=D + timedelta(days=3)), D, D + timedelta(days=3)),
    "start_date_between": (
        sched(start_date=D + timedelta(days=2, hours=1)),
        D,
        D + timedelta(days=3),
    ),
    "past_end_date": (sched(end_date=D + H), D + 2 * H, None),
    "next_after_end_date": (sched(end_date=D + H), D + 30 * M, None),
    "disabled": (sched(disabled=True), D - H, None),
    "question_mark": (sched(run_at="0 2 ? * FRI"), D, D + timedelta(days=4)),
}


@pytest.mark.parametrize("name", NEXT_CASES, ids=str)
def test_next_due(name: str) -> None:
    schedule, now, expected = NEXT_CASES[name]
    assert next_due(schedule, now) == expected


@pytest.mark.parametrize(
    ("run_at", "period"),
    [
        ("0 2 * * *", 86400.0),
        ("*/15 * * * *", 900.0),
        ("0 2 * * MON-FRI", 3 * 86400.0),  # the weekend gap
        ("0 2 ? * SUN", 7 * 86400.0),
        ("@hourly", 3600.0),
    ],
)
def test_period_is_the_longest_gap(run_at: str, period: float) -> None:
    assert period_seconds(run_at, D) == period


def test_source_periods_take_the_longest_active_schedule() -> None:
    schedules = [
        sched(id="a", run_at="0 * * * *"),
        sched(id="b", run_at="0 2 * * *"),
        sched(id="c", run_at="0 2 ? * SUN", disabled=True),
        sched(id="d", run_at="0 2 * * *", cloud_name="gcp", source="gcp"),
        sched(id="e", run_at="bad"),
        sched(id="f", source=None, cloud_name="x"),
    ]
    assert source_periods(schedules, D) == {"aws": 86400.0, "gcp": 86400.0}


def test_remember_jobs_merges_prunes_and_moves_forward() -> None:
    first = remember_jobs(None, [D, None, D - H], seen_until=D, keep_after=D - 2 * H)
    assert first == SourceJobs((D - H, D), D)
    second = remember_jobs(first, [D, D + H], seen_until=D - M, keep_after=D - 30 * M)
    assert second == SourceJobs((D, D + H), D)  # seen_until never moves back
    assert second.any_between(D, D) and not second.any_between(D + S, D + H - S)
    assert second.first_from(D + S) == D + H and second.first_from(D + 2 * H) is None
