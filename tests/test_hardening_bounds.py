"""Issue 10, item 3: bounded envelopes and bounded listings.

A job with thousands of scopes costs events in proportion to its scopes, not their
square: an event's ``detailed_status`` holds at most 50 entries, the failed ones first,
with ``scopes_total``/``scopes_failed``/``scopes_succeeded`` beside it, and its ``scopes``
at most 50 names. ``poll.max_pages`` bounds one listing (the client's cut is tested with
the client; here the setting, its validation and its way to the client).
"""

from __future__ import annotations

import io
import json
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.app import client_options
from monitor.config import ConfigError, parse_config
from monitor.differ import diff_job
from monitor.envelope import MAX_ENVELOPE_SCOPES, event_data, scope_summary
from monitor.health import SourceHealth
from monitor.logs import configure_logging
from monitor.model import Event, EventType, JobSnapshot, is_scope_failure
from monitor.sinks.alertmanager import alerts_for
from monitor.sinks.describe import details
from monitor.sinks.log import LogSink
from monitor.sinks.slack import build_message
from monitor.store import Store
from tests.factories import SUCCESS_TEXT, T0, at, essence, snap
from tests.test_sink_slack import check_limits, header

DENIED = (
    "AccessDeniedException: User: arn:aws:iam::{acct}:user/cckm is not authorized to "
    "perform: kms:ListKeys"
)
STATE_LIMIT = 20 * 1024 * 1024  # the target for the state after 2,000 failed scopes


def key(i: int) -> str:
    return f"{100_000_000_000 + i}/us-east-1"


def big_job(
    scopes: int, *, status: str = "failed", failed: set[int] | None = None, running: int = 0
) -> JobSnapshot:
    """A job with ``scopes`` scopes: those in ``failed`` (default: all) failed, the first
    ``running`` of the others still in progress, the rest synchronized."""
    bad = set(range(scopes)) if failed is None else failed
    detailed: dict[str, str] = {}
    for i in range(scopes):
        if i in bad:
            detailed[key(i)] = DENIED.format(acct=100_000_000_000 + i)
        elif running > 0:
            detailed[key(i)] = "in_progress"
            running -= 1
        else:
            detailed[key(i)] = SUCCESS_TEXT
    return snap(
        status,
        created_at=T0,
        completed_at=None if status == "in_progress" else at(60),
        scopes=[f"kms-{i:05d}" for i in range(scopes)],
        detailed=detailed,
    )


def data_of(snapshot: JobSnapshot, **extra: Any) -> dict[str, Any]:
    return event_data("prod", "aws", snapshot, previous_status=None, **extra)


# --- the envelope ---------------------------------------------------------------------


def test_a_big_job_event_carries_fifty_entries_failed_first_and_the_counts() -> None:
    failed = set(range(0, 300, 5))  # 60 failures spread among 300 scopes
    job = big_job(300, status="in_progress", failed=failed, running=40)
    data = data_of(job)
    entries = list(data["detailed_status"].items())
    assert len(entries) == MAX_ENVELOPE_SCOPES
    # 60 failed > 50: every entry shown is a failure, the first 50 failures in key order
    assert [k for k, _ in entries] == [key(i) for i in sorted(failed)][:MAX_ENVELOPE_SCOPES]
    assert all(is_scope_failure(v) for _, v in entries)
    assert (data["scopes_total"], data["scopes_failed"], data["scopes_succeeded"]) == (
        300,
        60,
        300 - 60 - 40,
    )
    assert data["scopes"] == [f"kms-{i:05d}" for i in range(MAX_ENVELOPE_SCOPES)]


def test_few_failures_come_first_then_the_rest_in_key_order() -> None:
    job = big_job(120, status="in_progress", failed={7, 90, 119}, running=10)
    entries = list(data_of(job)["detailed_status"].items())
    assert [k for k, _ in entries[:3]] == [key(7), key(90), key(119)]
    rest = [k for k, _ in entries[3:]]
    assert rest == [key(i) for i in range(120) if i not in {7, 90, 119}][:47]
    assert len(entries) == MAX_ENVELOPE_SCOPES


def test_a_small_job_is_carried_whole() -> None:
    job = big_job(3, failed={1})
    data = data_of(job)
    assert data["detailed_status"] == dict(job.detailed_status)
    assert list(data["detailed_status"]) == [key(1), key(0), key(2)]  # the failure first
    assert data["scopes"] == list(job.scopes)
    assert (data["scopes_total"], data["scopes_failed"], data["scopes_succeeded"]) == (3, 1, 2)


def test_the_domain_failed_event_keeps_its_own_scope_beyond_the_fifty() -> None:
    job = big_job(200, status="in_progress")
    data = data_of(job, scope=key(199), scope_status=DENIED)
    assert key(199) not in data["detailed_status"]  # the 51st failure and beyond: counted
    assert (data["scope"], data["scope_status"]) == (key(199), DENIED)
    assert data["scopes_failed"] == 200


def test_long_messages_are_still_cut() -> None:
    job = snap(detailed={key(0): "E" * 5000})
    assert len(data_of(job)["detailed_status"][key(0)]) == 1024


_TEXTS = st.sampled_from(["in_progress", "", SUCCESS_TEXT, "Denied", " ", "region SUCCESSFULLY"])


@given(st.dictionaries(st.text(min_size=1, max_size=6), _TEXTS | st.text(max_size=8), max_size=120))
@settings(max_examples=200, deadline=None)
def test_bounds_hold_for_any_detailed_status(detailed: dict[str, str]) -> None:
    job = snap(detailed=detailed)
    data = data_of(job)
    shown = list(data["detailed_status"].items())
    assert len(shown) == min(len(detailed), MAX_ENVELOPE_SCOPES)
    flags = [is_scope_failure(v) for _, v in shown]
    assert flags == sorted(flags, reverse=True)  # failed ones first
    assert all(detailed[k] == v for k, v in shown)  # short values: verbatim
    failed = sum(1 for v in detailed.values() if is_scope_failure(v))
    succeeded = sum(1 for v in detailed.values() if v.strip().lower().endswith("successfully"))
    assert (data["scopes_total"], data["scopes_failed"], data["scopes_succeeded"]) == (
        len(detailed),
        failed,
        succeeded,
    )
    assert min(failed, MAX_ENVELOPE_SCOPES) == sum(flags)


def test_the_summary_is_computed_once_per_snapshot() -> None:
    job = big_job(2000, status="in_progress")
    scope_summary.cache_clear()
    for i in range(2000):
        data_of(job, scope=key(i), scope_status=DENIED)
    info = scope_summary.cache_info()
    assert (info.misses, info.hits) == (1, 1999)


# --- through the differ and the store: linear, not quadratic --------------------------


def _stored_bytes(tmp_path: Path, scopes: int) -> tuple[int, int, int]:
    """(events, bytes of their stored bodies, state file bytes) of a job whose
    ``scopes`` scopes all fail in its first sighting."""
    job = big_job(scopes)
    kept, events = diff_job("prod", "aws", None, job, at(61), stuck_after_seconds=3600)
    assert kept is not None
    path = tmp_path / f"state-{scopes}.db"
    store = Store.open(path)
    try:
        store.commit_poll(
            "prod",
            "aws",
            changed={job.job_id: kept},
            events=events,
            watermark=job.created_at,
            health=SourceHealth(),
            now=at(61).timestamp(),
        )
    finally:
        store.close()
    with sqlite3.connect(path) as conn:
        count, size = conn.execute("SELECT count(*), sum(length(body)) FROM events").fetchone()
    size_on_disk = sum(p.stat().st_size for p in tmp_path.glob(f"state-{scopes}.db*"))
    return int(count), int(size), size_on_disk


def test_a_job_with_2000_failed_scopes_is_stored_in_linear_space(tmp_path: Path) -> None:
    count, size, on_disk = _stored_bytes(tmp_path, 2000)
    assert count == 2000 + 2  # started, 2,000 domain_failed, failed
    # each event holds at most 50 entries of ~140 bytes: ~9 kB, whatever the job's size
    assert size < count * 10_000
    assert on_disk < STATE_LIMIT
    small_count, small_size, _ = _stored_bytes(tmp_path, 500)
    assert small_count == 502
    # four times the scopes, about four times the bytes (quadratic would be sixteen)
    assert size / small_size < 4.5


# --- the sinks read the counts, not the bounded dict ----------------------------------


def _failed_event(scopes: int) -> Event:
    job = big_job(scopes)
    _, events = diff_job("prod", "aws", None, job, at(61), stuck_after_seconds=3600)
    [failed] = [e for e in events if e.type is EventType.JOB_FAILED]
    return failed


def test_details_count_every_scope_not_the_fifty_shown() -> None:
    event = _failed_event(2000)
    assert ("Scopes", "2000 of 2000 failed") in details(event)
    description = alerts_for(event, now=at(61), resolve_after=3600)[0]["annotations"]
    assert "Scopes: 2000 of 2000 failed" in description["description"]


def test_an_event_stored_before_the_counts_is_still_counted_from_its_dict() -> None:
    event = _failed_event(3)
    old = {k: v for k, v in event.data.items() if not k.startswith("scopes_")}
    legacy = Event(event.id, event.type, event.timestamp, "prod", "aws", event.job_id, old)
    assert ("Scopes", "3 of 3 failed") in details(legacy)


def test_slack_names_the_hidden_failures_of_a_big_failed_job() -> None:
    payload = build_message([_failed_event(2000)])
    check_limits(payload)
    assert "Job failed: aws job" in header(payload)
    section = next(
        b["text"]["text"]
        for b in payload["attachments"][0]["blocks"]
        if b["type"] == "section" and "text" in b and "• " in b["text"]["text"]
    )
    shown = section.count("• ")
    more = int(section.rsplit("…and ", 1)[1].split(" ", 1)[0])
    assert 0 < shown <= MAX_ENVELOPE_SCOPES
    assert shown + more == 2000
    assert "2000 of 2000 failed" in str(payload)


def test_slack_lists_a_small_failed_job_whole() -> None:
    payload = build_message([_failed_event(3)])
    text = str(payload)
    assert text.count("• ") == 3
    assert "more scopes" not in text


async def test_the_log_line_carries_the_bounded_data_and_the_counts() -> None:
    out = io.StringIO()
    configure_logging("info", "json", out)
    await LogSink("log").send([_failed_event(2000)])
    line = json.loads(out.getvalue().strip())
    assert len(line["detailed_status"]) == MAX_ENVELOPE_SCOPES
    assert len(line["scopes"]) == MAX_ENVELOPE_SCOPES
    assert (line["scopes_total"], line["scopes_failed"], line["scopes_succeeded"]) == (
        2000,
        2000,
        0,
    )
    assert len(out.getvalue()) < 20_000


# --- poll.max_pages -------------------------------------------------------------------


def _config(**poll: Any) -> dict[str, Any]:
    return {
        "managers": [
            {"name": "prod", "url": "https://cm.example.com", "username": "a", "password": "p"}
        ],
        "poll": poll,
    }


def test_max_pages_defaults_to_1000_and_reaches_the_client() -> None:
    settings_ = parse_config(_config(), environ={})
    assert settings_.poll.max_pages == 1000
    assert client_options(settings_.managers[0], settings_).max_pages == 1000
    custom = parse_config(_config(max_pages=7), environ={})
    assert client_options(custom.managers[0], custom).max_pages == 7


@pytest.mark.parametrize(
    ("value", "words"),
    [(0, "must be at least 1"), (-5, "must be at least 1"), ("many", "must be a whole number")],
)
def test_max_pages_is_validated(value: object, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(_config(max_pages=value), environ={})
    [problem] = info.value.problems
    assert problem.startswith("poll.max_pages: ")
    assert words in problem


def test_a_job_event_one_second_later_is_still_bounded() -> None:
    # a running job whose failures grow: every later event of it stays bounded too
    first = big_job(400, status="in_progress", failed=set(range(100)))
    later = big_job(400, status="in_progress", failed=set(range(300)))
    previous = essence(first, first_seen=T0)
    _, events = diff_job(
        "prod", "aws", previous, later, T0 + timedelta(seconds=1), stuck_after_seconds=3600
    )
    assert len(events) == 200
    assert all(len(e.data["detailed_status"]) == MAX_ENVELOPE_SCOPES for e in events)
    assert {e.data["scopes_failed"] for e in events} == {300}
