"""Reliability suite (issue 17): poison messages on every input topic of the worker, the sink and
the alert dispatcher — invalid JSON, a wrong schema, a 10 MiB value, a key that does not match
its value, and garbage too large for a dead letter to carry whole. Each lands in the dead-letter
topic with its reason, once per component that reads the topic, and the partition keeps moving:
the good message sent right after each poison, on the same partition, is processed (its rows
reach ClickHouse, its run is tracked, its anomaly is alerted), and no poison is.

One stack for all (real Apache Kafka, the worker process, the embedded ClickHouse engine, the
dispatcher): about 25 s with the broker's start, so part of `make test`.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from confluent_kafka import KafkaError, Producer

from runtime.config import Settings
from runtime.kafka_clients import producer_config
from schemas.messages import (
    AlertDelivery,
    CiEvent,
    CiEventKind,
    DeadLetter,
    DeliveryOutcome,
    K8sObjectEvent,
    LogLine,
    Message,
    RunStatus,
    TestResult,
)
from schemas.messages import (
    TestStatus as CaseStatus,
)
from schemas.topics import LOGS
from sentinel.stack import EmbeddedStack
from sentinel.topic_admin import ensure_topics
from tests.support.alerts import anomaly, run_state
from tests.support.helpers import read_topic

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

NOW = datetime.now(UTC).replace(microsecond=0)  # log_lines keeps 14 days (TTL)
BIG = 10 * 1024 * 1024
GARBAGE = 6 * 1024 * 1024  # under kafka.max_value_bytes
GOOD = range(5)  # one good message after each poison
TOO_BIG, WRONG_KEY = 200, 300  # ids of the poisons that are valid messages apart from that


def ci_run(n: int) -> str:
    return f"github:acme/poison-ci:{n}:1"


def alert_run(n: int) -> str:
    return f"github:acme/poison-alerts:{n}:1"


def ci(n: int) -> CiEvent:
    return CiEvent(
        event_id=f"delivery-{n}", provider="github", event_type="workflow_run",
        kind=CiEventKind.RUN, run_id=ci_run(n), provider_run_id=str(n), repository="acme/shop",
        pipeline="poison", status=RunStatus.RUNNING, event_time=NOW,
    )  # fmt: skip


def pod(n: int) -> K8sObjectEvent:
    return K8sObjectEvent(
        event_type="ADDED", kind="Pod", api_version="v1", namespace="ci", name=f"pod-{n}",
        uid=f"uid-{n}", resource_version="1", correlation_key=f"poison-k8s-{n}",
        object={"kind": "Pod", "status": {"phase": "Running"}}, event_time=NOW,
    )  # fmt: skip


def log_line(n: int) -> LogLine:
    return LogLine(
        namespace="ci", pod=f"pod-{n}", container="main", line=f"line {n}", event_time=NOW
    )


def result(n: int) -> TestResult:
    return TestResult(
        run_id=ci_run(0), suite="poison", name=f"test_{n}", status=CaseStatus.PASSED,
        source="junit-xml", event_time=NOW,
    )  # fmt: skip


@dataclass(frozen=True)
class Topic:
    suffix: str
    model: str  # what the reason of a wrong schema names
    make: Callable[[int], Message]
    key: Callable[[Any], str]
    readers: frozenset[str]  # the `component` of each consumer of the topic


TOPICS = (
    Topic("ci", "CiEvent", ci, lambda m: m.run_id, frozenset({"run-tracker"})),
    Topic(
        "k8s", "K8sObjectEvent", pod, lambda m: f"ci/{m.name}",
        frozenset({"signal-router", "clickhouse-sink"}),
    ),
    Topic(
        "logs", "LogLine", log_line, lambda m: f"ci/{m.pod}/main",
        frozenset({"signal-router", "clickhouse-sink"}),
    ),
    Topic("tests", "TestResult", result, lambda m: m.run_id, frozenset({"clickhouse-sink"})),
    Topic(
        "runs", "RunState", lambda n: run_state(alert_run(n)), lambda m: m.run_id,
        frozenset({"clickhouse-sink", "alerts"}),
    ),
    Topic(
        "anomalies", "Anomaly", lambda n: anomaly(subject=f"pod-{n}", run_id=alert_run(n)),
        lambda m: m.run_id, frozenset({"clickhouse-sink", "alerts"}),
    ),
)  # fmt: skip


def padded(message: Message, size: int) -> bytes:
    """A valid message (unknown fields are kept) of exactly `size` bytes. Repetitive, like a
    runaway log line: compressed it is far under the topic's 1 MiB, so the broker takes it."""
    value = json.loads(message.to_bytes())
    value["padding"] = ""
    room = size - len(json.dumps(value, separators=(",", ":")).encode())
    value["padding"] = "x" * room
    raw = json.dumps(value, separators=(",", ":")).encode()
    assert len(raw) == size
    return raw


def poisons(topic: Topic) -> dict[str, tuple[bytes, bytes]]:
    """Poison name -> (key, value); the first two under a good key."""
    key = topic.key(topic.make(0)).encode()
    big, misplaced = topic.make(TOO_BIG), topic.make(WRONG_KEY)
    return {
        "invalid json": (key, b"\xff{ not json"),
        "wrong schema": (key, b'{"schema_version": 1, "run_id": 42, "name": []}'),
        "10 MiB": (topic.key(big).encode(), padded(big, BIG)),
        "key mismatch": (b"not/the/key", misplaced.to_bytes()),
        # Not JSON, and too big for a dead letter that carries it whole (its base64 does not
        # compress under the DLQ topic's 1 MiB, though the value itself does under its own).
        "large garbage": (key, os.urandom(900 * 1024) + bytes(GARBAGE - 900 * 1024)),
    }


@pytest.fixture
def stack(kafka_bootstrap: str, make_settings: Callable[..., Settings]) -> Iterator[EmbeddedStack]:
    alerting = {"enabled": True, "start_at": "earliest", "route": {"group_wait_s": 0}}
    embedded = EmbeddedStack(make_settings(kafka_bootstrap, alerting=alerting))
    embedded.start()
    try:
        yield embedded
    finally:
        embedded.stop()


def produce_all(settings: Settings) -> dict[tuple[str, int], tuple[Topic, str, bytes]]:
    """Poison, good, poison, good… on partition 0 of every input topic; what each poison was,
    by (topic, offset)."""
    producer = Producer(producer_config(settings))
    sent: dict[tuple[str, int], tuple[Topic, str, bytes]] = {}

    def record(topic: Topic, poison: str, value: bytes) -> Callable[[Any, Any], None]:
        def delivered(error: KafkaError | None, message: Any) -> None:
            assert error is None, error
            sent[(message.topic(), message.offset())] = (topic, poison, value)

        return delivered

    for topic in TOPICS:
        name = getattr(settings.topic_names, topic.suffix)
        for n, (poison, (key, value)) in zip(GOOD, poisons(topic).items(), strict=True):
            good = topic.make(n)
            # The worker writes to sentinel.runs too: offsets come from the broker's acks.
            producer.produce(
                name, key=key, value=value, partition=0, on_delivery=record(topic, poison, value)
            )
            producer.produce(name, key=topic.key(good).encode(), value=good.to_bytes(), partition=0)
    assert producer.flush(60) == 0
    assert len(sent) == len(TOPICS) * len(GOOD)
    return sent


def wait_for_letters(settings: Settings, expected: int, timeout: float = 60) -> list[DeadLetter]:
    deadline = time.monotonic() + timeout
    while True:
        dlq = read_topic(settings, settings.topic_names.dlq, idle=0.3)
        letters = [DeadLetter.from_bytes(value) for _key, value in dlq]
        if len(letters) >= expected or time.monotonic() > deadline:
            return letters
        time.sleep(0.5)


def test_poison_on_every_input_topic_is_dead_lettered_and_the_partitions_move_on(
    stack: EmbeddedStack,
) -> None:
    settings = stack.settings
    sent = produce_all(settings)
    expected = sum(len(topic.readers) for topic, _poison, _value in sent.values())
    letters = wait_for_letters(settings, expected)
    stack.wait_consumed(timeout=60)  # the worker and the sink are past every poison

    found: dict[tuple[str, int], dict[str, DeadLetter]] = {}
    for letter in letters:
        assert letter.origin_offset is not None
        where = found.setdefault((letter.origin_topic, letter.origin_offset), {})
        assert letter.component not in where, f"dead-lettered twice: {letter}"
        where[letter.component] = letter
    # Only the poisons, each once per component that reads its topic.
    assert set(found) == set(sent)
    for (name, offset), (topic, poison, value) in sent.items():
        by_component = found[(name, offset)]
        assert set(by_component) == topic.readers, (name, poison)
        for letter in by_component.values():
            assert letter.origin_partition == 0
            check_reason(topic, poison, value, letter)

    assert_good_messages_processed(stack)


def check_reason(topic: Topic, poison: str, value: bytes, letter: DeadLetter) -> None:
    what = (topic.suffix, poison, letter.component, letter.error_type, letter.error[:300])
    if poison == "10 MiB":
        assert letter.error_type == "ValueTooLarge", what
        assert f"value of {BIG} bytes is over kafka.max_value_bytes=" in letter.error, what
        # The DLQ keeps the broker's default 1 MiB: the letter holds the head and says so.
        assert letter.raw_truncated and letter.raw_size == BIG, what
        assert letter.raw_sha256 == hashlib.sha256(value).hexdigest(), what
        assert 0 < len(letter.raw_value) < BIG and value.startswith(letter.raw_value), what
        return
    if poison == "large garbage":
        assert letter.error_type in ("ValidationError", "RowConversionError"), what
        assert "Invalid JSON" in letter.error or "json_invalid" in letter.error, what
        assert letter.raw_truncated and letter.raw_size == GARBAGE, what
        assert value.startswith(letter.raw_value), what
        return
    assert letter.raw_value == value and not letter.raw_truncated, what
    if poison == "key mismatch":
        assert letter.error_type == "KeyMismatch" and letter.origin_key == b"not/the/key", what
        expected_key = topic.key(topic.make(WRONG_KEY))
        assert "key 'not/the/key' does not match the value" in letter.error, what
        assert f"here {expected_key!r}" in letter.error, what
    elif poison == "invalid json":
        assert letter.error_type in ("ValidationError", "RowConversionError"), what
        assert "Invalid JSON" in letter.error or "json_invalid" in letter.error, what
    else:
        assert letter.error_type in ("ValidationError", "RowConversionError"), what
        assert topic.model in letter.error, what


def assert_good_messages_processed(stack: EmbeddedStack) -> None:
    """What a user sees: the good messages' rows and runs, alerts for the good anomalies, and
    nothing of the poisons that were valid messages apart from their size or key."""
    assert stack.owner is not None and stack.owner.store is not None
    store = stack.owner.store
    poisoned = (TOO_BIG, WRONG_KEY)

    def column(sql: str) -> set[str]:
        return {next(iter(row.values())) for row in store.query_rows(sql)}

    runs = column("SELECT DISTINCT run_id FROM runs")
    # The worker tracked the good CI events' runs; the sink stored the good snapshots.
    assert {ci_run(n) for n in GOOD} <= runs
    assert {alert_run(n) for n in GOOD} <= runs
    # The worker opened a run for each good pod (its correlation key names it).
    assert {f"poison-k8s-{n}" for n in GOOD} <= runs
    never = {ci_run(n) for n in poisoned} | {alert_run(n) for n in poisoned}
    assert not runs & (never | {f"poison-k8s-{n}" for n in poisoned})
    good_pods = {f"pod-{n}" for n in GOOD}
    assert column("SELECT DISTINCT name FROM k8s_events") == good_pods
    assert column("SELECT DISTINCT pod FROM log_lines") == good_pods
    assert column("SELECT DISTINCT name FROM test_results") == {f"test_{n}" for n in GOOD}
    assert column("SELECT DISTINCT subject FROM anomalies") == good_pods
    # The dispatcher alerted the good anomalies, and only those.
    good_anomalies = {anomaly(subject=f"pod-{n}", run_id=alert_run(n)).anomaly_id for n in GOOD}
    assert wait_alerted(stack.settings, good_anomalies) == good_anomalies


def wait_alerted(settings: Settings, wanted: set[str], timeout: float = 30) -> set[str]:
    deadline = time.monotonic() + timeout
    while True:
        deliveries = [
            AlertDelivery.from_bytes(v)
            for _k, v in read_topic(settings, settings.topic_names.alert_deliveries, idle=0.3)
        ]
        alerted = {
            a for d in deliveries if d.outcome is DeliveryOutcome.SENT for a in d.anomaly_ids
        }
        if wanted <= alerted or time.monotonic() > deadline:
            return alerted
        time.sleep(0.5)


def test_a_value_too_large_for_the_topic_is_refused_to_its_producer(
    kafka_bootstrap: str, make_settings: Callable[..., Settings]
) -> None:
    """Input topics keep the broker's 1 MiB limit: a 10 MiB value that does not compress under
    it never reaches a consumer; its producer is told why."""
    settings = make_settings(kafka_bootstrap)
    ensure_topics(settings, (LOGS,))
    errors: list[KafkaError | None] = []
    producer = Producer(producer_config(settings))
    value = os.urandom(BIG)
    producer.produce(
        settings.topic_names.logs, key=b"ci/pod/main", value=value,
        on_delivery=lambda error, _message: errors.append(error),
    )  # fmt: skip
    assert producer.flush(30) == 0
    (error,) = errors
    assert error is not None and error.code() == KafkaError.MSG_SIZE_TOO_LARGE
