"""What the worker says about its progress: to its partition watchdog
(`runtime.progress_monitor`) the input partitions its consumer owns (table changelogs are
Faust's own, read only while recovering) and that it stands still on purpose while it recovers
its tables; on ``GET /progress`` what it has finished processing and sending."""

from __future__ import annotations

from typing import Any

from faust.exceptions import ConsumerNotStarted
from faust.sensors import Sensor

from runtime.progress_monitor import Ownership

RECOVERING = "recovering its tables from their changelogs"


def worker_ownership(app: Any) -> Ownership:
    """Called on the worker's event loop (its heartbeat timer), never from another thread."""
    try:
        assigned = app.consumer.assignment()
    except ConsumerNotStarted:
        return Ownership(excuse="starting")
    changelogs = set(app.tables.changelog_topics)
    partitions = frozenset(
        (tp.topic, tp.partition) for tp in assigned if tp.topic not in changelogs
    )
    return Ownership(partitions, RECOVERING if app.in_recovery else None)


class ProcessedOffsets(Sensor):
    """What the worker has finished: per input partition the offset after the last message
    every agent is done with, and its sends to the broker (started, answered).

    Served as ``GET /progress`` on the ops endpoint. With no send in flight and every input
    partition processed up to its end offset, the worker is quiet: nothing it still holds can
    make more input for itself (`sentinel analyze` waits for that between replay steps, instead
    of for commits).
    """

    def __init__(self) -> None:
        super().__init__()
        self._processed: dict[tuple[str, int], int] = {}
        self._sends_started = 0
        self._sends_answered = 0

    def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
        key = (tp.topic, tp.partition)
        if offset + 1 > self._processed.get(key, 0):
            self._processed[key] = offset + 1

    def on_send_initiated(
        self, producer: Any, topic: str, message: Any, keysize: int, valsize: int
    ) -> Any:
        self._sends_started += 1
        return None

    def on_send_completed(self, producer: Any, state: Any, metadata: Any) -> None:
        self._sends_answered += 1

    def on_send_error(self, producer: Any, exc: BaseException, state: Any) -> None:
        self._sends_answered += 1

    def snapshot(self) -> dict[str, Any]:
        """Read from the ops server's thread: copies taken in one go."""
        processed = dict(self._processed)
        return {
            "processed": [
                {"topic": topic, "partition": partition, "offset": offset}
                for (topic, partition), offset in sorted(processed.items())
            ],
            "sends_in_flight": self._sends_started - self._sends_answered,
        }
