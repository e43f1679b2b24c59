"""The ``slack`` sink: Block Kit messages to an incoming webhook, readable in two seconds.

One message per batch: the worker hands consecutive events of one job (or source) from
one poll together, so forty regions of a job failing at once become one message that
names the count and lists the scopes. The message is an attachment with a colour by
severity holding the blocks, plus a plain ``text`` fallback for notifications.

Slack's limits are kept by construction: at most 50 blocks (we use five or six),
header text 150 characters, section text 3000, at most 10 fields of 2000 each; long
messages and long scope lists are cut with a visible "…" or "and N more".
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from monitor.clock import Clock, SystemClock
from monitor.model import Event, EventType, format_timestamp, is_scope_failure
from monitor.sinks.describe import (
    CRITICAL,
    INFO,
    OK,
    WARNING,
    details,
    headline,
    is_test,
    scope_counts,
    severity,
    subject,
    worst,
)
from monitor.sinks.http_post import HttpPoster

MAX_BLOCKS = 50
MAX_HEADER = 150
MAX_SECTION = 3000
MAX_FIELDS = 10
MAX_FIELD = 2000
MAX_TEXT = 3000  # the fallback: Slack allows more, a notification shows far less
MAX_LINE = 300  # one scope's line in a list
COLORS = {CRITICAL: "#d92d20", WARNING: "#f79009", INFO: "#2e90fa", OK: "#12b76a"}
EMOJI = {
    CRITICAL: ":red_circle:",
    WARNING: ":warning:",
    INFO: ":information_source:",
    OK: ":white_check_mark:",
}
_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def escape(text: str, limit: int) -> str:
    """``text`` as Slack mrkdwn (``& < >`` escaped), cut to ``limit`` characters without
    splitting an escape."""
    out: list[str] = []
    size = 0
    for char in text:
        piece = _ESCAPES.get(char, char)
        if size + len(piece) > limit:
            while out and size + 1 > limit:
                size -= len(out.pop())
            out.append("…")
            break
        out.append(piece)
        size += len(piece)
    return "".join(out)


def _plain(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _code(text: str) -> str:
    return "`" + str(text).replace("`", "'") + "`"


def _failed_scopes(events: Sequence[Event]) -> tuple[list[tuple[str, str]], int]:
    """(scope, message) of every failure the batch shows, in order, without repeats, and
    how many scopes failed in all: a ``job.failed`` event lists at most 50 scopes (failed
    first) but counts every failure in ``scopes_failed``."""
    found: dict[str, str] = {}
    total = 0
    for event in events:
        if event.type is EventType.JOB_DOMAIN_FAILED and event.data.get("scope"):
            found.setdefault(str(event.data["scope"]), str(event.data.get("scope_status") or ""))
        elif event.type is EventType.JOB_FAILED:
            statuses = event.data.get("detailed_status")
            if isinstance(statuses, Mapping):
                for scope, text in statuses.items():
                    if is_scope_failure(str(text)):
                        found.setdefault(str(scope), str(text))
            counted = scope_counts(event.data)
            if counted is not None:
                total = max(total, counted[0])
    return list(found.items()), max(total, len(found))


def _scope_list(scopes: Sequence[tuple[str, str]], total: int | None = None) -> str:
    """``• `scope` — message`` lines within one section, then ``…and N more`` (``total``:
    how many failed in all, when more than ``scopes`` lists)."""
    total = max(total or 0, len(scopes))
    lines: list[str] = []
    size = 0
    for i, (scope, message) in enumerate(scopes):
        line = escape(f"• {_code(scope)} — {message}" if message else f"• {_code(scope)}", MAX_LINE)
        rest = total - i - 1
        room = MAX_SECTION - len(f"\n…and {total} more scopes") if rest else MAX_SECTION
        if size + len(line) + 1 > room:
            lines.append(f"…and {total - i} more scopes")
            break
        lines.append(line)
        size += len(line) + 1
    else:
        if total > len(scopes):
            lines.append(f"…and {total - len(scopes)} more scopes")
    return "\n".join(lines)


def _title(events: Sequence[Event]) -> str:
    main = worst(list(events))
    text = headline(main)
    failures = sum(1 for e in events if e.type is EventType.JOB_DOMAIN_FAILED)
    if main.type is EventType.JOB_DOMAIN_FAILED and failures > 1:
        prefix = "[TEST] " if is_test(main) else ""
        text = f"{prefix}{failures} scopes failed: {subject(main)}"
    elif failures and main.type is not EventType.JOB_DOMAIN_FAILED:
        text += f" ({failures} scope{'s' if failures > 1 else ''} failed)"
    return text


def build_message(events: Sequence[Event]) -> dict[str, Any]:
    """The webhook payload for one batch (at least one event)."""
    main = worst(list(events))
    level = severity(main)
    title = _title(events)
    facts = details(main)
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": _plain(f"{EMOJI[level]} {title}", MAX_HEADER),
                "emoji": True,
            },
        },
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": escape(f"*{label}*\n{value}", MAX_FIELD)}
                for label, value in facts[:MAX_FIELDS]
            ],
        },
    ]
    if is_test(main):
        note = str(main.data.get("summary") or "A test notification from cckm-monitor.")
        blocks.append(_section(f"*{note}*"))
    scopes, failed = _failed_scopes(events)
    if scopes:
        text = _scope_list(scopes, failed)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text}})
    error = main.data.get("error")
    if error:
        blocks.append(_section(f"*Error*\n{error}"))
    kinds = sorted({e.type.value for e in events})
    counted = f"{len(events)} events ({', '.join(kinds)}) · " if len(events) > 1 else ""
    context = f"{counted}{format_timestamp(main.timestamp)} · event {main.id} · cckm-monitor"
    blocks.append(
        {"type": "context", "elements": [{"type": "mrkdwn", "text": escape(context, MAX_SECTION)}]}
    )
    fallback = escape(
        f"{title} — " + " · ".join(f"{label}: {value}" for label, value in facts), MAX_TEXT
    )
    return {
        "text": fallback,
        "attachments": [{"color": COLORS[level], "fallback": fallback, "blocks": blocks}],
    }


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": escape(text, MAX_SECTION)}}


class SlackSink:
    """One Block Kit message per batch of events of one job (or source) and poll."""

    max_batch = 100

    def __init__(
        self,
        name: str,
        url: str,
        *,
        where: str,
        timeout_seconds: float = 10.0,
        clock: Clock | None = None,
    ) -> None:
        self.name = name
        self._poster = HttpPoster(
            url, where=where, timeout_seconds=timeout_seconds, clock=clock or SystemClock()
        )

    async def send(self, events: Sequence[Event]) -> None:
        if events:
            body = json.dumps(build_message(events), ensure_ascii=False).encode()
            await self._poster.post(body, {})

    async def close(self) -> None:
        await self._poster.close()
