"""ops/prometheus/alerts.yaml: valid for Prometheus, behaving as its unit tests say, covering what an
operator must be paged for, and each alert explained in docs/operations.md."""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml

from tests.ops.tools import ALERT_TESTS, ALERTS, OPERATIONS_DOC, tool

# What the operators' issue asks to be alerted on, and the alert that covers it.
REQUIRED = {
    "oldest open request older than 20 days": "ForgetdOldestRequestNearDeadline",
    "dead letters": "ForgetdDeadLetters",
    "verification failures": "ForgetdVerificationFailures",
    "workers down": "ForgetdWorkersDown",
    "Redis unreachable": "ForgetdRedisUnreachable",
    "canary failure after a swap": "ForgetdCanaryFailed",
}


def _rules() -> list[dict[str, object]]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def test_promtool_checks_the_rules() -> None:
    result = subprocess.run([tool("promtool"), "check", "rules", str(ALERTS)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_of_the_rules_pass() -> None:
    # Run from the rules' folder: alerts.test.yaml names alerts.yaml relative to itself.
    result = subprocess.run([tool("promtool"), "test", "rules", ALERT_TESTS.name], cwd=ALERT_TESTS.parent,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("need", "alert"), REQUIRED.items())
def test_every_required_condition_has_an_alert(need: str, alert: str) -> None:
    assert alert in {rule["alert"] for rule in _rules()}, f"no alert for {need}"


def test_the_deadline_alert_fires_at_20_days() -> None:
    (rule,) = [r for r in _rules() if r["alert"] == REQUIRED["oldest open request older than 20 days"]]
    assert re.search(r">\s*20\s*\*\s*86400\b", str(rule["expr"])), rule["expr"]


def test_every_alert_is_unit_tested() -> None:
    tested = {case["alertname"] for test in yaml.safe_load(ALERT_TESTS.read_text())["tests"]
              for case in test.get("alert_rule_test", [])}
    assert {rule["alert"] for rule in _rules()} <= tested


@pytest.mark.parametrize("rule", _rules(), ids=lambda rule: str(rule["alert"]))
def test_every_alert_has_a_severity_a_summary_and_a_runbook_section(rule: dict[str, object]) -> None:
    labels, annotations = rule["labels"], rule["annotations"]
    assert isinstance(labels, dict) and labels.get("severity") in ("warning", "critical")
    assert isinstance(annotations, dict) and annotations.get("summary")
    anchor = f"docs/operations.md#{str(rule['alert']).lower()}"
    assert annotations.get("runbook") == anchor
    headings = re.findall(r"^#+\s+(.+)$", OPERATIONS_DOC.read_text(), flags=re.M)
    assert str(rule["alert"]) in headings, f"docs/operations.md has no section '### {rule['alert']}'"
