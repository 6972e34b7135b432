"""The baseline the latency benches print beside their figure: one raw Kafka hop (publish with
acks=all, then consume) with the same client settings as the pipeline, on the same broker."""

from __future__ import annotations

import time

from confluent_kafka import Consumer

from producers.publisher import KafkaPublisher
from runtime.config import Settings
from runtime.kafka_clients import consumer_config, producer_config


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def kafka_round_trips(settings: Settings, topic: str, count: int) -> list[float]:
    """`count` produce → consume times on `topic` (one nobody else reads during the bench)."""
    consumer = Consumer(consumer_config(settings, f"bench-{time.time_ns()}"))
    consumer.subscribe([topic])
    publisher = KafkaPublisher(producer_config(settings), component="bench")
    while not consumer.assignment():
        consumer.poll(0.1)
    samples = []
    for index in range(count):
        started = time.perf_counter()
        publisher.publish_sync(topic, b"k", str(index).encode(), timeout=10)
        while True:
            message = consumer.poll(1.0)
            if message is not None and message.error() is None:
                break
        samples.append(time.perf_counter() - started)
    publisher.close()
    consumer.close()
    return samples
