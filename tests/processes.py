"""Real processes for end-to-end tests: the simulator and the daemon, on loopback."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.error import URLError
from urllib.request import Request, urlopen

import yaml

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http(method: str, url: str, body: Any = None, timeout: float = 5.0) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urlopen(request, timeout=timeout) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None
    except URLError as exc:
        code = getattr(exc, "code", None)
        if code is None:
            raise
        raw = exc.read()  # type: ignore[attr-defined]
        return int(code), json.loads(raw) if raw else None


def wait_until(check: Any, timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except (OSError, URLError, ValueError) as exc:
            last = exc
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what} (last error: {last})")


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "monitor", *args]


@dataclass
class Simulator:
    url: str
    process: subprocess.Popen[bytes]

    def control(self, method: str, path: str, body: Any = None) -> Any:
        status, answer = http(method, self.url + path, body)
        assert status < 300, (status, answer)
        return answer

    def transitions(self) -> list[dict[str, Any]]:
        answer = self.control("GET", "/sim/v1/transitions")
        return list(answer)


@contextmanager
def simulator(*options: str) -> Iterator[Simulator]:
    port = free_port()
    process = subprocess.Popen(
        command("simulate", "--port", str(port), *options),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    sim = Simulator(f"http://127.0.0.1:{port}", process)
    try:
        wait_until(lambda: http("GET", sim.url + "/sim/v1/stats")[0] == 200, what="the simulator")
        yield sim
    finally:
        process.terminate()
        process.wait(10)


def write_config(
    path: Path,
    sim_url: str,
    state: Path,
    *,
    http_port: int,
    sources: Sequence[str] | None = None,
    interval: float = 0.5,
    extra: dict[str, Any] | None = None,
    manager_extra: dict[str, Any] | None = None,
) -> Path:
    manager: dict[str, Any] = {
        "name": "sim",
        "url": sim_url,
        "username": "admin",
        "password": "${CM_PASSWORD}",
    }
    if sources is not None:
        manager["sources"] = list(sources)
    manager.update(manager_extra or {})
    config: dict[str, Any] = {
        "managers": [manager],
        "poll": {"interval_seconds": interval, "timeout_seconds": 3, "page_size": 50},
        "stuck_after_seconds": 3600,
        "state_path": str(state),
        "http": {"listen": f"127.0.0.1:{http_port}"},
        "sinks": [{"type": "log"}],
        "log": {"format": "json", "level": "info"},
    }
    config.update(extra or {})
    path.write_text(yaml.safe_dump(config))
    return path


@dataclass
class Daemon:
    process: subprocess.Popen[bytes]
    log_path: Path
    http_url: str

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout)


def start_daemon(
    config: Path, log_path: Path, http_port: int, env: dict[str, str] | None = None
) -> Daemon:
    out = log_path.open("ab")
    process = subprocess.Popen(
        command("run", "--config", str(config)),
        stdout=out,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        env={**os.environ, "CM_PASSWORD": "admin", **(env or {})},
    )
    out.close()
    return Daemon(process, log_path, f"http://127.0.0.1:{http_port}")


def wait_ready(daemon: Daemon, timeout: float = 20.0) -> None:
    def ready() -> bool:
        if daemon.process.poll() is not None:
            raise AssertionError(f"daemon exited: {daemon.log_path.read_text()[-2000:]}")
        return http("GET", daemon.http_url + "/readyz")[0] == 200

    wait_until(ready, timeout, "the daemon to be ready")


def log_lines(path: Path) -> list[dict[str, Any]]:
    lines = []
    for raw in path.read_text().splitlines():
        text = raw.strip()
        if text.startswith("{"):
            lines.append(json.loads(text))
    return lines


def job_events(path: Path) -> list[dict[str, Any]]:
    return [
        line
        for line in log_lines(path)
        if str(line.get("event", "")).startswith(("job.", "source."))
    ]


def kill_everything(processes: Sequence[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
