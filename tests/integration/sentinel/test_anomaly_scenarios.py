"""The fault scenarios through `sentinel analyze`: exactly the expected anomalies.

Each capture in tests/data/anomaly_scenarios/ (built by build_anomaly_scenarios.py from real Pod,
Job, Event, pytest and go test output shapes) is a history with its injected faults; its expected
file lists every run and every anomaly (run, type, subject) it must give — precision and recall
1.0 — and the clean history gives none. `side_by_side` holds seven teams' pipelines of the same
name interleaved in time (its generator's --check proves each team alone gives exactly its
part); `test_scenarios_side_by_side_give_what_each_gives_alone` replays it and the single-team
scenarios together, each moved into a namespace of its own and to one day, and requires exactly
the union of what each gives alone. Reuses the session's Kafka broker.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.paths import DATA
from tests.support.relocate import merged_capture, relocated_expected

pytestmark = pytest.mark.integration

SCENARIOS = DATA / "anomaly_scenarios"
NAMES = sorted(path.name.removesuffix(".jsonl") for path in SCENARIOS.glob("*.jsonl"))
SINGLE_TEAM = [name for name in NAMES if name != "side_by_side"]
DAY = "2026-02-02"  # every scenario moved to this day runs beside the others


def test_every_fault_the_issues_name_has_a_scenario() -> None:
    assert NAMES == [
        "clean_history",
        "duration_regression",
        "error_spike",
        "flaky_test",
        "image_pull_failure",
        "missing_tests",
        "new_error_signature",
        "oom_mid_test",
        "side_by_side",
        "tekton_missing_stage",
    ]


def analyze(capture: Path, config: Path, bootstrap: str) -> dict[str, Any]:
    command = [sys.executable, "-m", "sentinel", "--config", str(config), "analyze"]
    command += [str(capture), "--json", "--bootstrap", bootstrap]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def outcome(report: dict[str, Any]) -> tuple[list[tuple[str, str]], list[tuple[str, str, str]]]:
    runs = sorted((run["run_id"], run["status"]) for run in report["runs"])
    found = sorted((a["run_id"], a["type"], a["subject"]) for a in report["anomalies"])
    return runs, found


@pytest.mark.parametrize("name", SINGLE_TEAM)
def test_analyze_finds_exactly_the_injected_faults(name: str, kafka_bootstrap: str) -> None:
    expected = json.loads((SCENARIOS / f"{name}.expected.json").read_text())
    report = analyze(
        SCENARIOS / f"{name}.jsonl", SCENARIOS / f"{name}.config.yaml", kafka_bootstrap
    )
    assert outcome(report) == outcome(expected)
    # With no alerting config every anomaly goes to the console receiver, grouped per run: each
    # is told firing exactly once (and nothing is told for the clean history).
    firing = [a for a in report["alerts"] if a["reason"] in ("new", "update")]
    told = [aid for alert in firing for aid in alert["anomaly_ids"] if alert["status"] == "firing"]
    assert set(told) == {a["anomaly_id"] for a in report["anomalies"]}
    assert {a["receiver"] for a in report["alerts"]} <= {"console"}
    assert len({a["group_key"] for a in report["alerts"]}) == len(
        {a["run_id"] for a in report["anomalies"]}
    )


def test_scenarios_side_by_side_give_what_each_gives_alone(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    # The single-team scenarios, each moved to a namespace of its own, and side_by_side's
    # seven teams, all moved to one day: same pipeline and CronJob names at the same hours, so
    # seventeen pipelines' lines interleave. Together they must give exactly what each gives
    # alone: the single-team expected files (checked alone above) and side_by_side's (whose
    # generator checks each team alone).
    parts: list[tuple[Path, str | None]] = [
        (SCENARIOS / f"{name}.jsonl", name.replace("_", "-")) for name in SINGLE_TEAM
    ]
    parts.append((SCENARIOS / "side_by_side.jsonl", None))
    merged = tmp_path / "together.jsonl"
    merged_capture(parts, merged, day=DAY)
    # The Tekton scenario's config: every detector at its default, plus its structure rule,
    # which matches its pipeline only.
    report = analyze(merged, SCENARIOS / "tekton_missing_stage.config.yaml", kafka_bootstrap)
    runs: list[tuple[str, str]] = []
    found: list[tuple[str, str, str]] = []
    for capture, namespace in parts:
        name = capture.name.removesuffix(".jsonl")
        expected = json.loads((SCENARIOS / f"{name}.expected.json").read_text())
        alone_runs, alone_found = outcome(relocated_expected(expected, namespace))
        runs += alone_runs
        found += alone_found
    got_runs, got = outcome(report)
    assert got_runs == sorted(runs)
    extra, missing = sorted(set(got) - set(found)), sorted(set(found) - set(got))
    assert (extra, missing) == ([], []), f"together, not as alone: extra {extra}, missing {missing}"
    assert got == sorted(found)
    # Pods of side_by_side name only their Job: the CronJob names every run of every team.
    pipelines = {run["pipeline"] for run in report["runs"] if run["run_id"].startswith("job:team-")}
    assert pipelines == {"ledger-nightly"}
