"""Issue 10, class 4: secrets never leave, even when a manager or a receiver echoes them.

A manager that quotes back everything it is sent (the password and refresh grants, in
raw, JSON-escaped and URL-encoded forms) in its 400/401/500 ``codeDesc``, and jobs whose
fields quote the password; a receiver that quotes back the request (headers, path, body)
in its 4xx/5xx answers. The daemon runs through all of it; no secret appears in its log,
its state file, its ``/api/v1/*`` answers, ``deliveries --failed`` or what receivers got.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus
from urllib.request import Request, urlopen

import pytest
from aiohttp import web
from anyio.from_thread import start_blocking_portal

from monitor.families import FAMILIES
from tests.processes import ROOT, command, free_port, start_daemon, wait_until, write_config

pytestmark = pytest.mark.e2e

# each secret holds a marker that appears nowhere else: finding the marker in any form
# (raw, JSON-escaped, URL-encoded) is a leak
PASSWORD = 'pa"ss/w\u00f6rd PwMARKa1+&=1'
REFRESH = "rt/ref resh+RtMARKb2"
HEADER = "hdr-HdMARKc3-value"
SLACK_KEY = "SlMARKd4tokenXYZ0"
SLACK_PATH = f"/services/T0AAAA9/B0BBBB9/{SLACK_KEY}"
WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
API_TOKEN = "api-ApMARKe5-token"
MARKERS = ["PwMARKa1", "RtMARKb2", "HdMARKc3", "SlMARKd4", "ApMARKe5", WEBHOOK_SECRET]
AWS = FAMILIES["aws"]


def echo_forms(text: str) -> list[str]:
    """How a careless server quotes what it got."""
    return [text, json.dumps(text), quote(text, safe=""), quote_plus(text)]


@dataclass
class EchoManager:
    """Answers logins with an echo of the grant first, then a token; lists with an echo
    first, then a job whose scope messages quote the password."""

    logins: int = 0
    lists: int = 0
    job_created: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    def job(self, status: str) -> dict[str, Any]:
        failed = status == "failed"
        return {
            "id": "job-echo-1",
            "overall_status": status,
            "abort": False,
            "createdAt": self.job_created,
            "kms": ["kms"],
            "detailed_status": {
                "123456789012/us-east-1": (
                    f"AccessDenied: login with {PASSWORD} refused" if failed else "in_progress"
                ),
                "123456789012/eu-west-1": (
                    f"AccessDenied: {json.dumps(PASSWORD)} {quote(PASSWORD)}"
                    if failed
                    else "in_progress"
                ),
            },
        }

    async def tokens(self, request: web.Request) -> web.Response:
        raw = (await request.read()).decode()
        self.logins += 1
        if self.logins <= 4:  # two whole logins refused, each grant quoted back
            status = 400 if self.logins <= 2 else 401
            form = echo_forms(raw)[self.logins - 1]
            return web.json_response(
                {"code": 10, "codeDesc": f"NCERRBadRequest: cannot accept {form}"}, status=status
            )
        return web.json_response({"jwt": f"jwt-{self.logins}", "duration": 300})

    async def listing(self, request: web.Request) -> web.Response:
        self.lists += 1
        if self.lists == 1:
            said = f"{request.headers.get('Authorization')} {quote(PASSWORD)} {PASSWORD}"
            return web.json_response({"code": 14, "codeDesc": said}, status=500)
        jobs = [] if self.lists == 2 else [self.job("in_progress" if self.lists == 3 else "failed")]
        return web.json_response({"skip": 0, "limit": 50, "total": len(jobs), "resources": jobs})

    async def one(self, request: web.Request) -> web.Response:
        return web.json_response(self.job("failed"))

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/v1/auth/tokens", self.tokens)
        app.router.add_post("/api/v1/auth/tokens/", self.tokens)
        app.router.add_get(AWS.path, self.listing)
        app.router.add_get(AWS.path + "/{id}", self.one)
        return app


@dataclass
class EchoReceiver:
    """Answers every POST 500 (then 400) quoting back the request: a header, the path, the
    body, each in one of the forms servers use."""

    got: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.got.append((request.path, dict(request.headers), body))
        n = len(self.got)
        header = request.headers.get("X-Api-Key", "")
        quoted = [
            header,
            json.dumps(header),
            quote(request.path, safe=""),
            request.path,
            quote_plus(request.path),
            json.dumps(request.path).replace("/", "\\/"),
            request.path.rsplit("/", 1)[-1],
        ][n % 7]
        text = f"refused {quoted} {body[:40].decode(errors='replace')}"
        return web.Response(status=500 if n % 3 else 400, text=text)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app


@contextmanager
def serve(app: web.Application) -> Iterator[str]:
    """An aiohttp app on loopback in a thread of its own (the daemon is another process)."""
    port = free_port()

    async def start() -> web.AppRunner:
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return runner

    with start_blocking_portal() as portal:
        runner = portal.call(start)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            portal.call(runner.cleanup)


def get_text(url: str) -> str:
    request = Request(url, headers={"Authorization": f"bearer {API_TOKEN}"})
    with urlopen(request, timeout=5) as resp:
        return str(resp.read().decode())


def test_echoed_secrets_never_leave(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "daemon.log"
    state = tmp_path / "state.db"
    (tmp_path / "refresh").write_text(REFRESH + "\n")
    manager, receiver = EchoManager(), EchoReceiver()
    retry = {"initial_seconds": 0.05, "max_seconds": 0.1, "max_attempts": 3}
    with serve(manager.app()) as manager_url, serve(receiver.app()) as receiver_url:
        config = write_config(
            tmp_path / "monitor.yaml",
            manager_url,
            state,
            http_port=port,
            sources=["aws"],
            interval=0.3,
            manager_extra={"refresh_token_file": str(tmp_path / "refresh")},
            extra={
                "http": {"listen": f"127.0.0.1:{port}", "auth_token": API_TOKEN},
                "sinks": [
                    {"type": "log"},
                    {
                        "type": "webhook",
                        "name": "hook",
                        "url": receiver_url + "/hooks/k3y-9f8e7d6c5b4a",
                        "secret": WEBHOOK_SECRET,
                        "headers": {"X-Api-Key": HEADER},
                        "retry": retry,
                    },
                    {
                        "type": "slack",
                        "name": "team",
                        "url": "${SLACK_URL}",
                        "retry": retry,
                    },
                ],
            },
        )
        env = {"CM_PASSWORD": PASSWORD, "SLACK_URL": receiver_url + SLACK_PATH}
        daemon = start_daemon(config, log, port, env=env)
        try:

            def dead_letters() -> set[str]:
                body = json.loads(get_text(daemon.http_url + "/api/v1/deadletters"))
                return {d["sink"] for d in body["deadletters"]}

            wait_until(lambda: dead_letters() >= {"hook", "team"}, 40, "dead letters")
            answers = [
                get_text(daemon.http_url + path)
                for path in (
                    "/api/v1/jobs",
                    "/api/v1/events?limit=1000",
                    "/api/v1/deadletters",
                    "/api/v1/deadletters?sink=hook",
                    "/metrics",
                    "/readyz",
                )
            ]
            time.sleep(0.3)
        finally:
            assert daemon.stop() == 0
        failed = subprocess.run(
            command("deliveries", "--config", str(config), "--failed"),
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={"PATH": "/usr/bin:/bin", "CM_PASSWORD": PASSWORD, **env},
            timeout=30,
            check=False,
        )
    assert failed.returncode == 0, failed.stderr
    assert "hook" in failed.stdout and "team" in failed.stdout

    text = log.read_text()
    assert manager.logins > 4 and manager.lists > 3  # the echoes did happen, then it worked
    assert "NCERRBadRequest: cannot accept" in text  # the manager's words are kept...
    assert "refused" in failed.stdout or "answered" in failed.stdout  # ...and the receiver's
    assert "job.domain_failed" in text
    received = b"\n".join(body for _, _, body in receiver.got).decode()
    everything = {
        "log": text,
        "state file": state.read_bytes().decode("utf-8", "replace"),
        "api": "\n".join(answers),
        "deliveries --failed": failed.stdout + failed.stderr,
        "receivers": received,
    }
    for where, content in everything.items():
        for marker in MARKERS:
            assert marker not in content, (marker, where)
    # the header did reach the receiver, and only there
    assert receiver.got[0][1]["X-Api-Key"] == HEADER
