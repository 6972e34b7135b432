"""Waiting until every consumer group of an installation (workers, sinks, dispatchers) has
committed up to the end of each of its inputs: the moment its outputs can be compared."""

from __future__ import annotations

import time
from collections.abc import Callable

from confluent_kafka import Consumer, TopicPartition

from runtime.config import Settings
from runtime.kafka_clients import consumer_config
from sentinel.stack import consumed, worker_topics
from sinks.clickhouse.sink import default_routes


def wait_all_consumed(
    settings: Settings,
    check: Callable[[], None] = lambda: None,
    timeout: float = 240,
    settle: float = 1.0,
) -> None:
    """Every group committed up to the end of each input, `settle` seconds in a row; `check`
    runs on every round (a test asserts there that its processes are alive)."""
    names = settings.topic_names
    groups = {
        settings.worker_app_id: worker_topics(settings),
        settings.sink_group_id: tuple(default_routes(settings)),
        settings.alerts_group_id: (names.runs, names.anomalies),
    }
    probes = [
        (g, Consumer(consumer_config(settings, g)), t) for g, ts in groups.items() for t in ts
    ]
    try:
        deadline, since = time.monotonic() + timeout, None
        behind: list[str] = []
        while time.monotonic() < deadline:
            check()
            behind = [f"{g} {t}" for g, probe, t in probes if not consumed(probe, t)]
            if not behind:
                since = since or time.monotonic()
                if time.monotonic() - since >= settle:
                    return
            else:
                since = None
            time.sleep(0.2)
        lags = {f"{g} {t}": lag(probe, t) for g, probe, t in probes if f"{g} {t}" in behind}
        raise AssertionError(f"the groups did not catch up: {lags}")
    finally:
        for _group, probe, _topic in probes:
            probe.close()


def lag(probe: Consumer, topic: str) -> list[tuple[int, int, int]]:
    """(partition, committed, end) of each partition of `topic` its group has not caught up on."""
    partitions = probe.list_topics(topic, timeout=5).topics[topic].partitions
    found = []
    for tp in probe.committed([TopicPartition(topic, p) for p in partitions], timeout=5):
        _low, high = probe.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=5)
        if high > 0 and tp.offset < high:
            found.append((tp.partition, tp.offset, high))
    return found
