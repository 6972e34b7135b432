"""A commit never runs ahead of the table changes it covers (processors/worker/faust_fixes.py).

The worker's table change for a CI event is slow to leave (its changelog write waits 3 s); the
moment the worker has committed that event's offset it is killed (SIGKILL). A new worker then
recovers the table from the changelog and gets the run's completion: the run must still know
what the first event told (its creation time, version 2). Faust as released committed after
0.1 s of waiting and the change was lost — a restarted worker that lost a CI event (issue 17).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from producers.publisher import KafkaPublisher
from runtime.config import Settings
from runtime.kafka_clients import consumer_config, producer_config
from sentinel.stack import EmbeddedStack
from tests.integration.processors.worker.test_worker import RUN_ID, ci_event, latest_states
from tests.support.slow_changelog_worker import SLOW_FILE

pytestmark = pytest.mark.integration


def wait_committed(settings: Settings, topic: str, partition: int, offset: int) -> float:
    probe = Consumer(consumer_config(settings, settings.worker_app_id))
    started = time.monotonic()
    try:
        while time.monotonic() - started < 30:
            [tp] = probe.committed([TopicPartition(topic, partition)], timeout=5)
            if tp.offset >= offset:
                return time.monotonic() - started
            time.sleep(0.02)
    finally:
        probe.close()
    raise AssertionError("the worker never committed the event")


def test_an_event_committed_before_a_kill_keeps_its_table_change(
    kafka_bootstrap: str,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slow = tmp_path / "slow-changelog"
    monkeypatch.setenv(SLOW_FILE, str(slow))
    # The default commit interval: without the fix the commit still comes within about 1 s
    # (0.78 s measured), well before the 3 s the table change waits. Not 0.2 s: a restarted
    # worker at 0.2 s sometimes never fetches again (issue 17's restart stall, still open;
    # the CI run of this merge stalled here so).
    settings = make_settings(kafka_bootstrap, tracking={"commit_interval_s": 1.0})
    stack = EmbeddedStack(
        settings, worker_command=[sys.executable, "-m", "tests.support.slow_changelog_worker"]
    )
    stack.start()
    publisher = KafkaPublisher(producer_config(stack.settings))
    try:
        assert stack.worker is not None and stack.worker.proc is not None
        ci = stack.settings.topic_names.ci
        slow.write_text("3")
        requested = ci_event("workflow_run", "c-1", "workflow_run/requested.payload.json")
        partition, _ = publisher.publish_sync(ci, RUN_ID.encode(), requested.to_bytes(), 10)
        waited = wait_committed(stack.settings, ci, partition, 1)
        stack.worker.proc.kill()  # the moment its offset is committed
        stack.worker.proc.wait(10)
        assert waited >= 2.5, f"committed after {waited:.2f}s, before its table change left"

        slow.unlink()
        completed = ci_event("workflow_run", "c-2", "workflow_run/completed.payload.json")
        publisher.publish_sync(ci, RUN_ID.encode(), completed.to_bytes(), 10)
        stack.worker.start()
        stack.wait_consumed(timeout=90)
        final = latest_states(stack.settings)[RUN_ID]
        assert final.status == "succeeded"
        assert final.created_at == requested.created_at
        assert final.version == 2  # continued from the first event's state
    finally:
        publisher.close()
        stack.stop()
