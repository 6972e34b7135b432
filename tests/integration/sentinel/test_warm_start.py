"""Baselines warm-started from the store's history (issue 5, "Baselines ... warm-started from
ClickHouse history when a store with history is configured").

Two fault histories (a test duration regression, judged on the test baseline, and a new error
signature, judged on the log baseline) are lived through up to their faulty runs, so the store
holds the clean runs, their test results and their log lines. Then a new worker, with no tables
at all (a topic prefix of its own), starts beside that store: the warm start reads the history
back, and the rest of each history, replayed into the new worker only, must give exactly the
injected faults.
Without the warm start the new worker could not find them: both detectors stay silent until the
pipeline has `min_samples` earlier runs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from runtime.config import Settings
from schemas.capture import CaptureRecord, read_capture
from sentinel.stack import EmbeddedStack
from sentinel.warm_start import read_history
from tests.support.history_replay import outcome, replay_letting_time_pass
from tests.support.paths import DATA

pytestmark = pytest.mark.integration

HISTORIES = DATA / "anomaly_scenarios"
NAMES = ("duration_regression", "new_error_signature")


def split(name: str) -> tuple[list[CaptureRecord], list[CaptureRecord]]:
    """A history up to its faulty run, and from that run on (runs are an hour apart: split in
    time at the first record that names the faulty run's Job)."""
    records = list(read_capture(HISTORIES / f"{name}.jsonl"))
    (fault,) = json.loads((HISTORIES / f"{name}.expected.json").read_text())["anomalies"]
    job = fault["run_id"].rsplit("/", 1)[1]
    cut = next(i for i, record in enumerate(records) if job in record.model_dump_json())
    return records[:cut], records[cut:]


def sections() -> dict[str, Any]:
    config = yaml.safe_load((HISTORIES / f"{NAMES[0]}.config.yaml").read_text())
    for name in NAMES[1:]:  # the histories share their thresholds
        assert yaml.safe_load((HISTORIES / f"{name}.config.yaml").read_text()) == config
    config["tracking"] = {
        "idle_watermark_s": None,
        "allowed_lateness_s": 10 * 365 * 24 * 3600,
        "commit_interval_s": 0.2,
    }
    # The captures are from February; "now" is later. Take every run that finished since.
    config["anomalies"]["warm_start"] = {"lookback_days": 3650, "min_age_s": 0}
    config["store"] = {"log_ttl_days": 3650}  # or the store drops February's lines at once
    return config


def expected_findings() -> set[tuple[str, str, str]]:
    found = set()
    for name in NAMES:
        expected = json.loads((HISTORIES / f"{name}.expected.json").read_text())
        found |= {(a["run_id"], a["type"], a["subject"]) for a in expected["anomalies"]}
    return found


def test_a_new_worker_beside_a_store_with_history_judges_the_next_run_at_once(
    kafka_bootstrap: str, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    firsts, lasts = zip(*(split(name) for name in NAMES), strict=True)
    history = sorted((r for part in firsts for r in part), key=lambda r: r.ts)
    latest = sorted((r for part in lasts for r in part), key=lambda r: r.ts)

    def stack_with_prefix(suffix: str) -> EmbeddedStack:
        settings = make_settings(kafka_bootstrap, **sections())
        topics = settings.topics.model_copy(update={"prefix": settings.topics.prefix + suffix})
        embedded = settings.embedded.model_copy(update={"data_dir": tmp_path / "store"})
        return EmbeddedStack(settings.model_copy(update={"topics": topics, "embedded": embedded}))

    first = stack_with_prefix("old.")
    first.start()
    try:
        replay_letting_time_pass(first, history)
        runs, findings = outcome(first, history[-1].ts)
        assert first.owner is not None and first.owner.store is not None
        stored = read_history(first.owner.store, first.settings, latest[-1].ts)
    finally:
        first.stop()
    # The clean runs before each fault: six of one pipeline, five of the other.
    assert len(runs) == 11 and findings == set()
    assert len(stored) == 11
    assert all(run.results for run in stored)  # every run's tests came back
    assert sum(1 for run in stored if run.lines) >= 6  # and the e2e runs' log lines

    second = stack_with_prefix("new.")  # no tables, no changelogs: only the store knows
    second.start()
    try:
        assert second.owner is not None and second.owner.warm_start is not None
        second.owner.warm_start.join(120)
        second.wait_consumed(timeout=120, settle=0.5)
        replay_letting_time_pass(second, latest)
        runs, findings = outcome(second, latest[-1].ts)
    finally:
        second.stop()
    assert len(runs) == 3
    assert findings == expected_findings()
