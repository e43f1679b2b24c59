"""Scope freshness as a matrix: outcomes, their times, targets, stale/fresh transitions.

Expectations come from the issue and contract.md ("Second round"), not from the module.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from monitor.freshness import (
    FreshnessRule,
    ScopeRecord,
    Targets,
    judge_scopes,
    observe,
    outcome,
    outcome_time,
    target_for,
)
from monitor.model import event_id, format_timestamp
from tests.factories import MANAGER, SUCCESS_TEXT, T0, at, snap

A = "123456789012/us-east-1"
B = "123456789012/eu-west-1"
DENIED = "AccessDeniedException: User is not authorized"
H = timedelta(hours=1)
EVT_ID = re.compile(r"^evt_[0-9a-f]{32}$")
SCOPE_DATA_KEYS = {
    "manager",
    "source",
    "scope",
    "last_success_at",
    "last_failure_at",
    "max_age_seconds",
    "age_seconds",
}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("region synchronized successfully", "success"),
        ("Synchronized Successfully ", "success"),
        (DENIED, "failure"),
        ("failed", "failure"),
        ("in_progress", None),
        ("In Progress", None),
        ("", None),
    ],
)
def test_outcome_of_a_detailed_status_value(value: str, expected: str | None) -> None:
    assert outcome(value) == expected


NOW = at(10 * 3600)

TIME_CASES = {
    # snapshot -> when its outcomes count
    "finished_completed_at": (
        snap("completed", created_at=T0, updated_at=at(90), completed_at=at(60)),
        at(60),
    ),
    "finished_no_completed_at": (snap("failed", created_at=T0, updated_at=at(90)), at(90)),
    "finished_no_stamps": (snap("completed", created_at=None), NOW),
    "running_counts_at_creation": (snap("in_progress", created_at=T0, updated_at=at(500)), T0),
    "running_without_creation_waits": (snap("in_progress", created_at=None), None),
    "future_stamp_is_now": (snap("completed", completed_at=NOW + H), NOW),
}


@pytest.mark.parametrize("name", TIME_CASES, ids=str)
def test_outcome_time(name: str) -> None:
    snapshot, expected = TIME_CASES[name]
    assert outcome_time(snapshot, NOW) == expected


def test_observe_records_successes_failures_and_first_sightings() -> None:
    job = snap(
        "completed",
        completed_at=at(60),
        detailed={A: SUCCESS_TEXT, B: DENIED, "c/x": "in_progress"},
    )
    result = observe({}, "aws", [job], NOW)
    assert result.changed == {
        ("aws", A): ScopeRecord(first_seen=at(60), last_success=at(60)),
        ("aws", B): ScopeRecord(first_seen=at(60), last_failure=at(60)),
        ("aws", "c/x"): ScopeRecord(first_seen=at(60)),
    }
    assert result.dropped == 0


def test_times_only_move_forward() -> None:
    known = {("aws", A): ScopeRecord(first_seen=T0, last_success=at(600))}
    older = snap("completed", completed_at=at(60), detailed={A: SUCCESS_TEXT})
    assert observe(known, "aws", [older], NOW).changed == {}
    newer = snap("completed", completed_at=at(900), detailed={A: SUCCESS_TEXT})
    assert observe(known, "aws", [newer], NOW).changed == {
        ("aws", A): ScopeRecord(first_seen=T0, last_success=at(900))
    }


def test_the_same_scope_key_of_two_sources_is_two_scopes() -> None:
    job = snap("completed", completed_at=at(60), detailed={"kv-1": SUCCESS_TEXT})
    first = observe({}, "azure", [job], NOW).changed
    second = observe(first, "azure_secrets", [job], NOW).changed
    assert set(first) | set(second) == {("azure", "kv-1"), ("azure_secrets", "kv-1")}


def test_the_cap_counts_instead_of_tracking() -> None:
    known = {("aws", A): ScopeRecord(first_seen=T0)}
    job = snap(
        "completed",
        completed_at=at(60),
        detailed={A: SUCCESS_TEXT, B: SUCCESS_TEXT, "x": SUCCESS_TEXT, "y": DENIED},
    )
    result = observe(known, "aws", [job], NOW, max_scopes=2)
    assert set(result.changed) == {("aws", A), ("aws", B)}  # B fills the cap
    assert result.dropped == 2  # "x" and "y": the known scope A is still updated


# --- targets -----------------------------------------------------------------------------------

RULES = (
    FreshnessRule(source="aws", scope="123456789012/*", max_age_seconds=3600),
    FreshnessRule(source="aws", max_age_seconds=7200),
    FreshnessRule(source="azure*", scope="kv-ignored", max_age_seconds=None),
)

TARGET_CASES = {
    # source, scope, periods -> target
    "first_rule_wins": ("aws", A, {}, 3600),
    "second_rule": ("aws", "999/us-east-1", {}, 7200),
    "rule_beats_schedule": ("aws", A, {"aws": 86400.0}, 3600),
    "glob_on_source": ("azure_secrets", "kv-ignored", {"azure_secrets": 3600.0}, None),
    "schedule_default": ("gcp", "ring-1", {"gcp": 86400.0}, 2 * 86400 + 900),
    "nothing": ("gcp", "ring-1", {}, None),
    "case_sensitive": ("AWS", A, {}, None),
}


@pytest.mark.parametrize("name", TARGET_CASES, ids=str)
def test_targets(name: str) -> None:
    source, scope, periods, expected = TARGET_CASES[name]
    assert target_for(source, scope, RULES, periods, 900.0) == expected
    assert Targets(RULES, periods, 900.0).target(source, scope) == expected


# --- stale / fresh ----------------------------------------------------------------------------

TARGET = 3600.0
ONE_RULE = Targets([FreshnessRule(max_age_seconds=TARGET)])

STALE_CASES = {
    # record, now, targets -> (event type or None, stale after)
    "young_success": (ScopeRecord(T0, last_success=T0), at(3600), ONE_RULE, (None, False)),
    "old_success": (ScopeRecord(T0, last_success=T0), at(3601), ONE_RULE, ("scope.stale", True)),
    "never_succeeded_old": (
        ScopeRecord(T0, last_failure=at(10)),
        at(3601),
        ONE_RULE,
        ("scope.stale", True),
    ),
    "never_succeeded_young": (ScopeRecord(T0), at(60), ONE_RULE, (None, False)),
    "no_target": (ScopeRecord(T0, last_success=T0), at(10**6), Targets(), (None, False)),
    "stale_stays": (
        ScopeRecord(T0, last_success=T0, stale=True, episode="e"),
        at(7200),
        ONE_RULE,
        (None, True),
    ),
    "stale_then_success": (
        ScopeRecord(T0, last_success=at(7000), stale=True, episode="e"),
        at(7200),
        ONE_RULE,
        ("scope.fresh", False),
    ),
    "stale_then_target_removed": (
        ScopeRecord(T0, last_success=T0, stale=True, episode="e"),
        at(7200),
        Targets(),
        ("scope.fresh", False),
    ),
}


@pytest.mark.parametrize("name", STALE_CASES, ids=str)
def test_stale_fresh_matrix(name: str) -> None:
    record, now, targets, (kind, stale) = STALE_CASES[name]
    key = ("aws", A)
    result = judge_scopes(MANAGER, {key: record}, targets, now)
    assert [e.type for e in result.events] == ([] if kind is None else [kind])
    assert result.changed.get(key, record).stale is stale
    for event in result.events:
        assert EVT_ID.match(event.id)
        assert set(event.data) == SCOPE_DATA_KEYS
        assert (event.manager, event.source, event.job_id, event.timestamp) == (
            MANAGER,
            "aws",
            None,
            now,
        )
        assert event.data["scope"] == A
        assert event.data["max_age_seconds"] == targets.target("aws", A)
        assert event.data["last_success_at"] == (
            None if record.last_success is None else format_timestamp(record.last_success)
        )


def test_nothing_is_decided_while_the_manager_or_the_source_is_down() -> None:
    records = {("aws", A): ScopeRecord(T0, last_success=T0)}
    down = judge_scopes(MANAGER, records, ONE_RULE, at(10**5), manager_up=False)
    assert (down.changed, down.events) == ({}, [])
    source_down = judge_scopes(MANAGER, records, ONE_RULE, at(10**5), down_sources={"aws"})
    assert (source_down.changed, source_down.events) == ({}, [])


def test_stale_and_fresh_ids_name_the_episode() -> None:
    key = ("aws", A)
    records = {key: ScopeRecord(T0, last_success=T0)}
    stale = judge_scopes(MANAGER, records, ONE_RULE, at(4000))
    again = judge_scopes(MANAGER, records, ONE_RULE, at(5000))  # a restart re-judging
    assert stale.events[0].id == again.events[0].id
    episode = format_timestamp(T0)
    assert stale.events[0].id == event_id(MANAGER, "scope.stale", "aws", A, episode)
    records = {key: stale.changed[key]}
    success = snap("completed", completed_at=at(4500), detailed={A: SUCCESS_TEXT})
    records.update(observe(records, "aws", [success], at(4600)).changed)
    fresh = judge_scopes(MANAGER, records, ONE_RULE, at(4600))
    assert [e.type for e in fresh.events] == ["scope.fresh"]
    assert fresh.events[0].id == event_id(MANAGER, "scope.fresh", "aws", A, episode)
    records.update(fresh.changed)
    later = judge_scopes(MANAGER, records, ONE_RULE, at(4500 + 3601))
    assert later.events[0].id == event_id(
        MANAGER, "scope.stale", "aws", A, format_timestamp(at(4500))
    )
    assert later.events[0].id != stale.events[0].id
