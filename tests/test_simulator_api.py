"""The simulator's /api answers, pinned to the vendor's examples (shared/seeds)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from monitor.families import FAMILIES, SOURCE_NAMES
from monitor.model import is_scope_failure, normalise_status, parse_timestamp
from monitor.simulator import SimConfig
from tests.sim_fixtures import JOB_KEYS_RUNNING, path, simulated, stamp

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")


def check_job(job: dict[str, Any], source: str) -> None:
    """What every job object of every family looks like (seeds 000-004)."""
    family = FAMILIES[source]
    expected = JOB_KEYS_RUNNING | {family.scope_field}
    if job["overall_status"].replace(" ", "_") != "in_progress":
        expected |= {"completed_at"}
    assert set(job) - set(family.extra_fields) == expected
    assert UUID.match(job["id"])
    assert job["uri"] == f"kylo:kylo:cckm:synchronize:{job['id']}"
    assert job["account"] == "kylo:kylo:admin:accounts:kylo"
    assert job["application"] == "ncryptify:gemalto:admin:apps:kylo"
    assert job["devAccount"] == "ncryptify:gemalto:admin:accounts:gemalto"
    assert job["cloud"] == family.cloud
    assert isinstance(job["abort"], bool)
    assert job[family.scope_field] and all(isinstance(v, str) for v in job[family.scope_field])
    assert job["detailed_status"] and all(
        isinstance(v, str) for v in job["detailed_status"].values()
    )
    for key in ("createdAt", "updatedAt", "completed_at"):
        if key in job:
            assert STAMP.match(job[key]), job[key]
            parse_timestamp(job[key])
    assert stamp(job["updatedAt"]) >= stamp(job["createdAt"])


# --- the seeds -----------------------------------------------------------------------------


async def test_seed_000_dsm_cancel_answer() -> None:
    async with simulated() as h:
        job = await h.start("dsm", {"domains": ["89c49e63-b5c9-46be-9371-0d8b0649e289"]})
        status, body = await h.cancel("dsm", job["id"])
    assert status == 200
    assert set(body) == JOB_KEYS_RUNNING | {"domains"}  # exactly seed 000's keys
    assert body["abort"] is True
    assert body["overall_status"] == "in_progress"
    assert "completed_at" not in body
    assert body["cloud"] == "dsm"
    assert body["domains"] == ["89c49e63-b5c9-46be-9371-0d8b0649e289"]
    assert body["detailed_status"] == {"89c49e63-b5c9-46be-9371-0d8b0649e289": "in_progress"}


async def test_seed_003_gcp_cancel_answer() -> None:
    ring = "projects/gemalto-kyloeng/locations/global/keyRings/demo-key-ring"
    async with simulated() as h:
        job = await h.start("gcp", {"key_rings": [ring]})
        status, body = await h.cancel("gcp", job["id"])
    assert status == 200
    assert set(body) == JOB_KEYS_RUNNING | {"key_rings"}
    assert (body["abort"], body["overall_status"], body["cloud"]) == (True, "in_progress", "gcp")
    assert body["key_rings"] == [ring]
    assert body["detailed_status"] == {ring: "in_progress"}


async def test_seed_001_finished_dsm_job() -> None:
    config = SimConfig(failure_probability=0.0, scope_seconds=(1.0, 2.0))
    async with simulated(config) as h:
        job = await h.start("dsm", {"domains": ["89c49e63-b5c9-46be-9371-0d8b0649e289"]})
        h.clock.advance(3)
        body = await h.job("dsm", job["id"])
    assert set(body) == JOB_KEYS_RUNNING | {"domains", "completed_at"}
    assert body["overall_status"] == "completed"
    assert body["abort"] is False
    assert body["detailed_status"] == {
        "89c49e63-b5c9-46be-9371-0d8b0649e289": "domain synchronized successfully"
    }
    check_job(body, "dsm")
    created, updated = stamp(body["createdAt"]), stamp(body["updatedAt"])
    assert created < stamp(body["completed_at"]) <= updated


async def test_seed_002_external_cm_list() -> None:
    async with simulated(SimConfig(history=3, running=2, sources=("external_cm",))) as h:
        page = await h.get(path("external_cm"), skip=0, limit=10)
    assert set(page) == {"skip", "limit", "total", "resources"}
    assert (page["skip"], page["limit"], page["total"]) == (0, 10, 5)
    for job in page["resources"]:
        check_job(job, "external_cm")
        assert job["cloud"] == "externalCM"
        assert all(UUID.match(domain) for domain in job["domains"])
        # seed 002 writes nanoseconds: 2020-08-06T09:49:34.605578452Z
        assert len(job["createdAt"].partition(".")[2]) <= 10


async def test_seed_004_aws_list() -> None:
    async with simulated(SimConfig(history=30, running=2, sources=("aws",))) as h:
        page = await h.get(path("aws"), skip=0, limit=10)
    assert set(page) == {"skip", "limit", "total", "resources"}
    assert (page["skip"], page["limit"], page["total"]) == (0, 10, 32)
    assert len(page["resources"]) == 10
    for job in page["resources"]:
        check_job(job, "aws")
        assert job["cloud"] == "aws"
        assert job["kms"]
        for key in job["detailed_status"]:
            assert re.match(r"^\d{12}/[a-z]{2}-[a-z]+-\d$", key), key
        if "regions" in job:
            assert {k.split("/")[1] for k in job["detailed_status"]} == set(job["regions"])
    created = [stamp(job["createdAt"]) for job in page["resources"]]
    assert created == sorted(created, reverse=True)  # newest first, as in the seed


async def test_history_mixes_outcomes_and_precisions() -> None:
    async with simulated(SimConfig(history=200, sources=("aws",))) as h:
        jobs = await h.walk("aws", 100)
    statuses = {(job["overall_status"], job["abort"]) for job in jobs}
    assert {("completed", False), ("failed", False), ("completed", True)} <= statuses
    digits = {len(job["createdAt"].partition(".")[2].rstrip("Z")) for job in jobs}
    assert max(digits) > 6  # some nanosecond stamps, like seed 002
    for job in jobs:
        check_job(job, "aws")
        values = list(job["detailed_status"].values())
        if job["overall_status"] == "failed":
            assert any(is_scope_failure(v) for v in values)
        elif job["abort"]:
            assert "in_progress" in values  # stopped midway (seed 004)
        else:
            assert all(v == "region synchronized successfully" for v in values)


@pytest.mark.parametrize("source", SOURCE_NAMES)
async def test_every_family_lists_starts_gets_and_cancels(source: str) -> None:
    config = SimConfig(history=2, sources=(source,))
    async with simulated(config) as h:
        started = await h.start(source, {"synchronize_all": True})
        check_job(started, source)
        assert started["overall_status"] == "in_progress"
        assert set(started["detailed_status"].values()) == {"in_progress"}
        again = await h.job(source, started["id"])
        assert again == started
        page = await h.get(path(source))
        assert page["total"] == 3
        assert page["resources"][0]["id"] == started["id"]
        for job in page["resources"]:
            check_job(job, source)
        status, cancelled = await h.cancel(source, started["id"])
        assert status == 200
        assert cancelled["abort"] is True


async def test_start_with_named_scopes_per_family() -> None:
    async with simulated() as h:
        aws = await h.start("aws", {"kms": ["kms"], "regions": ["us-east-1", "eu-west-1"]})
        assert aws["regions"] == ["us-east-1", "eu-west-1"]
        assert set(aws["detailed_status"]) == {"123456789012/us-east-1", "123456789012/eu-west-1"}
        vaults = await h.start("azure", {"key_vaults": ["kv-one"]})
        assert vaults["key_vaults"] == ["kv-one"]
        oci = await h.start("oci", {"oci_vaults": ["ocid1.vault.oc1.iad.x"]})
        assert list(oci["detailed_status"]) == ["ocid1.vault.oc1.iad.x"]


# --- pagination, filters, sort ----------------------------------------------------------


async def test_pages_hold_every_job_once() -> None:
    async with simulated(SimConfig(history=25, running=3, sources=("aws", "gcp"))) as h:
        await h.start("aws", {"kms": ["kms"]})
        await h.start("aws", {"synchronize_all": True})
        first = await h.get(path("aws"), skip=0, limit=7)
        jobs = await h.walk("aws", 7)
    ids = [job["id"] for job in jobs]
    assert first["total"] == 25 + 2 + 2  # history, running (2 of 3 on aws), started
    assert len(ids) == len(set(ids)) == first["total"]
    created = [stamp(job["createdAt"]) for job in jobs]
    assert created == sorted(created, reverse=True)


async def test_limit_is_clamped_and_defaults_to_ten() -> None:
    async with simulated(SimConfig(history=30, sources=("aws",), max_limit=20)) as h:
        clamped = await h.get(path("aws"), limit=500)
        default = await h.get(path("aws"))
        past_end = await h.get(path("aws"), skip=30)
        empty = await h.get(path("aws"), limit=0)
    assert (clamped["limit"], len(clamped["resources"])) == (20, 20)
    assert (default["skip"], default["limit"], len(default["resources"])) == (0, 10, 10)
    assert (past_end["total"], past_end["resources"]) == (30, [])
    assert (empty["total"], empty["resources"]) == (30, [])


@pytest.mark.parametrize(
    "params", [{"limit": "-1"}, {"skip": "-5"}, {"limit": "ten"}, {"skip": "1.5"}]
)
async def test_bad_skip_or_limit_is_400(params: dict[str, str]) -> None:
    async with simulated(SimConfig(sources=("aws",))) as h:
        status, body = await h.call("GET", path("aws"), params=params)
    assert status == 400
    assert body["codeDesc"].startswith("NCERRInvalidParamValue: ")


async def test_filters() -> None:
    config = SimConfig(history=40, running=4, sources=("aws",), scope_seconds=(50, 60))
    async with simulated(config) as h:
        spaced = await h.scripted(
            source="aws",
            scopes=[{"key": "123456789012/us-east-1", "after_seconds": 30}],
            status_text="in progress",
        )
        everything = await h.walk("aws", 100)
        target = everything[17]
        by_id = await h.get(path("aws"), id=target["id"])
        running = await h.walk("aws", 100, overall_status="in_progress")
        running_spaced = await h.walk("aws", 100, overall_status="in progress")
        failed = await h.walk("aws", 100, overall_status="failed")
        prod = await h.walk("aws", 100, kms="kms-prod")
        prod_failed = await h.walk("aws", 100, kms="kms-prod", overall_status="failed")
    assert by_id["total"] == 1 and by_id["resources"] == [target]
    assert len(running) == 5 and spaced["id"] in {job["id"] for job in running}
    assert {job["id"] for job in running_spaced} == {job["id"] for job in running}
    assert all(normalise_status(job["overall_status"]) == "in_progress" for job in running)
    assert failed and all(job["overall_status"] == "failed" for job in failed)
    expected = [job for job in everything if job["overall_status"] == "failed"]
    assert [job["id"] for job in failed] == [job["id"] for job in expected]
    assert prod and all("kms-prod" in job["kms"] for job in prod)
    assert len(prod) == sum("kms-prod" in job["kms"] for job in everything)
    assert {job["id"] for job in prod_failed} == {j["id"] for j in prod} & {j["id"] for j in failed}


async def test_scope_filter_uses_the_family_filter_name() -> None:
    ring = "projects/p/locations/global/keyRings/r1"
    async with simulated(SimConfig(sources=("gcp", "oci"))) as h:
        await h.start("gcp", {"key_rings": [ring]})
        await h.start("gcp", {"key_rings": ["projects/p/locations/global/keyRings/r2"]})
        await h.start("oci", {"oci_vaults": ["ocid1.vault.oc1.iad.v1"]})
        rings = await h.get(path("gcp"), key_rings=ring)
        vaults = await h.get(path("oci"), vaults="ocid1.vault.oc1.iad.v1")
    assert [job["key_rings"] for job in rings["resources"]] == [[ring]]
    assert vaults["total"] == 1


async def test_sort_orders() -> None:
    async with simulated(SimConfig(history=30, running=3, sources=("aws",))) as h:
        for _ in range(3):
            await h.start("aws", {"synchronize_all": True})  # same fake instant: a tie
        default = await h.walk("aws", 8)
        newest = await h.walk("aws", 8, sort="-createdAt")
        oldest = await h.walk("aws", 8, sort="createdAt")
        by_update = await h.walk("aws", 8, sort="-updatedAt")
        by_id = await h.walk("aws", 8, sort="id")
        status, bad = await h.call("GET", path("aws"), params={"sort": "colour"})
    assert [j["id"] for j in newest] == [j["id"] for j in default]
    assert [j["id"] for j in oldest] == [j["id"] for j in reversed(default)]
    updated = [stamp(j["updatedAt"]) for j in by_update]
    assert updated == sorted(updated, reverse=True)
    assert [j["id"] for j in by_id] == sorted(j["id"] for j in default)
    assert status == 400 and "colour" in bad["codeDesc"]


# --- errors and routes ------------------------------------------------------------------


async def test_unknown_job_is_404_resource_not_found() -> None:
    async with simulated(SimConfig(history=5, sources=("aws",))) as h:
        status, body = await h.call("GET", f"{path('aws')}/0ea5d52e-387c-44fa-b079-21c8b768f77b")
        cancel_status, cancel_body = await h.cancel("aws", "nope")
    assert status == cancel_status == 404
    assert (
        body == cancel_body == {"code": 16, "codeDesc": "NCERRResourceNotFound: Resource not found"}
    )


async def test_cancel_of_finished_job_is_409() -> None:
    async with simulated(SimConfig(history=3, sources=("dsm",))) as h:
        finished = (await h.get(path("dsm")))["resources"][0]
        status, body = await h.cancel("dsm", finished["id"])
    assert status == 409
    assert body["codeDesc"] == "NCERRInvalidParamValue: job is not in progress"


async def test_start_without_scope_is_400() -> None:
    async with simulated(SimConfig(sources=("gcp",))) as h:
        status, body = await h.call("POST", path("gcp"), json={"regions": ["x"]})
        empty_status, _ = await h.call("POST", path("gcp"))
        junk_status, junk = await h.call("POST", path("gcp"), json=["key_rings"])
    assert status == empty_status == junk_status == 400
    assert (
        body["codeDesc"].startswith("NCERRInvalidParamValue: ") and "key_rings" in body["codeDesc"]
    )
    assert junk["codeDesc"].startswith("NCERRBadRequest: ")


async def test_trailing_slashes_unknown_routes_and_methods() -> None:
    async with simulated(SimConfig(sources=("dsm",))) as h:
        job = await h.start("dsm", {"synchronize_all": True})
        listed = await h.get(path("dsm") + "/")
        got = await h.get(f"{path('dsm')}/{job['id']}/")
        status, cancelled = await h.call("POST", f"{path('dsm')}/{job['id']}/cancel/")
        unknown_status, unknown = await h.call("GET", "/api/v1/cckm/nothing-here")
        other_source_status, _ = await h.call("GET", path("aws"))  # not simulated here
        method_status, method = await h.call("DELETE", path("dsm"))
    assert listed["total"] == 1 and got["id"] == job["id"]
    assert status == 200 and cancelled["abort"] is True
    assert unknown_status == 404 and unknown["codeDesc"].startswith("NCERRResourceNotFound")
    assert other_source_status == 404
    assert method_status == 405 and set(method) == {"code", "codeDesc"}
