"""A restarted worker processes every record, none thrown away while it resumes its streams
(processors/worker/faust_fixes.py, `seek_before_resuming_streams`; issue 17).

A worker (tests/support/resume_window_worker.py: one table, one agent that notes every record
it is given) consumes and commits a first part of its input and is stopped; the rest is
published while it is down. The restarted worker recovers its table and resumes its input,
its seek to the committed offsets made slow (a busy broker): Faust as released fetched records
during that seek and then emptied them out of the agent's queue unprocessed, never fetched them
again, and committed past them (or, more than one missing at the committed offset, never
committed that partition again).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from runtime.config import Settings
from runtime.kafka_clients import admin_config, consumer_config, producer_config
from sentinel.stack import WorkerProcess
from tests.support.resume_window_worker import PROCESSED_FILE, app_id, input_topic

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

FIRST, REST = 20, 300  # records per partition before the stop and while the worker is down


def publish(settings: Settings, offsets: range) -> None:
    producer = Producer(producer_config(settings))
    for partition in range(settings.topics.partitions):
        for offset in offsets:
            key = f"stream-{partition}-{offset % 7}".encode()
            producer.produce(input_topic(settings), f"record {offset}".encode(), key, partition)
    assert producer.flush(30) == 0


def committed(settings: Settings) -> dict[int, int]:
    probe = Consumer(consumer_config(settings, app_id(settings)))
    parts = [TopicPartition(input_topic(settings), p) for p in range(settings.topics.partitions)]
    try:
        return {tp.partition: tp.offset for tp in probe.committed(parts, timeout=10)}
    except KafkaException:  # the group's coordinator not ready yet (a fresh broker)
        return dict.fromkeys(range(settings.topics.partitions), -1)
    finally:
        probe.close()


def wait_committed(settings: Settings, offset: int, timeout: float) -> dict[int, int]:
    deadline = time.monotonic() + timeout
    while True:
        found = committed(settings)
        if all(o >= offset for o in found.values()) or time.monotonic() > deadline:
            return found
        time.sleep(0.3)


def test_a_restarted_worker_processes_the_records_it_fetches_while_resuming(
    kafka_bootstrap: str,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    processed = tmp_path / "processed"
    processed.touch()
    monkeypatch.setenv(PROCESSED_FILE, str(processed))
    settings = make_settings(kafka_bootstrap)
    partitions = settings.topics.partitions
    admin = AdminClient(admin_config(settings))
    for future in admin.create_topics([NewTopic(input_topic(settings), partitions, 1)]).values():
        future.result(30)
    worker = WorkerProcess(
        settings,
        tmp_path / "worker.log",
        None,
        command=[sys.executable, "-m", "tests.support.resume_window_worker"],
    )
    worker.start()
    try:
        publish(settings, range(FIRST))
        assert wait_committed(settings, FIRST, 60) == dict.fromkeys(range(partitions), FIRST)
        worker.stop()  # SIGTERM
        assert not worker.alive()
        publish(settings, range(FIRST, FIRST + REST))
        worker.start()
        last = wait_committed(settings, FIRST + REST, 60)
    finally:
        worker.stop()

    seen = {tuple(map(int, line.split())) for line in processed.read_text().splitlines()}
    missing = {p: [o for o in range(FIRST + REST) if (p, o) not in seen] for p in range(partitions)}
    assert not any(missing.values()), f"never given to the agent: {missing}; committed {last}"
    assert last == dict.fromkeys(range(partitions), FIRST + REST), worker.log_path
