"""The alert rules: valid, each with a firing and a silent case run by promtool, over metrics the code exports."""

import re
import shutil
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]
OBS = ROOT / "observability"


def promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool is missing: make setup installs it as root (apt-get install prometheus)"
    return found


def test_the_alert_rules_pass_promtools_check_and_their_unit_tests():
    check = subprocess.run(
        [promtool(), "check", "rules", "alerts.yml"], cwd=OBS, capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr
    tested = subprocess.run(
        [promtool(), "test", "rules", "alerts.test.yml"], cwd=OBS, capture_output=True, text=True, check=False
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_each_alert_has_a_firing_and_a_silent_case():
    rules = yaml.safe_load((OBS / "alerts.yml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    assert alerts == {"ToneShift", "ToneConsumerLagGrowing", "ToneDeadLetterRate", "ToneModelRefusedOnWorkers",
                      "ToneStreamDown"}  # fmt: skip
    cases = [c for t in yaml.safe_load((OBS / "alerts.test.yml").read_text())["tests"] for c in t["alert_rule_test"]]
    for alert in alerts:
        mine = [c for c in cases if c["alertname"] == alert]
        assert any(c["exp_alerts"] for c in mine), f"{alert}: no firing case"
        assert any(not c["exp_alerts"] for c in mine), f"{alert}: no silent case"


def test_a_broken_expectation_fails_promtool(tmp_path):
    """The unit tests can fail: the same file with one expectation turned around does."""
    text = (
        (OBS / "alerts.test.yml")
        .read_text()
        .replace('tag: "#launch", direction: negative', 'tag: "#launch", direction: positive')
    )
    (tmp_path / "alerts.yml").write_text((OBS / "alerts.yml").read_text())
    (tmp_path / "alerts.test.yml").write_text(text)
    tested = subprocess.run(
        [promtool(), "test", "rules", "alerts.test.yml"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert tested.returncode != 0 and "FAILED" in tested.stdout + tested.stderr


def test_every_metric_an_alert_reads_is_one_the_code_exports():
    from serving.metrics import ApiMetrics
    from streaming.monitor import StreamMetrics

    exported = {"up"}
    for registry in (StreamMetrics().registry, ApiMetrics().registry):
        for family in registry.collect():
            exported |= {family.name, f"{family.name}_total"}
    rules = yaml.safe_load((OBS / "alerts.yml").read_text())
    read = {m for g in rules["groups"] for r in g["rules"] for m in re.findall(r"\b(?:tone_[a-z_]+|up)\b", r["expr"])}
    assert read and not read - exported, read - exported
    prometheus = yaml.safe_load((OBS / "prometheus.yml").read_text())
    assert prometheus["rule_files"] == ["alerts.yml"]
