"""Every secret set, the daemon driven through errors and retries: no secret appears in
any log line, error message, event, metric or /api/v1 answer."""

from __future__ import annotations

import base64
import time
from pathlib import Path
from urllib.request import Request, urlopen

import pytest

from tests.http_receiver import http_receiver
from tests.processes import (
    free_port,
    simulator,
    start_daemon,
    wait_ready,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.e2e

PASSWORD = "admin"  # the simulator's login; checked separately below
REFRESH = "rt-Zq8uX4kP0bSECRET-refresh"
WEBHOOK_KEY = b"wh-signing-key-SECRET-0123456789"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(WEBHOOK_KEY).decode()
SLACK_PATH = "/services/T0SECRET9/B0SECRET9/slackSECRETtokenXYZ"
AM_TOKEN = "am-bearer-SECRET-7f3a9c"
API_TOKEN = "api-bearer-SECRET-55e1b2"
SECRETS = [
    REFRESH,
    WEBHOOK_SECRET,
    WEBHOOK_KEY.decode(),
    "slackSECRETtokenXYZ",
    "B0SECRET9",
    AM_TOKEN,
    API_TOKEN,
]


def test_no_secret_leaks_anywhere(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "daemon.log"
    (tmp_path / "refresh").write_text(REFRESH + "\n")
    with (
        simulator(
            "--history",
            "3",
            "--job-rate",
            "0",
            "--running",
            "0",
            "--scope-seconds",
            "0.2,0.5",
            "--failure-probability",
            "0.5",
        ) as sim,
        http_receiver() as (hook_url, hook),
        http_receiver() as (slack_url, slack),
        http_receiver() as (am_url, am),
    ):
        for receiver in (hook, slack, am):
            receiver.fail_next = 3  # every receiver fails first: retries, error messages
        config = write_config(
            tmp_path / "monitor.yaml",
            sim.url,
            tmp_path / "state.db",
            http_port=port,
            sources=["aws", "gcp"],
            manager_extra={"refresh_token_file": str(tmp_path / "refresh")},
            extra={
                "http": {"listen": f"127.0.0.1:{port}", "auth_token": API_TOKEN},
                "sinks": [
                    {"type": "log"},
                    {
                        "type": "webhook",
                        "name": "hook",
                        "url": hook_url + "/hook",
                        "secret": "${WEBHOOK_SECRET}",
                        "retry": {"initial_seconds": 0.05, "max_seconds": 0.2},
                    },
                    {
                        "type": "slack",
                        "name": "team",
                        "url": "${SLACK_URL}",
                        "retry": {"initial_seconds": 0.05, "max_seconds": 0.2},
                    },
                    {
                        "type": "alertmanager",
                        "name": "am",
                        "url": am_url,
                        "headers": {"Authorization": f"Bearer {AM_TOKEN}"},
                        "retry": {"initial_seconds": 0.05, "max_seconds": 0.2},
                    },
                ],
            },
        )
        env = {"WEBHOOK_SECRET": WEBHOOK_SECRET, "SLACK_URL": slack_url + SLACK_PATH}
        daemon = start_daemon(config, log, port, env=env)
        wait_ready(daemon)
        # errors from the manager too: 5xx bursts, a garbled answer, revoked tokens
        sim.control("POST", "/sim/v1/faults", {"kind": "status", "count": 6, "status": 503})
        sim.control("POST", "/sim/v1/faults", {"kind": "malformed", "count": 2})
        sim.control("POST", "/sim/v1/revoke-tokens")
        for source, key in (
            ("aws", "123456789012/us-east-1"),
            ("gcp", "projects/p/locations/global/keyRings/r"),
        ):
            sim.control(
                "POST",
                "/sim/v1/jobs",
                {
                    "source": source,
                    "scopes": [{"key": key, "after_seconds": 0.3, "result": "AccessDenied"}],
                },
            )
        wait_until(
            lambda: len(hook.requests) >= 8 and len(am.requests) >= 2 and len(slack.requests) >= 4,
            40,
            "deliveries after the failures",
        )
        auth = {"Authorization": f"Bearer {API_TOKEN}"}
        answers = []
        for path in (
            "/api/v1/jobs",
            "/api/v1/events?limit=1000",
            "/api/v1/deadletters",
            "/metrics",
            "/readyz",
            "/healthz",
        ):
            answers.append(get_text(daemon.http_url + path, auth))
        time.sleep(0.5)
        assert daemon.stop() == 0

    everything = "\n".join(
        [
            log.read_text(),
            *answers,
            *(r.body.decode() for r in hook.requests + slack.requests + am.requests),
        ]
    )
    assert "poll.failed" in everything  # the errors did happen
    assert "notification.failed" in everything
    for secret in SECRETS:
        assert secret not in everything, secret
    # the manager password is "admin", which is also the username: check it is never
    # logged as a value of its own
    assert '"password"' not in log.read_text() or '"password": "***"' in log.read_text()
    # the alertmanager's custom header did reach it, and only there
    assert am.requests[0].headers["Authorization"] == f"Bearer {AM_TOKEN}"


def get_text(url: str, headers: dict[str, str]) -> str:
    with urlopen(Request(url, headers=headers), timeout=5) as resp:
        return str(resp.read().decode())
