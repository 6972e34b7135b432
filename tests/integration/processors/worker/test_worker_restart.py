"""Stopping and restarting the worker mid-stream gives the same runs as an uninterrupted worker.

All six scenario captures (CI webhooks, pods, Jobs, log lines with test output and markers) go
through two stacks on the session's Apache Kafka: one worker runs throughout; the other is
stopped (SIGTERM) while it is still working on the first half, the second half is published
while it is down, and a new worker process takes over from the changelogs and committed
offsets. Then end of input is signalled to both, as `sentinel analyze` does, so the timeouts
and end-of-run checks are decided by the restarted worker from state it recovered.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import Consumer, TopicPartition

from runtime.config import Settings
from runtime.kafka_clients import consumer_config
from schemas.capture import CaptureRecord, read_capture
from sentinel.analyze import quiet_chunks
from sentinel.stack import EmbeddedStack
from tests.support.history_replay import outcome, publish, replay_letting_time_pass
from tests.support.paths import DATA

pytestmark = pytest.mark.integration

SCENARIOS = DATA / "scenarios"


def all_records() -> list[CaptureRecord]:
    records = [r for path in sorted(SCENARIOS.glob("*.jsonl")) for r in read_capture(path)]
    return sorted(records, key=lambda record: record.ts)


def scenario_sections() -> dict[str, dict[str, Any]]:
    """The union of the scenarios' rules and markers (each matches only its own runs)."""
    rules: list[Any] = []
    markers: list[Any] = []
    for path in sorted(SCENARIOS.glob("*.config.yaml")):
        config = yaml.safe_load(path.read_text()) or {}
        rules += config.get("structure", {}).get("rules", [])
        markers += config.get("tracking", {}).get("log_markers", [])
    tracking = {
        "inactivity_timeout_s": 600,
        "log_markers": markers,
        "idle_watermark_s": None,
        "allowed_lateness_s": 10 * 365 * 24 * 3600,  # as analyze: time decides at the end
    }
    return {"tracking": tracking, "structure": {"rules": rules}}


# Failed now and then (2 of 5 CI runs), issue 17:
# - a restarted worker that lost the first log line of a stream published while it was down
#   (its stage marker, so the run lost its stage start and its stage_too_long). Cause found:
#   Faust emptied the agents' queues after fetching records during its seek to the committed
#   offsets, and committed past them; fixed in processors/worker/faust_fixes.py
#   (`seek_before_resuming_streams`, test_resume_window.py);
# - a restarted worker that fetched nothing after its recovery (the restart stall): possibly
#   the same fault (without the fix, two or more records lost at a partition's committed
#   offset stop its commits for good), not proven; not seen in the 2 runs since the fix.
# Run apart (`make reliability`) until enough runs have passed, so the rest of CI stays a signal.
@pytest.mark.reliability
@pytest.mark.apart
def test_a_restarted_worker_ends_with_the_same_runs_and_anomalies(
    kafka_bootstrap: str, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    records = all_records()
    end = records[-1].ts
    # Stop while the Jenkins build's Test stage is open and its Surefire output half read.
    half = (
        next(i for i, r in enumerate(records) if "[Pipeline] { (Test)" in getattr(r, "line", ""))
        + 3
    )

    reference = EmbeddedStack(make_settings(kafka_bootstrap, **scenario_sections()))
    reference.start()
    try:
        publish(reference, records)
        expected_runs, expected_anomalies = outcome(reference, end)
    finally:
        reference.stop()
    assert len(expected_runs) == 7  # the scenarios' runs: the test must be about something
    assert {run["status"] for run in expected_runs.values()} >= {"succeeded", "timed_out"}
    assert expected_anomalies

    other = make_settings(kafka_bootstrap, **scenario_sections())
    other = other.model_copy(
        update={
            "topics": other.topics.model_copy(update={"prefix": other.topics.prefix + "b."}),
            "embedded": other.embedded.model_copy(update={"data_dir": tmp_path / "b"}),
        }
    )
    interrupted = EmbeddedStack(other)
    interrupted.start()
    try:
        assert interrupted.worker is not None
        publish(interrupted, records[:half])
        wait_until_logs_consumed(interrupted, records[:half])
        interrupted.worker.stop()  # SIGTERM
        assert not interrupted.worker.alive()
        publish(interrupted, records[half:])
        interrupted.worker.start()
        runs, anomalies = outcome(interrupted, end)
    finally:
        interrupted.stop()

    for run_id, expected in expected_runs.items():
        got = runs.get(run_id, {})
        differing = {k: (got.get(k), v) for k, v in expected.items() if got.get(k) != v}
        assert not differing, f"{run_id}: (restarted, uninterrupted) {differing}"
    assert runs.keys() == expected_runs.keys()
    assert anomalies == expected_anomalies
    # The restarted worker did rebuild its log parsers (not merely get lucky with the split).
    assert "resumed" in interrupted.worker.log_path.read_text()


def wait_until_logs_consumed(stack: EmbeddedStack, records: list[CaptureRecord]) -> None:
    """Until the worker has committed every log line published so far (the open stage and the
    half-read test output are then in its memory only)."""
    expected = sum(1 for r in records if r.type == "log")
    consumer = Consumer(consumer_config(stack.settings, stack.settings.worker_app_id))
    topic = stack.settings.topic_names.logs
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            parts = [TopicPartition(topic, p) for p in range(stack.settings.topics.partitions)]
            done = sum(max(tp.offset, 0) for tp in consumer.committed(parts, timeout=5))
            if done >= expected:
                return
            time.sleep(0.2)
        raise AssertionError("the worker did not consume the first half in time")
    finally:
        consumer.close()


HISTORIES = DATA / "anomaly_scenarios"


# One history judged by its log baseline (a new error template), one by its test baseline (a
# duration regression against the median and MAD of the earlier runs).
@pytest.mark.parametrize("name", ["new_error_signature", "duration_regression"])
def test_restarting_the_worker_mid_history_changes_no_anomaly(
    name: str, kafka_bootstrap: str, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """Seven runs of one pipeline; the worker is stopped after the third run and a new one
    takes over before the fourth: the history it recovered from its tables must judge the later
    runs exactly as an uninterrupted worker does, and find exactly the injected fault."""
    history = HISTORIES / name
    records = list(read_capture(history.with_suffix(".jsonl")))
    sections = yaml.safe_load(history.with_suffix(".config.yaml").read_text()) or {}
    sections.setdefault("tracking", {}).update(
        # The default commit interval, not analyze's 0.2 s: with 0.2 s a restarted worker
        # stopped fetching in 2 of about 7 runs (Faust; cause not found, see issue 4's note).
        {"idle_watermark_s": None, "allowed_lateness_s": 10 * 365 * 24 * 3600}
    )
    chunks = [chunk for chunk, _ in quiet_chunks(records, 60.0)]
    assert len(chunks) >= 6
    cut = sum(len(chunk) for chunk in chunks[:3])

    def analyse(run: str, interrupt: bool) -> tuple[dict[str, Any], set[tuple[str, str, str]]]:
        settings = make_settings(kafka_bootstrap, **sections)
        settings = settings.model_copy(
            update={
                "topics": settings.topics.model_copy(
                    update={"prefix": f"{settings.topics.prefix}{run}."}
                ),
                "embedded": settings.embedded.model_copy(update={"data_dir": tmp_path / run}),
            }
        )
        stack = EmbeddedStack(settings)
        stack.start()
        try:
            replay_letting_time_pass(stack, records[:cut])
            if interrupt:
                assert stack.worker is not None
                stack.worker.stop()  # SIGTERM
                assert not stack.worker.alive()
                stack.worker.start()
            replay_letting_time_pass(stack, records[cut:])
            return outcome(stack, records[-1].ts)
        finally:
            stack.stop()

    # One after the other: the embedded ClickHouse engine is one per process.
    results = [analyse("reference", False), analyse("restarted", True)]
    (reference_runs, reference_anomalies), (runs, anomalies) = results
    expected = json.loads(history.with_suffix(".expected.json").read_text())
    assert anomalies == {(a["run_id"], a["type"], a["subject"]) for a in expected["anomalies"]}
    assert anomalies == reference_anomalies
    assert runs.keys() == reference_runs.keys()
    for run_id, expected_run in reference_runs.items():
        differing = {k: (runs[run_id].get(k), v) for k, v in expected_run.items()}
        differing = {k: pair for k, pair in differing.items() if pair[0] != pair[1]}
        assert not differing, f"{run_id}: (restarted, uninterrupted) {differing}"
