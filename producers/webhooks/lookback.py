"""Which spooled entries are already on their topic, so the drainer does not publish them twice.

An entry is spooled when the producer reported its delivery as failed ("Local: Message timed
out"). When the broker went away with the produce request in flight, that report is only
"possibly persisted": the broker may have written the message and the answer got lost. librdkafka
knows this (`rd_kafka_message_status`) but confluent-kafka-python does not expose it, and an
idempotent producer cannot deduplicate a message it re-sends as a new one. Publishing such an
entry again put the same webhook twice on `sentinel.ci` (1 run in 5 of test_broker_outage).

So before publishing, the drainer reads back the part of each topic that could hold them: from
a little before the oldest pending entry was spooled (the message was produced at most one
delivery timeout before) to the end, and compares values byte for byte (the key is derived from
the value). An event's bytes are unique per delivery (the delivery ledger refuses repeats before
anything is published), so equal bytes mean the same webhook. This costs one read of the outage
window per drain that finds entries pending, i.e. only after an outage.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from producers.published import offsets_at, published_since
from producers.webhooks.spool import SpoolEntry
from runtime.config import Settings

# Produce time (CreateTime) can precede the spooling by the delivery timeout and the answer's
# way back; clocks are the same host's or NTP-close.
MARGIN_S = 60.0


class TopicLookback:
    """Reads a topic back from a moment on (no consumer group: assigned partitions only)."""

    def __init__(self, settings: Settings, delivery_timeout_s: float) -> None:
        self._settings = settings
        self._window_s = delivery_timeout_s + MARGIN_S

    def already_published(self, entries: Iterable[SpoolEntry]) -> set[Path]:
        """The paths of the entries whose value is on their topic already; raises when the
        broker cannot be read (the drainer then waits and retries)."""
        by_topic: dict[str, list[SpoolEntry]] = {}
        for entry in entries:
            by_topic.setdefault(entry.topic, []).append(entry)
        found: set[Path] = set()
        for topic, waiting in by_topic.items():
            since_ms = int((min(e.spooled_at_s for e in waiting) - self._window_s) * 1000)
            since = offsets_at(self._settings, topic, since_ms)
            on_topic = set(published_since(self._settings, topic, since))
            found |= {e.path for e in waiting if e.value in on_topic}
        return found
