"""The parsers of the manager's answers are total (issue 10, item 1).

For ANY input, each parser returns valid typed values or raises its one typed error
(``InvalidResponse``; ``ValueError`` for ``parse_timestamp``; ``parse_retry_after``
returns None or a finite number). And what a parser returns works downstream: it encodes
to UTF-8, SQLite and the state file, formats as a timestamp, and takes part in the age
arithmetic. Hypothesis drives arbitrary JSON values (huge integers, NaN/Infinity, every
code point including lone surrogates, wrong types at every level), raw bytes, and
structured inputs (a valid job with one field replaced, timestamps built from extremes).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import sqlite3
import sys
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from monitor.cm import parse
from monitor.cm.auth import MAX_TOKEN_SECONDS, parse_token
from monitor.cm.errors import InvalidResponse
from monitor.cm.parse import decode_json, error_description, parse_job, parse_page
from monitor.codec import decode_essence, decode_event, encode_essence, encode_event
from monitor.envelope import event_data
from monitor.families import FAMILIES
from monitor.logs import Redactor
from monitor.model import (
    Event,
    EventType,
    JobEssence,
    JobSnapshot,
    event_id,
    format_optional,
    format_timestamp,
    parse_timestamp,
)
from monitor.retry import MAX_RETRY_AFTER, backoff_delay, parse_retry_after

AWS = FAMILIES["aws"]
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
FAST = settings(max_examples=150, deadline=None)
STAMP_FORM = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
BAD_ID_CHAR = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
SURROGATE = re.compile(r"[\ud800-\udfff]")

VALID_JOB: dict[str, Any] = {
    "id": "afef70ff-311e-46c1-8ead-e1999e8c6d46",
    "createdAt": "2020-11-05T06:38:25.308834Z",
    "updatedAt": "2020-11-05T06:38:29.248338Z",
    "completed_at": "2020-11-05T06:38:29.248173Z",
    "overall_status": "completed",
    "detailed_status": {"123456789012/ap-south-1": "region synchronized successfully"},
    "cloud": "aws",
    "kms": ["kms"],
    "abort": False,
}

# --- strategies ---------------------------------------------------------------------------

HOSTILE_CHARS = ["\ud800", "\udfff", "\udc80", "\x00", "\x1f", "\x7f", "\x85", "\u2028", "\ufeff"]
any_char = st.characters(codec=None, categories=None) | st.sampled_from(HOSTILE_CHARS)
# st.text() leaves lone surrogates out whatever its alphabet: join the characters instead
any_text = st.lists(any_char, max_size=24).map("".join)
HUGE_INT = 10**5000  # json.loads refuses to convert more than 4,300 digits
# built in .map so that hypothesis never has to repr() the value in a strategy's name
huge_ints = st.sampled_from([1, -1]).map(lambda sign: sign * HUGE_INT)
any_int = st.integers() | st.sampled_from([2**63, 2**53, -1, 0]) | huge_ints
any_float = st.floats(allow_nan=True, allow_infinity=True)
special_floats = st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -0.0, 5e-324])
scalars = st.none() | st.booleans() | any_int | any_float | special_floats | any_text
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(any_text, children, max_size=4)
    ),
    max_leaves=16,
)

YEARS = ["0001", "0002", "0999", "1000", "1969", "1970", "2038", "9998", "9999", "0000", "10000"]
OFFSETS = [
    "Z",
    "z",
    "",
    "+00:00",
    "-00:00",
    "+23:59",
    "-23:59",
    "+24:00",
    "-24:00",
    "+05:30:15",
    "-05:30:15.123456",
    "+01:00:30.5",
    "+0530",
    "+99:99",
    "+05",
]
stamps = st.builds(
    lambda year, month, day, time, second, fraction, offset, sep: (
        f"{year}-{month}-{day}{sep}{time}:{second}{fraction}{offset}"
    ),
    st.sampled_from(YEARS),
    st.sampled_from(["01", "02", "12", "13", "00"]),
    st.sampled_from(["01", "28", "29", "31", "32", "00"]),
    st.sampled_from(["00:00", "23:59", "24:00", "12:60"]),
    st.sampled_from(["00", "59", "60", "61"]),
    st.sampled_from(["", "."]) | st.integers(1, 30).map(lambda n: "." + "9" * n),
    st.sampled_from(OFFSETS),
    st.sampled_from(["T", "t", " "]),
)

# --- what "works downstream" means ---------------------------------------------------------

_DB = sqlite3.connect(":memory:")
_DB.execute("CREATE TABLE t (v TEXT)")


def _downstream_text(text: str) -> None:
    text.encode("utf-8")  # HTTP bodies and headers, log lines
    assert SURROGATE.search(text) is None
    _DB.execute("INSERT INTO t VALUES (?)", (text,))


def _downstream_time(moment: datetime | None) -> None:
    if moment is None:
        return
    assert moment.tzinfo is UTC
    assert STAMP_FORM.fullmatch(format_timestamp(moment))
    assert math.isfinite(moment.timestamp())
    assert isinstance((NOW - moment).total_seconds(), float)  # job age, duration
    assert parse_timestamp(moment.isoformat()) == moment  # the state file's round trip


def _downstream_job(job: JobSnapshot) -> None:
    assert isinstance(job.job_id, str) and 0 < len(job.job_id) <= parse.MAX_ID
    assert BAD_ID_CHAR.search(job.job_id) is None
    texts = [job.job_id, job.status, *job.scopes]
    texts += [t for pair in job.detailed_status for t in pair]
    if job.cloud is not None:
        texts.append(job.cloud)
    for text in texts:
        assert isinstance(text, str)
        _downstream_text(text)
    assert isinstance(job.abort, bool)
    assert len(dict(job.detailed_status)) == len(job.detailed_status)  # keys stay unique
    for moment in (job.created_at, job.updated_at, job.completed_at):
        _downstream_time(moment)
    essence = JobEssence(job, first_seen=NOW)
    assert decode_essence(encode_essence(essence)) == essence
    scope = job.detailed_status[0][0] if job.detailed_status else ""
    event = Event(
        id=event_id("prod", "aws", job.job_id, EventType.JOB_DOMAIN_FAILED.value, scope),
        type=EventType.JOB_DOMAIN_FAILED,
        timestamp=job.created_at or NOW,
        manager="prod",
        source="aws",
        job_id=job.job_id,
        data=event_data("prod", "aws", job, previous_status=None, scope=scope or None),
    )
    assert decode_event(encode_event(event)) == event
    json.dumps(event.envelope(), ensure_ascii=False).encode("utf-8")
    assert format_optional(job.created_at) == event.data["created_at"]


def _finite_everywhere(value: Any) -> None:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float):
            assert math.isfinite(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


# --- decode_json: bytes ---------------------------------------------------------------------


def _dumps(value: Any) -> list[bytes]:
    """The bytes a manager could send for ``value``: escaped, and raw UTF-8 (surrogates too).

    Integers over Python's 4,300-digit limit are written out too (the limit is lifted
    while encoding only): a manager is not bound by it, the decoder must be.
    """
    limit = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        return [
            json.dumps(value, allow_nan=True).encode(),
            json.dumps(value, allow_nan=True, ensure_ascii=False).encode("utf-8", "surrogatepass"),
        ]
    finally:
        sys.set_int_max_str_digits(limit)


@FAST
@given(json_values)
@example(float("nan"))
@example([1, {"a": float("-inf")}])
@example({"total": HUGE_INT})
def test_decode_json_of_any_json_value_is_total(value: Any) -> None:
    for body in _dumps(value):
        try:
            decoded = decode_json(body, "aws list")
        except InvalidResponse as exc:
            assert str(exc).startswith("aws list: the answer is not valid JSON (")
        else:
            _finite_everywhere(decoded)


@FAST
@given(
    st.binary(max_size=200)
    | st.lists(
        st.sampled_from(
            [
                *(b"[", b"]", b"{", b"}", b'"', b"\\ud800", b"\\u", b":", b",", b"NaN"),
                *(b"-Infinity", b"Infinity", b"1e999", b"-1e999", b"9" * 5000, b"0."),
                *(b"\xed\xa0\x80", b"\xff", b'"a"', b"1", b"null", b"true", b"\x00", b" "),
            ]
        ),
        max_size=30,
    ).map(b"".join)
)
def test_decode_json_of_any_bytes_is_total(body: bytes) -> None:
    try:
        _finite_everywhere(decode_json(body, "job"))
    except InvalidResponse as exc:
        assert "not valid JSON" in str(exc)


@pytest.mark.parametrize(
    "body",
    [
        b"1" * 5000,  # over the int digit limit: a plain ValueError, not JSONDecodeError
        b'{"total": ' + b"9" * 4301 + b"}",
        b"NaN",
        b"[Infinity]",
        b'{"a": -Infinity}',
        b"1e999",
        b'{"duration": -1e400}',
        b"[" * 100_000 + b"]" * 100_000,  # RecursionError
        b"\xff\xfe\x00",
        b"",
    ],
)
def test_decode_json_refuses_what_is_not_json(body: bytes) -> None:
    with pytest.raises(InvalidResponse, match=r"^aws list: the answer is not valid JSON"):
        decode_json(body, "aws list")


def test_decode_json_keeps_lone_surrogates_for_the_parsers_to_clean() -> None:
    assert decode_json(b'"\\ud800"', "x") == "\ud800"
    assert decode_json(b'"\xed\xa0\x80"', "x") == "\ud800"  # raw, via surrogatepass


# --- parse_job ------------------------------------------------------------------------------


def _job_or_invalid(raw: Any) -> JobSnapshot | None:
    try:
        job = parse_job(raw, AWS)
    except InvalidResponse as exc:
        message = str(exc)
        assert message.startswith("job")
        message.encode("utf-8")  # a log line, whatever the input
        return None
    _downstream_job(job)
    return job


@FAST
@given(json_values)
def test_parse_job_of_any_value_is_total(raw: Any) -> None:
    _job_or_invalid(raw)


FIELDS = [*sorted(VALID_JOB), "regions", "application/json", "unknown"]


@FAST
@given(st.sampled_from(FIELDS), json_values | stamps)
@example("id", "\ud800")
@example("id", "job\x1f1")
@example("createdAt", "9999-12-31T23:59:59-23:59")
@example("createdAt", "0001-01-01T00:00:00+23:59")
@example("createdAt", "2016-12-31T23:59:60Z")
@example("cloud", "aws\ud800")
@example("detailed_status", dict.fromkeys(["\ud800", "\udc00"], "\udfff"))
@example("kms", ["\ud800", "a\x00b"])
@example("overall_status", "\ud800 in progress")
@example("abort", 1)
def test_parse_job_with_one_field_replaced_is_total(field: str, value: Any) -> None:
    _job_or_invalid({**VALID_JOB, field: value})


@FAST
@given(st.dictionaries(st.sampled_from(FIELDS), json_values | stamps, max_size=6))
def test_parse_job_with_many_fields_replaced_is_total(changes: dict[str, Any]) -> None:
    _job_or_invalid({**VALID_JOB, **changes})


def test_lone_surrogates_in_text_fields_become_replacement_characters() -> None:
    raw = decode_json(
        b'{"id": "j1", "overall_status": "fail\\ud800ed", "cloud": "a\\udfffws", '
        b'"kms": ["k\\ud800"], "detailed_status": {"s\\udc00": "Access\\ud83dDenied"}}',
        "job",
    )
    job = parse_job(raw, AWS)
    assert job.status == "fail\ufffded"
    assert job.cloud == "a\ufffdws"
    assert job.scopes == ("k\ufffd",)
    assert job.detailed_status == (("s\ufffd", "Access\ufffdDenied"),)
    _downstream_job(job)
    # a surrogate pair is a real character and stays
    raw["cloud"] = "\U0001f600"
    assert parse_job(raw, AWS).cloud == "\U0001f600"


@pytest.mark.parametrize(
    "job_id", ["\ud800", "j\udfff1", "job\x1f1", "a\nb", "\x00", "x\x7f", "\x9b"]
)
def test_job_id_with_a_surrogate_or_control_character_is_rejected(job_id: str) -> None:
    with pytest.raises(InvalidResponse, match="field 'id' holds a control character"):
        parse_job({**VALID_JOB, "id": job_id}, AWS)


def test_control_characters_stay_in_text_fields() -> None:
    job = parse_job({**VALID_JOB, "detailed_status": {"r\x00": "Access\x1bDenied\n"}}, AWS)
    assert job.detailed_status == (("r\x00", "Access\x1bDenied\n"),)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("createdAt", "9999-12-31T23:59:59-23:59"),
        ("updatedAt", "0001-01-01T00:00:00+23:59"),
        ("completed_at", "2020-01-01T00:00:00" + "." + "9" * 200 + "Z"),
        ("createdAt", "\uff12\uff10\uff12\uff10-01-01T00:00:00Z"),
        ("createdAt", "2020-01-01T00:00:00\x00Z"),
    ],
)
def test_calendar_extremes_are_invalid_responses_not_crashes(field: str, value: str) -> None:
    with pytest.raises(InvalidResponse, match=f"field {field!r} is not a timestamp"):
        parse_job({**VALID_JOB, field: value}, AWS)


def test_echoed_secrets_are_redacted_from_job_texts(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = {
        **VALID_JOB,
        "overall_status": "failed: hunter2-password",
        "cloud": "hunter2-password",
        "kms": ["x hunter2-password"],
        "detailed_status": {"r/hunter2-password": "bad password hunter2-password"},
    }
    before = parse_job(raw, AWS)  # cached without secrets...
    assert before.cloud == "hunter2-password"
    redactor = Redactor()
    redactor.add(["hunter2-password"])
    monkeypatch.setattr(parse, "REDACTOR", redactor)  # ...stale once the secrets change
    job = parse_job(raw, AWS)
    texts = [job.status, job.cloud or "", *job.scopes, *(t for p in job.detailed_status for t in p)]
    assert all("hunter2" not in text for text in texts)
    assert "***" in job.status and "***" in job.detailed_status[0][1]
    # and through a page
    page = parse_page({"resources": [raw]}, AWS)
    assert page.jobs[0] == job
    # a secret added later (a reload) reaches texts cleaned before it
    redactor.add(["synchronized"])
    again = parse_page({"resources": [raw]}, AWS).jobs[0]
    assert again.detailed_status[0][1] == "bad password ***"
    assert parse_job(VALID_JOB, AWS).detailed_status[0][1] == "region *** successfully"


# --- parse_page -----------------------------------------------------------------------------


@FAST
@given(json_values)
def test_parse_page_of_any_value_is_total(raw: Any) -> None:
    try:
        page = parse_page(raw, AWS)
    except InvalidResponse:
        return
    for job in page.jobs:
        _downstream_job(job)


@FAST
@given(st.sampled_from(["skip", "limit", "total", "resources"]), json_values)
def test_parse_page_with_one_field_replaced_is_total(field: str, value: Any) -> None:
    raw = {"skip": 0, "limit": 10, "total": 1, "resources": [VALID_JOB], field: value}
    try:
        page = parse_page(raw, AWS)
    except InvalidResponse as exc:
        assert str(exc).startswith("job list")
        return
    for number in (page.skip, page.limit, page.total):
        assert number is None or (type(number) is int and 0 <= number <= parse.MAX_COUNT)
        float(number or 0)  # arithmetic on counts never overflows


@pytest.mark.parametrize(
    "total",
    [HUGE_INT, 2**64, -1, 1.5, True, "7"],
    ids=["huge", "2**64", "-1", "1.5", "true", "str"],
)
def test_absurd_counts_are_invalid(total: Any) -> None:
    with pytest.raises(InvalidResponse, match="'total' is not a non-negative integer"):
        parse_page({"total": total, "resources": []}, AWS)


# --- error bodies ---------------------------------------------------------------------------


@FAST
@given(json_values.map(lambda v: {"codeDesc": v}) | json_values | st.binary(max_size=100))
def test_error_description_is_total(value: Any) -> None:
    bodies = [value] if isinstance(value, bytes) else list(_dumps(value))
    for body in bodies:
        desc = error_description(body)
        if desc is not None:
            assert 0 < len(desc) <= 300
            _downstream_text(desc)
            assert not re.search(r"[\x00-\x1f\x7f-\x9f]", desc)  # one line


def test_error_description_of_hostile_bodies() -> None:
    assert error_description(b'{"codeDesc": ' + b"1" * 5000 + b"}") is None
    assert error_description(b'{"codeDesc": NaN}') is None
    assert error_description(b'{"codeDesc": "a\\ud800\\nb"}') == "a\ufffd b"


# --- timestamps -----------------------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(stamps | any_text)
@example("9999-12-31T23:59:59-23:59")
@example("0001-01-01T00:00:00+23:59")
@example("0001-01-01T00:00:00-23:59")
@example("9999-12-31T23:59:59.999999999999999999999999999999Z")
@example("2016-12-31T23:59:60Z")
@example("2016-12-31T23:59:60.5+01:00")
@example("2020-01-01T00:00:00+01:00:30.5")
def test_parse_timestamp_is_total(text: str) -> None:
    try:
        moment = parse_timestamp(text)
    except ValueError as exc:
        str(exc).encode("utf-8")
        return
    _downstream_time(moment)


def test_parse_timestamp_extremes() -> None:
    assert parse_timestamp("0001-01-01T00:00:00-23:59") == datetime(1, 1, 1, 23, 59, tzinfo=UTC)
    leap = parse_timestamp("2016-12-31T23:59:60Z")
    assert leap == datetime(2016, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    thirty = parse_timestamp("2020-08-06T09:49:34." + "1" * 30 + "Z")
    assert thirty.microsecond == 111111
    odd = parse_timestamp("2020-08-06T09:49:34+05:30:15")
    assert odd == datetime(2020, 8, 6, 4, 19, 19, tzinfo=UTC)
    for text in ("9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+00:01", 42, None):
        with pytest.raises(ValueError):
            parse_timestamp(text)  # type: ignore[arg-type]
    assert format_timestamp(datetime(1, 1, 1, tzinfo=UTC)) == "0001-01-01T00:00:00.000Z"


# --- tokens ---------------------------------------------------------------------------------

VALID_TOKEN: dict[str, Any] = {"jwt": "eyJ.abc.def", "duration": 300, "refresh_token": "r-123"}


def _token_or_invalid(raw: Any) -> None:
    try:
        token = parse_token(raw, 1000.0, "previous")
    except InvalidResponse as exc:
        assert str(exc).startswith("login: ")
        return
    header = f"Bearer {token.jwt}"
    assert header.isascii() and header.isprintable()
    header.encode("latin-1")
    assert math.isfinite(token.expires_at)
    assert 1000.0 < token.expires_at <= 1000.0 + MAX_TOKEN_SECONDS
    assert token.refresh_token in ("previous", raw.get("refresh_token"))
    if token.refresh_token is not None:
        assert token.refresh_token.isascii() and token.refresh_token.isprintable()


@FAST
@given(json_values)
def test_parse_token_of_any_value_is_total(raw: Any) -> None:
    _token_or_invalid(raw)


@FAST
@given(st.sampled_from([*VALID_TOKEN, "other"]), json_values)
@example("jwt", "eyJ\u00e9")
@example("jwt", "eyJ\r\nX-Injected: 1")
@example("jwt", "\ud800")
@example("jwt", " ")
@example("duration", float("nan"))
@example("duration", float("inf"))
@example("duration", HUGE_INT)
@example("duration", True)
@example("refresh_token", "r\x00")
def test_parse_token_with_one_field_replaced_is_total(field: str, value: Any) -> None:
    _token_or_invalid({**VALID_TOKEN, field: value})


def test_absurd_token_life_is_capped_at_a_day() -> None:
    token = parse_token({"jwt": "a.b.c", "duration": HUGE_INT}, 0.0, None)
    assert token.expires_at == MAX_TOKEN_SECONDS
    with pytest.raises(InvalidResponse, match="not a printable ASCII"):
        parse_token({"jwt": "a.b\nc"}, 0.0, None)
    with pytest.raises(InvalidResponse, match="'duration' is not a positive number"):
        parse_token({"jwt": "a.b.c", "duration": float("nan")}, 0.0, None)
    kept = parse_token({"jwt": "a.b.c", "refresh_token": "r\ud800"}, 0.0, "old")
    assert kept.refresh_token == "old"


# --- Retry-After and back-off -------------------------------------------------------------

http_dates = st.builds(
    lambda day, year, time, zone: f"Fri, {day} Dec {year} {time} {zone}",
    st.sampled_from(["31", "01", "00", "99"]),
    st.sampled_from(["0", "0000", "0001", "1", "99", "1969", "9999", "10000", "99999999999"]),
    st.sampled_from(["23:59:59", "00:00:00", "24:00:00", "99:99:99"]),
    st.sampled_from(["GMT", "-2359", "+2359", "-9999", "+0000", "UT", "XYZ", ""]),
)
retry_values = (
    any_text
    | http_dates
    | st.sampled_from(["nan", "inf", "-inf", "-1", "1e999", "9" * 5000, "1_000", "٣", " 5 "])
    | st.floats(allow_nan=True).map(str)
)


@settings(max_examples=300, deadline=None)
@given(retry_values)
def test_parse_retry_after_is_total(value: str) -> None:
    seconds = parse_retry_after(value, NOW)
    assert seconds is None or (math.isfinite(seconds) and 0 <= seconds <= MAX_RETRY_AFTER)
    assert parse_retry_after(value) is None or seconds is not None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("nan", None),
        ("inf", None),
        ("-1", None),
        ("1e999", None),
        ("9" * 5000, MAX_RETRY_AFTER),
        ("Fri, 31 Dec 9999 23:59:59 -2359", MAX_RETRY_AFTER),
        ("Mon, 01 Jan 0001 00:00:00 GMT", 0.0),
        ("٣", None),  # float() reads Arabic-Indic digits; HTTP does not
        ("7", 7.0),
        ("2.5", 2.5),
    ],
)
def test_parse_retry_after_hostile_values(value: str, expected: float | None) -> None:
    assert parse_retry_after(value, NOW) == expected


@FAST
@given(
    st.integers(min_value=-5, max_value=10**6),
    st.none() | st.floats(allow_nan=True, allow_infinity=True),
)
def test_backoff_delay_is_finite_whatever_retry_after(attempt: int, retry_after: Any) -> None:
    delay = backoff_delay(
        attempt, initial=0.5, cap=10.0, rng=random.Random(1), retry_after=retry_after
    )
    assert math.isfinite(delay) and 0 <= delay <= 10.0
    if retry_after is not None and retry_after > 0:
        assert delay >= min(retry_after, 10.0)


# --- event ids ------------------------------------------------------------------------------


def _old_event_id(*parts: str) -> str:
    return "evt_" + hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


@pytest.mark.parametrize(
    ("one", "two"),
    [
        # a scope key holding the separator vs. a job id holding it
        (
            ("prod", "aws", "j1", "job.domain_failed", "a\x1fb"),
            ("prod", "aws", "j1", "job.domain_failed\x1fa", "b"),
        ),
        # a manager name holding it vs. the source
        (("prod\x1faws", "job.started", "1"), ("prod", "aws\x1fjob.started", "1")),
        # one part fewer
        (("prod", "aws", "j1", "job.started", ""), ("prod", "aws", "j1", "job.started\x1f")),
    ],
)
def test_crafted_parts_that_collided_now_differ(one: tuple[str, ...], two: tuple[str, ...]) -> None:
    assert _old_event_id(*one) == _old_event_id(*two)  # the collision of the old scheme
    assert event_id(*one) != event_id(*two)


id_parts = st.lists(any_text, max_size=5).map(tuple)


@settings(max_examples=300, deadline=None)
@given(id_parts, id_parts)
def test_distinct_part_tuples_give_distinct_ids(one: tuple[str, ...], two: tuple[str, ...]) -> None:
    assume(one != two)
    assert event_id(*one) != event_id(*two)


@FAST
@given(id_parts)
def test_any_parts_give_an_id(parts: tuple[str, ...]) -> None:
    one = event_id(*parts)
    assert re.fullmatch(r"evt_[0-9a-f]{32}", one)
    assert event_id(*parts) == one


def test_an_event_id_with_a_lone_surrogate() -> None:
    assert event_id("prod", "aws", "\ud800") != event_id("prod", "aws", "\ufffd")
