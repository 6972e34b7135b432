"""The worker's metrics: messages in and out per topic (a Faust sensor sees every message the
app consumes and every send the broker acknowledged), processing latency, a heartbeat."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from faust.sensors import Sensor

from runtime.metrics import CONSUMED, PROCESSING_LATENCY, PUBLISH_FAILURES, PUBLISHED

COMPONENT = "worker"


class PrometheusSensor(Sensor):
    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        CONSUMED.labels(COMPONENT, tp.topic).inc()

    def on_send_completed(self, producer: Any, state: Any, metadata: Any) -> None:
        PUBLISHED.labels(COMPONENT, metadata.topic).inc()

    def on_send_error(self, producer: Any, exc: BaseException, state: Any) -> None:
        PUBLISH_FAILURES.labels(COMPONENT, "unknown").inc()


def observe_latency(topic: str, event_time: datetime | None) -> None:
    """Event time of an input → now, when it has been processed."""
    if event_time is not None:
        seconds = (datetime.now(UTC) - event_time).total_seconds()
        PROCESSING_LATENCY.labels(COMPONENT, topic).observe(max(0.0, seconds))
