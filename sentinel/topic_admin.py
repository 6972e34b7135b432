"""Create the pipeline's topics explicitly, with consistent partition counts and their settings.

Topics joined by key (the CI topic and the run tracker's table changelog) must have the same
number of partitions, and auto-created topics get the broker's default count, so every topic in
the registry is created up front.
"""

from __future__ import annotations

import logging

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from runtime.config import Settings
from runtime.kafka_clients import admin_config
from schemas.topics import ALL_TOPICS, TopicSpec

log = logging.getLogger("sentinel.topics")


def ensure_topics(
    settings: Settings, specs: tuple[TopicSpec, ...] = ALL_TOPICS, timeout: float = 30.0
) -> list[str]:
    """Create the missing topics; return the names created. Existing topics are left as they are."""
    admin = AdminClient(admin_config(settings))
    existing = admin.list_topics(timeout=timeout).topics
    prefix = settings.topics.prefix
    created: list[str] = []
    for spec in specs:
        name = spec.name(prefix)
        if name in existing:
            have = len(existing[name].partitions)
            if have != settings.topics.partitions:
                log.warning(
                    "topic %s has %d partitions, config says %d; keyed joins assume equal counts",
                    name,
                    have,
                    settings.topics.partitions,
                )
            continue
        _create(admin, spec, name, settings, timeout)
        created.append(name)
    if created:
        log.info("created topics %s", ", ".join(created))
    return created


def _create(
    admin: AdminClient, spec: TopicSpec, name: str, settings: Settings, timeout: float
) -> None:
    topic = NewTopic(
        name,
        num_partitions=settings.topics.partitions,
        replication_factor=settings.topics.replication_factor,
        config=spec.config(),
    )
    future = admin.create_topics([topic], request_timeout=timeout)[name]
    try:
        future.result(timeout)
    except KafkaException as exc:
        error = exc.args[0]
        if error.code() == 36:  # TOPIC_ALREADY_EXISTS: another process won the race
            return
        raise
