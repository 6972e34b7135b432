"""Durable on-disk spool for messages the broker could not take right now.

GitHub does not redeliver a failed webhook by itself, so the receiver answers 2xx only once an
event is safe: acknowledged by the broker, or written here (fsync'd file, atomic rename, fsync'd
directory) and published later by `SpoolDrainer`. Each entry is one JSON file named so that a
lexical sort gives arrival order.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from producers.publisher import PublishError
from runtime.metrics import SPOOLED

log = logging.getLogger("sentinel.spool")


@dataclass(frozen=True)
class SpoolEntry:
    path: Path
    topic: str
    key: bytes | None
    value: bytes

    @property
    def spooled_at_s(self) -> float:
        """When it was spooled (epoch seconds): the file name starts with `time.time_ns()`."""
        stamp = self.path.name.split("-", 1)[0]
        return int(stamp) / 1e9 if stamp.isdigit() else self.path.stat().st_mtime


class SyncPublisher(Protocol):
    def publish_sync(
        self, topic: str, key: bytes | None, value: bytes, timeout: float | None = None
    ) -> tuple[int, int]: ...


class Lookback(Protocol):
    def already_published(self, entries: Iterable[SpoolEntry]) -> set[Path]: ...


class Spool:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        SPOOLED.set(len(self._files()))

    def _files(self) -> list[Path]:
        return sorted(self.directory.glob("*.json"))

    def put(self, topic: str, key: bytes | None, value: bytes) -> Path:
        record = {
            "topic": topic,
            "key": None if key is None else base64.b64encode(key).decode(),
            "value": base64.b64encode(value).decode(),
        }
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.json"
        tmp = self.directory / f".{name}.tmp"
        with tmp.open("w") as handle:
            json.dump(record, handle)
            handle.flush()
            os.fsync(handle.fileno())
        final = self.directory / name
        tmp.rename(final)
        self._fsync_dir()
        SPOOLED.inc()
        return final

    def _fsync_dir(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def pending(self) -> list[SpoolEntry]:
        entries: list[SpoolEntry] = []
        for path in self._files():
            try:
                record = json.loads(path.read_text())
                key = record["key"]
                entries.append(
                    SpoolEntry(
                        path=path,
                        topic=record["topic"],
                        key=None if key is None else base64.b64decode(key),
                        value=base64.b64decode(record["value"]),
                    )
                )
            except (OSError, ValueError, KeyError) as exc:
                # Keep the bytes for a human instead of deleting them.
                bad = path.with_suffix(".corrupt")
                log.error("spool entry %s unreadable (%s); moved to %s", path, exc, bad)
                path.rename(bad)
        return entries

    def set_aside(self, entry: SpoolEntry, reason: str) -> Path:
        """Keep an entry the broker refuses for good (e.g. too large for the topic) out of the
        drain, next to the others as `<name>.refused`, for a human to look at."""
        refused = entry.path.with_suffix(".refused")
        entry.path.rename(refused)
        log.error(
            "spooled message %s refused by the broker: %s; kept as %s",
            entry.path.name,
            reason,
            refused,
        )
        SPOOLED.set(len(self._files()))
        return refused

    def remove(self, entry: SpoolEntry) -> None:
        entry.path.unlink(missing_ok=True)
        SPOOLED.set(len(self._files()))

    def __len__(self) -> int:
        return len(self._files())


# How long past the producer's own delivery timeout the drainer waits for its answer.
OUTCOME_MARGIN_S = 30.0


class SpoolDrainer:
    """Publishes spooled entries in arrival order; stops at the first failure and retries later.

    `timeout` is the producer's delivery timeout (message.timeout.ms): the drainer waits past
    it, so each answer is final. Giving up at the same moment left the message queued in the
    producer, delivered once the broker was back, while its entry stayed here and was published
    again on the next round: a webhook twice on the topic (test_broker_outage).

    With a `lookback` (`producers.webhooks.lookback.TopicLookback`), entries already on their
    topic are removed without publishing: a failed delivery may still have been written by the
    broker (the answer lost in an outage), and publishing it again would repeat the webhook.
    """

    def __init__(
        self,
        spool: Spool,
        publisher: SyncPublisher,
        interval: float = 2.0,
        timeout: float = 10.0,
        lookback: Lookback | None = None,
    ) -> None:
        self.spool = spool
        self.publisher = publisher
        self.lookback = lookback
        self.interval = interval
        self.timeout = timeout
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def drain_once(self) -> int:
        """Publish what is pending; return how many entries were delivered."""
        delivered = 0
        with self._lock:
            pending = self.spool.pending()
            if pending and self.lookback is not None:
                try:
                    there = self.lookback.already_published(pending)
                except Exception as exc:
                    log.warning("spool drain paused: %r (%d pending)", exc, len(pending))
                    return 0
                for entry in pending:
                    if entry.path in there:
                        self.spool.remove(entry)
                if there:
                    log.info(
                        "%d spooled messages were on the broker already (written before its "
                        "answer was lost); not publishing them again",
                        len(there),
                    )
                pending = [entry for entry in pending if entry.path not in there]
            for entry in pending:
                try:
                    self.publisher.publish_sync(
                        entry.topic, entry.key, entry.value, self.timeout + OUTCOME_MARGIN_S
                    )
                except PublishError as exc:
                    if exc.retriable:
                        log.warning("spool drain paused: %r (%d pending)", exc, len(self.spool))
                        break
                    # Retrying cannot help, and stopping here would hold every later entry.
                    self.spool.set_aside(entry, str(exc))
                    continue
                except Exception as exc:
                    log.warning("spool drain paused: %r (%d pending)", exc, len(self.spool))
                    break
                self.spool.remove(entry)
                delivered += 1
        if delivered:
            log.info("published %d spooled messages", delivered)
        return delivered

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="spool-drainer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.drain_once()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.timeout + OUTCOME_MARGIN_S + 2)
