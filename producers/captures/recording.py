"""Recording live input into the capture format (`schemas.capture`), for bug reports and
back-testing: `sentinel capture OUT` and the taps the live producers call.

Records are appended as JSON Lines in arrival order, each stamped with the time it arrived, and
flushed line by line so a capture interrupted by Ctrl-C is still readable up to its last line.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from producers.webhooks.intake import IngestResult, WebhookIngest
from schemas.capture import K8sRecord, LogRecord, WebhookRecord
from schemas.messages import LogLine, utcnow


class CaptureWriter:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file = path.open("a", encoding="utf-8")
        self._lock = threading.Lock()
        self.records = 0

    def write(self, record: WebhookRecord | K8sRecord | LogRecord) -> None:
        line = record.model_dump_json(exclude_none=True)
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()
            self.records += 1

    def webhook(self, provider: str, headers: dict[str, str], body: dict[str, Any]) -> None:
        self.write(
            WebhookRecord(
                type="webhook", ts=utcnow(), provider=provider, headers=headers, body=body
            )
        )

    def k8s(self, event: str, obj: Mapping[str, Any], received_at: datetime) -> None:
        """Watcher observer: one watch event as published, with the object as the API sent it."""
        record = {"type": "k8s", "ts": received_at, "event": event, "object": dict(obj)}
        self.write(K8sRecord.model_validate(record))

    def log(self, line: LogLine) -> None:
        """Log streamer observer. The record's ts is the line's own timestamp, so replay
        rebuilds the `<timestamp> <line>` the streamer read and parses it the same way."""
        record = {
            "type": "log",
            "ts": line.event_time,
            "namespace": line.namespace,
            "pod": line.pod,
            "container": line.container,
            "line": line.line,
            # An extra field the format allows: the streamer took it from the pod, which a
            # replay may not have seen before the line.
            "correlation_key": line.correlation_key,
        }
        self.write(LogRecord.model_validate(record))

    def close(self) -> None:
        with self._lock:
            self._file.close()


class NullPublisher:
    """Publishes nothing: lets the watcher and log streamer run under `sentinel capture`
    (recording only, no broker needed)."""

    def submit(
        self, topic: str, key: bytes | None, value: bytes, headers: dict[str, bytes] | None = None
    ) -> concurrent.futures.Future[tuple[int, int]]:
        future: concurrent.futures.Future[tuple[int, int]] = concurrent.futures.Future()
        future.set_result((-1, -1))
        return future

    def send(
        self, topic: str, key: bytes | None, value: bytes, on_failure: Callable[[Any], None]
    ) -> None:
        return None

    def flush(self, timeout: float = 10.0) -> int:
        return 0

    def close(self, timeout: float = 10.0) -> None:
        return None


class RecordingIngest:
    """Records each webhook that passed the signature check, then hands it to `inner` (the
    normal ingest, under `sentinel up --capture`) or answers 202 itself (under
    `sentinel capture`, which needs no broker)."""

    def __init__(
        self, writer: CaptureWriter, inner: WebhookIngest | None = None, provider: str = "github"
    ) -> None:
        self.writer = writer
        self.inner = inner
        self.provider = provider

    async def handle(self, event_name: str, delivery: str, payload: dict[str, Any]) -> IngestResult:
        # Jenkins and generic posts carry their identity in the body; only GitHub's is in headers.
        headers = (
            {"X-GitHub-Event": event_name, "X-GitHub-Delivery": delivery}
            if self.provider == "github"
            else {}
        )
        self.writer.webhook(self.provider, headers, payload)
        if self.inner is not None:
            return await self.inner.handle(event_name, delivery, payload)
        return IngestResult(202, {"status": "captured", "delivery": delivery})
