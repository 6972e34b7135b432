"""Broker offsets for `/api/stats` and the consumer lag metrics: what each topic holds and how
far each of this installation's consumer groups has committed (the way kafka-exporter and
Burrow read lag: committed offsets against end offsets, from the broker, for every group)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from confluent_kafka import KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from runtime.config import Settings
from runtime.kafka_clients import admin_config
from runtime.progress_monitor import BrokerOffsets
from sentinel.queries.stats import group_stats

log = logging.getLogger("sentinel.api")
TIMEOUT_S = 5.0

Offsets = dict[tuple[str, int], int]


@dataclass
class OffsetSnapshot:
    reachable: bool
    ends: Offsets = field(default_factory=dict)
    groups: dict[str, Offsets] = field(default_factory=dict)


class OffsetsProbe:
    """Reads end offsets of the topics under the prefix and the committed offsets of the
    groups under it; answers from a cache younger than `ttl_s` (scrapes and page loads do not
    each hit the broker).

    Committed offsets come from a non-joining consumer per group (`BrokerOffsets`), not from
    the admin client's ListConsumerGroupOffsets: librdkafka can abort the whole process when
    such a request timed out during a broker outage and the broker comes back
    (confluentinc/librdkafka#4605); here that process is `sentinel up`'s, with the API in it.
    """

    def __init__(self, settings: Settings, ttl_s: float = 5.0) -> None:
        self.prefix = settings.topics.prefix
        self.dlq_topic = settings.topic_names.dlq
        self._config = admin_config(settings)
        self._admin: AdminClient | None = None
        self._readers: dict[str, BrokerOffsets] = {}
        self._ttl_s = ttl_s
        self._lock = threading.Lock()
        self._cached: tuple[float, OffsetSnapshot] | None = None

    def snapshot(self) -> OffsetSnapshot:
        with self._lock:
            now = time.monotonic()
            if self._cached is not None and now - self._cached[0] < self._ttl_s:
                return self._cached[1]
            try:
                taken = self._read()
            except (KafkaException, OSError, RuntimeError) as exc:
                log.warning("broker offsets unavailable: %s", exc)
                taken = OffsetSnapshot(reachable=False)
            self._cached = (now, taken)
            return taken

    def _read(self) -> OffsetSnapshot:
        if self._admin is None:
            self._admin = AdminClient(self._config)
        admin = self._admin
        metadata = admin.list_topics(timeout=TIMEOUT_S)
        partitions = [
            TopicPartition(name, p)
            for name, topic in metadata.topics.items()
            if name.startswith(self.prefix) and topic.error is None
            for p in topic.partitions
        ]
        ends: Offsets = {}
        if partitions:
            latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]
            futures = admin.list_offsets(
                {tp: latest for tp in partitions}, request_timeout=TIMEOUT_S
            )
            for tp, future in futures.items():
                ends[(tp.topic, tp.partition)] = int(future.result(TIMEOUT_S).offset)
        listed = admin.list_consumer_groups(request_timeout=TIMEOUT_S).result(TIMEOUT_S)
        names = sorted(g.group_id for g in listed.valid if g.group_id.startswith(self.prefix))
        groups: dict[str, Offsets] = {}
        for name in names:
            reader = self._readers.get(name)
            if reader is None:
                reader = self._readers[name] = BrokerOffsets(self._config, name)
            committed = reader.committed(ends)
            groups[name] = {tp: offset for tp, offset in committed.items() if offset is not None}
        for gone in set(self._readers) - set(names):
            self._readers.pop(gone).close()
        return OffsetSnapshot(reachable=True, ends=ends, groups=groups)

    def dlq_messages(self, snapshot: OffsetSnapshot) -> int:
        return sum(end for (topic, _p), end in snapshot.ends.items() if topic == self.dlq_topic)


class ConsumerLagCollector(Collector):
    """`sentinel_consumer_lag` per group, topic and partition and `sentinel_topic_messages` per
    topic, read from the broker at scrape time (through the probe's cache)."""

    def __init__(self, probe: OffsetsProbe) -> None:
        self.probe = probe

    def collect(self) -> Iterator[GaugeMetricFamily]:
        snapshot = self.probe.snapshot()
        lag = GaugeMetricFamily(
            "sentinel_consumer_lag",
            "Messages written but not yet committed by the consumer group",
            labels=["group", "topic", "partition"],
        )
        for group in group_stats(snapshot.groups, snapshot.ends):
            for p in group.partitions:
                lag.add_metric([group.group, p.topic, str(p.partition)], p.lag)
        written = GaugeMetricFamily(
            "sentinel_topic_messages",
            "Messages written to the topic (end offsets)",
            labels=["topic"],
        )
        totals: dict[str, int] = {}
        for (topic, _partition), end in snapshot.ends.items():
            totals[topic] = totals.get(topic, 0) + end
        for topic, total in sorted(totals.items()):
            written.add_metric([topic], total)
        up = GaugeMetricFamily("sentinel_broker_up", "1 if the broker answered the last probe")
        up.add_metric([], 1.0 if snapshot.reachable else 0.0)
        yield from (lag, written, up)
