"""Which spooled entries are already on their topic, so the drainer does not publish them twice.

An entry is spooled when the producer reported its delivery as failed ("Local: Message timed
out"). When the broker went away with the produce request in flight, that report is only
"possibly persisted": the broker may have written the message and the answer got lost. librdkafka
knows this (`rd_kafka_message_status`) but confluent-kafka-python does not expose it, and an
idempotent producer cannot deduplicate a message it re-sends as a new one. Publishing such an
entry again put the same webhook twice on `sentinel.ci` (1 run in 5 of test_broker_outage).

So before publishing, the drainer reads back the part of each topic that could hold them: from
a little before the oldest pending entry was spooled (the message was produced at most one
delivery timeout before) to the end, and compares keys and values byte for byte. An event's
bytes are unique per delivery (the delivery ledger refuses repeats before anything is
published), so equal bytes mean the same webhook. This costs one read of the outage window per
drain that finds entries pending, i.e. only after an outage.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from producers.webhooks.spool import SpoolEntry

log = logging.getLogger("sentinel.spool")
TIMEOUT_S = 10.0
# Produce time (CreateTime) can precede the spooling by the delivery timeout and the answer's
# way back; clocks are the same host's or NTP-close.
MARGIN_S = 60.0


def _digest(key: bytes | None, value: bytes | None) -> bytes:
    hashed = hashlib.sha256()
    hashed.update(b"-" if key is None else b"k" + len(key).to_bytes(8, "big") + key)
    hashed.update(value or b"")
    return hashed.digest()


class TopicLookback:
    """Reads a topic back from a moment on (no consumer group: assigned partitions only)."""

    def __init__(self, consumer_settings: dict[str, Any], delivery_timeout_s: float) -> None:
        settings = {
            key: value
            for key, value in consumer_settings.items()
            if key not in ("group.id", "enable.auto.commit")
        }
        self._config = {
            **settings,
            "group.id": "sentinel-spool-lookback",  # required by the client; never joined
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
        self._window_s = delivery_timeout_s + MARGIN_S

    def already_published(self, entries: Iterable[SpoolEntry]) -> set[Path]:
        """The paths of the entries whose key and value are on their topic already; raises
        `KafkaException` when the broker cannot be read (the drainer then waits and retries)."""
        by_topic: dict[str, list[SpoolEntry]] = {}
        for entry in entries:
            by_topic.setdefault(entry.topic, []).append(entry)
        found: set[Path] = set()
        for topic, waiting in by_topic.items():
            since_ms = int((min(e.spooled_at_s for e in waiting) - self._window_s) * 1000)
            on_topic = self._digests(topic, since_ms)
            found |= {e.path for e in waiting if _digest(e.key, e.value) in on_topic}
        return found

    def _digests(self, topic: str, since_ms: int) -> set[bytes]:
        consumer = Consumer(self._config)
        try:
            metadata = consumer.list_topics(topic, timeout=TIMEOUT_S).topics.get(topic)
            if metadata is None or metadata.error is not None:
                error = None if metadata is None else metadata.error
                raise KafkaException(f"topic {topic} cannot be read back: {error}")
            wanted = [TopicPartition(topic, p, since_ms) for p in metadata.partitions]
            starts = consumer.offsets_for_times(wanted, timeout=TIMEOUT_S)
            # -1: nothing at or after that time in this partition; nothing to read there.
            assigned = [tp for tp in starts if tp.offset >= 0]
            if not assigned:
                return set()
            consumer.assign(assigned)
            return self._read_to_end(consumer, {tp.partition for tp in assigned})
        finally:
            consumer.close()

    def _read_to_end(self, consumer: Consumer, partitions: set[int]) -> set[bytes]:
        digests: set[bytes] = set()
        deadline = time.monotonic() + TIMEOUT_S * 6
        while partitions:
            if time.monotonic() > deadline:
                raise KafkaException("reading back the spooled entries' topic took too long")
            for message in consumer.consume(num_messages=500, timeout=1.0):
                error = message.error()
                if error is None:
                    digests.add(_digest(message.key(), message.value()))
                elif error.code() == KafkaError._PARTITION_EOF:
                    partitions.discard(message.partition() or 0)
                else:
                    raise KafkaException(error)
        return digests
