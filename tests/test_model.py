"""The model's small functions: statuses, scope failures, timestamps, ids, envelopes."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.model import (
    MAX_TEXT,
    TERMINAL_EVENTS,
    Event,
    EventType,
    JobEssence,
    event_id,
    format_optional,
    format_timestamp,
    is_active,
    is_scope_failure,
    normalise_status,
    parse_timestamp,
    truncate,
)
from tests.factories import snap

# --- statuses ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("in_progress", "in_progress"),
        ("in progress", "in_progress"),
        ("In_Progress", "in_progress"),
        ("IN PROGRESS", "in_progress"),
        ("in-progress", "in_progress"),
        ("  in   progress  ", "in_progress"),
        ("in\tprogress", "in_progress"),
        ("running", "running"),
        ("Running", "running"),
        ("completed", "completed"),
        ("Completed", "completed"),
        ("COMPLETED ", "completed"),
        ("failed", "failed"),
        ("aborted", "aborted"),
        ("Cancelled", "cancelled"),
        ("canceled", "canceled"),
        # unknown words are kept verbatim (stripped), not lower-cased or guessed
        ("errored", "errored"),
        ("Errored", "Errored"),
        ("Partially Failed", "Partially Failed"),
        ("  weird-state ", "weird-state"),
        ("", ""),
    ],
)
def test_normalise_status(raw: str, expected: str) -> None:
    assert normalise_status(raw) == expected


def test_normalise_status_truncates_long_unknown_words() -> None:
    word = "x" * 1000
    result = normalise_status(word)
    assert len(result) == 200
    assert result.endswith("…")


@pytest.mark.parametrize(
    ("status", "active"),
    [
        ("in_progress", True),
        ("running", True),
        ("completed", False),
        ("failed", False),
        ("aborted", False),
        ("errored", False),
        ("in progress", False),  # is_active takes normalised words only
    ],
)
def test_is_active(status: str, active: bool) -> None:
    assert is_active(status) is active
    assert snap(status).running is (is_active(normalise_status(status)))


@pytest.mark.parametrize(
    ("value", "failure"),
    [
        ("in_progress", False),
        ("in progress", False),
        ("In Progress", False),
        ("running", False),
        ("region synchronized successfully", False),
        ("domain synchronized successfully", False),
        ("Key ring synchronized Successfully", False),
        ("synchronized successfully  ", False),
        ("", False),
        ("   ", False),
        ("AccessDeniedException: User is not authorized", True),
        ("failed", True),
        ("completed", True),  # neither in_progress nor "... successfully"
        ("successfully synchronized", True),
        ("error: could not connect", True),
    ],
)
def test_is_scope_failure(value: str, failure: bool) -> None:
    assert is_scope_failure(value) is failure


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("short", 10, "short"),
        ("exactly10!", 10, "exactly10!"),
        ("eleven chars", 10, "eleven ch…"),
    ],
)
def test_truncate(text: str, limit: int, expected: str) -> None:
    assert truncate(text, limit) == expected
    assert len(truncate(text, limit)) <= limit


def test_truncate_default_limit() -> None:
    assert len(truncate("y" * (MAX_TEXT * 2))) == MAX_TEXT
    assert truncate("y" * MAX_TEXT) == "y" * MAX_TEXT


# --- timestamps -------------------------------------------------------------------------

BASE = datetime(2020, 8, 6, 9, 49, 34, tzinfo=UTC)


@pytest.mark.parametrize("suffix", ["Z", "z", "+00:00", ""], ids=["Z", "z", "+00:00", "naive"])
@pytest.mark.parametrize(
    ("fraction", "microsecond"),
    [
        ("", 0),
        (".6", 600000),
        (".605", 605000),
        (".605578", 605578),
        (".605578452", 605578),  # nanoseconds: truncated to microseconds
        (".000000001", 0),
        (".999999999", 999999),
    ],
    ids=["0", "1", "3", "6", "9", "9-tiny", "9-max"],
)
def test_parse_timestamp(suffix: str, fraction: str, microsecond: int) -> None:
    parsed = parse_timestamp(f"2020-08-06T09:49:34{fraction}{suffix}")
    assert parsed == BASE.replace(microsecond=microsecond)
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2020-08-06T11:49:34.5+02:00", BASE.replace(microsecond=500000)),
        ("2020-08-06T04:49:34.123456789-05:00", BASE.replace(microsecond=123456)),
        ("  2020-08-06T09:49:34Z  ", BASE),
        ("2020-11-05T06:38:25.308834Z", datetime(2020, 11, 5, 6, 38, 25, 308834, tzinfo=UTC)),
        ("2020-08-06 09:49:34Z", BASE),
    ],
)
def test_parse_timestamp_offsets_converted_to_utc(text: str, expected: datetime) -> None:
    parsed = parse_timestamp(text)
    assert parsed == expected
    assert parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "text", ["", "Z", "yesterday", "2020-13-06T09:49:34Z", "2020-08-06T25:00:00Z", "12345"]
)
def test_parse_timestamp_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError):
        parse_timestamp(text)


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (datetime(2026, 11, 23, 10, 0, tzinfo=UTC), "2026-11-23T10:00:00.000Z"),
        (datetime(2026, 11, 23, 10, 0, 0, 123000, tzinfo=UTC), "2026-11-23T10:00:00.123Z"),
        (datetime(2026, 11, 23, 10, 0, 0, 123999, tzinfo=UTC), "2026-11-23T10:00:00.123Z"),
        (datetime(2026, 11, 23, 10, 0, 0, 999999, tzinfo=UTC), "2026-11-23T10:00:00.999Z"),
        (
            datetime(
                2026, 11, 23, 11, 30, 0, 5000, tzinfo=timezone(timedelta(hours=1, minutes=30))
            ),
            "2026-11-23T10:00:00.005Z",
        ),
        (datetime(1999, 1, 2, 3, 4, 5, tzinfo=UTC), "1999-01-02T03:04:05.000Z"),
    ],
)
def test_format_timestamp(moment: datetime, expected: str) -> None:
    assert format_timestamp(moment) == expected
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", expected)


def test_format_optional() -> None:
    assert format_optional(None) is None
    assert format_optional(BASE) == "2020-08-06T09:49:34.000Z"


@given(
    st.datetimes(
        min_value=datetime(1971, 1, 1),
        max_value=datetime(2999, 12, 31),
        timezones=st.just(UTC),
    ),
    st.integers(0, 999),
)
def test_timestamp_round_trip(moment: datetime, nanos: int) -> None:
    text = format_timestamp(moment)
    parsed = parse_timestamp(text)
    assert parsed == moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    assert format_timestamp(parsed) == text
    # the manager's nanosecond form parses to the same microsecond
    nano_text = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}{nanos:03d}Z"
    assert parse_timestamp(nano_text) == moment


# --- event ids --------------------------------------------------------------------------


def test_event_id_format_and_stability() -> None:
    one = event_id("prod", "aws", "job-1", "job.started", "")
    assert re.fullmatch(r"evt_[0-9a-f]{32}", one)
    assert one == event_id("prod", "aws", "job-1", "job.started", "")
    # pinned: ids must survive restarts *and* upgrades, or receivers see duplicates
    # (issue 10 changed the scheme once, pre-release: parts hashed as a JSON array)
    digest = hashlib.sha256(b'["prod", "aws", "job-1", "job.started", ""]').hexdigest()
    assert one == "evt_" + digest[:32] == "evt_c689c4eedf347d5e264c2d7524df1bde"


@pytest.mark.parametrize(
    "other",
    [
        ("prod", "aws", "job-2", "job.started", ""),
        ("prod", "gcp", "job-1", "job.started", ""),
        ("staging", "aws", "job-1", "job.started", ""),
        ("prod", "aws", "job-1", "job.completed", ""),
        ("prod", "aws", "job-1", "job.started", "scope"),
        ("prod", "aws", "job-1", "job.started"),
    ],
)
def test_event_id_differs_when_any_part_differs(other: tuple[str, ...]) -> None:
    assert event_id(*other) != event_id("prod", "aws", "job-1", "job.started", "")


# --- events and envelopes ---------------------------------------------------------------


def test_event_types_are_the_contract_names() -> None:
    assert {str(t) for t in EventType} == {
        "job.started",
        "job.completed",
        "job.failed",
        "job.aborted",
        "job.abort_requested",
        "job.domain_failed",
        "job.stuck",
        "job.vanished",
        "source.down",
        "source.up",
        # issue 12 (contract.md, "Second round")
        "schedule.missed",
        "schedule.run_failed",
        "schedule.disabled",
        "schedule.enabled",
        "scope.stale",
        "scope.fresh",
    }
    assert {str(t) for t in TERMINAL_EVENTS} == {
        "job.completed",
        "job.failed",
        "job.aborted",
        "job.vanished",
    }


def test_envelope_shape() -> None:
    data = {"manager": "prod", "source": "aws", "job_id": "j", "scopes": ["kms"]}
    event = Event(
        id="evt_0123",
        type=EventType.JOB_DOMAIN_FAILED,
        timestamp=datetime(2026, 11, 23, 10, 0, 0, 123456, tzinfo=UTC),
        manager="prod",
        source="aws",
        job_id="j",
        data=data,
    )
    envelope = event.envelope()
    assert list(envelope) == ["id", "type", "timestamp", "data"]
    assert envelope == {
        "id": "evt_0123",
        "type": "job.domain_failed",
        "timestamp": "2026-11-23T10:00:00.123Z",
        "data": data,
    }
    assert type(envelope["type"]) is str
    assert type(envelope["data"]) is dict
    # a plain JSON document, identical after a round trip
    assert json.loads(json.dumps(envelope)) == envelope
    # the envelope is a copy: changing it does not change the event
    envelope["data"]["manager"] = "changed"
    assert event.data["manager"] == "prod"


def test_envelope_timestamp_from_non_utc_moment() -> None:
    event = Event(
        id="evt_x",
        type=EventType.SOURCE_UP,
        timestamp=datetime(2026, 11, 23, 12, 0, tzinfo=timezone(timedelta(hours=2))),
        manager="prod",
        source="aws",
    )
    envelope = event.envelope()
    assert envelope["timestamp"] == "2026-11-23T10:00:00.000Z"
    assert envelope["data"] == {}


# --- snapshots and essences -------------------------------------------------------------


def test_snapshot_scope_map_and_equality() -> None:
    one = snap(detailed={"b": "in_progress", "a": "failed"})
    two = snap(detailed={"a": "failed", "b": "in_progress"})
    assert one == two
    assert hash(one) == hash(two)
    assert one.scope_map() == {"a": "failed", "b": "in_progress"}


def test_essence_properties() -> None:
    snapshot = snap(job_id="j-9")
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    running = JobEssence(snapshot, first_seen=moment)
    assert running.job_id == "j-9"
    assert running.tracked_running
    assert not running.stuck_reported
    assert not running.baseline
    done = JobEssence(snapshot, first_seen=moment, terminal="job.completed")
    assert not done.tracked_running
