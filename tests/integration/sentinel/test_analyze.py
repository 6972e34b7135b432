"""`sentinel analyze` as a user runs it: a subprocess on a capture file, JSON on stdout."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from schemas.messages import RunState
from sentinel.api import HIDDEN_RUN_FIELDS
from tests.support.paths import DATA

pytestmark = pytest.mark.integration

CAPTURES = DATA / "captures"


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sentinel", "analyze", *args],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def test_analyze_prints_the_run_as_json() -> None:
    result = analyze(str(CAPTURES / "workflow_run_success.jsonl"), "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert set(report) == {"runs", "anomalies", "alerts"}
    assert report["anomalies"] == [] and report["alerts"] == []
    [run] = report["runs"]
    # The same fields as GET /api/runs/{id} returns.
    assert set(run) == set(RunState.model_fields) - HIDDEN_RUN_FIELDS
    assert run["run_id"] == "github:octo-org/octo-repo:289782451:1"
    assert run["status"] == "succeeded"
    assert run["conclusion"] == "success"
    assert run["pipeline"] == "test"
    # requested, completed, then settled (its end-of-run checks done); the redelivered
    # completion changed nothing.
    assert run["version"] == 3


def test_analyze_text_report_and_bad_capture(tmp_path: Path) -> None:
    text = analyze(str(CAPTURES / "workflow_run_success.jsonl"))
    assert text.returncode == 0, text.stderr[-3000:]
    assert "github:octo-org/octo-repo:289782451:1  succeeded" in text.stdout
    assert "1 duplicate" in text.stdout and "1 ignored" in text.stdout

    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"type": "webhook", "ts": "2020-01-01T00:00:00Z", "provider": "github",'
        ' "headers": {}, "body": {}}\n{"type": "webhook", "ts": "not a time"}\n'
    )
    failed = analyze(str(bad))
    assert failed.returncode == 2
    assert f"{bad}:2:" in failed.stderr
    missing = analyze(str(tmp_path / "nope.jsonl"))
    assert missing.returncode == 2
    assert "nope.jsonl" in missing.stderr
