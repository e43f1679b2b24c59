"""``cckm-monitor demo``: the simulator and the daemon together, with no arguments.

The simulator is made lively (jobs start every few seconds, some regions fail, some jobs
are cancelled, one job hangs long enough to be reported stuck) and the daemon watches it
with a 2-second interval, printing each event as it happens.
"""

from __future__ import annotations

import socket
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from monitor.app import DaemonInfo, run_daemon
from monitor.config import Settings, parse_config
from monitor.logs import configure_logging
from monitor.model import format_timestamp
from monitor.simulator import SimConfig, running_simulator

DEMO_HTTP_PORT = 9478
DEMO_STUCK_AFTER = 90
DEMO_SIM = SimConfig(
    seed=7,
    history=20,
    running=4,
    job_rate=12.0,
    scope_seconds=(3.0, 25.0),
    failure_probability=0.12,
    cancel_probability=0.12,
)


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def demo_settings(sim_url: str, state_dir: Path, http_port: int) -> Settings:
    data: dict[str, Any] = {
        "managers": [
            {
                "name": "demo",
                "url": sim_url,
                "username": "admin",
                "password": "admin",
            }
        ],
        "poll": {"interval_seconds": 2, "timeout_seconds": 5, "page_size": 100},
        "stuck_after_seconds": DEMO_STUCK_AFTER,
        "state_path": str(state_dir / "demo-state.db"),
        "http": {"listen": f"127.0.0.1:{http_port}"},
        "sinks": [{"type": "log"}],
        "log": {"format": "console"},
    }
    return parse_config(data)


async def _script_a_stuck_job(sim_url: str) -> None:
    """A job that hangs and started long enough ago to be reported stuck soon."""
    started = datetime.now(UTC) - timedelta(seconds=DEMO_STUCK_AFTER - 20)
    body = {
        "source": "aws",
        "scopes": [{"key": "123456789012/eu-central-1", "after_seconds": None}],
        "hang": True,
        "created_at": format_timestamp(started),
    }
    async with (
        aiohttp.ClientSession() as http,
        http.post(sim_url + "/sim/v1/jobs", json=body) as resp,
    ):
        resp.raise_for_status()


async def run_demo() -> None:
    configure_logging("info", "console", sys.stdout)
    http_port = DEMO_HTTP_PORT if _port_free(DEMO_HTTP_PORT) else 0
    with tempfile.TemporaryDirectory(prefix="cckm-demo-") as tmp:
        async with running_simulator(DEMO_SIM) as sim:
            await _script_a_stuck_job(sim.url)
            settings = demo_settings(sim.url, Path(tmp), http_port)

            def banner(info: DaemonInfo) -> None:
                lines = [
                    "",
                    "cckm-monitor demo: watching a simulated CipherTrust Manager",
                    f"  simulator (manager API)  {sim.url}/api/v1/cckm/aws/synchronization-jobs",
                    f"  ground truth             {sim.url}/sim/v1/transitions",
                    f"  Prometheus metrics       {info.http_url}/metrics",
                    f"  tracked jobs             {info.http_url}/api/v1/jobs",
                    f"  recent events            {info.http_url}/api/v1/events?limit=20",
                    f"  health / readiness       {info.http_url}/healthz  {info.http_url}/readyz",
                    f"  sources watched: {info.sources}; first events within a few seconds.",
                    "  Press Ctrl-C to stop.",
                    "",
                ]
                print("\n".join(lines), flush=True)

            await run_daemon(settings, console=True, on_ready=banner)
