"""Injected faults, latency and error rate, TLS, and serving."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from monitor.simulator import SimConfig, running_simulator, serve
from tests.sim_fixtures import Harness, path, simulated


async def raw(h: Harness, url: str) -> tuple[int, str, str]:
    """(status, content type, body text) of an authenticated GET."""
    headers = {"Authorization": f"Bearer {h.token}"}
    async with h.http.get(url, headers=headers) as response:
        return response.status, response.content_type, await response.text()


async def fault(h: Harness, **body: Any) -> dict[str, Any]:
    status, answer = await h.call("POST", "/sim/v1/faults", json=body)
    assert status == 201, answer
    assert isinstance(answer, dict)
    return answer


CONFIG = SimConfig(history=12, sources=("aws", "gcp"))


async def test_status_fault_with_retry_after_then_normal() -> None:
    async with simulated(CONFIG) as h:
        await fault(h, kind="status", status=503, retry_after=2, count=2)
        answers = []
        for _ in range(3):
            async with h.http.get(path("aws"), headers={"Authorization": f"Bearer {h.token}"}) as r:
                answers.append((r.status, r.headers.get("Retry-After"), await r.json()))
    assert [(s, ra) for s, ra, _ in answers] == [(503, "2"), (503, "2"), (200, None)]
    assert answers[0][2]["codeDesc"].startswith("NCERRServiceUnavailable: ")
    assert set(answers[0][2]) == {"code", "codeDesc"}


async def test_path_prefix_limits_a_fault() -> None:
    async with simulated(CONFIG) as h:
        await fault(h, kind="status", status=500, path_prefix=path("gcp"))
        aws, _ = await h.call("GET", path("aws"))
        login = await h.login()  # auth requests pass too
        gcp, body = await h.call("GET", path("gcp"))
    assert aws == 200 and login["jwt"]
    assert gcp == 500 and body["codeDesc"].startswith("NCERRInternalServerError: ")


async def test_faults_include_auth_requests_by_default() -> None:
    async with simulated(CONFIG) as h:
        await fault(h, kind="status", status=429)
        status, body = await h.call(
            "POST", "/api/v1/auth/tokens", json={"name": "admin", "password": "admin"}, auth=False
        )
    assert status == 429 and body["codeDesc"].startswith("NCERRTooManyRequests")


async def test_malformed_and_truncated_answers_are_not_json() -> None:
    async with simulated(CONFIG) as h:
        await fault(h, kind="malformed")
        await fault(h, kind="truncated")
        malformed = await raw(h, path("aws"))
        truncated = await raw(h, path("aws"))
        whole = await raw(h, path("aws"))
    for status, content_type, text in (malformed, truncated):
        assert (status, content_type) == (200, "application/json")
        with pytest.raises(ValueError):
            json.loads(text)
    assert whole[2].startswith(truncated[2])
    assert len(truncated[2]) == len(whole[2]) // 2


async def test_html_error_page() -> None:
    async with simulated(CONFIG) as h:
        await fault(h, kind="html")
        status, content_type, text = await raw(h, path("aws"))
    assert (status, content_type) == (502, "text/html")
    assert "<html>" in text and "502 Bad Gateway" in text


async def test_drop_closes_the_connection() -> None:
    async with simulated(CONFIG) as h:
        # aiohttp retries an idempotent request once by itself: two drops to see one
        await fault(h, kind="drop", count=2)
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await h.call("GET", path("aws"))
        await fault(h, kind="drop")
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await h.call("POST", path("aws"), json={"synchronize_all": True})
        status, page = await h.call("GET", path("aws"))
        _, pending = await h.call("GET", "/sim/v1/faults")
    assert status == 200 and pending == []
    assert page["total"] == 12  # the dropped start request did nothing


async def test_slow_answers_late() -> None:
    async with simulated(CONFIG) as h:
        await fault(h, kind="slow", delay_ms=300)
        began = time.perf_counter()
        status, _ = await h.call("GET", path("aws"))
        slow = time.perf_counter() - began
        began = time.perf_counter()
        await h.call("GET", path("aws"))
        fast = time.perf_counter() - began
    assert status == 200
    assert slow >= 0.3 > fast


async def test_wrong_types() -> None:
    async with simulated(CONFIG) as h:
        job_id = (await h.get(path("aws")))["resources"][0]["id"]
        await fault(h, kind="wrong_types", count=2)
        _, page = await h.call("GET", path("aws"))
        _, job = await h.call("GET", f"{path('aws')}/{job_id}")
    assert isinstance(page["resources"], dict) and isinstance(page["total"], str)
    assert job["overall_status"] == 5 and job["abort"] == "yes"


async def test_duplicate_ids_repeat_a_job_without_losing_one() -> None:
    async with simulated(CONFIG) as h:
        expected = [job["id"] for job in await h.walk("aws", 5)]
        await fault(h, kind="duplicate_ids", path_prefix=path("aws"))
        await h.get(path("aws"), limit=5)  # the fault waits for a list page...
        pages = [await h.get(path("aws"), skip=skip, limit=5) for skip in (5, 10, 15)]
        afterwards = [job["id"] for job in await h.walk("aws", 5)]
    ids = [job["id"] for page in pages for job in page["resources"]]
    assert ids[0] == expected[4]  # the previous page's last job, again
    assert ids[1:] == expected[5:]  # and nothing lost
    assert pages[0]["total"] == len(expected) + 1
    assert afterwards == expected  # a new walk is not shifted


async def test_fault_queue_can_be_listed_and_cleared() -> None:
    async with simulated(CONFIG) as h:
        await fault(h, kind="status", count=3)
        await fault(h, kind="slow", delay_ms=10)
        _, pending = await h.call("GET", "/sim/v1/faults")
        _, cleared = await h.call("DELETE", "/sim/v1/faults")
        _, after = await h.call("GET", "/sim/v1/faults")
        bad, body = await h.call("POST", "/sim/v1/faults", json={"kind": "gremlins"})
    assert [(f["kind"], f["count"]) for f in pending] == [("status", 3), ("slow", 1)]
    assert cleared == {"cleared": 2} and after == []
    assert bad == 400 and "kind" in body["codeDesc"]


async def test_latency_and_error_rate_from_the_config() -> None:
    config = SimConfig(latency_ms=200, error_rate=1.0, sources=("aws",))
    async with simulated(config, login=False) as h:
        began = time.perf_counter()
        status, body = await h.call("GET", path("aws"))
        elapsed = time.perf_counter() - began
        await h.call("PATCH", "/sim/v1/config", json={"error_rate": 0, "latency_ms": 0})
        h.token = (await h.login())["jwt"]
        after, _ = await h.call("GET", path("aws"))
    assert status == 500
    assert body == {"code": 14, "codeDesc": "NCERRInternalServerError: unexpected error"}
    assert elapsed >= 0.2
    assert after == 200


async def test_error_rate_is_seeded() -> None:
    async def statuses() -> list[int]:
        async with simulated(SimConfig(seed=9, error_rate=0.5), login=False) as h:
            body = {"name": "admin", "password": "admin"}
            return [
                (await h.call("POST", "/api/v1/auth/tokens", json=body, auth=False))[0]
                for _ in range(20)
            ]

    first, second = await statuses(), await statuses()
    assert first == second and {200, 500} == set(first)


async def test_tls_needs_the_ca_file(tmp_path: Path) -> None:
    async with running_simulator(SimConfig(sources=("aws",)), tls=True, cert_dir=tmp_path) as sim:
        assert sim.url.startswith("https://127.0.0.1:")
        assert sim.ca_file == tmp_path / "cert.pem"
        login = {"name": "admin", "password": "admin"}
        async with aiohttp.ClientSession(sim.url) as http:
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await http.post("/api/v1/auth/tokens", json=login)
        context = ssl.create_default_context(cafile=str(sim.ca_file))
        async with (
            aiohttp.ClientSession(sim.url, connector=aiohttp.TCPConnector(ssl=context)) as http,
            http.post("/api/v1/auth/tokens", json=login) as response,
        ):
            assert response.status == 200
            assert (await response.json())["jwt"]


async def test_serve_announces_and_refuses_remote_binds() -> None:
    lines: list[str] = []
    task = asyncio.create_task(
        serve(SimConfig(), host="127.0.0.1", port=0, tls=True, cert_dir=None, announce=lines.append)
    )
    for _ in range(100):
        if len(lines) >= 2:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert lines[0].startswith("simulator listening on https://127.0.0.1:")
    assert lines[1].endswith("cert.pem")
    with pytest.raises(ValueError, match="non-loopback"):
        await serve(
            SimConfig(), host="0.0.0.0", port=0, tls=False, cert_dir=None, announce=lines.append
        )
