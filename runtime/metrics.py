"""Prometheus metrics shared by the components (served on GET /metrics).

Every process serves the metrics of what runs in it: the HTTP API on its own port, the other
components (worker, sink, k8s-watch, log-stream) on `ops.port` (runtime.ops_server).
Consumer lag per group and partition is read from the broker by the API process
(sentinel.kafka_offsets), so one scrape shows every group's lag.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

PUBLISHED = Counter(
    "sentinel_messages_published_total", "Messages the broker acknowledged", ["component", "topic"]
)
PUBLISH_FAILURES = Counter(
    "sentinel_publish_failures_total",
    "Messages the broker did not acknowledge (delivery callback errors)",
    ["component", "topic"],
)
CONSUMED = Counter(
    "sentinel_messages_consumed_total", "Messages read from a topic", ["component", "topic"]
)
PROCESSING_LATENCY = Histogram(
    "sentinel_processing_latency_seconds",
    "From a message's event time to when it was processed",
    ["component", "topic"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600, float("inf")),
)
WEBHOOKS = Counter(
    "sentinel_webhooks_total", "Webhook requests by provider and outcome", ["provider", "outcome"]
)
SPOOLED = Gauge("sentinel_webhook_spool_pending", "Webhooks waiting on disk for the broker")
DEAD_LETTERS = Counter(
    "sentinel_dead_letters_total", "Messages sent to the dead-letter topic", ["component"]
)
RUNS_RETIRED = Counter(
    "sentinel_runs_retired_total",
    "Ended runs whose worker table entries were deleted (tracking.retain_ended_s)",
)
LATE_FOR_RETIRED = Counter(
    "sentinel_late_for_retired_runs_total",
    "Inputs dead-lettered because they came after their run was retired "
    "(older than the watermark minus tracking.retain_ended_s)",
)
ALERT_DELIVERIES = Counter(
    "sentinel_alert_deliveries_total",
    "Alert delivery attempts by receiver (channel), channel type and outcome "
    "(sent, failed, retrying, suppressed, superseded)",
    ["channel", "type", "outcome"],
)
ALERT_QUEUE = Gauge(
    "sentinel_alert_queue_depth",
    "Alert messages waiting to be delivered, per receiver",
    ["channel"],
)
SINK_BATCHES = Counter("sentinel_sink_batches_total", "Batches the sink flushed and committed")
SINK_ROWS = Counter("sentinel_sink_rows_total", "Rows the sink inserted", ["table"])
SINK_INSERT_SECONDS = Histogram(
    "sentinel_sink_insert_seconds",
    "Time of one insert into the store",
    ["table"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, float("inf")),
)
SINK_FLUSH_FAILURES = Counter(
    "sentinel_sink_flush_failures_total", "Flushes that failed and were retried later"
)
HEARTBEAT = Gauge(
    "sentinel_heartbeat_timestamp_seconds",
    "When the component's main loop last showed it is alive (unix time)",
    ["component"],
)
PARTITION_STALLED = Gauge(
    "sentinel_partition_stalled",
    "1 while a partition this process consumes has lag and its committed offset has not moved "
    "for ops.partition_stall_s (the liveness probe fails meanwhile)",
    ["component", "topic", "partition"],
)
PARTITION_STALLS = Counter(
    "sentinel_partition_stalls_total",
    "Times a partition this process consumes was found stalled (lag, committed offset not moving)",
    ["component"],
)
PROGRESS_CHECK_FAILURES = Counter(
    "sentinel_progress_check_failures_total",
    "Partition progress checks skipped because the broker did not answer",
    ["component"],
)
CHILD_RESTARTS = Counter(
    "sentinel_child_restarts_total",
    "Times `sentinel up` restarted one of its children (broker, worker, sink, dispatcher)",
    ["child"],
)
CHILD_UP = Gauge(
    "sentinel_child_up",
    "1 while a child of `sentinel up` runs, 0 from its death until it is back",
    ["child"],
)
