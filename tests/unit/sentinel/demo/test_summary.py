"""The demo's summary: runs by status, anomalies by type with evidence, the console's alerts."""

from __future__ import annotations

import json
from typing import Any

from sentinel.demo.summary import Links, render_json, render_links, render_text, summarise

EXPECTED = {"anomalies": [{"type": "oom_killed"}, {"type": "flaky_test"}]}


def report(*types: str) -> dict[str, Any]:
    return {
        "runs": [{"status": "succeeded"}, {"status": "succeeded"}, {"status": "failed"}],
        "anomalies": [
            {"type": kind, "run_id": f"run-{i}", "summary": f"{kind} evidence {i}"}
            for i, kind in enumerate(types)
        ],
        "alerts": [
            {"at": "2026-03-09T10:00:00+00:00", "receiver": "console", "channel": "console",
             "status": "firing", "title": "[ERROR] shop — run failed: 1 firing"},
            {"at": "2026-03-09T10:00:00+00:00", "receiver": "team", "channel": "slack",
             "status": "firing", "title": "not the console's"},
        ],
    }  # fmt: skip


def test_counts_runs_and_groups_anomalies_by_type_with_the_first_evidence() -> None:
    summary = summarise(report("oom_killed", "flaky_test", "oom_killed"), EXPECTED)
    assert summary.runs_by_status == {"failed": 1, "succeeded": 2}
    assert summary.anomalies_by_type["oom_killed"] == {
        "count": 2,
        "evidence": "oom_killed evidence 0",
        "run_id": "run-0",
    }
    assert summary.matches_expected
    assert [a["title"] for a in summary.alerts] == ["[ERROR] shop — run failed: 1 firing"]
    text = render_text(summary)
    assert "Runs (3): 1 failed, 2 succeeded" in text
    assert "flaky_test x1" in text and "flaky_test evidence 1" in text
    assert "NOT what the history holds" not in text


def test_a_missing_or_an_extra_type_is_said_plainly() -> None:
    summary = summarise(report("oom_killed", "error_spike"), EXPECTED)
    assert not summary.matches_expected
    assert "missing ['flaky_test'], unexpected ['error_spike']" in render_text(summary)
    assert json.loads(render_json(summary))["matches_expected"] is False


def test_links_point_at_the_featured_run_page() -> None:
    links = Links("http://127.0.0.1:8080", "jenkins:shop/api/main:135", "q", "d").view()
    assert links["run_page"] == "http://127.0.0.1:8080/runs/jenkins%3Ashop%2Fapi%2Fmain%3A135"
    assert "http://127.0.0.1:8080/docs" in render_links(links)
