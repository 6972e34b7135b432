"""Prometheus metrics shared by the components (served on GET /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

PUBLISHED = Counter(
    "sentinel_messages_published_total", "Messages the broker acknowledged", ["component", "topic"]
)
PUBLISH_FAILURES = Counter(
    "sentinel_publish_failures_total",
    "Messages the broker did not acknowledge (delivery callback errors)",
    ["component", "topic"],
)
WEBHOOKS = Counter(
    "sentinel_webhooks_total", "Webhook requests by provider and outcome", ["provider", "outcome"]
)
SPOOLED = Gauge("sentinel_webhook_spool_pending", "Webhooks waiting on disk for the broker")
DEAD_LETTERS = Counter(
    "sentinel_dead_letters_total", "Messages sent to the dead-letter topic", ["component"]
)
ALERT_DELIVERIES = Counter(
    "sentinel_alert_deliveries_total",
    "Alert delivery attempts by receiver (channel), channel type and outcome "
    "(sent, failed, retrying, suppressed)",
    ["channel", "type", "outcome"],
)
ALERT_QUEUE = Gauge(
    "sentinel_alert_queue_depth",
    "Alert messages waiting to be delivered, per receiver",
    ["channel"],
)
