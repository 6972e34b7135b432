"""The worker creates its tables' changelog topics, and sees them listed, before it subscribes
(processors/worker/changelogs.py: a topic Faust created a moment before its consumer read the
metadata stalled a table's agent for minutes)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from processors.worker.app import create_app
from processors.worker.changelogs import ensure_changelogs
from runtime.config import Settings
from runtime.kafka_clients import admin_config

pytestmark = pytest.mark.integration


def test_every_changelog_is_created_compacted_with_the_topic_partitions_once(
    kafka_bootstrap: str, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(kafka_bootstrap, topics={"partitions": 6})
    app = create_app(settings)
    names = {table.changelog_topic.get_topic_name() for table in app.tables.values()}
    assert f"{settings.worker_app_id}-log-stream-starts-changelog" in names
    assert len(names) == 6

    assert set(ensure_changelogs(app, settings)) == names

    admin = AdminClient(admin_config(settings))
    topics = admin.list_topics(timeout=10).topics
    for name in names:
        assert len(topics[name].partitions) == 6, name
    resources = [ConfigResource(ResourceType.TOPIC, name) for name in sorted(names)]
    for resource, future in admin.describe_configs(resources).items():
        assert future.result(10)["cleanup.policy"].value == "compact", resource
    # A second worker (or a restart) finds them there.
    assert ensure_changelogs(create_app(settings), settings) == []
