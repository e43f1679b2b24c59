"""Token authentication of the simulator (cckm-api.md, Authentication)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from monitor.cm.client import ManagerClient
from monitor.families import FAMILIES
from monitor.simulator import SimConfig
from tests.pipeline_harness import client_options
from tests.sim_fixtures import Harness, path, simulated

ANSWER_KEYS = {
    "jwt",
    "duration",
    "token_type",
    "client_id",
    "refresh_token_id",
    "refresh_token",
    "refresh_token_expires_in",
}


def claims(jwt: str) -> dict[str, Any]:
    header, payload, signature = jwt.split(".")
    assert json.loads(base64.urlsafe_b64decode(header + "==")) == {"alg": "HS256", "typ": "JWT"}
    assert signature
    decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert isinstance(decoded, dict)
    return decoded


async def list_status(h: Harness, token: str | None) -> tuple[int, Any]:
    headers = {} if token is None else {"Authorization": token}
    return await h.call("GET", path("aws"), auth=False, headers=headers)


@pytest.mark.parametrize(
    ("url", "body"),
    [
        (
            "/api/v1/auth/tokens/",
            {"grant_type": "password", "username": "admin", "password": "pw", "domain": "root"},
        ),
        ("/api/v1/auth/tokens", {"grant_type": "password", "username": "admin", "password": "pw"}),
        ("/api/v1/auth/tokens/", {"name": "admin", "password": "pw"}),
    ],
)
async def test_password_logins(url: str, body: dict[str, str]) -> None:
    async with simulated(SimConfig(password="pw", token_ttl=120), login=False) as h:
        status, answer = await h.call("POST", url, json=body, auth=False)
        ok, _ = await list_status(h, f"Bearer {answer['jwt']}")
    assert status == 200
    assert set(answer) == ANSWER_KEYS
    assert answer["token_type"] == "Bearer"
    assert answer["duration"] == 120
    assert answer["refresh_token_expires_in"] == 0  # the manager's "never" (the default)
    token = claims(answer["jwt"])
    assert token["exp"] - token["iat"] == 120
    assert token["iat"] == h.clock.time()
    assert ok == 200


async def test_wrong_password_and_bad_bodies() -> None:
    async with simulated(login=False) as h:
        wrong = await h.call(
            "POST", "/api/v1/auth/tokens", json={"username": "admin", "password": "x"}, auth=False
        )
        missing = await h.call("POST", "/api/v1/auth/tokens", json={"username": "a"}, auth=False)
        grant = await h.call(
            "POST", "/api/v1/auth/tokens", json={"grant_type": "magic"}, auth=False
        )
    assert wrong[0] == 401 and wrong[1]["codeDesc"].startswith("NCERRUnauthorizedAccess: ")
    assert missing[0] == grant[0] == 400
    assert "codeDesc" in missing[1] and "codeDesc" in grant[1]


async def test_expiry_follows_the_clock_and_refresh_renews() -> None:
    async with simulated(SimConfig(token_ttl=300)) as h:
        first = await h.login()
        h.clock.advance(299)
        assert (await list_status(h, f"Bearer {first['jwt']}"))[0] == 200
        h.clock.advance(51)
        status, body = await list_status(h, f"Bearer {first['jwt']}")
        refreshed = await h.login(grant_type="refresh_token", refresh_token=first["refresh_token"])
        renewed, _ = await list_status(h, f"Bearer {refreshed['jwt']}")
    assert status == 401
    assert body["codeDesc"] == (
        "NCERRUnauthorizedAccess: Bearer token malformed: Token is expired by 50s"
    )
    assert "refresh_token" not in refreshed  # only with renew_refresh_token (issue 12)
    assert renewed == 200


async def test_refresh_tokens_expire_too() -> None:
    async with simulated(SimConfig(token_ttl=60, refresh_token_ttl=600)) as h:
        first = await h.login()
        h.clock.advance(601)
        status, body = await h.call(
            "POST",
            "/api/v1/auth/tokens",
            json={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
            auth=False,
        )
    assert status == 401 and "expired" in body["codeDesc"]


async def test_missing_and_malformed_tokens_have_different_messages() -> None:
    async with simulated() as h:
        good = h.token
        header, payload, _ = good.split(".")
        answers = [
            await list_status(h, None),
            await list_status(h, "Basic YWRtaW46YWRtaW4="),
            await list_status(h, "Bearer not-a-jwt"),
            await list_status(h, f"Bearer {header}.{payload}.c2lnbmF0dXJl"),
        ]
    assert [status for status, _ in answers] == [401] * 4
    texts = [body["codeDesc"] for _, body in answers]
    assert all(text.startswith("NCERRUnauthorizedAccess: ") for text in texts)
    assert len(set(texts)) == 4
    assert "malformed" in texts[2] and "signature" in texts[3]


async def test_revoke_invalidates_access_and_refresh_tokens() -> None:
    async with simulated() as h:
        issued = await h.login()
        status, _ = await h.call("POST", "/sim/v1/revoke-tokens")
        access, body = await list_status(h, f"Bearer {issued['jwt']}")
        refresh, _ = await h.call(
            "POST",
            "/api/v1/auth/tokens",
            json={"grant_type": "refresh_token", "refresh_token": issued["refresh_token"]},
            auth=False,
        )
        fresh = await h.login()
        after, _ = await list_status(h, f"Bearer {fresh['jwt']}")
    assert status == 200
    assert access == 401 and "revoked" in body["codeDesc"]
    assert refresh == 401
    assert after == 200


async def test_every_job_route_needs_a_token() -> None:
    async with simulated(SimConfig(history=1, sources=("dsm",))) as h:
        job_id = (await h.get(path("dsm")))["resources"][0]["id"]
        h.token = ""
        answers = [
            await h.call("GET", path("dsm")),
            await h.call("GET", f"{path('dsm')}/{job_id}"),
            await h.call("POST", path("dsm"), json={"synchronize_all": True}),
            await h.call("POST", f"{path('dsm')}/{job_id}/cancel"),
        ]
    assert {status for status, _ in answers} == {401}


# --- issue 12: aligned with what third-party clients expect ---------------------------------


async def test_claims_are_whole_seconds_on_a_fractional_clock() -> None:
    async with simulated(SimConfig(token_ttl=300.5), login=False) as h:
        h.clock.advance(0.75)
        answer = await h.login()
        token = claims(answer["jwt"])
        issued = h.clock.time()
        h.clock.advance(300.0)  # exp is iat (floored) + 301: valid until then
        still, _ = await list_status(h, f"Bearer {answer['jwt']}")
        h.clock.advance(0.3)
        expired, _ = await list_status(h, f"Bearer {answer['jwt']}")
    assert isinstance(token["iat"], int) and isinstance(token["exp"], int)
    assert token["iat"] == int(issued)
    assert token["exp"] == token["iat"] + 301
    assert (still, expired) == (200, 401)


async def test_refresh_grant_renews_the_refresh_token_only_when_asked() -> None:
    async with simulated(login=False) as h:
        first = await h.login()
        kept = await h.login(grant_type="refresh_token", refresh_token=first["refresh_token"])
        renewed = await h.login(
            grant_type="refresh_token",
            refresh_token=first["refresh_token"],
            renew_refresh_token=True,
        )
        old, _ = await h.call(
            "POST",
            "/api/v1/auth/tokens",
            json={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
            auth=False,
        )
        new = await h.login(grant_type="refresh_token", refresh_token=renewed["refresh_token"])
        bad, body = await h.call(
            "POST",
            "/api/v1/auth/tokens",
            json={
                "grant_type": "refresh_token",
                "refresh_token": renewed["refresh_token"],
                "renew_refresh_token": "yes",
            },
            auth=False,
        )
    assert "refresh_token" not in kept and "refresh_token_expires_in" not in kept
    assert kept["jwt"] != first["jwt"] and kept["client_id"] == first["client_id"]
    assert renewed["refresh_token"] != first["refresh_token"]
    assert renewed["refresh_token_expires_in"] == 0
    assert old == 401  # the renewed token replaced the old one
    assert new["jwt"]
    assert bad == 400 and "renew_refresh_token" in body["codeDesc"]


async def test_refresh_tokens_do_not_expire_by_default() -> None:
    async with simulated(SimConfig(token_ttl=60), login=False) as h:
        first = await h.login()
        h.clock.advance(30 * 86_400)
        later = await h.login(grant_type="refresh_token", refresh_token=first["refresh_token"])
        ok, _ = await list_status(h, f"Bearer {later['jwt']}")
    assert ok == 200


async def test_an_expiring_refresh_token_says_how_long_it_lives() -> None:
    async with simulated(SimConfig(token_ttl=60, refresh_token_ttl=600), login=False) as h:
        answer = await h.login()
    assert answer["refresh_token_expires_in"] == 600


async def test_the_monitor_client_logs_in_and_renews_against_the_simulator() -> None:
    """The monitor's own client keeps working: one password grant, then refresh grants
    that answer no new refresh token (it keeps the one it has), over many lifetimes."""
    async with simulated(SimConfig(token_ttl=120, history=3, sources=("dsm",)), login=False) as h:
        async with ManagerClient(client_options(h.sim.url), clock=h.clock) as client:
            for _ in range(5):
                page = await client.list_page(FAMILIES["dsm"], skip=0, limit=10)
                assert len(page.jobs) == 3
                h.clock.advance(70)  # 50 s left of the token: the next call renews
        stats = h.sim.simulator.stats
    assert stats.requests["auth"] == 5  # the password grant and 4 refresh grants
    assert 401 not in stats.statuses
