"""What `k8s-watch` and `log-stream` published, read back from their own topic: the part of a
restart's memory that the state file cannot hold.

The state file is written every `k8s.checkpoint_s` / `logs.checkpoint_s`; a producer killed
between two checkpoints (SIGKILL, OOM, a node lost) has published what the file does not know,
and its successor would publish it again (a relist's RELISTED states, a log read again from the
saved position): rows stored twice downstream. The topic is the record of what was published,
so each checkpoint also saves the topic's end offsets, and a restart reads the topic from there
to the end and learns what was published before it publishes anything.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping

from confluent_kafka import Consumer, KafkaError, TopicPartition

from runtime.config import Settings
from runtime.kafka_clients import consumer_config


def _reader(settings: Settings) -> Consumer:
    # Assigned partitions only, never subscribed or committed: the group id is a formality.
    group = f"{settings.topics.prefix}readback"
    return Consumer(consumer_config(settings, group, **{"enable.partition.eof": True}))


def _partitions(reader: Consumer, topic: str, timeout: float) -> list[int]:
    metadata = reader.list_topics(topic, timeout=timeout)
    found = metadata.topics.get(topic)
    if found is None or found.error is not None:
        raise RuntimeError(f"topic {topic} not readable: {found.error if found else 'missing'}")
    return sorted(found.partitions)


def topic_ends(settings: Settings, topic: str, timeout: float = 10.0) -> dict[int, int]:
    """partition -> the offset the next message will get."""
    reader = _reader(settings)
    try:
        return {
            p: reader.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)[1]
            for p in _partitions(reader, topic, timeout)
        }
    finally:
        reader.close()


def offsets_at(settings: Settings, topic: str, at_ms: int, timeout: float = 10.0) -> dict[int, int]:
    """partition -> the first offset whose timestamp is at or after `at_ms` (the end offset
    where nothing is that recent), for `published_since`."""
    reader = _reader(settings)
    try:
        wanted = [TopicPartition(topic, p, at_ms) for p in _partitions(reader, topic, timeout)]
        found = {}
        for tp in reader.offsets_for_times(wanted, timeout=timeout):
            if tp.offset < 0:
                tp.offset = reader.get_watermark_offsets(tp, timeout=timeout)[1]
            found[tp.partition] = tp.offset
        return found
    finally:
        reader.close()


def published_since(
    settings: Settings, topic: str, since: Mapping[int, int], timeout: float = 60.0
) -> Iterator[bytes]:
    """Every message value on `topic` from `since` (a partition not in it: from its start) to
    the end each partition had when reading began. Raises TimeoutError if that takes over
    `timeout`: a producer that cannot learn what it published must not guess."""
    reader = _reader(settings)
    try:
        partitions = _partitions(reader, topic, timeout)
        ends = {
            p: reader.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)[1]
            for p in partitions
        }
        todo = {p for p in partitions if since.get(p, 0) < ends[p]}
        if not todo:
            return
        reader.assign([TopicPartition(topic, p, since.get(p, 0)) for p in sorted(todo)])
        deadline = time.monotonic() + timeout
        while todo:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading back {topic} took over {timeout:.0f}s")
            message = reader.poll(1.0)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    todo.discard(message.partition())
                    continue
                raise RuntimeError(f"reading back {topic}: {error.str()}")
            partition, offset = message.partition(), message.offset()
            if partition is None or offset is None:
                continue
            if offset >= ends[partition]:
                todo.discard(partition)
                continue
            if offset + 1 >= ends[partition]:
                todo.discard(partition)
            yield message.value() or b""
    finally:
        reader.close()
