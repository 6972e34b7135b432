"""The worker's table changelog topics, created and visible before the worker subscribes.

Faust creates a table's changelog topic itself, right before its consumer subscribes. On a
fresh installation the broker may not list the new topic yet when the consumer reads its
metadata: Faust's assignor logs "Ignoring missing topic", the table's agent then crashes on
every restart with ``PartitionsMismatch`` ("... changelog topic ... has 0 partitions"), and the
consumer does not read the broker's metadata again until `metadata.max.age` (5 minutes) has
passed. For those minutes the agent processes nothing (seen with the log-stream-starts table:
no log line or Kubernetes event routed; tests/integration/reliability/test_scale_out.py). So
the worker creates them first, and waits until the broker lists every partition of each.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from runtime.config import Settings
from runtime.kafka_clients import admin_config

log = logging.getLogger("sentinel.worker")
TOPIC_ALREADY_EXISTS = 36


def changelog_topics(app: Any, settings: Settings) -> dict[str, NewTopic]:
    """Each table's changelog topic as Faust would declare it (compacted, its partitions)."""
    topics = {}
    for table in app.tables.values():
        name = table.changelog_topic.get_topic_name()
        topics[name] = NewTopic(
            name,
            num_partitions=table.partitions or settings.topics.partitions,
            replication_factor=settings.topics.replication_factor,
            config={"cleanup.policy": "compact", **dict(table.extra_topic_configs or {})},
        )
    return topics


def ensure_changelogs(app: Any, settings: Settings, timeout: float = 30.0) -> list[str]:
    """Create the missing changelog topics of `app`'s tables and wait until the broker lists
    all their partitions; return the names created."""
    admin = AdminClient(admin_config(settings))
    wanted = changelog_topics(app, settings)
    existing = admin.list_topics(timeout=timeout).topics
    missing = [topic for name, topic in wanted.items() if name not in existing]
    if missing:
        for name, future in admin.create_topics(missing, request_timeout=timeout).items():
            try:
                future.result(timeout)
            except KafkaException as exc:
                if exc.args[0].code() != TOPIC_ALREADY_EXISTS:  # another worker won the race
                    raise
            log.info("created changelog topic %s", name)
    deadline = time.monotonic() + timeout
    while not all(_listed(admin, topic, timeout) for topic in wanted.values()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the broker does not list the changelog topics {sorted(wanted)}")
        time.sleep(0.1)
    return [topic.topic for topic in missing]


def _listed(admin: AdminClient, topic: NewTopic, timeout: float) -> bool:
    metadata = admin.list_topics(topic.topic, timeout=timeout).topics.get(topic.topic)
    return (
        metadata is not None
        and metadata.error is None
        and len(metadata.partitions) == topic.num_partitions
        and all(p.leader >= 0 for p in metadata.partitions.values())
    )
