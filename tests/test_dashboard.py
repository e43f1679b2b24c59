"""The Grafana dashboard and its provisioning files, checked structurally.

Grafana itself is not needed: the JSON must parse, panels must not overlap, every panel
and query must use the ``$datasource`` variable, and the queries may only name metrics
the daemon exports (tests/test_e2e_prometheus.py runs them against a real Prometheus).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from monitor.metrics import Metrics
from monitor.model import Event, EventType, event_id
from monitor.telemetry import Telemetry
from tests.factories import essence, snap

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "grafana" / "dashboards" / "cckm-sync-jobs.json"
PROVISIONING = ROOT / "grafana" / "provisioning"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
SELECTOR = re.compile(r"\b(cckm_[a-z0-9_]+)(\{[^}]*\})?")
# queried by no panel, on purpose: polls per second says little that the errors do not,
# and the poll interval is for the alert rules
NOT_ON_THE_DASHBOARD = {"cckm_polls_total", "cckm_poll_interval_seconds"}


def load_dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside collapsed rows included."""
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def queries(dashboard: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(panel title, PromQL, instant?) of every query of every panel."""
    return [
        (panel["title"], target["expr"], bool(target.get("instant")))
        for panel in panels(dashboard)
        for target in panel.get("targets", [])
    ]


def substitute(expr: str, *, manager: str = ".*", source: str = ".*") -> str:
    """What Grafana sends for ``expr``: variables and interval macros replaced."""
    for name, text in (
        ("$__rate_interval", "1m"),
        ("$__interval", "15s"),
        ("$__range", "1h"),
        ("$manager", manager),
        ("$source", source),
    ):
        expr = expr.replace(name, text)
    return expr


def exported() -> dict[str, set[str]]:
    """Every metric name a scraper can see (histogram parts included) -> its labels."""
    registry = CollectorRegistry()
    telemetry = Telemetry(None, Metrics(registry, [("m", "s")], ["k"]))
    # a running job and an ended one: the series that wait for them exist too
    ended = Event(
        event_id("e"),
        EventType.JOB_COMPLETED,
        snap().created_at or datetime.now(UTC),
        "m",
        "s",
        "e",
        {"duration_seconds": 10.0},
    )
    telemetry.poll_succeeded("m", "s", seconds=0.1, events=[ended], running={"j": essence(snap())})
    out: dict[str, set[str]] = {}
    for family in registry.collect():
        for sample in family.samples:
            out.setdefault(sample.name, set()).update(k for k in sample.labels if k != "le")
    return out


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return load_dashboard()


def test_identity_and_variables(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] == "cckm-sync-jobs"
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert set(variables) == {"datasource", "manager", "source"}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("manager", "source"):
        var = variables[name]
        assert var["type"] == "query"
        assert var["datasource"] == DATASOURCE
        assert var["multi"] is True
        assert var["includeAll"] is True
        assert var["allValue"] == ".*"
        assert var["definition"].startswith("label_values(cckm_")
        assert var["definition"].endswith(f", {name})")
    # the source list follows the chosen managers
    assert '$manager"' in variables["source"]["definition"]


def test_panel_ids_are_unique(dashboard: dict[str, Any]) -> None:
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids))


def test_panels_do_not_overlap_and_fit_the_grid(dashboard: dict[str, Any]) -> None:
    boxes = [(p["title"], p["gridPos"]) for p in dashboard["panels"]]
    for title, g in boxes:
        assert g["x"] >= 0 and g["y"] >= 0 and g["w"] > 0 and g["h"] > 0, title
        assert g["x"] + g["w"] <= 24, title
    for i, (a_title, a) in enumerate(boxes):
        for b_title, b in boxes[i + 1 :]:
            apart = (
                a["x"] + a["w"] <= b["x"]
                or b["x"] + b["w"] <= a["x"]
                or a["y"] + a["h"] <= b["y"]
                or b["y"] + b["h"] <= a["y"]
            )
            assert apart, (a_title, b_title)


def test_every_panel_and_query_uses_the_datasource_variable(dashboard: dict[str, Any]) -> None:
    for panel in panels(dashboard):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]
            assert target["expr"].strip(), panel["title"]


def test_queries_name_only_exported_metrics_and_apply_the_variables(
    dashboard: dict[str, Any],
) -> None:
    names = exported()
    used: set[str] = set()
    for title, expr, _ in queries(dashboard):
        found = SELECTOR.findall(expr)
        assert found, (title, expr)
        for name, braces in found:
            assert name in names, (title, name)
            used.add(re.sub(r"_(bucket|sum|count)$", "", name))
            # a metric with a manager or source label is filtered by that variable
            for label in ("manager", "source"):
                if label in names[name]:
                    assert f'{label}=~"${label}"' in braces, (title, name, label)
    contract = {re.sub(r"_(bucket|sum|count)$", "", n) for n in names}
    assert contract - used == NOT_ON_THE_DASHBOARD


def test_core_topics_have_panels(dashboard: dict[str, Any]) -> None:
    exprs = " ".join(expr for _, expr, _ in queries(dashboard))
    for needle in (
        "cckm_jobs_running",  # running jobs by source
        "cckm_job_events_total",  # events by type, failures
        "histogram_quantile(0.95, sum by (manager, source, le) "
        "(increase(cckm_job_duration_seconds_bucket",  # duration percentiles by source
        "time() - min by (manager, source) (cckm_job_start_timestamp_seconds",  # oldest job
        "cckm_source_up",
        "cckm_poll_errors_total",
        "cckm_poll_duration_seconds_bucket",
        "cckm_last_successful_poll_timestamp_seconds",
        "cckm_notifications_total",
        "cckm_notification_failures_total",
        "cckm_notification_queue_depth",
        "cckm_notification_latency_seconds_bucket",
    ):
        assert needle in exprs, needle


def test_provisioning_files() -> None:
    sources = yaml.safe_load((PROVISIONING / "datasources" / "cckm-prometheus.yaml").read_text())
    assert sources["apiVersion"] == 1
    [source] = sources["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"].startswith("http")
    boards = yaml.safe_load((PROVISIONING / "dashboards" / "cckm.yaml").read_text())
    [provider] = boards["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"]
    readme = (ROOT / "grafana" / "README.md").read_text()
    for mentioned in ("cckm-sync-jobs.json", "provisioning/datasources", "provisioning/dashboards"):
        assert mentioned in readme
