"""The simulator's scheduler (issue 12, item 4): job configurations, runs on cron on the
fake clock, the mapped family's job, faults, ``--schedules``, and stricter start bodies."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.cli import main
from monitor.families import FAMILIES
from monitor.simulator import SimConfig, Simulator
from monitor.simulator.jobconfigs import SYNC_CLOUDS, check_body
from tests.sim_fixtures import Harness, path, simulated, stamp

CONFIGS = "/api/v1/scheduler/job-configs"
RUNS = "/api/v1/scheduler/jobs"
CONFIG_KEYS = [
    "id",
    "uri",
    "account",
    "createdAt",
    "updatedAt",
    "name",
    "description",
    "operation",
    "run_at",
    "run_on",
    "disabled",
    "start_date",
    "end_date",
    "job_config_params",
]
RUN_KEYS = ["id", "name", "operation", "status", "createdAt", "processing_node", "job_config_id"]
MINUTE = 60.0


def sync(name: str, run_at: str, cloud: str = "aws", **extra: Any) -> dict[str, Any]:
    """A create body for a synchronization of ``cloud`` (its first scope field)."""
    field = SYNC_CLOUDS[cloud][1]
    body: dict[str, Any] = {
        "name": name,
        "operation": "cckm_synchronization",
        "run_at": run_at,
        "cckm_synchronization_params": {"cloud_name": cloud, field: [f"{cloud}-scope"]},
    }
    body.update(extra)
    return body


async def create(h: Harness, body: dict[str, Any]) -> dict[str, Any]:
    status, answer = await h.call("POST", CONFIGS, json=body)
    assert status == 201, answer
    assert isinstance(answer, dict)
    return answer


async def all_runs(h: Harness, **params: str | int) -> list[dict[str, Any]]:
    """Every run, newest first, page by page."""
    runs: list[dict[str, Any]] = []
    while True:
        page = await h.get(RUNS, skip=len(runs), limit=7, **params)
        runs.extend(page["resources"])
        if len(page["resources"]) < 7:
            return runs


def minutes_after_start(h: Harness, runs: list[dict[str, Any]]) -> list[float]:
    """Each run's due time in minutes after the fake clock's 10:00, oldest first."""
    began = stamp("2026-11-23T10:00:00Z")
    return sorted((stamp(run["createdAt"]) - began) / MINUTE for run in runs)


# --- configurations -------------------------------------------------------------------


async def test_a_configuration_in_the_documented_shape() -> None:
    async with simulated() as h:
        made = await create(h, sync("aws-nightly", "0 2 * * *", start_date="2026-01-01T00:00:00Z"))
        again = await h.get(f"{CONFIGS}/{made['id']}")
        page = await h.get(CONFIGS)
    assert list(made) == CONFIG_KEYS
    assert again == made
    assert page == {"skip": 0, "limit": 10, "total": 1, "resources": [made]}
    assert made["operation"] == "cckm_synchronization"
    assert made["run_on"] == "any" and made["disabled"] is False and made["description"] == ""
    assert made["start_date"] == "2026-01-01T00:00:00Z" and made["end_date"] is None
    assert made["job_config_params"] == {
        "cloud_name": "aws",
        "synchronize_all": False,
        "kms": ["aws-scope"],
    }
    assert made["createdAt"] == made["updatedAt"] == "2026-11-23T10:00:00Z"


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"name": ""}, "name"),
        ({"operation": "make_coffee"}, "operation must be one of"),
        ({"run_at": "*/5 * * * * *"}, "5-field"),
        ({"run_at": "@hourly"}, "5-field"),
        ({"run_at": "61 * * * *"}, "5-field"),
        ({"run_at": "? * * * *"}, "5-field"),
        ({"disabled": "no"}, "disabled"),
        ({"start_date": "yesterday"}, "start_date"),
        ({"start_date": "2026-02-01T00:00:00Z", "end_date": "2026-01-01T00:00:00Z"}, "end_date"),
        ({"colour": "blue"}, "unknown job configuration field: colour"),
        ({"cckm_synchronization_params": {"cloud_name": "mars", "kms": ["k"]}}, "cloud_name"),
        ({"cckm_synchronization_params": {"cloud_name": "aws", "kms": "k"}}, "array"),
        (
            {
                "cckm_synchronization_params": {
                    "cloud_name": "aws",
                    "kms": ["k"],
                    "synchronize_all": True,
                }
            },
            "mutually exclusive",
        ),
        ({"cckm_synchronization_params": {"cloud_name": "aws"}}, "either kms"),
        ({"cckm_synchronization_params": {"cloud_name": "gcp", "kms": ["k"]}}, "unknown"),
        ({"cckm_synchronization_params": None}, "cckm_synchronization_params"),
    ],
)
async def test_bad_configurations_are_refused(change: dict[str, Any], words: str) -> None:
    async with simulated() as h:
        status, body = await h.call("POST", CONFIGS, json={**sync("x", "0 2 * * *"), **change})
        total = (await h.get(CONFIGS))["total"]
    assert status == 400
    assert body["codeDesc"].startswith("NCERRInvalidParamValue: ")
    assert words in body["codeDesc"]
    assert total == 0


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)
_FIELD = st.sampled_from(
    [
        "name",
        "operation",
        "run_at",
        "disabled",
        "start_date",
        "end_date",
        "run_on",
        "description",
        "cckm_synchronization_params",
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    base=st.sampled_from([sync("x", "0 2 * * *"), sync("y", "*/5 * ? * mon", cloud="sfdc")]),
    changes=st.dictionaries(_FIELD, _JSON, max_size=3),
)
def test_any_body_is_a_configuration_or_one_sentence(
    base: dict[str, Any], changes: dict[str, Any]
) -> None:
    """Whatever the body, checking it gives a spec or a ValueError, nothing else."""
    try:
        spec = check_body({**base, **changes})
    except ValueError as error:
        assert str(error) and "\n" not in str(error)
    else:
        assert spec.name.strip() and len(spec.run_at.split()) == 5


async def test_patch_updates_and_delete_removes() -> None:
    async with simulated() as h:
        made = await create(h, sync("a", "0 2 * * *"))
        await h.advance(10)
        status, patched = await h.call(
            "PATCH", f"{CONFIGS}/{made['id']}", json={"disabled": True, "run_at": "0 3 ? * mon"}
        )
        refused = await h.call("PATCH", f"{CONFIGS}/{made['id']}", json={"operation": "x"})
        bad_cron = await h.call("PATCH", f"{CONFIGS}/{made['id']}", json={"run_at": "nope"})
        deleted = await h.call("DELETE", f"{CONFIGS}/{made['id']}")
        gone = await h.call("GET", f"{CONFIGS}/{made['id']}")
        again = await h.call("DELETE", f"{CONFIGS}/{made['id']}")
        unknown = await h.call("PATCH", f"{CONFIGS}/nope", json={"disabled": False})
    assert status == 200
    assert patched["disabled"] is True and patched["run_at"] == "0 3 ? * mon"
    assert patched["createdAt"] == made["createdAt"]
    assert patched["updatedAt"] == "2026-11-23T10:00:10Z"
    assert patched["job_config_params"] == made["job_config_params"]
    assert refused[0] == 400 and "operation cannot be changed" in refused[1]["codeDesc"]
    assert bad_cron[0] == 400
    assert deleted == (204, None)
    assert gone[0] == again[0] == unknown[0] == 404
    assert gone[1]["codeDesc"].startswith("NCERRResourceNotFound: ")


async def test_listing_pages_filters_by_id_and_ignores_other_filters() -> None:
    async with simulated(SimConfig(max_limit=3)) as h:
        made = []
        for number in range(5):
            made.append(await create(h, sync(f"s{number}", "0 2 * * *")))
            await h.advance(1)
        other = await create(
            h, {"name": "rotate", "operation": "cckm_key_rotation", "run_at": "0 4 * * *"}
        )
        first = await h.get(CONFIGS, limit=2)
        second = await h.get(CONFIGS, limit=2, skip=2)
        clamped = await h.get(CONFIGS, limit=50)
        by_id = await h.get(CONFIGS, id=made[1]["id"])
        by_operation = await h.get(CONFIGS, operation="cckm_synchronization")
        bad = await h.call("GET", CONFIGS, params={"skip": -1})
    names = [c["name"] for c in first["resources"] + second["resources"]]
    assert names == ["rotate", "s4", "s3", "s2"]  # newest first
    assert first["total"] == 6 and clamped["limit"] == 3 and len(clamped["resources"]) == 3
    assert by_id["total"] == 1 and by_id["resources"][0]["id"] == made[1]["id"]
    assert by_operation["total"] == 6  # a manager may ignore a filter it does not know
    assert other["job_config_params"] == {}
    assert bad[0] == 400


async def test_every_scheduler_route_needs_a_token() -> None:
    async with simulated() as h:
        made = await create(h, sync("a", "0 2 * * *"))
        h.token = ""
        answers = [
            await h.call("GET", CONFIGS),
            await h.call("POST", CONFIGS, json=sync("b", "0 2 * * *")),
            await h.call("GET", f"{CONFIGS}/{made['id']}"),
            await h.call("PATCH", f"{CONFIGS}/{made['id']}", json={}),
            await h.call("DELETE", f"{CONFIGS}/{made['id']}"),
            await h.call("POST", f"{CONFIGS}/{made['id']}/run-now"),
            await h.call("GET", RUNS),
            await h.call("GET", f"{RUNS}/x"),
            await h.call("DELETE", f"{RUNS}/x"),
        ]
    assert {status for status, _ in answers} == {401}
    assert all(body["codeDesc"].startswith("NCERRUnauthorizedAccess") for _, body in answers)


async def test_injected_faults_reach_the_scheduler_routes() -> None:
    async with simulated() as h:
        await h.call(
            "POST",
            "/sim/v1/faults",
            json={"kind": "status", "status": 503, "path_prefix": "/api/v1/scheduler"},
        )
        jobs = await h.call("GET", path("aws"))
        failed = await h.call("GET", RUNS)
        again = await h.call("GET", RUNS)
    assert jobs[0] == 200
    assert failed[0] == 503 and again[0] == 200


async def test_unknown_scheduler_paths_and_methods() -> None:
    async with simulated() as h:
        missing = await h.call("GET", "/api/v1/scheduler/nothing")
        method = await h.call("PUT", CONFIGS)
        action = await h.call("POST", f"{CONFIGS}/x/run-later")
    assert missing[0] == 404 and action[0] == 404
    assert method[0] == 405


# --- runs on cron ---------------------------------------------------------------------


async def test_runs_fire_on_cron_and_start_the_job() -> None:
    async with simulated(SimConfig(failure_probability=0.0)) as h:
        made = await create(h, sync("aws-5m", "*/5 * * * *"))
        await h.advance(3600 + 120)  # through 11:02: the 11:00 run's job has ended
        runs = await all_runs(h)
        log = await h.transitions()
    assert minutes_after_start(h, runs) == [5.0 * n for n in range(1, 13)]
    assert [list(run) for run in runs] == [RUN_KEYS] * 12
    assert stamp(runs[0]["createdAt"]) > stamp(runs[-1]["createdAt"])  # newest first
    assert {run["status"] for run in runs} == {"completed"}
    assert {run["job_config_id"] for run in runs} == {made["id"]}
    assert {run["name"] for run in runs} == {"aws-5m"}
    assert {run["processing_node"] for run in runs} <= {"kylo-node-1", "kylo-node-2"}
    created = sorted(entry["at"] for entry in log if entry["kind"] == "created")
    assert len(created) == 12
    assert all(entry["source"] == "aws" for entry in log)
    for run, job_at in zip(sorted(runs, key=lambda r: r["createdAt"]), created, strict=True):
        lag = stamp(job_at) - stamp(run["createdAt"])
        assert 0 < lag <= 2.0  # the job starts within two seconds of the due minute


@pytest.mark.parametrize(
    ("run_at", "due_minutes"),
    [
        ("0 * ? * *", [60.0, 120.0]),  # '?' in the day-of-month field
        ("30 10 ? nov mon", [30.0]),  # names: Monday 23 November 2026
        ("30 10 * * sun", []),  # not a Sunday
        ("*/40 10-11 * * *", [40.0, 60.0, 100.0]),  # step and range
        ("15,45 10 * * ?", [15.0, 45.0]),  # list; '?' in the weekday field
        ("0 0 31 2 *", []),  # never due
    ],
)
async def test_cron_features(run_at: str, due_minutes: list[float]) -> None:
    async with simulated() as h:
        await create(h, {"name": "b", "operation": "database_backup", "run_at": run_at})
        await h.advance(2 * 3600 + 30)
        runs = await all_runs(h)
    assert minutes_after_start(h, runs) == due_minutes
    assert {run["operation"] for run in runs} <= {"database_backup"}
    assert {run["status"] for run in runs} <= {"completed"}  # other operations just complete


async def test_disabled_and_dates_are_respected() -> None:
    async with simulated() as h:
        off = await create(h, sync("off", "*/5 * * * *", disabled=True))
        late = await create(h, sync("late", "*/5 * * * *", start_date="2026-11-23T10:30:00Z"))
        ends = await create(h, sync("ends", "*/5 * * * *", end_date="2026-11-23T10:20:00Z"))
        paused = await create(h, sync("paused", "*/5 * * * *"))
        await h.advance(12 * MINUTE)  # 10:12
        await h.call("PATCH", f"{CONFIGS}/{paused['id']}", json={"disabled": True})
        await h.advance(20 * MINUTE)  # 10:32
        await h.call("PATCH", f"{CONFIGS}/{paused['id']}", json={"disabled": False})
        await h.call("PATCH", f"{CONFIGS}/{off['id']}", json={"end_date": "2026-11-23T10:00:00Z"})
        await h.call("PATCH", f"{CONFIGS}/{off['id']}", json={"disabled": False})
        await h.advance(13 * MINUTE)  # 10:45
        due = {
            made["name"]: minutes_after_start(h, await all_runs(h, job_config_id=made["id"]))
            for made in (off, late, ends, paused)
        }
    assert due["off"] == []  # disabled, then past its end date
    assert due["late"] == [30.0, 35.0, 40.0, 45.0]  # start_date itself is due
    assert due["ends"] == [5.0, 10.0, 15.0, 20.0]  # end_date itself is due
    assert due["paused"] == [5.0, 10.0, 35.0, 40.0, 45.0]  # no catch-up of 15..30


@pytest.mark.parametrize("cloud", list(SYNC_CLOUDS))
async def test_a_run_starts_the_mapped_family_with_the_scope(cloud: str) -> None:
    source = SYNC_CLOUDS[cloud][0]
    async with simulated(SimConfig(failure_probability=0.0)) as h:
        made = await create(h, sync("one", "0 2 * * *", cloud=cloud))
        status, run = await h.call("POST", f"{CONFIGS}/{made['id']}/run-now")
        await h.advance(2.5)
        started = await h.get(f"{RUNS}/{run['id']}")
        job = (await h.get(path(source)))["resources"][0]
    family = FAMILIES[source]
    assert status == 201 and run["status"] == "scheduled" and list(run) == RUN_KEYS
    assert started["status"] == "in_progress"
    assert job[family.scope_field] == [f"{cloud}-scope"]
    assert 0 < stamp(job["createdAt"]) - stamp(run["createdAt"]) <= 2.0


@pytest.mark.parametrize(
    ("probability", "cancel", "outcome"),
    [(0.0, False, "completed"), (1.0, False, "failed"), (0.0, True, "aborted")],
)
async def test_the_run_follows_its_job(probability: float, cancel: bool, outcome: str) -> None:
    config = SimConfig(failure_probability=probability, scope_seconds=(30.0, 40.0))
    async with simulated(config) as h:
        made = await create(h, sync("dsm", "0 2 * * *", cloud="dsm"))
        _, run = await h.call("POST", f"{CONFIGS}/{made['id']}/run-now")
        await h.advance(5)
        job = (await h.get(path("dsm")))["resources"][0]
        if cancel:
            assert (await h.cancel("dsm", job["id"]))[0] == 200
        await h.advance(60)
        ended = await h.get(f"{RUNS}/{run['id']}")
        job = await h.job("dsm", job["id"])
    assert ended["status"] == outcome
    assert job["abort"] is cancel


async def test_a_run_of_a_source_not_simulated_fails() -> None:
    async with simulated(SimConfig(sources=("aws",))) as h:
        made = await create(h, sync("gcp", "0 2 * * *", cloud="gcp"))
        _, run = await h.call("POST", f"{CONFIGS}/{made['id']}/run-now")
        await h.advance(3)
        ended = await h.get(f"{RUNS}/{run['id']}")
    assert ended["status"] == "failed"


async def test_runs_list_filters_sort_and_delete() -> None:
    async with simulated(SimConfig(failure_probability=1.0)) as h:
        one = await create(h, sync("one", "*/10 * * * *"))
        two = await create(
            h, {"name": "bk", "operation": "database_backup", "run_at": "*/15 * * * *"}
        )
        await h.advance(31 * MINUTE)
        mine = await all_runs(h, job_config_id=one["id"])
        failed = await all_runs(h, status="failed")
        oldest = await h.get(RUNS, sort="createdAt", limit=2)
        bad = await h.call("GET", RUNS, params={"sort": "name"})
        victim = mine[0]["id"]
        deleted = await h.call("DELETE", f"{RUNS}/{victim}")
        gone = await h.call("GET", f"{RUNS}/{victim}")
        total = (await h.get(RUNS, limit=0))["total"]
    assert minutes_after_start(h, mine) == [10.0, 20.0, 30.0]
    assert {run["job_config_id"] for run in failed} == {one["id"]}  # backups complete
    assert len(failed) == 3
    assert minutes_after_start(h, oldest["resources"]) == [10.0, 15.0]
    assert stamp(oldest["resources"][0]["createdAt"]) < stamp(oldest["resources"][1]["createdAt"])
    assert oldest["total"] == 5 and two["operation"] == "database_backup"
    assert bad[0] == 400 and "sort" in bad[1]["codeDesc"]
    assert deleted == (204, None) and gone[0] == 404 and total == 4


async def test_run_now_of_an_unknown_or_deleted_configuration() -> None:
    async with simulated() as h:
        made = await create(h, sync("a", "*/5 * * * *"))
        await h.call("DELETE", f"{CONFIGS}/{made['id']}")
        unknown = await h.call("POST", f"{CONFIGS}/{made['id']}/run-now")
        await h.advance(30 * MINUTE)
        runs = await all_runs(h)
    assert unknown[0] == 404
    assert runs == []  # a deleted configuration fires no more


# --- faults ---------------------------------------------------------------------------


async def test_a_stalled_scheduler_runs_nothing_until_released() -> None:
    async with simulated() as h:
        made = await create(h, sync("a", "*/5 * * * *"))
        status, summary = await h.call("PATCH", "/sim/v1/scheduler", json={"stalled": True})
        await h.advance(16 * MINUTE)
        _, waiting = await h.call("POST", f"{CONFIGS}/{made['id']}/run-now")
        await h.advance(MINUTE)
        still = await h.get(f"{RUNS}/{waiting['id']}")
        during = await all_runs(h)
        after_status, _ = await h.call("PATCH", "/sim/v1/scheduler", json={"stalled": False})
        await h.advance(5)
        released = await h.get(f"{RUNS}/{waiting['id']}")
        await h.advance(5 * MINUTE)
        runs = await all_runs(h)
        truth = await h.get("/sim/v1/scheduler")
    assert status == after_status == 200 and summary["stalled"] is True
    assert [run["id"] for run in during] == [waiting["id"]]  # no due run appeared
    assert still["status"] == "scheduled"
    assert released["status"] == "in_progress"
    assert minutes_after_start(h, runs) == [16.0, 20.0]
    assert [(m["due_at"], m["reason"]) for m in truth["missed"]] == [
        ("2026-11-23T10:05:00Z", "stalled"),
        ("2026-11-23T10:10:00Z", "stalled"),
        ("2026-11-23T10:15:00Z", "stalled"),
    ]


async def test_a_run_that_fails_before_starting_a_job() -> None:
    async with simulated() as h:
        made = await create(h, sync("a", "*/5 * * * *"))
        status, fault = await h.call(
            "POST", "/sim/v1/scheduler/faults", json={"kind": "fail_before_start"}
        )
        await h.advance(6 * MINUTE)
        runs = await all_runs(h)
        log = await h.transitions()
        await h.advance(5 * MINUTE)
        later = await all_runs(h)
        log_later = await h.transitions()
    assert status == 201
    assert fault == {
        "id": 1,
        "kind": "fail_before_start",
        "count": 1,
        "job_config_id": None,
        "node": None,
    }
    assert [(run["status"], run["job_config_id"]) for run in runs] == [("failed", made["id"])]
    assert log == []  # no job was created
    assert len(later) == 2 and later[1]["status"] == "failed"
    assert log_later[0]["kind"] == "created"  # the fault was used up


async def test_skipped_runs_never_appear() -> None:
    async with simulated() as h:
        kept = await create(h, sync("kept", "*/5 * * * *"))
        lost = await create(h, sync("lost", "*/5 * * * *"))
        await h.call(
            "POST",
            "/sim/v1/scheduler/faults",
            json={"kind": "skip", "count": 2, "job_config_id": lost["id"]},
        )
        await h.advance(16 * MINUTE)
        runs_kept = await all_runs(h, job_config_id=kept["id"])
        runs_lost = await all_runs(h, job_config_id=lost["id"])
        truth = await h.get("/sim/v1/scheduler")
    assert minutes_after_start(h, runs_kept) == [5.0, 10.0, 15.0]
    assert minutes_after_start(h, runs_lost) == [15.0]
    assert [(m["name"], m["reason"]) for m in truth["missed"]] == [("lost", "skipped")] * 2
    assert truth["faults"] == []


async def test_a_node_that_skips_runs() -> None:
    async with simulated() as h:
        await create(h, sync("a", "* * * * *"))
        status, _ = await h.call(
            "POST",
            "/sim/v1/scheduler/faults",
            json={"kind": "skip", "node": "kylo-node-2", "count": None},
        )
        await h.advance(40 * MINUTE)
        runs = await all_runs(h)
        truth = await h.get("/sim/v1/scheduler")
        cleared = await h.call("DELETE", "/sim/v1/scheduler/faults")
        await h.advance(10 * MINUTE)
        after = await all_runs(h)
    assert status == 201
    assert {run["processing_node"] for run in runs} == {"kylo-node-1"}
    assert 5 < len(runs) < 35  # about half of the 40 due runs landed on the other node
    assert len(runs) + len(truth["missed"]) == 40
    assert {m["node"] for m in truth["missed"]} == {"kylo-node-2"}
    assert cleared == (200, {"cleared": 1})
    assert len(after) == len(runs) + 10
    assert len(truth["faults"]) == 1 and truth["faults"][0]["count"] is None


@pytest.mark.parametrize(
    "body",
    [
        {"kind": "explode"},
        {"kind": "skip", "count": 0},
        {"kind": "skip", "count": True},
        {"kind": "skip", "node": 3},
        {"kind": "skip", "colour": "red"},
    ],
)
async def test_bad_scheduler_faults_are_refused(body: dict[str, Any]) -> None:
    async with simulated() as h:
        status, answer = await h.call("POST", "/sim/v1/scheduler/faults", json=body)
        bad_stall = await h.call("PATCH", "/sim/v1/scheduler", json={"stalled": "yes"})
    assert status == 400 and answer["codeDesc"].startswith("NCERRBadRequest: ")
    assert bad_stall[0] == 400


async def test_a_backdated_configuration_has_its_past_runs() -> None:
    async with simulated(SimConfig(failure_probability=0.0)) as h:
        status, made = await h.call(
            "POST",
            "/sim/v1/scheduler/job-configs",
            json={**sync("old", "*/20 * * * *", cloud="dsm"), "created_at": "2026-11-23T09:00:00Z"},
        )
        runs = await all_runs(h)
        jobs = (await h.get(path("dsm")))["resources"]
    assert status == 201 and made["createdAt"] == "2026-11-23T09:00:00Z"
    assert minutes_after_start(h, runs) == [-40.0, -20.0, 0.0]
    assert [run["status"] for run in runs] == ["scheduled", "completed", "completed"]
    assert len(jobs) == 2  # the 10:00 run starts its job a moment after its due minute


# --- pre-created schedules -------------------------------------------------------------


async def test_schedules_are_pre_created_with_their_recent_runs() -> None:
    config = SimConfig(
        schedules=8, schedule_history=3, sources=("aws", "gcp", "dsm", "external_cm")
    )
    async with simulated(config) as h:
        configs = (await h.get(CONFIGS, limit=100))["resources"]
        runs = await all_runs(h)
        again = None
        async with simulated(config) as twin:
            again = (await twin.get(CONFIGS, limit=100))["resources"]
    assert len(configs) == 8
    assert again == configs  # the seed decides
    clouds = {c["job_config_params"]["cloud_name"] for c in configs}
    assert clouds == {"aws", "gcp", "dsm"}  # external CM has no schedule mapping
    assert len({c["run_at"] for c in configs}) >= 4
    for made in configs:
        past = [r for r in runs if r["job_config_id"] == made["id"]]
        assert len(past) >= 3, made["name"]
    assert any(c["job_config_params"]["synchronize_all"] for c in configs)


def test_schedules_need_a_source_they_can_synchronize() -> None:
    with pytest.raises(ValueError, match="schedules need one of these sources"):
        Simulator.create(SimConfig(schedules=1, sources=("external_cm",)), lambda: 0.0)
    with pytest.raises(ValueError, match="schedules must not be negative"):
        SimConfig(schedules=-1)


def test_the_simulate_command_passes_schedules(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[SimConfig] = []

    async def serve(config: SimConfig, **_: Any) -> None:
        seen.append(config)

    monkeypatch.setattr("monitor.simulator.serve", serve)
    assert main(["simulate", "--port", "0", "--schedules", "7"]) == 0
    assert main(["simulate", "--port", "0", "--schedules", "-2"]) == 2
    assert [config.schedules for config in seen] == [7]


# --- start bodies (issue 12: aligned with third-party clients) ----------------------


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"kms": "kms-prod"}, "kms must be an array"),
        ({"kms": ["kms-prod", 3]}, "kms must be an array"),
        ({"kms": ["kms-prod"], "synchronize_all": True}, "mutually exclusive"),
        ({"synchronize_all": "true"}, "synchronize_all must be true or false"),
        ({"kms": ["kms-prod"], "regions": "us-east-1"}, "regions must be an array"),
    ],
)
async def test_start_bodies_need_arrays_exclusive_with_synchronize_all(
    body: dict[str, Any], words: str
) -> None:
    async with simulated() as h:
        status, answer = await h.call("POST", path("aws"), json=body)
        fine = await h.start("aws", {"kms": ["kms-prod"], "synchronize_all": False})
    assert status == 400 and words in answer["codeDesc"]
    assert fine["kms"] == ["kms-prod"]
