"""The spool drainer on real Kafka: an entry whose first delivery was reported failed but was
written by the broker anyway (the answer lost in an outage: librdkafka's "possibly persisted")
is not published again; the others are, once each (issue 17, seen in test_broker_outage)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from producers.publisher import KafkaPublisher
from producers.webhooks.lookback import TopicLookback
from producers.webhooks.spool import Spool, SpoolDrainer
from runtime.config import Settings
from runtime.kafka_clients import producer_config
from sentinel.topic_admin import ensure_topics
from tests.support.helpers import read_topic

pytestmark = pytest.mark.integration


def test_a_spooled_webhook_the_broker_already_wrote_is_not_published_twice(
    kafka_bootstrap: str, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(kafka_bootstrap)
    ensure_topics(settings)
    topic = settings.topic_names.ci
    publisher = KafkaPublisher(producer_config(settings), component="webhooks")
    try:
        # What the broker wrote before the outage cut its answer off: the intake saw a failure
        # and spooled the same bytes.
        publisher.publish_sync(topic, b"run-1", b'{"event_id": "written-anyway"}', timeout=10)
        publisher.publish_sync(topic, b"run-0", b'{"event_id": "unrelated"}', timeout=10)
        spool = Spool(tmp_path / "spool")
        spool.put(topic, b"run-1", b'{"event_id": "written-anyway"}')
        spool.put(topic, b"run-2", b'{"event_id": "never-written"}')
        spool.put(topic, b"run-2", b'{"event_id": "never-written-either"}')
        lookback = TopicLookback(settings, settings.kafka.delivery_timeout_s)
        drainer = SpoolDrainer(spool, publisher, timeout=10, lookback=lookback)

        assert drainer.drain_once() == 2
        assert len(spool) == 0
    finally:
        publisher.close()
    on_topic = Counter(value for _key, value in read_topic(settings, topic))
    assert on_topic == {
        b'{"event_id": "written-anyway"}': 1,
        b'{"event_id": "unrelated"}': 1,
        b'{"event_id": "never-written"}': 1,
        b'{"event_id": "never-written-either"}': 1,
    }
