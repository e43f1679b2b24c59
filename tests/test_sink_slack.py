"""The Slack sink: Block Kit within Slack's limits, readable, and a flood as ONE message."""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import anyio
import pytest

from monitor.clock import FakeClock
from monitor.health import SourceHealth
from monitor.model import Event, EventType
from monitor.sinks.base import DeliveryWorker, Filters, RetryPolicy, Wakeup
from monitor.sinks.slack import COLORS, build_message, escape
from monitor.store import Store
from tests.sink_kit import T0, job_event, make_sink, receiver, source_event
from tests.test_delivery import Recorder

SCOPE_MESSAGE = "AccessDenied: User arn:aws:iam::123456789012:role/cckm is not authorized"


def check_limits(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """Slack's documented limits; returns the blocks."""
    assert payload["text"] and len(payload["text"]) <= 3000
    blocks = list(payload.get("blocks", []))
    for attachment in payload.get("attachments", []):
        assert re.fullmatch(r"#[0-9a-f]{6}", attachment["color"])
        blocks += attachment["blocks"]
    assert 1 <= len(blocks) <= 50
    for block in blocks:
        if block["type"] == "header":
            assert block["text"]["type"] == "plain_text"
            assert 1 <= len(block["text"]["text"]) <= 150
        elif block["type"] == "section":
            assert "text" in block or "fields" in block
            if "text" in block:
                assert 1 <= len(block["text"]["text"]) <= 3000
            fields = block.get("fields", [])
            assert len(fields) <= 10
            assert all(1 <= len(f["text"]) <= 2000 for f in fields)
        elif block["type"] == "context":
            assert 1 <= len(block["elements"]) <= 10
            assert all(len(e["text"]) <= 3000 for e in block["elements"])
        else:
            raise AssertionError(f"unexpected block {block['type']}")
    return blocks


def header(payload: dict[str, Any]) -> str:
    return str(payload["attachments"][0]["blocks"][0]["text"]["text"])


def all_text(payload: dict[str, Any]) -> str:
    return str(payload)


def one_of_each() -> list[Event]:
    events = [
        job_event(kind)
        for kind in EventType
        if kind not in (EventType.SOURCE_DOWN, EventType.SOURCE_UP)
    ]
    return [*events, source_event(EventType.SOURCE_DOWN), source_event(EventType.SOURCE_UP)]


@pytest.mark.parametrize("event", one_of_each(), ids=lambda e: e.type.value)
def test_every_event_reads_well_within_limits(event: Event) -> None:
    payload = build_message([event])
    blocks = check_limits(payload)
    assert blocks[0]["type"] == "header"
    text = all_text(payload)
    assert "prod" in text and "aws" in text
    if event.job_id:
        assert event.job_id in text
    assert event.id in text  # the context line names the event for support


def test_colour_by_severity() -> None:
    assert (
        build_message([job_event(EventType.JOB_FAILED)])["attachments"][0]["color"]
        == (COLORS["critical"])
    )
    assert (
        build_message([job_event(EventType.JOB_STUCK)])["attachments"][0]["color"]
        == (COLORS["warning"])
    )
    assert (
        build_message([job_event(EventType.JOB_COMPLETED)])["attachments"][0]["color"]
        == (COLORS["ok"])
    )


def test_a_failed_scope_shows_scope_message_and_duration() -> None:
    event = job_event(
        EventType.JOB_DOMAIN_FAILED, scope="123456789012/us-east-1", message="Denied <kms> & co"
    )
    payload = build_message([event])
    assert header(payload).startswith(":red_circle: Scope failed: aws job")
    text = all_text(payload)
    assert "`123456789012/us-east-1` — Denied &lt;kms&gt; &amp; co" in text
    stuck = build_message([job_event(EventType.JOB_STUCK, duration_seconds=11040.0)])
    assert "*Running for*\\n3h 04m" in all_text(stuck)


def test_long_messages_and_long_scope_lists_are_cut_within_limits() -> None:
    huge = job_event(
        EventType.JOB_FAILED,
        detailed_status={f"{i:012d}/eu-west-{i}": "x" * 5000 for i in range(400)},
        error="e" * 10_000,
    )
    payload = build_message([huge])
    check_limits(payload)
    assert "more scopes" in all_text(payload)
    long_name = job_event(EventType.JOB_STUCK, job="j" * 500, manager="m" * 64)
    check_limits(build_message([long_name]))


def test_a_flood_of_forty_scopes_is_one_grouped_message() -> None:
    flood = [
        job_event(
            EventType.JOB_DOMAIN_FAILED,
            scope=f"123456789012/region-{i:02d}",
            message=SCOPE_MESSAGE,
        )
        for i in range(40)
    ]
    payload = build_message(flood)
    check_limits(payload)
    assert "40 scopes failed: aws job" in header(payload)
    section = payload["attachments"][0]["blocks"][2]["text"]["text"]
    shown = section.count("• ")
    more = re.search(r"…and (\d+) more scopes", section)
    assert shown == 40 or (more is not None and shown + int(more.group(1)) == 40)
    assert "40 events (job.domain_failed)" in all_text(payload)


def test_a_job_that_failed_with_scopes_leads_with_the_job() -> None:
    batch = [
        job_event(EventType.JOB_DOMAIN_FAILED, scope=f"r{i}", message="Denied") for i in range(3)
    ]
    batch.append(job_event(EventType.JOB_FAILED))
    assert "Job failed: aws job" in header(build_message(batch))
    assert "(3 scopes failed)" in header(build_message(batch))


def test_the_test_notification_is_labelled() -> None:
    event = job_event(test=True, summary="TEST NOTIFICATION from cckm-monitor")
    payload = build_message([event])
    assert "[TEST]" in header(payload)
    assert "[TEST]" in payload["text"]
    assert "TEST NOTIFICATION from cckm-monitor" in all_text(payload)


def test_escape_never_splits_an_entity_or_passes_the_limit() -> None:
    assert escape("a<b", 10) == "a&lt;b"
    for limit in range(1, 12):
        cut = escape("&&&&&&&&", limit)
        assert len(cut) <= limit
        assert re.fullmatch(r"(&amp;)*…?", cut)


async def test_a_flood_through_the_worker_makes_one_request(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "state.db")
    store.register_sinks(["slack"])
    flood = [
        job_event(EventType.JOB_DOMAIN_FAILED, scope=f"acct/region-{i}", message=SCOPE_MESSAGE)
        for i in range(40)
    ]
    other = job_event(EventType.JOB_STARTED, job="another-job", at=T0)
    store.commit_poll(
        "prod",
        "aws",
        changed={},
        events=[*flood, other],
        watermark=None,
        health=SourceHealth(),
        now=T0.timestamp(),
    )
    async with receiver() as rcv:
        clock = FakeClock(T0, autojump=True)
        recorder = Recorder()
        worker = DeliveryWorker(
            make_sink("slack", rcv.url("slack")),
            store,
            policy=RetryPolicy(),
            filters=Filters(),
            clock=clock,
            wakeup=Wakeup(),
            observer=recorder,
            rng=random.Random(1),
        )
        with anyio.fail_after(5):
            await worker.deliver_pending()
        await worker.close()
    store.close()
    assert len(rcv.requests) == 2  # the flood, then the other job
    check_limits(rcv.json(0))
    assert "40 scopes failed" in header(rcv.json(0))
    assert len(recorder.delivered_ids) == 41
