"""Wiring for capture replay: where each record type is published, through the same
normalisation as the live producers (webhook ingest, watcher, log streamer)."""

from __future__ import annotations

from producers.captures.replay import ReplayTargets
from producers.k8s.log_lines import log_key, to_log_line
from producers.k8s.objects import K8sNormalizer, object_key
from producers.webhooks.intake import WebhookIngest
from runtime.config import Settings
from schemas.capture import K8sRecord, LogRecord
from sentinel.stack import WebhookIntake


def build_replay_targets(settings: Settings, intake: WebhookIntake) -> ReplayTargets:
    assert intake.github is not None and intake.publisher is not None
    publisher = intake.publisher
    github: WebhookIngest = intake.github
    topics = settings.topic_names

    # One normaliser for the whole replay, as the watcher keeps one: Events inherit the
    # correlation key of the objects seen before them.
    normalizer = K8sNormalizer(settings.k8s)
    pod_keys: dict[tuple[str, str], str] = {}

    async def k8s(record: K8sRecord) -> str:
        event = normalizer.normalize(record.event, record.object, record.ts)
        if event.kind == "Pod" and event.namespace and event.correlation_key:
            pod_keys[(event.namespace, event.name)] = event.correlation_key
        await publisher.publish(topics.k8s, object_key(event).encode(), event.to_bytes())
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
        await publisher.publish(topics.logs, log_key(line).encode(), line.to_bytes())
        return "published"

    return ReplayTargets(
        github=github, k8s=k8s, logs=logs, jenkins=intake.jenkins, generic=intake.generic
    )
