"""deploy/prometheus's alert rules pass promtool's check and their unit tests (one per alert), and
deploy/grafana's dashboard is well formed. That every metric they name exists in a running engine's
/metrics is tests/integration/test_monitoring_metric_names.py."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from tests.system_tools import debian_tool

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "mirror-engine.rules.yml"
RULE_TESTS = DEPLOY / "prometheus" / "mirror-engine.rules.test.yml"
DASHBOARD = DEPLOY / "grafana" / "mirror-engine-dashboard.json"
# an alert the issue asks for -> the rule that raises it
EXPECTED_ALERTS = {
    "lag growing for minutes": "MirrorEngineLagGrowing",
    "heartbeat older than N s": "MirrorEngineHeartbeatOld",
    "a stopped partition": "MirrorEnginePartitionStopped",
    "a stopped topic": "MirrorEngineTopicStopped",
    "an audit that found loss": "MirrorEngineAuditFoundLoss",
    "a worker restart loop": "MirrorEngineWorkerRestartLoop",
    "the retention alarm": "MirrorEngineRetentionAlarm",
    "not ready": "MirrorEngineNotReady",
}


def promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([debian_tool("promtool", "prometheus"), *args], cwd=RULES.parent,
                          capture_output=True, text=True, timeout=60)


def test_promtool_accepts_the_rules():
    result = promtool("check", "rules", RULES.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(EXPECTED_ALERTS)} rules found" in result.stdout


def test_every_alert_passes_its_promtool_unit_test():
    result = promtool("test", "rules", RULE_TESTS.name)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_unit_test():
    alerts = re.findall(r"^\s+- alert: (\w+)$", RULES.read_text(), re.M)
    tested = set(re.findall(r"^\s+alertname: (\w+)$", RULE_TESTS.read_text(), re.M))
    assert sorted(alerts) == sorted(EXPECTED_ALERTS.values())
    assert tested == set(alerts)


def test_a_wrong_expectation_fails_the_promtool_unit_test(tmp_path):
    """The unit tests can fail: an alert expected with another value is reported."""
    (tmp_path / RULES.name).write_text(RULES.read_text())
    (tmp_path / RULE_TESTS.name).write_text(RULE_TESTS.read_text().replace("restarted 5 times", "restarted 6 times"))
    result = subprocess.run([debian_tool("promtool", "prometheus"), "test", "rules", RULE_TESTS.name],
                            cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "MirrorEngineWorkerRestartLoop" in result.stdout + result.stderr


def test_the_dashboard_covers_what_an_operator_watches():
    dashboard = json.loads(DASHBOARD.read_text())
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    assert all(p["targets"] and all(t["expr"] for t in p["targets"]) for p in panels)
    used = set(re.findall(r"\b(?:mirror_engine|kafka_connect_mirror)_\w+", json.dumps(dashboard)))
    for metric in ("mirror_engine_records_total", "mirror_engine_value_bytes_total", "mirror_engine_lag_records",
                   "kafka_connect_mirror_mirrorsourceconnector_replication_latency_ms_max",
                   "kafka_connect_mirror_mirrorsourceconnector_record_age_ms_max", "mirror_engine_workers",
                   "mirror_engine_worker_restarts_total", "mirror_engine_heartbeat_age_seconds",
                   "mirror_engine_audit_mismatches_total", "mirror_engine_stopped_partitions"):
        assert metric in used, metric
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert variables == {"datasource", "instance", "flow"}
