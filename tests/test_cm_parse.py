"""The manager's answers are parsed whole or rejected with InvalidResponse, never half."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.cm.errors import InvalidResponse
from monitor.cm.parse import decode_json, error_description, parse_job, parse_page
from monitor.families import FAMILIES

AWS = FAMILIES["aws"]
DSM = FAMILIES["dsm"]

# seed 004's second job, verbatim
SEED_JOB: dict[str, Any] = {
    "id": "afef70ff-311e-46c1-8ead-e1999e8c6d46",
    "uri": "kylo:kylo:cckm:synchronize:afef70ff-311e-46c1-8ead-e1999e8c6d46",
    "account": "kylo:kylo:admin:accounts:kylo",
    "application": "ncryptify:gemalto:admin:apps:kylo",
    "devAccount": "ncryptify:gemalto:admin:accounts:gemalto",
    "createdAt": "2020-11-05T06:38:25.308834Z",
    "updatedAt": "2020-11-05T06:38:29.248338Z",
    "completed_at": "2020-11-05T06:38:29.248173Z",
    "overall_status": "completed",
    "detailed_status": {"123456789012/ap-south-1": "region synchronized successfully"},
    "cloud": "aws",
    "regions": ["ap-south-1"],
    "kms": ["kms"],
    "abort": False,
}


def test_seed_job_parses() -> None:
    job = parse_job(SEED_JOB, AWS)
    assert job.job_id == SEED_JOB["id"]
    assert job.status == "completed"
    assert job.scopes == ("kms",)
    assert job.detailed_status == (("123456789012/ap-south-1", "region synchronized successfully"),)
    assert job.completed_at is not None and job.completed_at.microsecond == 248173


def test_wrapped_job_with_space_status_and_nanoseconds() -> None:
    # seed 002: {"application/json": {...}}, "in progress", 9 fractional digits
    raw = {
        "application/json": {
            "id": "bf27cde1-e2ed-4244-9d5a-8a4e12ad1837",
            "createdAt": "2020-08-06T09:49:34.605578452Z",
            "updatedAt": "2020-08-06T09:49:34.609059131Z",
            "overall_status": "in progress",
            "cloud": "externalCM",
            "domains": ["3e732d57-5ea1-491f-b238-9f4a39a9566f"],
            "abort": False,
        }
    }
    job = parse_job(raw, FAMILIES["external_cm"])
    assert job.status == "in_progress"
    assert job.running
    assert job.created_at is not None and job.created_at.microsecond == 605578
    assert job.completed_at is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"id": None}, "'id' is missing"),
        ({"id": 5}, "'id' is int"),
        ({"overall_status": 5}, "'overall_status' is int"),
        ({"abort": "yes"}, "'abort' is str"),
        ({"detailed_status": ["x"]}, "'detailed_status' is not an object"),
        ({"detailed_status": {"a": 1}}, "detailed_status values must be strings"),
        ({"kms": "kms"}, "'kms' is not a list"),
        ({"createdAt": "yesterday"}, "'createdAt' is not a timestamp"),
    ],
)
def test_wrong_field_types_are_rejected_whole(change: dict[str, Any], message: str) -> None:
    raw = {**SEED_JOB, **change}
    if change.get("id", "") is None:
        del raw["id"]
    with pytest.raises(InvalidResponse, match=message):
        parse_job(raw, AWS)


def test_page_parses_and_rejects_bad_resources() -> None:
    page = parse_page({"skip": 0, "limit": 10, "total": 1, "resources": [SEED_JOB]}, AWS)
    assert (page.skip, page.limit, page.total, len(page.jobs)) == (0, 10, 1, 1)
    with pytest.raises(InvalidResponse, match="'resources' is not a list"):
        parse_page({"resources": {"a": 1}}, AWS)
    with pytest.raises(InvalidResponse, match="'total' is not a non-negative integer"):
        parse_page({"total": "2", "resources": []}, AWS)
    with pytest.raises(InvalidResponse, match="expected a JSON object"):
        parse_page([SEED_JOB], AWS)


def test_invalid_json_and_error_bodies() -> None:
    with pytest.raises(InvalidResponse, match="not valid JSON"):
        decode_json(b'{"skip": 0, "resour', "aws list")
    with pytest.raises(InvalidResponse, match="not valid JSON"):
        decode_json(b"<html><body>502 Bad Gateway</body></html>", "aws list")
    with pytest.raises(InvalidResponse, match="not valid JSON"):
        decode_json(b"[" * 100_000 + b"]" * 100_000, "aws list")  # deep nesting
    desc = b'{"code": 16, "codeDesc": "NCERRResourceNotFound: Resource not found"}'
    assert error_description(desc) == "NCERRResourceNotFound: Resource not found"
    assert error_description(b"oops") is None


def test_huge_strings_are_truncated() -> None:
    raw = {**SEED_JOB, "detailed_status": {"k": "AccessDenied: " + "x" * 100_000}}
    job = parse_job(raw, AWS)
    assert len(job.detailed_status[0][1]) <= 1024


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(SEED_JOB)), json_values, max_size=8))
def test_fuzzed_job_fields_parse_or_raise_invalid_response(overrides: dict[str, Any]) -> None:
    raw = {**SEED_JOB, **overrides}
    try:
        job = parse_job(raw, AWS)
    except InvalidResponse as exc:
        assert str(exc)
    else:
        assert isinstance(job.job_id, str) and job.job_id


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()))
def test_fuzzed_list_bodies_never_crash(body: bytes) -> None:
    with contextlib.suppress(InvalidResponse):
        parse_page(decode_json(body, "dsm list"), DSM)
