"""confluent-kafka client settings shared by every producer and consumer of ours.

Producers are idempotent with ``acks=all`` so a retried send never duplicates a message on the
broker; consumers never auto-commit, so an offset is committed only after its effect is durable.
"""

from __future__ import annotations

import time
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from runtime.config import MAX_PRODUCED_BYTES, Settings
from runtime.log_setup import kafka_logger


class BrokerNotConfigured(RuntimeError):
    pass


def bootstrap_servers(settings: Settings) -> str:
    servers = settings.kafka.bootstrap_servers
    if not servers:
        raise BrokerNotConfigured(
            "kafka.bootstrap_servers is empty: set it (or SENTINEL_KAFKA__BOOTSTRAP_SERVERS), "
            "or run `sentinel up`, which starts an embedded broker and sets it"
        )
    return servers


def producer_config(settings: Settings, **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap_servers(settings),
        "client.id": settings.kafka.client_id,
        "enable.idempotence": True,
        "acks": "all",
        "compression.type": "lz4",
        "linger.ms": 5,
        # A message the broker has not acknowledged by then is reported as failed, so the
        # caller can fall back (the webhook receiver spools it) instead of waiting forever.
        "message.timeout.ms": int(settings.kafka.delivery_timeout_s * 1000),
        "message.max.bytes": MAX_PRODUCED_BYTES,
        # The Java client's partitioner (librdkafka's default hashes with CRC32): the worker
        # (aiokafka) writes run-signals with it, and `sentinel.ci` must put a run id in the
        # same partition number for the tracker's table to see both (co-partitioning).
        "partitioner": "murmur2_random",
        # librdkafka's own lines through Python logging, at their level (not raw to stderr).
        "logger": kafka_logger(),
    }
    config.update(settings.kafka.producer)
    config.update(extra)
    return config


def consumer_config(settings: Settings, group_id: str, **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap_servers(settings),
        "client.id": settings.kafka.client_id,
        "group.id": group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        "session.timeout.ms": 10000,
        "heartbeat.interval.ms": 1000,
        "logger": kafka_logger(),
    }
    config.update(settings.kafka.consumer)
    config.update(extra)
    return config


def admin_config(settings: Settings) -> dict[str, Any]:
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap_servers(settings),
        "logger": kafka_logger(),
    }
    for key, value in settings.kafka.producer.items():
        if key.startswith(("security.", "sasl.", "ssl.")):
            config[key] = value
    return config


def read_range(
    settings: Settings, topic: str, partition: int, start: int, end: int, timeout: float = 30.0
) -> list[tuple[bytes | None, bytes | None, int]]:
    """(key, value, offset) of the messages of one partition with start <= offset < end."""
    # Assigned, never subscribed: the group id is required but never joined or committed.
    consumer = Consumer(consumer_config(settings, f"{settings.worker_app_id}-recovery"))
    found: list[tuple[bytes | None, bytes | None, int]] = []
    try:
        consumer.assign([TopicPartition(topic, partition, start)])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is None:
                continue
            if message.error() is not None:
                raise KafkaException(message.error())
            offset = message.offset() or 0
            if offset >= end:
                break
            found.append((message.key(), message.value(), offset))
            if offset + 1 >= end:
                break
        else:
            raise TimeoutError(f"{topic}[{partition}] {start}..{end} not read within {timeout}s")
    finally:
        consumer.close()
    return found


def committed_offset(settings: Settings, group: str, topic: str, partition: int) -> int | None:
    """The offset `group` has committed on one partition (None when it never committed).
    Read with a consumer that never joins the group."""
    consumer = Consumer(consumer_config(settings, group))
    try:
        (found,) = consumer.committed([TopicPartition(topic, partition)], timeout=30)
    finally:
        consumer.close()
    if found.error is not None:
        raise KafkaException(found.error)
    return found.offset if found.offset >= 0 else None
