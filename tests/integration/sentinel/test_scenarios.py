"""Issue 4's scenario captures through `sentinel analyze`, as a user runs it (a subprocess).

Each capture in tests/data/scenarios/ (built from real payload, object and log shapes by
build_scenarios.py) comes with the runs, stages, statuses, test counts and structure anomalies
it must give — exactly those, none more. The analysis reuses the session's Kafka broker under a
topic prefix of its own (`--bootstrap`), so each scenario costs a worker start, not a broker
start.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from tests.support.paths import DATA

pytestmark = pytest.mark.integration

SCENARIOS = DATA / "scenarios"
NAMES = sorted(path.name.removesuffix(".jsonl") for path in SCENARIOS.glob("*.jsonl"))


def summarise_runs(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(
        (
            {
                "run_id": run["run_id"],
                "status": run["status"],
                "stages": [
                    {"name": stage["name"], "status": stage["status"]} for stage in run["stages"]
                ],
                "tests": run["tests"],
            }
            for run in runs
        ),
        key=lambda run: run["run_id"],
    )


def summarise_anomalies(anomalies: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return sorted((a["run_id"], a["type"], a["subject"]) for a in anomalies)


def test_there_are_six_scenarios() -> None:
    assert NAMES == [
        "arc_github_run",
        "bare_job",
        "cancelled_run",
        "hang_timeout",
        "jenkins_k8s_plugin",
        "tekton_pipeline",
    ]


@pytest.mark.parametrize("name", NAMES)
def test_analyze_gives_exactly_the_expected_runs_and_anomalies(
    name: str, kafka_bootstrap: str
) -> None:
    expected = json.loads((SCENARIOS / f"{name}.expected.json").read_text())
    command = [sys.executable, "-m", "sentinel", "--config", str(SCENARIOS / f"{name}.config.yaml")]
    command += ["analyze", str(SCENARIOS / f"{name}.jsonl"), "--json"]
    command += ["--bootstrap", kafka_bootstrap]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert summarise_runs(report["runs"]) == summarise_runs(expected["runs"])
    assert summarise_anomalies(report["anomalies"]) == summarise_anomalies(expected["anomalies"])
    for anomaly in report["anomalies"]:
        assert anomaly["category"] == "structure"
        assert anomaly["evidence"]["rule"] and anomaly["summary"]
