"""The log sink's lines (contract.md) and the redaction of secrets from every line."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

from monitor.logs import REDACTOR, configure_logging, get_logger
from monitor.model import Event, EventType, event_id
from monitor.sinks.log import LogSink

T0 = datetime(2026, 11, 23, 10, 0, 0, 123000, tzinfo=UTC)
EVENT = Event(
    id=event_id("x"),
    type=EventType.JOB_DOMAIN_FAILED,
    timestamp=T0,
    manager="prod",
    source="aws",
    job_id="job-1",
    data={
        "manager": "prod",
        "source": "aws",
        "job_id": "job-1",
        "status": "in_progress",
        "scope": "123456789012/us-east-1",
        "scope_status": "AccessDenied",
        "detailed_status": {"123456789012/us-east-1": "AccessDenied"},
        "scopes": ["kms"],
    },
)


async def test_json_line_when_not_a_terminal() -> None:
    out = io.StringIO()
    assert configure_logging("info", "auto", out) is False
    await LogSink("log").send([EVENT])
    line = json.loads(out.getvalue().strip())
    assert line["event"] == "job.domain_failed"
    assert line["event_id"] == EVENT.id
    assert line["timestamp"] == "2026-11-23T10:00:00.123Z"
    assert line["level"] == "error"
    # the data fields, flattened
    assert line["scope"] == "123456789012/us-east-1"
    assert line["detailed_status"] == {"123456789012/us-east-1": "AccessDenied"}
    assert line["manager"] == "prod"


async def test_readable_line_on_a_terminal() -> None:
    out = io.StringIO()
    assert configure_logging("info", "console", out) is True
    await LogSink("log", console=True).send([EVENT])
    text = out.getvalue()
    assert "job.domain_failed" in text
    assert "scope=123456789012/us-east-1" in text
    assert not text.lstrip().startswith("{")
    assert "detailed_status" not in text  # the short form for people


def test_daemon_lines_share_the_format_and_level_filter() -> None:
    out = io.StringIO()
    configure_logging("warning", "json", out)
    log = get_logger()
    log.info("poll.ok", source="aws")
    log.warning("poll.failed", source="aws", reason="timeout")
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    assert [x["event"] for x in lines] == ["poll.failed"]
    assert lines[0]["level"] == "warning"
    assert lines[0]["timestamp"].endswith("Z")


def test_secrets_are_redacted_from_every_line() -> None:
    out = io.StringIO()
    configure_logging("info", "json", out)
    REDACTOR.add(["s3cret-Passw0rd", "https://hooks.slack.com/services/T000/B000/XXXX"])
    log = get_logger()
    log.warning(
        "poll.failed",
        error="login as ops-user with s3cret-Passw0rd refused",
        nested={"url": "https://hooks.slack.com/services/T000/B000/XXXX"},
        password="anything",
        items=["s3cret-Passw0rd"],
    )
    text = out.getvalue()
    assert "s3cret-Passw0rd" not in text
    assert "B000/XXXX" not in text
    line = json.loads(text)
    assert line["password"] == "***"
    assert line["error"] == "login as ops-user with *** refused"
