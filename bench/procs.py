"""Real processes for the benches: the simulator, the daemon, and what /proc says of them.

Every process started here is registered and killed on exit, on an exception and on
Ctrl-C (SIGINT) or SIGTERM of the bench, so a bench never leaves a daemon behind.
Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import gzip
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.error import URLError
from urllib.request import Request, urlopen

import yaml

ROOT = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = 100

_STARTED: list[subprocess.Popen[bytes]] = []


def _kill_all() -> None:
    for process in _STARTED:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(5)
    _STARTED.clear()


def _on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # unwinds through every ``finally``, then the atexit hook


atexit.register(_kill_all)
signal.signal(signal.SIGTERM, _on_sigterm)


def _die_with_parent() -> None:
    """In the child: SIGTERM when the bench dies, even by SIGKILL (Linux prctl)."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def spawn(
    args: Sequence[str], *, log: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    out: Any = subprocess.DEVNULL
    if log is not None:
        out = log.open("ab")
    try:
        process = subprocess.Popen(
            list(args),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,  # noqa: PLW1509
        )
    finally:
        if log is not None:
            out.close()
    _STARTED.append(process)
    return process


def stop(process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout``."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
    if process in _STARTED:
        _STARTED.remove(process)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_json(method: str, url: str, body: Any = None, timeout: float = 30.0) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urlopen(request, timeout=timeout) as resp:
        raw = resp.read()
        return json.loads(raw) if raw else None


def http_text(url: str, timeout: float = 30.0) -> str:
    with urlopen(url, timeout=timeout) as resp:
        return str(resp.read().decode())


def scrape(url: str, timeout: float = 120.0) -> tuple[int, int]:
    """GET as Prometheus does (``Accept-Encoding: gzip``): (bytes on the wire, text bytes)."""
    request = Request(url, headers={"Accept-Encoding": "gzip", "Accept": "text/plain"})
    with urlopen(request, timeout=timeout) as resp:
        raw = resp.read()
        gzipped = resp.headers.get("Content-Encoding") == "gzip"
    return len(raw), len(gzip.decompress(raw)) if gzipped else len(raw)


def wait_until(check: Callable[[], Any], timeout: float, what: str, every: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except (OSError, URLError, ValueError) as exc:
            last = exc
        time.sleep(every)
    raise TimeoutError(f"timed out after {timeout:g} s waiting for {what} (last error: {last})")


# --- /proc ----------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds (/proc/<pid>/stat fields 14 and 15)."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) in KiB from /proc/<pid>/status."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            key, value = line.split(":", 1)
            out[key] = int(value.split()[0])
    return out


def machine() -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with contextlib.suppress(OSError, ValueError):
        first = Path("/proc/meminfo").read_text().splitlines()[0]
        mem_kib = int(first.split()[1])
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "python": sys.version.split()[0],
        "platform": sys.platform,
    }


# --- the simulator ---------------------------------------------------------------------


@dataclass
class Sim:
    url: str
    process: subprocess.Popen[bytes]

    def get(self, path: str) -> Any:
        return http_json("GET", self.url + path)

    def patch_config(self, **values: float) -> Any:
        return http_json("PATCH", self.url + "/sim/v1/config", values)

    def stats(self) -> dict[str, Any]:
        return dict(self.get("/sim/v1/stats"))

    def transitions(self, since: int = 0) -> list[dict[str, Any]]:
        return list(self.get(f"/sim/v1/transitions?since={since}"))


@contextlib.contextmanager
def simulator(
    *,
    sources: Sequence[str] = ("aws",),
    history: int = 0,
    running: int = 0,
    job_rate: float = 0.0,
    scope_seconds: tuple[float, float] = (1e9, 1e9),
    failure_probability: float = 0.1,
    seed: int = 1,
    log: Path | None = None,
    start_timeout: float = 120.0,
) -> Iterator[Sim]:
    port = free_port()
    process = spawn(
        [
            sys.executable, "-m", "bench.sim_server", "--port", str(port),
            "--sources", ",".join(sources), "--history", str(history),
            "--running", str(running), "--job-rate", str(job_rate),
            "--scope-seconds", str(scope_seconds[0]), str(scope_seconds[1]),
            "--failure-probability", str(failure_probability), "--seed", str(seed),
        ],
        log=log,
    )  # fmt: skip
    sim = Sim(f"http://127.0.0.1:{port}", process)
    try:

        def up() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"the simulator exited with {process.returncode}")
            sim.stats()
            return True

        wait_until(up, start_timeout, "the simulator", every=0.1)
        yield sim
    finally:
        stop(process)


# --- the daemon ------------------------------------------------------------------------


def write_config(
    path: Path,
    sim_url: str,
    state: Path,
    *,
    http_port: int,
    sources: Sequence[str] = ("aws",),
    interval: float = 1.0,
    strategy: str = "incremental",
    jitter_fraction: float | None = None,
    sinks: Sequence[dict[str, Any]] = ({"type": "log"},),
    timeout_seconds: float = 30.0,
    log_level: str = "debug",
) -> Path:
    poll: dict[str, Any] = {
        "interval_seconds": interval,
        "page_size": PAGE_SIZE,
        "timeout_seconds": timeout_seconds,
        "strategy": strategy,
    }
    if jitter_fraction is not None:
        poll["jitter_fraction"] = jitter_fraction
    config = {
        "managers": [
            {
                "name": "sim",
                "url": sim_url,
                "username": "admin",
                "password": "admin",
                "sources": list(sources),
            }
        ],
        "poll": poll,
        "stuck_after_seconds": 10**8,
        "state_path": str(state),
        "http": {"listen": f"127.0.0.1:{http_port}"},
        "sinks": list(sinks),
        "log": {"format": "json", "level": log_level},
    }
    path.write_text(yaml.safe_dump(config))
    return path


@dataclass
class Daemon:
    process: subprocess.Popen[bytes]
    http_url: str
    log: Path | None
    _metrics_cache: dict[str, float] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.process.pid

    def metrics(self) -> dict[str, float]:
        return parse_metrics(http_text(self.http_url + "/metrics"))

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            tail = self.log.read_text()[-3000:] if self.log and self.log.exists() else ""
            raise RuntimeError(f"the daemon exited with {self.process.returncode}: {tail}")


@contextlib.contextmanager
def daemon(
    config: Path, *, log: Path | None = None, start_timeout: float = 60.0
) -> Iterator[Daemon]:
    cfg = yaml.safe_load(config.read_text())
    url = "http://" + cfg["http"]["listen"]
    process = spawn([sys.executable, "-m", "monitor", "run", "--config", str(config)], log=log)
    d = Daemon(process, url, log)
    try:

        def up() -> bool:
            d.check_alive()
            http_text(url + "/healthz")
            return True

        wait_until(up, start_timeout, "the daemon", every=0.1)
        yield d
    finally:
        stop(process)


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)")


def parse_metrics(text: str) -> dict[str, float]:
    """``name{labels}`` -> value, labels as rendered (sorted by the renderer)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if match:
            out[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    return out


def metric(values: dict[str, float], name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    want = [f'{k}="{v}"' for k, v in labels.items()]
    for key, value in values.items():
        base, _, rest = key.partition("{")
        if base == name and all(w in rest for w in want):
            total += value
    return total


class LogTail:
    """Follows the daemon's JSON log file: one ``poll.ok`` line per cycle at debug level.

    Watching the file costs the daemon nothing, unlike scraping /metrics in a loop.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""
        self.lines: list[dict[str, Any]] = []
        self.polls: list[dict[str, Any]] = []  # poll.ok and poll.failed lines, in order

    def read(self) -> list[dict[str, Any]]:
        new: list[dict[str, Any]] = []
        try:
            with self.path.open("rb") as handle:
                handle.seek(self._offset)
                chunk = handle.read()
        except FileNotFoundError:
            return new
        self._offset += len(chunk)
        data = self._partial + chunk
        *complete, self._partial = data.split(b"\n")
        for raw in complete:
            text = raw.strip()
            if not text.startswith(b"{"):
                continue
            try:
                line = json.loads(text)
            except ValueError:
                continue
            new.append(line)
            if line.get("event") in ("poll.ok", "poll.failed"):
                self.polls.append(line)
        self.lines.extend(new)
        return new

    def wait_polls(self, d: Daemon, count: int, timeout: float, every: float = 0.005) -> int:
        """Wait until ``count`` cycles have ended; returns how many have."""

        def reached() -> int:
            d.check_alive()
            self.read()
            return len(self.polls) if len(self.polls) >= count else 0

        return int(wait_until(reached, timeout, f"{count} poll cycles", every=every))


# --- the webhook receiver ---------------------------------------------------------------


@dataclass
class Receiver:
    url: str  # the hook URL
    base: str
    process: subprocess.Popen[bytes]

    def stats(self) -> dict[str, Any]:
        return dict(http_json("GET", self.base + "/stats"))

    def received(self) -> list[list[Any]]:
        return list(http_json("GET", self.base + "/received", timeout=120))

    def reset(self) -> None:
        http_json("POST", self.base + "/reset", {})


@contextlib.contextmanager
def receiver(log: Path | None = None) -> Iterator[Receiver]:
    port = free_port()
    process = spawn([sys.executable, "-m", "bench.receiver", "--port", str(port)], log=log)
    base = f"http://127.0.0.1:{port}"
    rec = Receiver(base + "/hook", base, process)
    try:

        def up() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"the receiver exited with {process.returncode}")
            rec.stats()
            return True

        wait_until(up, 30, "the webhook receiver", every=0.05)
        yield rec
    finally:
        stop(process)
