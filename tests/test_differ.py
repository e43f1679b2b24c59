"""The differ as a matrix: previous essence x current snapshot x abort x scopes x age.

Every expectation here is written from contract.md / cckm-api.md, not read back from
the differ, so a change of behaviour shows up as a failing case with a readable id.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest

from monitor.differ import diff_job, diff_source
from monitor.health import DOWN_AFTER_FAILURES, SourceHealth, diff_health
from monitor.model import Event, JobEssence, JobSnapshot, format_timestamp
from tests.factories import (
    JOB_DATA_KEYS,
    MANAGER,
    SOURCE,
    STUCK_AFTER,
    SUCCESS_TEXT,
    T0,
    at,
    essence,
    expected_terminal,
    is_running_word,
    snap,
    types,
)

NOW = at(2 * 3600)
EVT_ID = re.compile(r"^evt_[0-9a-f]{32}$")

# --- the matrix axes ------------------------------------------------------------------

A = "123456789012/us-east-1"
B = "123456789012/eu-west-1"
C = "210987654321/ap-south-1"
IP = "in_progress"
DENIED = "AccessDeniedException: User is not authorized to perform kms:ListKeys"
THROTTLED = "ThrottlingException: Rate exceeded"


@dataclass(frozen=True)
class ScopeCase:
    before: dict[str, str]  # detailed_status of the previous snapshot
    after: dict[str, str]  # detailed_status of the current snapshot
    fails_if_new: tuple[str, ...]  # domain_failed scopes when the job was unknown
    fails_if_known: tuple[str, ...]  # domain_failed scopes when the job was tracked


SCOPE_CASES = {
    "unchanged": ScopeCase({A: IP, B: IP}, {A: IP, B: IP}, (), ()),
    "turns_failure": ScopeCase({A: IP, B: IP}, {A: DENIED, B: IP}, (A,), (A,)),
    "turns_success": ScopeCase({A: IP, B: IP}, {A: SUCCESS_TEXT, B: IP}, (), ()),
    "failed_stays": ScopeCase({A: DENIED, B: IP}, {A: DENIED, B: IP}, (A,), ()),
    "failed_changes": ScopeCase({A: DENIED, B: IP}, {A: THROTTLED, B: IP}, (A,), ()),
    "new_scope_fails": ScopeCase({A: IP}, {A: IP, C: DENIED}, (C,), (C,)),
    "two_turn_failure": ScopeCase(
        {A: IP, B: IP, C: SUCCESS_TEXT},
        {A: DENIED, B: THROTTLED, C: SUCCESS_TEXT},
        (B, A),  # in scope-key order: "...eu-west-1" < "...us-east-1"
        (B, A),
    ),
}

RUNNING_WORDS = ["in_progress", "in progress", "In_Progress", "running"]
STOPPED_WORDS = ["completed", "failed", "aborted", "cancelled", "canceled", "errored"]
CURRENT_WORDS: list[str | None] = [None, *RUNNING_WORDS, *STOPPED_WORDS]

TRACKED_KINDS = ["running", "running_abort", "running_stuck_reported", "baseline"]
TERMINAL_KINDS = ["completed", "failed", "aborted", "vanished"]
PREVIOUS_KINDS = ["unknown", *TRACKED_KINDS, *TERMINAL_KINDS]

AGES = {"young": NOW - timedelta(seconds=60), "old": NOW - timedelta(seconds=2 * 3600)}


def previous_essence(kind: str, scopes: dict[str, str], created: datetime) -> JobEssence | None:
    if kind == "unknown":
        return None
    running = snap(created_at=created, detailed=scopes, updated_at=created)
    if kind == "running":
        return essence(running, first_seen=created)
    if kind == "running_abort":
        return essence(snap(abort=True, created_at=created, detailed=scopes), first_seen=created)
    if kind == "running_stuck_reported":
        return essence(running, first_seen=created, stuck_reported=True)
    if kind == "baseline":
        return essence(running, first_seen=created, baseline=True)
    if kind == "vanished":
        return essence(running, first_seen=created, terminal="job.vanished")
    stopped = snap(
        status=kind,
        abort=kind == "aborted",
        created_at=created,
        completed_at=created + timedelta(seconds=30),
        detailed=scopes,
    )
    return essence(stopped, first_seen=created, terminal=f"job.{kind}")


def current_snapshot(
    word: str | None, abort: bool, scopes: dict[str, str], created: datetime
) -> JobSnapshot | None:
    if word is None:
        return None
    running = is_running_word(word)
    return snap(
        status=word,
        abort=abort,
        created_at=created,
        updated_at=NOW - timedelta(seconds=1),
        completed_at=None if running else NOW - timedelta(seconds=5),
        detailed=scopes,
    )


@dataclass(frozen=True)
class Expected:
    events: list[str]
    scopes: tuple[str, ...]  # the scope of each domain_failed, in order
    terminal: str | None
    stuck_reported: bool
    baseline: bool


def expect(kind: str, word: str | None, abort: bool, case: ScopeCase, age: str) -> Expected | None:
    """The rules, spelled out. None: no essence to remember and no events."""
    if kind == "unknown" and word is None:
        return None
    prev_abort = kind == "running_abort"
    stuck_before = kind == "running_stuck_reported"
    baseline = kind == "baseline"
    if word is None:  # 404 for a tracked running job
        return Expected(["job.vanished"], (), "job.vanished", stuck_before, baseline)
    running = is_running_word(word)
    events: list[str] = []
    if kind == "unknown":
        events.append("job.started")
        failed = case.fails_if_new
    else:
        failed = case.fails_if_known
    if running and abort and not prev_abort:
        events.append("job.abort_requested")
    events.extend("job.domain_failed" for _ in failed)
    terminal = None
    stuck = stuck_before
    if running:
        if age == "old" and not stuck_before:
            events.append("job.stuck")
            stuck = True
    else:
        terminal = expected_terminal(word, abort)
        events.append(terminal)
    return Expected(events, failed, terminal, stuck, baseline)


def check_job_event(
    event: Event,
    *,
    snapshot: JobSnapshot,
    previous_status: str | None,
) -> None:
    """What every job event carries, whatever its type (contract.md envelope)."""
    data = event.data
    assert set(data) == JOB_DATA_KEYS
    assert EVT_ID.match(event.id)
    assert event.timestamp == NOW
    assert (event.manager, event.source, event.job_id) == (MANAGER, SOURCE, snapshot.job_id)
    assert data["manager"] == MANAGER
    assert data["source"] == SOURCE
    assert data["cloud"] == snapshot.cloud
    assert data["job_id"] == snapshot.job_id
    assert data["previous_status"] == previous_status
    assert data["abort"] is snapshot.abort
    assert data["created_at"] == (
        None if snapshot.created_at is None else format_timestamp(snapshot.created_at)
    )
    assert data["updated_at"] == (
        None if snapshot.updated_at is None else format_timestamp(snapshot.updated_at)
    )
    assert data["completed_at"] == (
        None if snapshot.completed_at is None else format_timestamp(snapshot.completed_at)
    )
    assert data["scopes"] == list(snapshot.scopes)
    assert data["detailed_status"] == dict(snapshot.detailed_status)
    if event.type == "job.vanished":
        assert data["status"] == "vanished"
    else:
        assert data["status"] == snapshot.status
    if event.type == "job.domain_failed":
        assert data["scope"] in data["detailed_status"]
        assert data["scope_status"] == data["detailed_status"][data["scope"]]
    else:
        assert data["scope"] is None
        assert data["scope_status"] is None
    if event.type in {"job.started", "job.abort_requested", "job.domain_failed"}:
        assert data["duration_seconds"] is None
    elif event.type == "job.stuck":
        assert snapshot.created_at is not None
        assert data["duration_seconds"] == (NOW - snapshot.created_at).total_seconds()
    elif event.type == "job.vanished":
        assert data["duration_seconds"] is None
    else:  # completed / failed / aborted
        assert snapshot.created_at is not None
        assert snapshot.completed_at is not None
        expected = (snapshot.completed_at - snapshot.created_at).total_seconds()
        assert data["duration_seconds"] == expected


def _matrix() -> list[Any]:
    """The full product, minus combinations whose extra axes cannot matter.

    A terminal previous state ignores everything (kept for every word and abort value,
    one scope case); a 404 ignores the abort flag and the scopes of the answer.
    """
    cases = []
    for kind, word, abort, scope_case, age in itertools.product(
        PREVIOUS_KINDS, CURRENT_WORDS, [False, True], SCOPE_CASES, AGES
    ):
        if kind in TERMINAL_KINDS and (scope_case, age) != ("turns_failure", "old"):
            continue
        if word is None and (abort or scope_case != "failed_stays"):
            continue
        shown = "404" if word is None else repr(word)
        case_id = f"{kind}-{shown}-abort={str(abort).lower()}-{scope_case}-{age}"
        cases.append(pytest.param(kind, word, abort, scope_case, age, id=case_id))
    return cases


MATRIX = _matrix()


@pytest.mark.parametrize(("kind", "word", "abort", "scope_case", "age"), MATRIX)
def test_diff_job_matrix(
    kind: str, word: str | None, abort: bool, scope_case: str, age: str
) -> None:
    case = SCOPE_CASES[scope_case]
    created = AGES[age]
    previous = previous_essence(kind, case.before, created)
    current = current_snapshot(word, abort, case.after, created)

    result, events = diff_job(
        MANAGER, SOURCE, previous, current, NOW, stuck_after_seconds=STUCK_AFTER
    )

    if kind in TERMINAL_KINDS:  # frozen: nothing happens, nothing changes
        assert events == []
        assert result is previous
        return
    expected = expect(kind, word, abort, case, age)
    if expected is None:
        assert result is None
        assert events == []
        return
    assert types(events) == expected.events
    assert [e.data["scope"] for e in events if e.type == "job.domain_failed"] == list(
        expected.scopes
    )
    assert result is not None
    assert result.terminal == expected.terminal
    assert result.stuck_reported is expected.stuck_reported
    assert result.baseline is expected.baseline
    if previous is None:
        assert result.first_seen == NOW
    else:
        assert result.first_seen == previous.first_seen
    # the essence remembers the latest snapshot (a vanished job keeps its last one)
    if current is not None:
        shown = current
    else:
        assert previous is not None
        shown = previous.snapshot
    assert result.snapshot == shown
    assert len({e.id for e in events}) == len(events)
    prior_status = None if previous is None else previous.snapshot.status
    for event in events:
        check_job_event(event, snapshot=shown, previous_status=prior_status)

    # Diffing the stored essence against the same snapshot again (a restart) is silent.
    again, repeated = diff_job(
        MANAGER, SOURCE, result, current, NOW, stuck_after_seconds=STUCK_AFTER
    )
    assert repeated == []
    assert again == result


# --- first sighting: started ------------------------------------------------------------


def test_started_data_for_new_running_job() -> None:
    current = snap(
        "in progress",
        job_id="job-7",
        created_at=NOW - timedelta(seconds=10),
        updated_at=NOW - timedelta(seconds=2),
        scopes=["kms-a", "kms-b"],
        detailed={A: IP},
    )
    result, events = diff_job(MANAGER, SOURCE, None, current, NOW, stuck_after_seconds=60)
    assert types(events) == ["job.started"]
    [started] = events
    assert started.envelope()["data"] == {
        "manager": "prod",
        "source": "aws",
        "cloud": "aws",
        "job_id": "job-7",
        "status": "in_progress",
        "previous_status": None,
        "abort": False,
        "created_at": format_timestamp(NOW - timedelta(seconds=10)),
        "updated_at": format_timestamp(NOW - timedelta(seconds=2)),
        "completed_at": None,
        "duration_seconds": None,
        "scopes": ["kms-a", "kms-b"],
        "detailed_status": {A: IP},
        "scopes_total": 1,  # issue 10: bounded envelopes carry the counts
        "scopes_failed": 0,
        "scopes_succeeded": 0,
        "scope": None,
        "scope_status": None,
    }
    assert result == JobEssence(current, first_seen=NOW)


def test_job_started_and_finished_between_polls_gets_both_events() -> None:
    current = snap(
        status="failed",
        created_at=at(100),
        completed_at=at(160),
        detailed={A: DENIED, B: SUCCESS_TEXT},
    )
    result, events = diff_job(
        MANAGER, SOURCE, None, current, NOW, stuck_after_seconds=10, watermark=at(50)
    )
    assert types(events) == ["job.started", "job.domain_failed", "job.failed"]
    assert events[1].data["scope"] == A
    assert events[1].data["scope_status"] == DENIED
    assert events[2].data["duration_seconds"] == 60.0
    assert events[2].data["previous_status"] is None
    assert result is not None
    assert result.terminal == "job.failed"
    assert not result.stuck_reported  # never stuck: it was not running when seen


# --- abort_requested --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "after", "status", "expected"),
    [
        (False, True, "in_progress", ["job.abort_requested"]),
        (True, True, "in_progress", []),
        (False, False, "in_progress", []),
        (False, True, "completed", ["job.aborted"]),  # already stopped: no request event
        (False, True, "in progress", ["job.abort_requested"]),
        (True, True, "completed", ["job.aborted"]),
        (True, False, "completed", ["job.completed"]),
    ],
)
def test_abort_requested_only_when_abort_turns_true_while_running(
    before: bool, after: bool, status: str, expected: list[str]
) -> None:
    previous = essence(snap(abort=before, created_at=NOW - timedelta(seconds=5)))
    current = snap(status=status, abort=after, created_at=NOW - timedelta(seconds=5))
    _, events = diff_job(MANAGER, SOURCE, previous, current, NOW, stuck_after_seconds=3600)
    assert types(events) == expected


def test_abort_requested_data() -> None:
    previous = essence(snap(created_at=NOW - timedelta(seconds=5)))
    current = snap(abort=True, created_at=NOW - timedelta(seconds=5))
    _, [event] = diff_job(MANAGER, SOURCE, previous, current, NOW, stuck_after_seconds=3600)
    assert event.type == "job.abort_requested"
    assert event.data["abort"] is True
    assert event.data["status"] == "in_progress"
    assert event.data["previous_status"] == "in_progress"


def test_cancelled_job_lifecycle_abort_requested_then_aborted_with_completed_word() -> None:
    """cckm-api.md: cancel sets abort while in_progress; the job then stops 'completed'."""
    created = NOW - timedelta(seconds=30)
    steps = [
        snap(created_at=created),
        snap(abort=True, created_at=created),
        snap(abort=True, created_at=created),
        snap("completed", abort=True, created_at=created, completed_at=NOW),
        snap("completed", abort=True, created_at=created, completed_at=NOW),
    ]
    state: JobEssence | None = None
    seen: list[str] = []
    for step in steps:
        state, events = diff_job(MANAGER, SOURCE, state, step, NOW, stuck_after_seconds=3600)
        seen.extend(types(events))
    assert seen == ["job.started", "job.abort_requested", "job.aborted"]


# --- domain_failed ----------------------------------------------------------------------


def test_domain_failed_one_event_per_scope_with_distinct_ids() -> None:
    previous = essence(snap(detailed={A: IP, B: IP, C: IP}))
    current = snap(detailed={A: DENIED, B: THROTTLED, C: SUCCESS_TEXT})
    _, events = diff_job(MANAGER, SOURCE, previous, current, T0, stuck_after_seconds=3600)
    assert types(events) == ["job.domain_failed", "job.domain_failed"]
    assert {(e.data["scope"], e.data["scope_status"]) for e in events} == {
        (A, DENIED),
        (B, THROTTLED),
    }
    assert events[0].id != events[1].id


def test_domain_failed_scope_status_is_truncated() -> None:
    message = "AccessDenied: " + "x" * 5000
    _, events = diff_job(
        MANAGER, SOURCE, None, snap(detailed={A: message}), T0, stuck_after_seconds=3600
    )
    [failed] = [e for e in events if e.type == "job.domain_failed"]
    assert len(failed.data["scope_status"]) <= 1024
    assert message.startswith(failed.data["scope_status"].rstrip("…"))
    assert len(failed.data["detailed_status"][A]) <= 1024


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        ("", DENIED, 1),  # new scope key that is already failing
        (IP, DENIED, 1),
        ("in progress", DENIED, 1),
        (SUCCESS_TEXT, DENIED, 1),  # a scope that succeeded and then failed
        (DENIED, DENIED, 0),
        (DENIED, THROTTLED, 0),  # a failure changing its text is not news
        (DENIED, SUCCESS_TEXT, 0),
        (IP, SUCCESS_TEXT, 0),
        (IP, "domain synchronized successfully", 0),
        (IP, "In Progress", 0),
        (IP, "", 0),
    ],
)
def test_domain_failed_transitions(before: str, after: str, expected: int) -> None:
    previous = essence(snap(detailed={A: before} if before else {}))
    current = snap(detailed={A: after})
    _, events = diff_job(MANAGER, SOURCE, previous, current, T0, stuck_after_seconds=3600)
    assert types(events) == ["job.domain_failed"] * expected


def test_domain_failed_when_scope_disappears_then_fails() -> None:
    previous = essence(snap(detailed={A: IP}))
    current = snap(detailed={B: DENIED})
    _, events = diff_job(MANAGER, SOURCE, previous, current, T0, stuck_after_seconds=3600)
    assert [e.data["scope"] for e in events] == [B]


# --- stuck ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("age_seconds", "stuck"),
    [(0, False), (3599.999, False), (3600, False), (3600.001, True), (86400, True)],
)
def test_stuck_threshold_is_strictly_older_than(age_seconds: float, stuck: bool) -> None:
    previous = essence(snap(created_at=NOW - timedelta(seconds=age_seconds)))
    result, events = diff_job(
        MANAGER, SOURCE, previous, previous.snapshot, NOW, stuck_after_seconds=3600
    )
    assert types(events) == (["job.stuck"] if stuck else [])
    assert result is not None
    assert result.stuck_reported is stuck


def test_stuck_once_per_job() -> None:
    running = snap(created_at=T0)
    state: JobEssence | None = None
    seen: list[str] = []
    for minutes in range(0, 240, 15):
        state, events = diff_job(
            MANAGER,
            SOURCE,
            state,
            running,
            T0 + timedelta(minutes=minutes),
            stuck_after_seconds=STUCK_AFTER,
        )
        seen.extend(types(events))
    assert seen == ["job.started", "job.stuck"]


def test_stuck_data_duration_is_age() -> None:
    previous = essence(snap(created_at=NOW - timedelta(seconds=4000)))
    _, [event] = diff_job(
        MANAGER, SOURCE, previous, previous.snapshot, NOW, stuck_after_seconds=3600
    )
    assert event.type == "job.stuck"
    assert event.data["duration_seconds"] == 4000.0
    assert event.data["status"] == "in_progress"


def test_stuck_age_from_first_seen_when_created_at_missing() -> None:
    running = snap(created_at=None)
    # first sighting: age 0 from first_seen, never stuck
    state, events = diff_job(MANAGER, SOURCE, None, running, NOW, stuck_after_seconds=60)
    assert types(events) == ["job.started"]
    assert state is not None
    assert state.first_seen == NOW
    state, events = diff_job(
        MANAGER, SOURCE, state, running, NOW + timedelta(seconds=60), stuck_after_seconds=60
    )
    assert events == []
    state, events = diff_job(
        MANAGER, SOURCE, state, running, NOW + timedelta(seconds=61), stuck_after_seconds=60
    )
    assert types(events) == ["job.stuck"]
    assert events[0].data["duration_seconds"] == 61.0


def test_never_stuck_once_stopped() -> None:
    previous = essence(snap(created_at=T0))
    stopped = snap("failed", created_at=T0, completed_at=at(7200))
    result, events = diff_job(
        MANAGER, SOURCE, previous, stopped, at(10 * 3600), stuck_after_seconds=60
    )
    assert types(events) == ["job.failed"]
    assert result is not None
    assert not result.stuck_reported


# --- terminal ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "abort", "expected"),
    [
        ("completed", False, "job.completed"),
        ("Completed", False, "job.completed"),
        ("completed", True, "job.aborted"),
        ("failed", False, "job.failed"),
        ("failed", True, "job.aborted"),
        ("aborted", False, "job.aborted"),
        ("cancelled", False, "job.aborted"),
        ("Canceled", False, "job.aborted"),
        ("errored", False, "job.failed"),
        ("Partially Failed", False, "job.failed"),
        ("", False, "job.failed"),
    ],
)
def test_terminal_type(word: str, abort: bool, expected: str) -> None:
    previous = essence(snap(created_at=at(0)))
    current = snap(word, abort=abort, created_at=at(0), completed_at=at(90))
    result, events = diff_job(MANAGER, SOURCE, previous, current, at(100), stuck_after_seconds=60)
    assert types(events) == [expected]
    assert result is not None
    assert result.terminal == expected
    assert events[0].data["duration_seconds"] == 90.0
    assert events[0].data["previous_status"] == "in_progress"


def test_terminal_duration_uses_now_when_completed_at_missing() -> None:
    current = snap("completed", created_at=at(0), completed_at=None)
    _, events = diff_job(
        MANAGER,
        SOURCE,
        essence(snap(created_at=at(0))),
        current,
        at(42.5),
        stuck_after_seconds=60,
    )
    assert events[0].data["duration_seconds"] == 42.5


def test_terminal_duration_none_without_created_at() -> None:
    current = snap("completed", created_at=None, completed_at=at(10))
    _, events = diff_job(
        MANAGER,
        SOURCE,
        essence(snap(created_at=None)),
        current,
        at(42),
        stuck_after_seconds=60,
    )
    assert events[0].data["duration_seconds"] is None


def test_terminal_duration_keeps_sub_second_precision() -> None:
    current = snap("completed", created_at=at(0), completed_at=at(1.25))
    _, events = diff_job(
        MANAGER, SOURCE, essence(snap(created_at=at(0))), current, at(5), stuck_after_seconds=60
    )
    assert events[0].data["duration_seconds"] == 1.25


@pytest.mark.parametrize("terminal", TERMINAL_KINDS)
@pytest.mark.parametrize(
    "current",
    [
        None,
        snap(),
        snap(abort=True),
        snap("failed", detailed={A: DENIED}),
        snap("completed", abort=True),
    ],
    ids=["404", "running", "running_abort", "failed", "completed_abort"],
)
def test_terminal_is_frozen(terminal: str, current: JobSnapshot | None) -> None:
    previous = essence(snap("completed"), terminal=f"job.{terminal}", stuck_reported=True)
    result, events = diff_job(
        MANAGER,
        SOURCE,
        previous,
        current,
        NOW,
        stuck_after_seconds=1,
        baseline=True,
        watermark=NOW,
    )
    assert events == []
    assert result is previous


# --- vanished ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", TRACKED_KINDS)
def test_vanished_for_tracked_running_job(kind: str) -> None:
    previous = previous_essence(kind, {A: DENIED}, T0)
    assert previous is not None
    result, events = diff_job(MANAGER, SOURCE, previous, None, NOW, stuck_after_seconds=60)
    assert types(events) == ["job.vanished"]
    data = events[0].data
    assert data["status"] == "vanished"
    assert data["previous_status"] == "in_progress"
    assert data["abort"] is previous.snapshot.abort
    assert data["detailed_status"] == {A: DENIED}
    assert data["duration_seconds"] is None
    assert result == JobEssence(
        previous.snapshot,
        first_seen=previous.first_seen,
        terminal="job.vanished",
        stuck_reported=previous.stuck_reported,
        baseline=previous.baseline,
    )


def test_404_for_unknown_job_is_nothing() -> None:
    assert diff_job(MANAGER, SOURCE, None, None, NOW, stuck_after_seconds=60) == (None, [])
    assert diff_job(
        MANAGER, SOURCE, None, None, NOW, stuck_after_seconds=60, baseline=True, watermark=NOW
    ) == (None, [])


# --- baseline ---------------------------------------------------------------------------


@pytest.mark.parametrize("scope_case", list(SCOPE_CASES))
@pytest.mark.parametrize("abort", [False, True], ids=["abort=false", "abort=true"])
@pytest.mark.parametrize("word", RUNNING_WORDS + STOPPED_WORDS)
@pytest.mark.parametrize("age", list(AGES))
def test_baseline_first_sighting(word: str, abort: bool, scope_case: str, age: str) -> None:
    current = current_snapshot(word, abort, SCOPE_CASES[scope_case].after, AGES[age])
    result, events = diff_job(
        MANAGER, SOURCE, None, current, NOW, stuck_after_seconds=STUCK_AFTER, baseline=True
    )
    assert events == []
    if is_running_word(word):
        assert current is not None
        assert result == JobEssence(current, first_seen=NOW, baseline=True)
    else:
        assert result is None


def test_baseline_job_later_gets_stuck_and_terminal_never_started() -> None:
    created = T0
    running = snap(created_at=created, detailed={A: IP})
    state, events = diff_job(
        MANAGER, SOURCE, None, running, at(60), stuck_after_seconds=STUCK_AFTER, baseline=True
    )
    assert events == []
    history: list[str] = []
    steps = [
        (at(120), running),
        (at(3700), running),  # older than an hour: stuck
        (at(3800), snap(created_at=created, detailed={A: DENIED})),
        (at(3900), snap(abort=True, created_at=created, detailed={A: DENIED})),
        (at(4000), snap("completed", abort=True, created_at=created, completed_at=at(3950))),
        (at(4100), snap("completed", abort=True, created_at=created, completed_at=at(3950))),
    ]
    for moment, current in steps:
        state, events = diff_job(
            MANAGER, SOURCE, state, current, moment, stuck_after_seconds=STUCK_AFTER
        )
        history.extend(types(events))
        assert state is not None
        assert state.baseline
    assert history == [
        "job.stuck",
        "job.domain_failed",
        "job.abort_requested",
        "job.aborted",
    ]


def test_baseline_swallows_what_the_first_snapshot_already_showed() -> None:
    """Failures and abort visible at first start were not transitions we saw happen."""
    first = snap(abort=True, created_at=NOW, detailed={A: DENIED})
    state, events = diff_job(
        MANAGER, SOURCE, None, first, NOW, stuck_after_seconds=60, baseline=True
    )
    assert events == []
    state, events = diff_job(MANAGER, SOURCE, state, first, NOW, stuck_after_seconds=60)
    assert events == []


# --- watermark --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("created_offset", "expected"),
    [
        (-3600, []),
        (-0.001, []),
        # a tie is not history: the baseline records finished jobs at the watermark
        (0, ["job.started", "job.completed"]),
        (0.001, ["job.started", "job.completed"]),
        (3600, ["job.started", "job.completed"]),
    ],
)
def test_watermark_for_unknown_finished_job(created_offset: float, expected: list[str]) -> None:
    watermark = at(1000)
    created = watermark + timedelta(seconds=created_offset)
    current = snap("completed", created_at=created, completed_at=created + timedelta(seconds=1))
    result, events = diff_job(
        MANAGER, SOURCE, None, current, NOW, stuck_after_seconds=60, watermark=watermark
    )
    assert types(events) == expected
    assert (result is None) == (not expected)


@pytest.mark.parametrize("created_offset", [-3600, 0, 3600])
@pytest.mark.parametrize("baseline", [False, True])
def test_unknown_running_job_ignores_watermark(created_offset: float, baseline: bool) -> None:
    watermark = at(1000)
    current = snap(created_at=watermark + timedelta(seconds=created_offset))
    result, events = diff_job(
        MANAGER,
        SOURCE,
        None,
        current,
        at(1500),
        stuck_after_seconds=1e9,
        watermark=watermark,
        baseline=baseline,
    )
    assert types(events) == ([] if baseline else ["job.started"])
    assert result is not None
    assert result.baseline is baseline


def test_unknown_finished_job_without_created_at_is_news() -> None:
    current = snap("failed", created_at=None, completed_at=at(10))
    result, events = diff_job(
        MANAGER, SOURCE, None, current, NOW, stuck_after_seconds=60, watermark=NOW
    )
    assert types(events) == ["job.started", "job.failed"]
    assert result is not None


def test_watermark_does_not_touch_known_jobs() -> None:
    previous = essence(snap(created_at=at(0)))
    current = snap("completed", created_at=at(0), completed_at=at(5))
    _, events = diff_job(
        MANAGER, SOURCE, previous, current, NOW, stuck_after_seconds=3600, watermark=NOW
    )
    assert types(events) == ["job.completed"]


# --- event ids --------------------------------------------------------------------------


def _first_sighting(current: JobSnapshot, now: datetime = NOW, **kw: str) -> list[Event]:
    _, events = diff_job(
        kw.get("manager", MANAGER),
        kw.get("source", SOURCE),
        None,
        current,
        now,
        stuck_after_seconds=1e9,
    )
    return events


def test_event_ids_are_deterministic() -> None:
    current = snap("failed", created_at=at(0), detailed={A: DENIED, B: THROTTLED})
    first = _first_sighting(current)
    second = _first_sighting(current)
    assert first == second
    assert len({e.id for e in first}) == len(first) == 4
    assert all(EVT_ID.match(e.id) for e in first)


def test_event_id_independent_of_now_and_of_the_path_taken() -> None:
    """The same transition seen at another time, or after a restart, has the same id."""
    created = at(0)
    running = snap(created_at=created)
    done = snap("completed", created_at=created, completed_at=at(30))
    direct = _first_sighting(done, now=at(40))
    _, via_running = diff_job(MANAGER, SOURCE, None, running, at(10), stuck_after_seconds=1e6)
    state = essence(running, first_seen=at(10))
    _, later = diff_job(MANAGER, SOURCE, state, done, at(9999), stuck_after_seconds=1e6)
    assert via_running[0].id == direct[0].id  # job.started
    assert later[0].id == direct[1].id  # job.completed
    assert later[0].timestamp != direct[1].timestamp


def test_event_ids_differ_by_scope_job_manager_source_and_type() -> None:
    base = _first_sighting(snap(job_id="job-1", detailed={A: DENIED, B: DENIED}))
    ids = {e.id for e in base}
    assert len(ids) == 3  # started + two scopes
    others = [
        _first_sighting(snap(job_id="job-2", detailed={A: DENIED})),
        _first_sighting(snap(job_id="job-1", detailed={A: DENIED}), manager="staging"),
        _first_sighting(snap(job_id="job-1", detailed={A: DENIED}), source="gcp"),
    ]
    for events in others:
        assert ids.isdisjoint(e.id for e in events)


def test_event_id_same_for_domain_failed_whatever_the_message() -> None:
    one = _first_sighting(snap(detailed={A: DENIED}))
    two = _first_sighting(snap(detailed={A: THROTTLED}))
    assert [e.id for e in one] == [e.id for e in two]


# --- diff_source ------------------------------------------------------------------------


def _source(
    previous: dict[str, JobEssence],
    current: list[JobSnapshot],
    gone: list[str] | None = None,
    *,
    baseline: bool = False,
    watermark: datetime | None = None,
    now: datetime | None = None,
) -> tuple[dict[str, JobEssence], list[Event], datetime | None]:
    result = diff_source(
        MANAGER,
        SOURCE,
        previous,
        current,
        gone or [],
        at(100) if now is None else now,
        stuck_after_seconds=STUCK_AFTER,
        baseline=baseline,
        watermark=watermark,
    )
    return result.changed, result.events, result.watermark


def test_diff_source_dedups_repeated_job_ids() -> None:
    one = snap(job_id="a", created_at=at(1))
    two = snap(job_id="b", created_at=at(2))
    changed, events, _ = _source({}, [one, two, one, two, one])
    assert types(events) == ["job.started", "job.started"]
    assert [e.job_id for e in events] == ["a", "b"]
    assert set(changed) == {"a", "b"}


def test_diff_source_duplicates_with_different_states_give_one_lifecycle() -> None:
    running = snap(job_id="a", created_at=at(1))
    done = snap("completed", job_id="a", created_at=at(1), completed_at=at(2))
    for listing in ([running, done], [done, running]):
        changed, events, _ = _source({}, listing)
        assert types(events)[0] == "job.started"
        assert types(events).count("job.started") == 1
        assert len(events) <= 2
        assert set(changed) == {"a"}


def test_diff_source_returns_only_changed_essences() -> None:
    same = snap(job_id="same", created_at=at(1))
    moving = snap(job_id="moving", created_at=at(2))
    previous = {"same": essence(same), "moving": essence(moving)}
    moved = snap(job_id="moving", created_at=at(2), updated_at=at(3))
    new = snap(job_id="new", created_at=at(4))
    changed, events, _ = _source(previous, [same, moved, new], now=at(100))
    assert set(changed) == {"moving", "new"}
    assert changed["moving"].snapshot == moved
    assert types(events) == ["job.started"]


def test_diff_source_history_is_neither_changed_nor_announced() -> None:
    old = snap("completed", job_id="old", created_at=at(1), completed_at=at(2))
    changed, events, watermark = _source({}, [old], watermark=at(10))
    assert changed == {}
    assert events == []
    assert watermark == at(10)


@pytest.mark.parametrize(
    ("watermark", "created", "expected"),
    [
        (None, [], None),
        (None, [at(5), at(3)], at(5)),
        (at(10), [at(5), at(3)], at(10)),  # never moves backwards
        (at(10), [at(5), at(30), at(20)], at(30)),
        (at(10), [None], at(10)),
        (None, [None], None),
    ],
)
def test_diff_source_advances_watermark_to_newest_created_at(
    watermark: datetime | None, created: list[datetime | None], expected: datetime | None
) -> None:
    jobs = [
        snap("completed", job_id=f"j{i}", created_at=c, completed_at=NOW)
        for i, c in enumerate(created)
    ]
    _, _, result = _source({}, jobs, watermark=watermark)
    assert result == expected


def test_diff_source_watermark_advances_also_at_baseline() -> None:
    jobs = [
        snap(job_id="r", created_at=at(5)),
        snap("failed", job_id="f", created_at=at(9), completed_at=at(9)),
    ]
    changed, events, watermark = _source({}, jobs, baseline=True)
    assert events == []
    assert set(changed) == {"r", "f"}
    assert changed["r"].baseline
    assert changed["r"].terminal is None
    assert watermark == at(9)


def test_diff_source_baseline_records_finished_jobs_at_the_watermark() -> None:
    """A tie with the watermark is not history, so the baseline must remember it."""
    jobs = [
        snap(job_id="r", created_at=at(5)),
        snap("failed", job_id="old", created_at=at(3), completed_at=at(4)),
        snap("completed", job_id="t1", created_at=at(9), completed_at=at(10)),
        snap("cancelled", job_id="t2", created_at=at(9), completed_at=at(10)),
    ]
    changed, events, watermark = _source({}, jobs, baseline=True)
    assert events == []
    assert watermark == at(9)
    assert set(changed) == {"r", "t1", "t2"}
    assert changed["t1"].terminal == "job.completed"
    assert changed["t2"].terminal == "job.aborted"
    assert changed["t1"].baseline
    assert changed["t1"].snapshot == jobs[2]
    # the next cycles say nothing about any of them
    stored = dict(changed)
    for _ in range(2):
        changed, events, watermark = _source(stored, jobs, watermark=watermark)
        assert events == []
        assert changed == {}
        assert watermark == at(9)


def test_diff_source_accepts_any_iterable() -> None:
    jobs = [
        snap(job_id="r", created_at=at(5)),
        snap("failed", job_id="f", created_at=at(9), completed_at=at(9)),
    ]
    as_list = diff_source(
        MANAGER,
        SOURCE,
        {},
        list(jobs),
        [],
        at(100),
        stuck_after_seconds=STUCK_AFTER,
        baseline=True,
        watermark=None,
    )
    as_iterator = diff_source(
        MANAGER,
        SOURCE,
        {},
        iter(jobs),
        iter([]),
        at(100),
        stuck_after_seconds=STUCK_AFTER,
        baseline=True,
        watermark=None,
    )
    assert as_iterator == as_list
    _, events, _ = _source(as_iterator.changed, jobs, watermark=as_iterator.watermark)
    assert events == []


def test_diff_source_events_in_creation_order() -> None:
    jobs = [
        snap(job_id="n", created_at=None),
        snap(job_id="c", created_at=at(30)),
        snap(job_id="a", created_at=at(10)),
        snap(job_id="b2", created_at=at(20)),
        snap(job_id="b1", created_at=at(20)),
    ]
    _, events, _ = _source({}, jobs)
    assert [e.job_id for e in events] == ["a", "b1", "b2", "c", "n"]


def test_diff_source_uses_the_old_watermark_for_the_whole_cycle() -> None:
    """Two jobs that finished between polls with the same createdAt are both news."""
    jobs = [
        snap("completed", job_id="x", created_at=at(50), completed_at=at(51)),
        snap("failed", job_id="y", created_at=at(50), completed_at=at(52)),
    ]
    _, events, watermark = _source({}, jobs, watermark=at(40))
    assert types(events) == ["job.started", "job.completed", "job.started", "job.failed"]
    assert watermark == at(50)


def test_diff_source_gone_only_for_tracked_jobs() -> None:
    tracked = essence(snap(job_id="t", created_at=at(1)))
    finished = essence(snap("completed", job_id="f", created_at=at(2)), terminal="job.completed")
    previous = {"t": tracked, "f": finished}
    changed, events, _ = _source(previous, [], gone=["t", "f", "unknown"])
    assert types(events) == ["job.vanished"]
    assert events[0].job_id == "t"
    assert set(changed) == {"t"}
    assert changed["t"].terminal == "job.vanished"


def test_diff_source_gone_but_also_listed_is_not_vanished() -> None:
    tracked = essence(snap(job_id="t", created_at=at(1)))
    changed, events, _ = _source({"t": tracked}, [tracked.snapshot], gone=["t"])
    assert events == []
    assert changed == {}


def test_diff_source_gone_baseline_job_vanishes() -> None:
    tracked = essence(snap(job_id="t", created_at=at(1)), baseline=True)
    _, events, _ = _source({"t": tracked}, [], gone=["t"])
    assert types(events) == ["job.vanished"]


def test_diff_source_replay_is_silent() -> None:
    previous = {"r": essence(snap(job_id="r", created_at=at(1)))}
    current = [
        snap("completed", job_id="r", created_at=at(1), completed_at=at(100)),
        snap(job_id="n", created_at=at(200), abort=True, detailed={A: DENIED}),
        snap("failed", job_id="h", created_at=at(0), completed_at=at(1)),
    ]
    changed, events, watermark = _source(previous, current, watermark=at(1), now=at(300))
    assert types(events) == [
        "job.completed",
        "job.started",
        "job.abort_requested",
        "job.domain_failed",
    ]
    stored = {**previous, **changed}
    changed2, events2, watermark2 = _source(stored, current, watermark=watermark, now=at(300))
    assert events2 == []
    assert changed2 == {}
    assert watermark2 == watermark


def test_baseline_finished_job_without_created_at_stays_silent() -> None:
    done = snap("completed", job_id="old", created_at=None, completed_at=at(1))
    running = snap(job_id="r", created_at=at(5))
    changed, events, watermark = _source({}, [done, running], baseline=True)
    assert events == []
    _, events2, _ = _source(changed, [done, running], watermark=watermark)
    assert types(events2) == []


# --- diff_health ------------------------------------------------------------------------


def _health_run(
    outcomes: str, start: SourceHealth | None = None
) -> tuple[SourceHealth, list[tuple[int, Event]]]:
    """``outcomes`` like "xxx.x": x a failed poll, . a good one. Events with their index."""
    health = start or SourceHealth()
    out: list[tuple[int, Event]] = []
    for i, char in enumerate(outcomes):
        health, events = diff_health(
            MANAGER,
            SOURCE,
            health,
            ok=char == ".",
            now=at(i * 30),
            reason=None if char == "." else "timeout",
            error=None if char == "." else "read timed out",
        )
        out.extend((i, event) for event in events)
    return health, out


@pytest.mark.parametrize(
    ("outcomes", "expected"),
    [
        ("", []),
        ("....", []),
        ("x", []),
        ("xx", []),
        ("xx.xx.xx.", []),
        ("xxx", [(2, "source.down")]),
        ("xxxxxxx", [(2, "source.down")]),
        ("xxx.", [(2, "source.down"), (3, "source.up")]),
        ("xxxxx...", [(2, "source.down"), (5, "source.up")]),
        (
            "xxx.xxx.",
            [(2, "source.down"), (3, "source.up"), (6, "source.down"), (7, "source.up")],
        ),
        ("xxx.xx.xxx", [(2, "source.down"), (3, "source.up"), (9, "source.down")]),
        (".x.xxx.", [(5, "source.down"), (6, "source.up")]),
    ],
)
def test_health_down_at_third_failure_up_once(
    outcomes: str, expected: list[tuple[int, str]]
) -> None:
    _, events = _health_run(outcomes)
    assert [(i, str(e.type)) for i, e in events] == expected


def test_health_success_without_outage_is_silent_and_unchanged() -> None:
    health = SourceHealth()
    new, events = diff_health(MANAGER, SOURCE, health, ok=True, now=NOW)
    assert events == []
    assert new == health


def test_health_counts_and_resets() -> None:
    health, _ = _health_run("xx")
    assert health.consecutive_failures == 2
    assert not health.down
    health, _ = _health_run(".", health)
    assert health.consecutive_failures == 0
    health, _ = _health_run("xxxx", health)
    assert health.down
    assert health.consecutive_failures == 4
    health, _ = _health_run(".", health)
    assert not health.down
    assert health.consecutive_failures == 0


def test_health_event_ids_differ_per_episode_and_are_stable() -> None:
    _, events = _health_run("xxx.xxx.")
    ids = [e.id for _, e in events]
    assert len(set(ids)) == 4
    assert all(EVT_ID.match(i) for i in ids)
    # the same outage replayed at other times gets the same ids
    again: list[str] = []
    health = SourceHealth()
    for i, char in enumerate("xxx.xxx."):
        health, evs = diff_health(MANAGER, SOURCE, health, ok=char == ".", now=at(9999 + i))
        again.extend(e.id for e in evs)
    assert again == ids
    # another source or manager: other ids
    _, others = _health_run("xxx.", SourceHealth())
    other_source: list[str] = []
    health = SourceHealth()
    for char in "xxx.":
        health, evs = diff_health(MANAGER, "gcp", health, ok=char == ".", now=NOW)
        other_source.extend(e.id for e in evs)
    assert set(other_source).isdisjoint(e.id for _, e in others)


def test_health_event_shape() -> None:
    _, events = _health_run("xxx.")
    (_, down), (_, up) = events
    assert down.job_id is None
    assert down.timestamp == at(60)
    assert down.data == {
        "manager": MANAGER,
        "source": SOURCE,
        "consecutive_failures": DOWN_AFTER_FAILURES,
        "reason": "timeout",
        "error": "read timed out",
    }
    assert up.data["manager"] == MANAGER
    assert up.data["source"] == SOURCE
    assert up.data["consecutive_failures"] == 3
    envelope = down.envelope()
    assert set(envelope) == {"id", "type", "timestamp", "data"}
    assert envelope["type"] == "source.down"


def test_health_error_text_is_truncated() -> None:
    health = SourceHealth(consecutive_failures=2)
    _, [event] = diff_health(
        MANAGER, SOURCE, health, ok=False, now=NOW, reason="http_5xx", error="e" * 5000
    )
    assert len(event.data["error"]) <= 300
