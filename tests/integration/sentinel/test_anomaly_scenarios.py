"""Issue 5's fault scenarios through `sentinel analyze`: exactly the expected anomalies.

Each capture in tests/data/anomaly_scenarios/ (built by build_anomaly_scenarios.py from real Pod,
Job, Event and pytest output shapes) is a history of one pipeline with at most one injected
fault; its expected file lists every run and every anomaly (run, type, subject) it must give —
precision and recall 1.0 — and the clean history gives none. Reuses the session's Kafka broker.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support.paths import DATA

pytestmark = pytest.mark.integration

SCENARIOS = DATA / "anomaly_scenarios"
NAMES = sorted(path.name.removesuffix(".jsonl") for path in SCENARIOS.glob("*.jsonl"))


def test_every_fault_the_issue_names_has_a_scenario() -> None:
    assert NAMES == [
        "clean_history",
        "duration_regression",
        "error_spike",
        "flaky_test",
        "image_pull_failure",
        "missing_tests",
        "new_error_signature",
        "oom_mid_test",
    ]


@pytest.mark.parametrize("name", NAMES)
def test_analyze_finds_exactly_the_injected_faults(name: str, kafka_bootstrap: str) -> None:
    expected = json.loads((SCENARIOS / f"{name}.expected.json").read_text())
    command = [sys.executable, "-m", "sentinel", "--config", str(SCENARIOS / f"{name}.config.yaml")]
    command += ["analyze", str(SCENARIOS / f"{name}.jsonl"), "--json", "--bootstrap"]
    command += [kafka_bootstrap]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    runs = sorted((run["run_id"], run["status"]) for run in report["runs"])
    assert runs == sorted((run["run_id"], run["status"]) for run in expected["runs"])
    found = sorted((a["run_id"], a["type"], a["subject"]) for a in report["anomalies"])
    wanted = sorted((a["run_id"], a["type"], a["subject"]) for a in expected["anomalies"])
    assert found == wanted
    # With no alerting config every anomaly goes to the console receiver, grouped per run: each
    # is told firing exactly once (and nothing is told for the clean history).
    firing = [a for a in report["alerts"] if a["reason"] in ("new", "update")]
    told = [aid for alert in firing for aid in alert["anomaly_ids"] if alert["status"] == "firing"]
    assert set(told) == {a["anomaly_id"] for a in report["anomalies"]}
    assert {a["receiver"] for a in report["alerts"]} <= {"console"}
    assert len({a["group_key"] for a in report["alerts"]}) == len(
        {a["run_id"] for a in report["anomalies"]}
    )
