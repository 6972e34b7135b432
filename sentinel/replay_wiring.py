"""Wiring for capture replay: where each record type is published, through the same
normalisation as the live producers (webhook ingest, watcher, log streamer)."""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures

from producers.captures.replay import ReplayTargets
from producers.k8s.log_lines import log_key, to_log_line
from producers.k8s.objects import K8sNormalizer, object_key
from producers.webhooks.intake import WebhookIngest
from runtime.config import Settings
from schemas.capture import K8sRecord, LogRecord
from sentinel.stack import WebhookIntake

# Sends queued and not yet acknowledged, at most: far below librdkafka's local queue (100,000
# messages), so a long capture waits for the broker now and then instead of failing with a
# full queue.
MAX_UNACKNOWLEDGED = 10_000


def build_replay_targets(settings: Settings, intake: WebhookIntake) -> ReplayTargets:
    assert intake.github is not None and intake.publisher is not None
    publisher = intake.publisher
    github: WebhookIngest = intake.github
    topics = settings.topic_names

    # One normaliser for the whole replay, as the watcher keeps one: Events inherit the
    # correlation key of the objects seen before them.
    normalizer = K8sNormalizer(settings.k8s)
    pod_keys: dict[tuple[str, str], str] = {}

    # Kubernetes objects and log lines are queued, not awaited one by one: waiting for each
    # acknowledgement (about 10 ms) held a replay to about 100 records a second (issue 17).
    pending: collections.deque[concurrent.futures.Future[tuple[int, int]]] = collections.deque()

    async def queued(topic: str, key: bytes, value: bytes) -> None:
        pending.append(publisher.submit(topic, key, value))
        while len(pending) > MAX_UNACKNOWLEDGED:
            await asyncio.wrap_future(pending.popleft())

    async def acknowledged() -> None:
        while pending:
            await asyncio.wrap_future(pending.popleft())  # PublishError if the broker refused

    async def k8s(record: K8sRecord) -> str:
        event = normalizer.normalize(record.event, record.object, record.ts)
        if event.kind == "Pod" and event.namespace and event.correlation_key:
            pod_keys[(event.namespace, event.name)] = event.correlation_key
        await queued(topics.k8s, object_key(event).encode(), event.to_bytes())
        return "published"

    async def logs(record: LogRecord) -> str:
        # The streamer reads `<RFC 3339 timestamp> <line>` (timestamps=true); the capture
        # keeps the timestamp as the record's ts, so the same bytes go through the same parser.
        stamp = record.ts.isoformat().replace("+00:00", "Z")
        raw = f"{stamp} {record.line}".encode()
        line = to_log_line(
            record.namespace,
            record.pod,
            record.container,
            raw,
            record.ts,
            settings.logs.max_line_bytes,
            record.correlation_key or pod_keys.get((record.namespace, record.pod)),
        )
        await queued(topics.logs, log_key(line).encode(), line.to_bytes())
        return "published"

    return ReplayTargets(
        github=github,
        k8s=k8s,
        logs=logs,
        jenkins=intake.jenkins,
        generic=intake.generic,
        acknowledged=acknowledged,
    )
