"""Reading job configurations and scheduler runs: the mapping table, tolerance, totality.

Expected values come from cckm-api.md ("The scheduler"), not from the parser.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.cm.errors import InvalidResponse
from monitor.cm.scheduler import (
    ConfigPage,
    RunPage,
    ScheduleConfig,
    parse_config_page,
    parse_run_page,
)
from monitor.families import CLOUD_SOURCES, FAMILIES
from monitor.schedules import cron_error, due_times

FAST = settings(max_examples=200, deadline=None)

CONFIG: dict[str, Any] = {
    "id": "6f1d0c2e-1111-2222-3333-444455556666",
    "uri": "kylo:kylo:scheduler:job-configs:6f1d",
    "account": "kylo:kylo:admin:accounts:kylo",
    "createdAt": "2026-01-01T10:00:00.123456Z",
    "updatedAt": "2026-01-02T10:00:00Z",
    "name": "aws-nightly",
    "description": "",
    "operation": "cckm_synchronization",
    "run_at": "0 2 * * *",
    "run_on": "any",
    "disabled": False,
    "start_date": "2026-01-01T00:00:00Z",
    "end_date": None,
    "job_config_params": {"cloud_name": "aws", "synchronize_all": False, "kms": ["kms-prod"]},
}
RUN: dict[str, Any] = {
    "id": "run-1",
    "name": "aws-nightly",
    "operation": "cckm_synchronization",
    "status": "in_progress",
    "createdAt": "2026-01-03T02:00:00.5Z",
    "processing_node": "node-2",
    "job_config_id": CONFIG["id"],
}


def page(*items: Any) -> dict[str, Any]:
    return {"skip": 0, "limit": 100, "total": len(items), "resources": list(items)}


def with_(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    item = copy.deepcopy(base)
    for key, value in changes.items():
        if value is _ABSENT:
            item.pop(key, None)
        else:
            item[key] = value
    return item


_ABSENT = object()


def test_the_documented_configuration() -> None:
    result = parse_config_page(page(CONFIG))
    assert (result.skip, result.limit, result.total, result.count) == (0, 100, 1, 1)
    assert result.schedules == (
        ScheduleConfig(
            id=CONFIG["id"],
            name="aws-nightly",
            operation="cckm_synchronization",
            run_at="0 2 * * *",
            disabled=False,
            start_date=datetime(2026, 1, 1, tzinfo=UTC),
            end_date=None,
            cloud_name="aws",
            source="aws",
            scopes=("kms-prod",),
            synchronize_all=False,
            created_at=datetime(2026, 1, 1, 10, 0, 0, 123456, tzinfo=UTC),
            updated_at=datetime(2026, 1, 2, 10, tzinfo=UTC),
        ),
    )


# cloud_name, scope field -> source (cckm-api.md, written out here)
MAPPING = {
    "aws": ("kms", "aws"),
    "AzureCloud": ("key_vaults", "azure"),
    "gcp": ("key_rings", "gcp"),
    "oci": ("oci_vaults", "oci"),
    "sfdc": ("organizations", "salesforce_secrets"),
    "sap": ("groups", "sap"),
    "dsm": ("domains", "dsm"),
    "hsm-luna": ("partitions", "luna_synchronize"),
}


@pytest.mark.parametrize("cloud", MAPPING, ids=str)
def test_each_cloud_maps_to_a_source_and_its_scope_field(cloud: str) -> None:
    field, source = MAPPING[cloud]
    params = {"cloud_name": cloud, field: ["one", "two"]}
    (schedule,) = parse_config_page(page(with_(CONFIG, job_config_params=params))).schedules
    assert (schedule.source, schedule.scopes, schedule.cloud_name) == (
        source,
        ("one", "two"),
        cloud,
    )
    assert source in FAMILIES  # every mapped source is a family the poller knows


def test_the_table_is_the_documented_one() -> None:
    assert {k: (v.scope_field, v.source) for k, v in CLOUD_SOURCES.items()} == MAPPING


TOLERATED: dict[str, tuple[dict[str, Any], tuple[Any, ...]]] = {
    # change -> (source, scopes, synchronize_all, name, disabled, run_at, dates)
    "unknown_cloud_kept_unwatched": (
        {"job_config_params": {"cloud_name": "alibaba", "vaults": ["x"]}},
        (None, (), False, "aws-nightly", False, "0 2 * * *"),
    ),
    "no_params": (
        {"job_config_params": _ABSENT},
        (None, (), False, "aws-nightly", False, "0 2 * * *"),
    ),
    "create_request_name": (
        {
            "job_config_params": _ABSENT,
            "cckm_synchronization_params": {"cloud_name": "gcp", "key_rings": ["r"]},
        },
        ("gcp", ("r",), False, "aws-nightly", False, "0 2 * * *"),
    ),
    "synchronize_all": (
        {"job_config_params": {"cloud_name": "aws", "synchronize_all": True}},
        ("aws", (), True, "aws-nightly", False, "0 2 * * *"),
    ),
    "no_name_uses_id": (
        {"name": _ABSENT},
        ("aws", ("kms-prod",), False, CONFIG["id"], False, "0 2 * * *"),
    ),
    "no_disabled": (
        {"disabled": _ABSENT},
        ("aws", ("kms-prod",), False, "aws-nightly", False, "0 2 * * *"),
    ),
    "disabled": (
        {"disabled": True},
        ("aws", ("kms-prod",), False, "aws-nightly", True, "0 2 * * *"),
    ),
    "no_run_at": ({"run_at": _ABSENT}, ("aws", ("kms-prod",), False, "aws-nightly", False, "")),
    "unreadable_run_at_is_kept": (
        {"run_at": "every night"},
        ("aws", ("kms-prod",), False, "aws-nightly", False, "every night"),
    ),
    "empty_dates": (
        {"start_date": "", "end_date": _ABSENT},
        ("aws", ("kms-prod",), False, "aws-nightly", False, "0 2 * * *"),
    ),
}


@pytest.mark.parametrize("name", TOLERATED, ids=str)
def test_tolerated_shapes(name: str) -> None:
    changes, expected = TOLERATED[name]
    (schedule,) = parse_config_page(page(with_(CONFIG, **changes))).schedules
    assert (
        schedule.source,
        schedule.scopes,
        schedule.synchronize_all,
        schedule.name,
        schedule.disabled,
        schedule.run_at,
    ) == expected


REJECTED: dict[str, tuple[dict[str, Any], str]] = {
    "disabled_text": ({"disabled": "yes"}, "'disabled' is str, not a boolean"),
    "bad_date": ({"end_date": "tomorrow"}, "'end_date' is not a timestamp"),
    "scopes_not_list": ({"job_config_params": {"cloud_name": "aws", "kms": "kms-prod"}}, "'kms'"),
    "scopes_not_strings": ({"job_config_params": {"cloud_name": "aws", "kms": [1]}}, "'kms'"),
    "params_not_object": ({"job_config_params": ["aws"]}, "expected a JSON object"),
    "no_id": ({"id": _ABSENT}, "'id' is missing"),
    "id_with_control": ({"id": "a\nb"}, "control character"),
    "run_at_number": ({"run_at": 2}, "'run_at' is int, not a string"),
}


@pytest.mark.parametrize("name", REJECTED, ids=str)
def test_a_wrong_type_rejects_the_page_in_one_sentence(name: str) -> None:
    changes, words = REJECTED[name]
    with pytest.raises(InvalidResponse) as caught:
        parse_config_page(page(CONFIG, with_(CONFIG, **changes)))
    assert words in str(caught.value)
    assert "\n" not in str(caught.value)


def test_other_operations_are_filtered_out_after_a_shape_check() -> None:
    rotation = with_(CONFIG, id="rot", operation="cckm_key_rotation", job_config_params=[1])
    backup = {"id": "b", "operation": "database_backup"}
    no_operation = with_(CONFIG, id="none", operation=_ABSENT)
    result = parse_config_page(page(rotation, CONFIG, backup, no_operation))
    assert [s.id for s in result.schedules] == [CONFIG["id"]]
    assert result.count == 4
    with pytest.raises(InvalidResponse):
        parse_config_page(page(CONFIG, "not an object"))


def test_runs() -> None:
    other = with_(RUN, id="run-2", operation="database_backup")
    unnamed = with_(RUN, id="run-3", operation=_ABSENT, job_config_id=_ABSENT, status="In Progress")
    result = parse_run_page(page(RUN, other, unnamed))
    assert isinstance(result, RunPage)
    assert [r.id for r in result.runs] == ["run-1", "run-3"]
    first, third = result.runs
    assert first.created_at == datetime(2026, 1, 3, 2, 0, 0, 500000, tzinfo=UTC)
    assert (first.status, first.processing_node, first.job_config_id) == (
        "in_progress",
        "node-2",
        CONFIG["id"],
    )
    assert (third.operation, third.job_config_id, third.status) == (None, None, "in_progress")


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"status": _ABSENT}, "'status' is missing"),
        ({"status": 3}, "'status' is int"),
        ({"createdAt": "yesterday"}, "'createdAt' is not a timestamp"),
        ({"job_config_id": 7}, "'job_config_id' is int"),
    ],
)
def test_a_bad_run_rejects_the_page(changes: dict[str, Any], words: str) -> None:
    with pytest.raises(InvalidResponse, match=words):
        parse_run_page(page(with_(RUN, **changes)))


def test_texts_are_made_safe() -> None:
    config = with_(CONFIG, name="night\ud800ly\x07", run_at="0 2 * * *" + " " * 500)
    (schedule,) = parse_config_page(page(config)).schedules
    assert schedule.name == "night\ufffdly "
    assert len(schedule.run_at) <= 200
    schedule.name.encode("utf-8")


# --- fuzz: total ------------------------------------------------------------------------------

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=20), children, max_size=4)
    ),
    max_leaves=20,
)
CONFIG_KEYS = st.sampled_from([*CONFIG, "cckm_synchronization_params"])
RUN_KEYS = st.sampled_from(list(RUN))


def _safe(value: Any) -> None:
    json.dumps(value, default=str).encode("utf-8")


@FAST
@given(JSON)
def test_any_json_is_a_page_or_invalid(raw: Any) -> None:
    for parse in (parse_config_page, parse_run_page):
        try:
            result = parse(raw)
        except InvalidResponse as exc:
            assert str(exc)
        else:
            assert isinstance(result, ConfigPage | RunPage)


@FAST
@given(CONFIG_KEYS, JSON)
def test_a_config_with_one_field_replaced(key: str, value: Any) -> None:
    try:
        result = parse_config_page(page(with_(CONFIG, **{key: value})))
    except InvalidResponse as exc:
        str(exc).encode("utf-8")
        return
    for schedule in result.schedules:
        for text in (schedule.id, schedule.name, schedule.run_at, *schedule.scopes):
            text.encode("utf-8")  # no lone surrogate survives
        assert schedule.source is None or schedule.source in FAMILIES
        # whatever run_at says, the schedules module answers without raising
        cron_error(schedule.run_at)
        due_times(schedule.run_at, after=None, until=datetime(2026, 1, 1, tzinfo=UTC), limit=3)


@FAST
@given(st.dictionaries(st.text(max_size=12), JSON, max_size=5))
def test_any_params_object(params: dict[str, Any]) -> None:
    try:
        result = parse_config_page(page(with_(CONFIG, job_config_params=params)))
    except InvalidResponse:
        return
    (schedule,) = result.schedules
    assert schedule.source is None or schedule.source in FAMILIES


@FAST
@given(RUN_KEYS, JSON)
def test_a_run_with_one_field_replaced(key: str, value: Any) -> None:
    try:
        result = parse_run_page(page(with_(RUN, **{key: value})))
    except InvalidResponse:
        return
    for run in result.runs:
        _safe([run.id, run.name, run.status, run.processing_node, run.job_config_id])


@FAST
@given(st.text(max_size=80))
def test_cron_reading_is_total(run_at: str) -> None:
    reason = cron_error(run_at)
    assert reason is None or reason.startswith("run_at")
    found = due_times(run_at, after=None, until=datetime(2026, 1, 1, tzinfo=UTC), limit=2)
    assert len(found.times) <= 2
