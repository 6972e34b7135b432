"""The run-tracking worker (a real Faust worker process) on real Apache Kafka."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from producers.publisher import KafkaPublisher
from producers.webhooks.github import normalize
from runtime.config import Settings
from runtime.kafka_clients import producer_config
from schemas.messages import CiEvent, DeadLetter, RunState
from sentinel.brokers import free_port
from sentinel.stack import EmbeddedStack, WorkerProcess
from tests.support.helpers import (
    create_topic_refusing_over,
    payload,
    read_topic,
    set_max_message_bytes,
)

pytestmark = pytest.mark.integration

RUN_ID = "github:octo-org/octo-repo:289782451:1"


@pytest.fixture
def stack(kafka_bootstrap: str, make_settings: Callable[..., Settings]) -> Iterator[EmbeddedStack]:
    # The worker child serves its ops endpoint (/health /ready /metrics) on a free port.
    embedded = EmbeddedStack(make_settings(kafka_bootstrap, ops={"port": free_port()}))
    embedded.start()
    try:
        yield embedded
    finally:
        embedded.stop()


def ci_event(event: str, delivery: str, path: str) -> CiEvent:
    result = normalize(event, delivery, json.loads(payload(path)), datetime.now(UTC))
    assert isinstance(result, CiEvent)
    return result


def latest_states(settings: Settings) -> dict[str, RunState]:
    states: dict[str, RunState] = {}
    for _key, value in read_topic(settings, settings.topic_names.runs):
        state = RunState.from_bytes(value)
        states[state.run_id] = state
    return states


def test_invalid_messages_are_dead_lettered_and_the_partition_moves_on(
    stack: EmbeddedStack,
) -> None:
    settings = stack.settings
    publisher = KafkaPublisher(producer_config(settings))
    key = RUN_ID.encode()
    publisher.publish_sync(settings.topic_names.ci, key, b"\xff not json", timeout=10)
    publisher.publish_sync(settings.topic_names.ci, key, b'{"schema_version": 1}', timeout=10)
    completed = ci_event("workflow_run", "w-1", "workflow_run/completed.payload.json")
    publisher.publish_sync(settings.topic_names.ci, key, completed.to_bytes(), timeout=10)
    publisher.close()
    stack.wait_consumed(timeout=60)

    letters = sorted(
        (DeadLetter.from_bytes(v) for _k, v in read_topic(settings, settings.topic_names.dlq)),
        key=lambda letter: letter.origin_offset or 0,
    )
    assert [letter.raw_value for letter in letters] == [b"\xff not json", b'{"schema_version": 1}']
    assert all(letter.origin_topic == settings.topic_names.ci for letter in letters)
    assert all(letter.component == "run-tracker" for letter in letters)
    assert "not a valid CiEvent" in letters[1].error and "event_id" in letters[1].error
    assert [letter.origin_offset for letter in letters] == [0, 1]
    assert latest_states(settings)[RUN_ID].status == "succeeded"

    # What operators see: the worker's ops endpoint and its JSON log lines.
    ops = f"http://127.0.0.1:{settings.ops.port}"
    health = httpx.get(f"{ops}/health", timeout=5).json()
    assert health["status"] == "ok" and health["component"] == "worker"
    assert health["loop_age_s"] < 5  # the event loop's heartbeat timer turns
    assert httpx.get(f"{ops}/ready", timeout=5).status_code == 200
    metrics = httpx.get(f"{ops}/metrics", timeout=5).text
    assert 'sentinel_dead_letters_total{component="run-tracker"} 2.0' in metrics
    assert stack.worker is not None
    lines = [json.loads(line) for line in stack.worker.log_path.read_text().splitlines()]
    dead = [line for line in lines if line["message"].startswith("dead-lettering")]
    assert [(d["topic"], d["offset"], d["component"]) for d in dead] == [
        (settings.topic_names.ci, 0, "worker"),
        (settings.topic_names.ci, 1, "worker"),
    ]


def test_a_dead_letter_the_broker_refuses_is_retried_not_lost(
    kafka_bootstrap: str, make_settings: Callable[..., Settings]
) -> None:
    """The DLQ refuses the letter (its topic's max.message.bytes too small, as an operator might
    set it): the worker keeps the message's partition where it is and retries; once the topic
    is fixed the letter lands and the next message is processed. (It used to log the refusal
    and commit past the message: the bad input was gone.)"""
    settings = make_settings(kafka_bootstrap)
    dlq = settings.topic_names.dlq
    create_topic_refusing_over(settings, dlq, 200)
    stack = EmbeddedStack(settings)
    stack.start()
    try:
        publisher = KafkaPublisher(producer_config(settings))
        key = RUN_ID.encode()
        publisher.publish_sync(settings.topic_names.ci, key, b"\xff not json", timeout=10)
        completed = ci_event("workflow_run", "w-1", "workflow_run/completed.payload.json")
        publisher.publish_sync(settings.topic_names.ci, key, completed.to_bytes(), timeout=10)
        publisher.close()
        assert stack.worker is not None
        log_path = stack.worker.log_path
        # Wait for the second refusal the worker logs (or 30 s, when nothing retries).
        deadline = time.monotonic() + 30
        while "not stored (attempt 2" not in log_path.read_text() and time.monotonic() < deadline:
            time.sleep(0.5)
        # Held: the message after the refused one waits (same partition), nothing is committed.
        assert RUN_ID not in latest_states(settings)
        assert read_topic(settings, dlq) == []

        set_max_message_bytes(settings, dlq, 1_048_588)
        stack.wait_consumed(timeout=90)
        letters = [DeadLetter.from_bytes(v) for _k, v in read_topic(settings, dlq)]
        assert [(letter.raw_value, letter.origin_offset) for letter in letters] == [
            (b"\xff not json", 0)
        ]
        assert latest_states(settings)[RUN_ID].status == "succeeded"
    finally:
        stack.stop()


def test_restarted_worker_recovers_run_state_from_its_changelog(stack: EmbeddedStack) -> None:
    """The completion arrives while the worker is down; after the restart the run still has
    what the earlier events told (pipeline, created_at) and ends succeeded, at version 2."""
    settings = stack.settings
    publisher = KafkaPublisher(producer_config(settings))
    requested = ci_event("workflow_run", "r-1", "workflow_run/requested.payload.json")
    publisher.publish_sync(settings.topic_names.ci, RUN_ID.encode(), requested.to_bytes(), 10)
    stack.wait_consumed(timeout=60)
    assert stack.worker is not None
    stack.worker.stop()

    completed = ci_event("workflow_run", "r-2", "workflow_run/completed.payload.json")
    publisher.publish_sync(settings.topic_names.ci, RUN_ID.encode(), completed.to_bytes(), 10)
    publisher.close()
    stack.worker = WorkerProcess(settings, stack.worker.log_path, None)
    stack.worker.start()
    started = time.monotonic()
    stack.wait_consumed(timeout=90)
    print(f"restarted worker caught up in {time.monotonic() - started:.1f}s")

    final = latest_states(settings)[RUN_ID]
    assert final.status == "succeeded"
    assert final.version == 2  # continued from the recovered state, not a fresh run
    assert final.created_at == requested.created_at


def test_unreadable_kubernetes_and_log_messages_are_dead_lettered(stack: EmbeddedStack) -> None:
    settings = stack.settings
    names = settings.topic_names
    publisher = KafkaPublisher(producer_config(settings))
    publisher.publish_sync(names.k8s, b"ci/pod-a", b'{"kind": "Pod"}', timeout=10)
    publisher.publish_sync(names.logs, b"ci/pod-a/main", b"\x00 not json", timeout=10)
    publisher.close()
    stack.wait_consumed(timeout=60)
    letters = [DeadLetter.from_bytes(v) for _k, v in read_topic(settings, names.dlq)]
    # Both consumers of these topics give up on them, each saying so: the worker and the sink.
    assert {(letter.origin_topic, letter.component) for letter in letters} == {
        (names.k8s, "signal-router"),
        (names.logs, "signal-router"),
        (names.k8s, "clickhouse-sink"),
        (names.logs, "clickhouse-sink"),
    }
    router = [letter for letter in letters if letter.component == "signal-router"]
    assert any("not a valid K8sObjectEvent" in letter.error for letter in router)
    assert any("not a valid LogLine" in letter.error for letter in router)


def test_live_a_run_nobody_reports_on_times_out_by_the_wall_clock(
    kafka_bootstrap: str, make_settings: Callable[..., Settings]
) -> None:
    """Nothing else arrives after the run started: the idle worker's clock times it out."""
    tracking = {"idle_watermark_s": 1.0, "inactivity_timeout_s": 4.0, "allowed_lateness_s": 1.0}
    embedded = EmbeddedStack(make_settings(kafka_bootstrap, tracking=tracking))
    embedded.start()
    try:
        settings = embedded.settings
        now = datetime.now(UTC)
        event = CiEvent(
            event_id="live-1",
            provider="generic",
            event_type="generic",
            kind="run",
            run_id="nightly#1",
            provider_run_id="nightly#1",
            status="running",
            event_time=now,
            started_at=now,
        )
        publisher = KafkaPublisher(producer_config(settings))
        publisher.publish_sync(settings.topic_names.ci, b"nightly#1", event.to_bytes(), timeout=10)
        publisher.close()
        deadline = time.monotonic() + 60
        state = None
        while time.monotonic() < deadline:
            state = latest_states(settings).get("nightly#1")
            if state is not None and state.status == "timed_out":
                break
            time.sleep(1.0)
        assert state is not None and state.status == "timed_out", state
        assert state.closed_by == "timeout"
        assert state.finished_at == now + timedelta(seconds=4)  # the deadline, in event time
    finally:
        embedded.stop()
