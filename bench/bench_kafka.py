"""What the throughput benches share: a Kafka broker for the run, the raw-produce baseline, and a
process's CPU seconds."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from confluent_kafka import Producer

from runtime.config import Settings
from runtime.kafka_clients import producer_config


@contextmanager
def kafka(bootstrap: str | None, data_dir: Path) -> Iterator[str]:
    """`bootstrap` if given, else a local Apache Kafka (KRaft) under `data_dir` for the run."""
    if bootstrap:
        yield bootstrap
        return
    from sentinel.brokers import ApacheKafkaBroker

    broker = ApacheKafkaBroker(data_dir, "4.1.1")
    try:
        yield broker.start(timeout=120)
    finally:
        broker.stop()


def raw_produce(
    settings: Settings, topic: str, messages: Iterable[tuple[bytes | None, bytes]]
) -> float:
    """Seconds a confluent-kafka producer with the pipeline's settings takes to produce
    `messages` ((key, value)) to `topic` until every one is acknowledged; the topic's metadata
    is fetched before the clock starts."""
    producer = Producer(producer_config(settings))
    producer.list_topics(topic, timeout=30)
    started = time.perf_counter()
    for key, value in messages:
        while True:
            try:
                producer.produce(topic, key=key, value=value)
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    assert producer.flush(60) == 0
    return time.perf_counter() - started


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far (/proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
