"""End to end with the real Prometheus: simulator -> daemon -> Prometheus -> alerts.

Processes: ``cckm-monitor simulate``, ``cckm-monitor run`` and Debian's ``prometheus``
scraping the daemon every second with config/prometheus/alerts.yml. The rules are loaded
from a copy whose ``for:`` durations are removed, so a condition fires at its first
evaluation (the thresholds themselves are unchanged: the stuck job is backdated two days,
far beyond the daemon's stuck_after_seconds). Checked: ``promtool check metrics`` on a
real /metrics answer, the rules load healthy, a failed job and a stuck job make their
alerts fire, and every dashboard query runs and returns data.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote
from urllib.request import urlopen

import pytest
import yaml

from monitor.model import format_timestamp
from tests.binaries import require
from tests.processes import (
    Simulator,
    free_port,
    http,
    simulator,
    start_daemon,
    wait_ready,
    wait_until,
    write_config,
)
from tests.test_alert_rules import RULES, alert_names
from tests.test_dashboard import load_dashboard, queries, substitute

pytestmark = pytest.mark.e2e

SIM_OPTIONS = (
    *("--history", "3", "--job-rate", "0", "--running", "2", "--seed", "11"),
    *("--scope-seconds", "600,1200", "--failure-probability", "0"),
)
SOURCES = ("aws", "gcp")


def fast_rules(path: Path) -> Path:
    """A copy of alerts.yml whose rules fire at their first evaluation (no ``for``)."""
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        group["interval"] = "1s"
        for rule in group["rules"]:
            rule.pop("for", None)
    path.write_text(yaml.safe_dump(rules, sort_keys=False))
    return path


@contextmanager
def prometheus(workdir: Path, target: str) -> Iterator[str]:
    """Prometheus scraping ``target`` every second; yields its URL."""
    binary = require("prometheus")
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(fast_rules(workdir / "alerts.yml"))],
        "scrape_configs": [{"job_name": "cckm-monitor", "static_configs": [{"targets": [target]}]}],
    }
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    log = (workdir / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _ready(url, process, workdir), 30, "Prometheus to start")
        yield url
    finally:
        process.terminate()
        process.wait(20)


def _ready(url: str, process: subprocess.Popen[bytes], workdir: Path) -> bool:
    if process.poll() is not None:
        raise AssertionError((workdir / "prometheus.log").read_text()[-3000:])
    with urlopen(url + "/-/ready", timeout=2) as resp:
        return bool(resp.status == 200)


def query(prom: str, expr: str) -> list[dict[str, Any]]:
    status, body = http("GET", f"{prom}/api/v1/query?query={quote(expr)}")
    assert status == 200 and body["status"] == "success", (expr, body)
    return list(body["data"]["result"])


def firing(prom: str) -> set[tuple[str, str, str]]:
    """(alert name, source, job id) of every firing alert."""
    _, body = http("GET", prom + "/api/v1/alerts")
    return {
        (a["labels"]["alertname"], a["labels"].get("source", ""), a["labels"].get("job_id", ""))
        for a in body["data"]["alerts"]
        if a["state"] == "firing"
    }


def script_jobs(sim: Simulator) -> tuple[str, str]:
    """A job that fails in one region within a second, and one running for two days."""
    failed = sim.control(
        "POST",
        "/sim/v1/jobs",
        {
            "source": "aws",
            "scopes": [
                {"key": "kms-1/us-east-1", "after_seconds": 0.3, "result": "success"},
                {
                    "key": "kms-1/eu-west-1",
                    "after_seconds": 0.5,
                    "result": "AccessDeniedException: not authorized to perform kms:ListKeys",
                },
            ],
        },
    )
    two_days_ago = format_timestamp(datetime.now(UTC) - timedelta(days=2))
    stuck = sim.control(
        "POST", "/sim/v1/jobs", {"source": "gcp", "hang": True, "created_at": two_days_ago}
    )
    return str(failed["id"]), str(stuck["id"])


def check_metrics_text(url: str) -> None:
    with urlopen(url + "/metrics", timeout=5) as resp:
        text = resp.read()
    result = subprocess.run(
        [require("promtool"), "check", "metrics"],
        input=text,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, (result.stdout + result.stderr).decode()
    assert b'cckm_source_up{manager="sim",source="aws"} 1.0' in text


def dashboard_results(prom: str, manager: str) -> dict[str, int]:
    """Panel title -> series returned by its queries (all of them must run)."""
    counts: dict[str, int] = {}
    for title, expr, _ in queries(load_dashboard()):
        found = len(query(prom, substitute(expr, manager=manager)))
        counts[title] = counts.get(title, 0) + found
    return counts


def test_prometheus_scrapes_the_daemon_and_the_alerts_fire(tmp_path: Path) -> None:
    http_port = free_port()
    with simulator(*SIM_OPTIONS) as sim:
        config = write_config(
            tmp_path / "monitor.yaml",
            sim.url,
            tmp_path / "state.db",
            http_port=http_port,
            sources=SOURCES,
        )
        daemon = start_daemon(config, tmp_path / "daemon.log", http_port)
        try:
            wait_ready(daemon)
            check_metrics_text(daemon.http_url)
            with prometheus(tmp_path, f"127.0.0.1:{http_port}") as prom:
                wait_until(lambda: query(prom, 'up{job="cckm-monitor"} == 1'), 30, "a first scrape")
                failed_id, stuck_id = script_jobs(sim)
                expected = {
                    ("CckmJobFailed", "aws", ""),
                    ("CckmJobDomainFailed", "aws", ""),
                    ("CckmJobStuck", "gcp", stuck_id),
                }
                wait_until(lambda: expected <= firing(prom), 40, f"alerts {expected}")

                _, rules = http("GET", prom + "/api/v1/rules")
                loaded = [r for g in rules["data"]["groups"] for r in g["rules"]]
                assert {r["name"] for r in loaded} == alert_names(RULES)
                assert all(r["health"] == "ok" for r in loaded), loaded

                # every panel: the query runs (for all managers and for one) and has data
                wait_until(
                    lambda: all(dashboard_results(prom, ".*").values()), 20, "dashboard data"
                )
                counts = dashboard_results(prom, "sim")
                assert all(counts.values()), counts
                _, managers = http(
                    "GET", prom + "/api/v1/label/manager/values?match[]=cckm_source_up"
                )
                assert managers["data"] == ["sim"]
                # the failed job is gone from the running-job series; the stuck one is there
                running = query(prom, "cckm_job_start_timestamp_seconds")
                assert stuck_id in {r["metric"]["job_id"] for r in running}
                assert failed_id not in {r["metric"]["job_id"] for r in running}
        finally:
            assert daemon.stop() == 0
