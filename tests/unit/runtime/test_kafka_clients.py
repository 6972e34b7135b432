"""Producer settings of every producer: idempotent, acks=all, compressed; sends never block and
failed deliveries are counted in metrics."""

from __future__ import annotations

import time

import pytest

from producers.publisher import KafkaPublisher, PublishError
from runtime.config import load_settings
from runtime.kafka_clients import producer_config
from runtime.metrics import PUBLISH_FAILURES


def test_producer_config_is_idempotent_acks_all_and_compressed() -> None:
    settings = load_settings(None, kafka={"bootstrap_servers": "kafka:9092"})
    config = producer_config(settings)
    assert config["enable.idempotence"] is True
    assert config["acks"] == "all"
    assert config["compression.type"] == "lz4"
    tuned = load_settings(
        None, kafka={"bootstrap_servers": "k:9092", "producer": {"compression.type": "zstd"}}
    )
    assert producer_config(tuned)["compression.type"] == "zstd"


def test_submit_returns_at_once_and_a_failed_delivery_is_counted() -> None:
    settings = load_settings(
        None, kafka={"bootstrap_servers": "127.0.0.1:1", "delivery_timeout_s": 0.5}
    )
    publisher = KafkaPublisher(producer_config(settings), component="unit-unreachable")
    before = PUBLISH_FAILURES.labels("unit-unreachable", "t")._value.get()
    try:
        started = time.monotonic()
        futures = [publisher.submit("t", b"k", b"v") for _ in range(100)]
        assert time.monotonic() - started < 2.0  # queued: waiting for each would take 0.5 s apiece
        with pytest.raises(PublishError):
            futures[0].result(timeout=10)
        for future in futures:
            future.exception(timeout=10)
    finally:
        publisher.close(timeout=1)
    assert PUBLISH_FAILURES.labels("unit-unreachable", "t")._value.get() - before == 100


def test_send_reports_each_failed_delivery_to_its_handler_and_counts_it() -> None:
    settings = load_settings(
        None, kafka={"bootstrap_servers": "127.0.0.1:1", "delivery_timeout_s": 0.5}
    )
    publisher = KafkaPublisher(producer_config(settings), component="unit-send")
    before = PUBLISH_FAILURES.labels("unit-send", "t")._value.get()
    failures: list[PublishError] = []
    try:
        for index in range(100):
            publisher.send("t", b"k", str(index).encode(), failures.append)
        deadline = time.monotonic() + 10
        while len(failures) < 100 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        publisher.close(timeout=1)
    assert len(failures) == 100
    assert all(f.retriable and f.args[0].startswith("t: ") for f in failures)
    assert PUBLISH_FAILURES.labels("unit-send", "t")._value.get() - before == 100


def test_send_refuses_a_message_over_the_size_limit_at_once_and_for_good() -> None:
    settings = load_settings(None, kafka={"bootstrap_servers": "127.0.0.1:1"})
    publisher = KafkaPublisher(producer_config(settings), component="unit-send-big")
    try:
        with pytest.raises(PublishError) as refused:
            publisher.send("t", b"k", b"x" * (17 * 1024 * 1024), lambda _error: None)
    finally:
        publisher.close(timeout=1)
    assert not refused.value.retriable and "t: " in str(refused.value)
