"""The Prometheus files of config/prometheus, checked by promtool.

``promtool test rules`` runs tests/prometheus/alerts_test.yml: every alert rule fires
when it should, with the expected labels and text, and stays quiet in a look-alike case.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from tests.binaries import require

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "config" / "prometheus" / "alerts.yml"
SCRAPE_CONFIG = ROOT / "config" / "prometheus" / "prometheus.yml"
RULE_TESTS = ROOT / "tests" / "prometheus" / "alerts_test.yml"


def promtool(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require("promtool"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def alert_names(path: Path) -> set[str]:
    groups = yaml.safe_load(path.read_text())["groups"]
    return {rule["alert"] for group in groups for rule in group["rules"] if "alert" in rule}


def test_the_rules_file_is_valid() -> None:
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_rule_passes_its_unit_tests() -> None:
    result = promtool("test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_rule_has_a_unit_test_that_sees_it_fire() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    fired = {
        case["alertname"]
        for test in tests
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert alert_names(RULES) == fired


def test_every_rule_says_what_and_how_bad() -> None:
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
            assert rule["annotations"]["summary"].strip(), rule["alert"]
            assert rule["annotations"]["description"].strip(), rule["alert"]


def test_the_example_scrape_config_is_valid(tmp_path: Path) -> None:
    # a copy beside a copy of the rules: promtool also loads the relative rule_files
    # path, wherever the tests run from
    for name in (SCRAPE_CONFIG, RULES):
        shutil.copy(name, tmp_path / name.name)
    result = promtool("check", "config", str(tmp_path / SCRAPE_CONFIG.name), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 1 rule files found" in result.stdout


def test_the_example_scrapes_the_job_the_rules_name() -> None:
    config = yaml.safe_load(SCRAPE_CONFIG.read_text())
    [job] = config["scrape_configs"]
    assert job["job_name"] == "cckm-monitor"
    assert job["static_configs"][0]["targets"] == ["127.0.0.1:9478"]
    assert config["rule_files"] == ["alerts.yml"]
    assert 'job="cckm-monitor"' in RULES.read_text()
