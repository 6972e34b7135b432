"""The ClickHouse sink for every stored topic: real Kafka broker, embedded ClickHouse engine.

Covers what a user of the sink notices: every topic lands in its table(s), rows the server
rejects go to the DLQ with the server's reason while the rest land, a sink killed with SIGKILL
between an insert and its offset commit leaves no loss and no duplicate after a restart (even
one with another batch size), and a 30 s store outage under load pauses and resumes the sink
without loss, duplicates or unbounded memory.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from runtime.config import Settings
from runtime.kafka_clients import consumer_config, producer_config
from schemas.messages import (
    AlertDelivery,
    Anomaly,
    AnomalyCategory,
    DeadLetter,
    DeliveryOutcome,
    K8sEventType,
    K8sObjectEvent,
    LogLine,
    Message,
    RunState,
    RunStatus,
    Severity,
    StageState,
    TestResult,
)
from schemas.messages import TestStatus as Outcome
from sentinel.topic_admin import ensure_topics
from sinks.clickhouse import Store, open_store
from sinks.clickhouse.sink import ClickHouseSink
from tests.support.faults import FaultyClient
from tests.support.paths import REPO

pytestmark = pytest.mark.integration

# Recent: log lines older than the log TTL (14 days) would be dropped on insert.
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


@pytest.fixture
def settings(kafka_bootstrap: str, make_settings: Callable[..., Settings]) -> Settings:
    made = make_settings(kafka_bootstrap)
    made = make_settings(
        kafka_bootstrap,
        sink={"group_id": f"{made.topics.prefix}sink", "batch_rows": 100, "batch_seconds": 0.2},
    )
    ensure_topics(made)
    return made


def produce(settings: Settings, topic: str, messages: Sequence[tuple[str, Message]]) -> None:
    producer = Producer(producer_config(settings))
    for key, message in messages:
        producer.produce(topic, key=key, value=message.to_bytes())
    assert producer.flush(10) == 0


def make_result(run_id: str, index: int, **changes: object) -> TestResult:
    fields: dict[str, object] = {
        "run_id": run_id,
        "suite": "api",
        "name": f"test_{index}",
        "status": Outcome.PASSED,
        "duration_s": 0.5,
        "source": "junit-xml",
        "event_time": T0 + timedelta(seconds=index),
    }
    fields.update(changes)
    return TestResult.model_validate(fields)


def run_state(run_id: str, stages: int = 2) -> RunState:
    return RunState(
        run_id=run_id,
        provider="github",
        provider_run_id=run_id,
        pipeline="ci",
        status=RunStatus.SUCCEEDED,
        duration_s=30.0,
        started_at=T0,
        first_event_at=T0,
        updated_at=T0,
        stages=[
            StageState(
                stage_id=f"s{i}", name=f"stage {i}", status=RunStatus.SUCCEEDED, updated_at=T0
            )
            for i in range(stages)
        ],
    )


def count(store: Store, table: str, distinct: str | None = None) -> int:
    what = f"uniqExact({distinct})" if distinct else "count()"
    return int(store.command(f"SELECT {what} FROM {table}"))


def committed_to_end(settings: Settings, topics: list[str]) -> bool:
    consumer = Consumer(consumer_config(settings, settings.sink_group_id))
    try:
        for topic in topics:
            parts = [TopicPartition(topic, p) for p in range(settings.topics.partitions)]
            for tp in consumer.committed(parts, timeout=10):
                high = consumer.get_watermark_offsets(TopicPartition(topic, tp.partition))[1]
                if high > 0 and tp.offset != high:
                    return False
        return True
    finally:
        consumer.close()


def dead_letters(settings: Settings, expected: int, wait_s: float = 15.0) -> list[DeadLetter]:
    consumer = Consumer(consumer_config(settings, f"{settings.topics.prefix}dlq-reader"))
    consumer.subscribe([settings.topic_names.dlq])
    letters: list[DeadLetter] = []
    deadline = time.monotonic() + wait_s
    try:
        while len(letters) < expected and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                letters.append(DeadLetter.from_bytes(message.value() or b""))
    finally:
        consumer.close()
    return letters


def drive(sink: ClickHouseSink, until: Callable[[], bool], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not until():
        assert time.monotonic() < deadline, "condition not reached in time"
        sink.poll_once(0.1)


def test_every_topic_lands_in_its_tables(settings: Settings, store: Store) -> None:
    names = settings.topic_names
    produce(settings, names.runs, [(f"r{i}", run_state(f"r{i}", stages=3)) for i in range(5)])
    produce(settings, names.tests, [("r0", make_result("r0", i)) for i in range(7)])
    produce(
        settings,
        names.logs,
        [
            (
                "ci/p/c",
                LogLine(namespace="ci", pod="p", container="c", line=f"l{i}", event_time=T0),
            )
            for i in range(4)
        ],
    )
    produce(
        settings,
        names.k8s,
        [
            (
                "ci/p",
                K8sObjectEvent(
                    event_type=K8sEventType.ADDED,
                    kind="Pod",
                    api_version="v1",
                    namespace="ci",
                    name="p",
                    uid="u",
                    resource_version=str(i),
                    object={"spec": {"nodeName": "n1"}},
                    event_time=T0,
                ),
            )
            for i in range(3)
        ],
    )
    anomaly = Anomaly(
        anomaly_id="a1",
        run_id="r0",
        category=AnomalyCategory.TEST,
        type="flaky_test",
        severity=Severity.WARNING,
        subject="api::test_1",
        summary="flaky",
        window_start=T0,
        window_end=T0,
    )
    produce(settings, names.anomalies, [("r0", anomaly)])
    delivery = AlertDelivery(
        delivery_id="d1",
        channel="console",
        group_key="r0",
        anomaly_ids=["a1"],
        outcome=DeliveryOutcome.SENT,
    )
    produce(settings, names.alert_deliveries, [("console/r0", delivery)])
    sink = ClickHouseSink(settings, store, retry_initial_s=0.1, retry_max_s=0.5)
    expected = {
        "runs": 5,
        "stages": 15,
        "test_results": 7,
        "log_lines": 4,
        "k8s_events": 3,
        "anomalies": 1,
        "alert_deliveries": 1,
    }
    try:
        drive(sink, lambda: all(count(store, t) >= n for t, n in expected.items()))
        drive(sink, lambda: sink.pending_messages == 0)
    finally:
        sink.stop()

    assert {t: count(store, t) for t in expected} == expected
    assert committed_to_end(settings, [names.runs, names.tests, names.logs, names.k8s])


def test_rows_the_server_rejects_go_to_the_dlq_and_the_rest_land(
    settings: Settings, store: Store
) -> None:
    results = [make_result("run-1", i) for i in range(40)]
    results[7] = make_result("run-1", 7, duration_s=-3.0)  # the table's CHECK refuses it
    results[23] = make_result("run-1", 23, attempt=70000)  # does not fit the UInt16 column
    produce(settings, settings.topic_names.tests, [("run-1", r) for r in results])
    sink = ClickHouseSink(settings, store, retry_initial_s=0.1, retry_max_s=0.5)
    try:
        drive(sink, lambda: count(store, "test_results") >= 38 and sink.pending_messages == 0)
    finally:
        sink.stop()

    names = {row["name"] for row in store.query_rows("SELECT name FROM test_results")}
    assert names == {f"test_{i}" for i in range(40)} - {"test_7", "test_23"}
    assert count(store, "test_results") == 38
    letters = sorted(dead_letters(settings, expected=2), key=lambda d: d.origin_offset or 0)
    assert [TestResult.from_bytes(d.raw_value).name for d in letters] == ["test_7", "test_23"]
    assert [d.error_type for d in letters] == ["RejectedByStore", "RejectedByStore"]
    assert "VIOLATED_CONSTRAINT" in letters[0].error
    assert "duration_not_negative" in letters[0].error
    assert "attempt" in letters[1].error
    assert all(d.error.startswith("test_results: ") for d in letters)
    assert committed_to_end(settings, [settings.topic_names.tests])


def sink_env(settings: Settings, batch_rows: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "SENTINEL_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers or "",
            "SENTINEL_TOPICS__PREFIX": settings.topics.prefix,
            "SENTINEL_TOPICS__PARTITIONS": str(settings.topics.partitions),
            "SENTINEL_EMBEDDED__DATA_DIR": str(settings.embedded.data_dir),
            "SENTINEL_SINK__GROUP_ID": settings.sink_group_id,
            "SENTINEL_SINK__BATCH_ROWS": str(batch_rows),
            "SENTINEL_SINK__BATCH_SECONDS": "0.2",
            "SENTINEL_LOGGING__FORMAT": "text",
        }
    )
    return env


def test_sigkill_between_insert_and_commit_then_restart_lands_everything_once(
    settings: Settings, tmp_path: Path
) -> None:
    names = settings.topic_names
    runs = [(f"r{i}", run_state(f"r{i}", stages=2)) for i in range(120)]
    tests = [(f"t{i % 9}", make_result(f"t{i % 9}", i)) for i in range(1500)]
    produce(settings, names.runs, runs)
    produce(settings, names.tests, tests)

    # First life: small batches; SIGKILL inside the 3rd insert call, after the rows landed,
    # in the middle of a partition (a batch cut at a partition's end would be cut the same way
    # by any restart, plan or not).
    with (tmp_path / "crash.log").open("w") as log:
        crashed = subprocess.run(
            [sys.executable, "-m", "tests.support.sink_crash_harness", "3"],
            cwd=REPO,
            env=sink_env(settings, batch_rows=60),
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=120,
        )
    assert crashed.returncode == -signal.SIGKILL
    assert not committed_to_end(settings, [names.runs, names.tests])

    # Second life: the real `sentinel sink`, with other batch boundaries than the first.
    with (tmp_path / "restart.log").open("w") as log:
        restarted = subprocess.Popen(
            [sys.executable, "-m", "sentinel", "sink"],
            cwd=REPO,
            env=sink_env(settings, batch_rows=1000),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 90
            while not committed_to_end(settings, [names.runs, names.tests]):
                assert restarted.poll() is None, (tmp_path / "restart.log").read_text()
                assert time.monotonic() < deadline, "restarted sink did not catch up"
                time.sleep(0.5)
        finally:
            restarted.send_signal(signal.SIGTERM)
            assert restarted.wait(60) == 0

    store = open_store(settings)
    try:
        assert count(store, "test_results") == len(tests)
        assert count(store, "test_results", "name") == len(tests)
        assert count(store, "runs") == len(runs)
        assert count(store, "stages") == 2 * len(runs)
        # The materialized views were fed once per row too (retries dedup into them as well).
        assert int(store.command("SELECT sum(results) FROM test_daily_trends")) == len(tests)
        assert int(store.command("SELECT sum(runs) FROM pipeline_daily_trends")) == len(runs)
    finally:
        store.close()


def test_a_30s_store_outage_under_load_pauses_resumes_and_loses_nothing(
    settings: Settings, store: Store
) -> None:
    topic = settings.topic_names.tests
    faulty = FaultyClient(store.client)
    store._client = faulty
    sink = ClickHouseSink(settings, store, retry_initial_s=0.2, retry_max_s=2.0)
    produced: list[int] = []
    stop_producing = threading.Event()

    def load() -> None:  # about 200 results a second for the whole outage and after it
        producer = Producer(producer_config(settings))
        index = 0
        while not stop_producing.is_set():
            for _ in range(20):
                result = make_result(f"run-{index % 13}", index)
                producer.produce(topic, key=result.run_id, value=result.to_bytes())
                index += 1
            producer.poll(0)
            time.sleep(0.1)
        assert producer.flush(10) == 0
        produced.append(index)

    producer_thread = threading.Thread(target=load, daemon=True)
    producer_thread.start()
    try:
        drive(sink, lambda: count(store, "test_results") > 0)
        outage_end = time.monotonic() + 30.0
        faulty.outage_until = outage_end
        max_pending = 0
        saw_pause = False
        while time.monotonic() < outage_end:
            sink.poll_once(0.1)
            saw_pause = saw_pause or sink.paused
            max_pending = max(max_pending, sink.pending_messages)
        stop_producing.set()
        producer_thread.join(20)
        total = produced[0]
        drive(sink, lambda: not sink.paused, timeout_s=20)
        resumed_after = time.monotonic() - outage_end
        drive(sink, lambda: count(store, "test_results") >= total and sink.pending_messages == 0)
        for _ in range(5):  # anything left to re-deliver would show now
            sink.poll_once(0.1)
    finally:
        stop_producing.set()
        sink.stop()

    assert saw_pause and faulty.refused >= 5  # it kept retrying, with backoff, during the outage
    assert resumed_after < 10.0  # capped at 2 s: back soon after the store is (slack for CI load)
    # Paused partitions fetch nothing: what is held stays about one batch, not 30 s of load.
    assert max_pending <= settings.sink.batch_rows + 100, max_pending
    assert total > 5000
    assert count(store, "test_results") == total
    assert count(store, "test_results", "name") == total
    assert committed_to_end(settings, [topic])
