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
