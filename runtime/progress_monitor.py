"""The partition watchdog of a component's ops endpoint: reads, every `ops.progress_check_s`,
the offsets its consumer group has committed on the partitions this process owns and their end
offsets (from the broker, as lag exporters do), and keeps a `ProgressWatchdog` up to date.

`/health` fails while a partition is stalled (`runtime.ops_server`), so Kubernetes restarts a
consumer that still answers probes but no longer moves; `/metrics` counts it.

The component only says which partitions it owns and, when it knowingly stands still, why
(`Ownership`); it is asked from this thread, so that answer must be cheap and thread-safe (a
snapshot its own loop keeps).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from runtime.metrics import PARTITION_STALLED, PARTITION_STALLS, PROGRESS_CHECK_FAILURES
from runtime.partition_stalls import PartitionStall, ProgressWatchdog

log = logging.getLogger("sentinel.ops")
TIMEOUT_S = 5.0

Partition = tuple[str, int]


@dataclass(frozen=True)
class Ownership:
    """The partitions a process consumes now; `excuse` says why it stands still on purpose
    (e.g. "recovering tables", "store unavailable"), which stops the stall clocks."""

    partitions: frozenset[Partition] = field(default_factory=frozenset)
    excuse: str | None = None


class BrokerOffsets:
    """Committed offsets of one group and end offsets, read with one consumer that never
    subscribes (so it never joins the group).

    Not with the admin client: librdkafka aborts the whole process ("rd_kafka_enq_once_del_
    source_return: Assertion `eonce->refcnt > 0' failed") when an admin request for group
    offsets timed out while the broker was away and the broker comes back
    (confluentinc/librdkafka#4605, open). The worker died so, 30 s into a broker outage
    (tests/integration/reliability/test_broker_outage.py).
    """

    def __init__(self, admin_config: dict[str, Any], group: str) -> None:
        self.group = group
        self._consumer = Consumer({**admin_config, "group.id": group, "enable.auto.commit": False})

    def committed(self, partitions: Iterable[Partition]) -> dict[Partition, int | None]:
        request = [TopicPartition(topic, p) for topic, p in sorted(partitions)]
        if not request:
            return {}
        found: dict[Partition, int | None] = {}
        for tp in self._consumer.committed(request, timeout=TIMEOUT_S):
            found[(tp.topic, tp.partition)] = tp.offset if tp.offset >= 0 else None
        return found

    def ends(self, partitions: Iterable[Partition]) -> dict[Partition, int]:
        found: dict[Partition, int] = {}
        for topic, p in sorted(partitions):
            _low, high = self._consumer.get_watermark_offsets(
                TopicPartition(topic, p), timeout=TIMEOUT_S, cached=False
            )
            found[(topic, p)] = int(high)
        return found

    def close(self) -> None:
        """Leaves nothing behind: the consumer never joined, so closing commits nothing."""
        self._consumer.close()


class ProgressMonitor:
    """A daemon thread sampling the broker for the watchdog; see the module docstring."""

    def __init__(
        self,
        component: str,
        offsets: BrokerOffsets,
        ownership: Callable[[], Ownership],
        stall_s: float,
        interval_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.component = component
        self.offsets = offsets
        self.ownership = ownership
        self.watchdog = ProgressWatchdog(stall_s)
        self.interval_s = interval_s
        self.clock = clock
        self.last_sample: float | None = None
        self._reported: set[Partition] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="progress-watchdog", daemon=True)

    def start(self) -> ProgressMonitor:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(TIMEOUT_S * 3)

    @property
    def stalled(self) -> list[PartitionStall]:
        return self.watchdog.stalled

    def now_owned(self) -> Ownership:
        """What the component says right now (not at the last sample)."""
        return self.ownership()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def sample(self) -> list[PartitionStall]:
        """Take one sample now (the thread does every `interval_s`)."""
        owned = self.ownership()
        now = self.clock()
        if owned.excuse is not None:
            self.watchdog.excused(now)
            self._report([])
            return []
        try:
            committed = self.offsets.committed(owned.partitions)
            for tp in owned.partitions:
                committed.setdefault(tp, None)
            ends = self.offsets.ends(owned.partitions)
        except (KafkaException, OSError, RuntimeError) as exc:
            # Broker trouble is the readiness check's to report; a restart would not help.
            PROGRESS_CHECK_FAILURES.labels(self.component).inc()
            log.debug("progress check skipped: %s", exc)
            self.watchdog.unknown()
            self._report([])
            return []
        self.last_sample = now
        stalled = self.watchdog.observe(now, committed, ends)
        self._report(stalled)
        return stalled

    def _report(self, stalled: list[PartitionStall]) -> None:
        now_stalled = {(s.topic, s.partition) for s in stalled}
        for stall in stalled:
            if (stall.topic, stall.partition) not in self._reported:
                PARTITION_STALLS.labels(self.component).inc()
                log.error(
                    "partition stalled: %s",
                    stall.describe(),
                    extra={"topic": stall.topic, "partition": stall.partition},
                )
        for topic, partition in self._reported | now_stalled:
            PARTITION_STALLED.labels(self.component, topic, str(partition)).set(
                1.0 if (topic, partition) in now_stalled else 0.0
            )
        self._reported = now_stalled


class OwnershipBox:
    """Holds the latest `Ownership` a component's own loop published (read by the watchdog's
    thread; replacing a reference is atomic)."""

    def __init__(self, initial: Ownership | None = None) -> None:
        self._value = initial or Ownership(excuse="starting")

    def set(self, value: Ownership) -> None:
        self._value = value

    def __call__(self) -> Ownership:
        return self._value
