"""The silences topic (compacted, small, global): read all of it, write one silence (adapter)."""

from __future__ import annotations

import threading
import time
from datetime import datetime

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from pydantic import ValidationError

from runtime.config import Settings
from runtime.kafka_clients import consumer_config, producer_config
from schemas.messages import Silence
from sinks.alerts.silence_rules import expired


class SilenceStore:
    """Every silence, newest version of each; `put` returns once the broker has it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topic = settings.topic_names.silences
        self._lock = threading.Lock()
        self._producer: Producer | None = None

    def all(self, timeout_s: float = 30.0) -> dict[str, Silence]:
        """Read the topic from its start to its current end (read-your-writes)."""
        with self._lock:
            return self._read(timeout_s)

    def get(self, silence_id: str) -> Silence | None:
        return self.all().get(silence_id)

    def put(self, silence: Silence) -> None:
        with self._lock:
            if self._producer is None:
                self._producer = Producer(producer_config(self.settings))
            errors: list[str] = []

            def on_delivery(error: KafkaError | None, _message: object) -> None:
                if error is not None:
                    errors.append(str(error))

            self._producer.produce(
                self.topic,
                key=silence.silence_id,
                value=silence.to_bytes(),
                on_delivery=on_delivery,
            )
            remaining = self._producer.flush(self.settings.kafka.delivery_timeout_s)
            if remaining or errors:
                raise KafkaException(f"silence not stored: {errors or 'no acknowledgement'}")

    def expire(self, silence_id: str, now: datetime) -> Silence | None:
        """End a silence now; None if there is no such silence."""
        known = self.get(silence_id)
        if known is None:
            return None
        ended = expired(known, now)
        if ended is not known:
            self.put(ended)
        return ended

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(self.settings.kafka.delivery_timeout_s)

    def _read(self, timeout_s: float) -> dict[str, Silence]:
        consumer = Consumer(
            consumer_config(
                self.settings,
                f"{self.settings.alerts_group_id}-silences",
                **{"enable.partition.eof": True},
            )
        )
        found: dict[str, Silence] = {}
        try:
            metadata = consumer.list_topics(self.topic, timeout=10).topics[self.topic]
            if metadata.error is not None:
                raise KafkaException(metadata.error)
            assigned = [TopicPartition(self.topic, p, 0) for p in metadata.partitions]
            consumer.assign(assigned)
            remaining = {tp.partition for tp in assigned}
            deadline = time.monotonic() + timeout_s
            while remaining and time.monotonic() < deadline:
                for message in consumer.consume(num_messages=500, timeout=0.5):
                    error = message.error()
                    if error is not None:
                        if error.code() == KafkaError._PARTITION_EOF:
                            remaining.discard(message.partition() or 0)
                        continue
                    self._apply(found, message.key(), message.value())
            if remaining:
                raise TimeoutError(f"{self.topic} not read within {timeout_s:.0f}s")
        finally:
            consumer.close()
        return found

    @staticmethod
    def _apply(found: dict[str, Silence], key: bytes | None, value: bytes | None) -> None:
        if value is None:
            found.pop((key or b"").decode(), None)
            return
        try:
            silence = Silence.from_bytes(value)
        except (ValidationError, ValueError):
            return
        known = found.get(silence.silence_id)
        if known is None or silence.updated_at >= known.updated_at:
            found[silence.silence_id] = silence
