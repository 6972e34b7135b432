"""The dispatcher process (`sentinel alerts`; a thread of `sentinel up`): Kafka in, channels out.

Two threads, so the event loop that talks to Slack, SMTP and HTTP is never blocked by Kafka:

- the *Kafka thread* (`run_forever`) owns the consumer, the producer and the `AlertEngine`. One
  step: poll `sentinel.anomalies` and `sentinel.runs` (its own consumer group, the ``range``
  assignor so partition p of both topics lands on the same replica), apply them (a value over
  `kafka.max_value_bytes`, one that does not validate, or one whose key is not its run id goes
  to the dead-letter topic instead), read new
  silences and pipeline-health records, take delivery outcomes, `tick`, hand the messages to the
  delivery loop, then **persist** — the changed run and group records to the compacted state
  topics (in the partition of their input), acknowledged by the broker — and only then commit
  the input offsets. A crash at any point re-reads at most what was not persisted.
- the *delivery thread* runs an asyncio loop with one `DeliveryQueue` per receiver
  (`sinks.alerts.delivery`); outcomes come back through a thread-safe queue.

Partitions: on assignment the replica restores partition p of `alert-runs` and `alert-groups`
before it handles any input of p; on revocation it persists and commits, then forgets p's runs
and groups. Silences and pipeline health are read in full by every replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from pydantic import ValidationError

from runtime import metrics
from runtime.config import VALUE_TOO_LARGE, Settings
from runtime.kafka_clients import consumer_config, producer_config
from runtime.progress_monitor import Ownership
from schemas.keys import KEY_MISMATCH, key_problem
from schemas.messages import (
    AlertDelivery,
    AlertGroupState,
    AlertRun,
    Anomaly,
    DeadLetter,
    PipelineHealth,
    RunState,
    Silence,
)
from schemas.topics import ANOMALIES, RUNS
from sinks.alerts.channels.base import Channel
from sinks.alerts.channels.factory import build_channels
from sinks.alerts.delivery import DeliveryQueue, Outcome
from sinks.alerts.engine import AlertEngine, StateChanges
from sinks.alerts.notification import Notification
from sinks.alerts.templates import Renderer, check_templates

log = logging.getLogger("sentinel.alerts")
COMPONENT = "alerts"
MAX_BATCH = 500


def utcnow() -> datetime:
    return datetime.now(UTC)


class PersistError(RuntimeError):
    """The state topics did not acknowledge a write: nothing is committed, the step is retried."""


class DeliveryLoop:
    """The asyncio loop of the delivery thread and its queues (one per receiver)."""

    def __init__(
        self,
        settings: Settings,
        channels: Mapping[str, Channel],
        renderers: Mapping[str, Renderer],
        record: Callable[[AlertDelivery], None],
        clock: Callable[[], datetime],
    ) -> None:
        self.settings = settings
        self.channels = channels
        self.renderers = renderers
        self.record = record
        self.clock = clock
        self.outcomes: queue.Queue[Outcome] = queue.Queue()
        self.queues: dict[str, DeliveryQueue] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="alert-delivery", daemon=True)

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the alert delivery loop did not start")

    def submit(self, notification: Notification) -> None:
        target = self.queues[notification.receiver]
        assert self.loop is not None
        self.loop.call_soon_threadsafe(target.put, notification)
        metrics.ALERT_QUEUE.labels(notification.receiver).inc()

    def stop(self, grace_s: float = 5.0) -> None:
        if self.loop is not None and self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(grace_s + 10)

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        config = self.settings.alerting
        for receiver in config.receivers:
            self.queues[receiver.name] = DeliveryQueue(
                receiver,
                self.channels[receiver.name],
                self.renderers[receiver.name],
                config.delivery,
                self.record,
                self._done,
                self.clock,
            )
        workers = [
            asyncio.create_task(q.run(), name=f"deliver-{n}") for n, q in self.queues.items()
        ]
        self._ready.set()
        await self._stop.wait()
        # Messages still queued or being retried are decided again by whoever restores their
        # groups (their `inflight` mark): stopping never loses them.
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        for channel in self.channels.values():
            await channel.close()

    def _done(self, outcome: Outcome) -> None:
        metrics.ALERT_QUEUE.labels(outcome.notification.receiver).dec()
        self.outcomes.put(outcome)


class AlertDispatcher:
    """See the module docstring. Build it (config errors raise here), then `run_forever`."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], datetime] = utcnow,
        poll_timeout_s: float = 0.1,
        channels: Mapping[str, Channel] | None = None,
        consumer_overrides: Mapping[str, Any] | None = None,
    ) -> None:
        config = settings.alerting
        self.settings = settings
        self.clock = clock
        self.poll_timeout_s = poll_timeout_s
        renderers = check_templates(config)  # a bad template fails here, at start
        self.channels = dict(channels) if channels is not None else build_channels(config)
        self.kinds = {receiver.name: receiver.kind for receiver in config.receivers}
        self.engine = AlertEngine(config)
        self.names = settings.topic_names
        self.inputs = (self.names.anomalies, self.names.runs)
        self.producer = Producer(producer_config(settings))
        group = settings.alerts_group_id
        overrides = {"partition.assignment.strategy": "range", **dict(consumer_overrides or {})}
        self.consumer = Consumer(consumer_config(settings, group, **overrides))
        readers = {"enable.partition.eof": True}
        self.global_reader = Consumer(consumer_config(settings, f"{group}-readers", **readers))
        self.delivery = DeliveryLoop(settings, self.channels, renderers, self._record, clock)
        self.owned: set[int] = set()
        self.offsets: dict[tuple[str, int], int] = {}
        # Messages the broker refused since the last persist (delivery callbacks, any thread):
        # sent again by `persist`, which commits nothing until none is left.
        self._refused: list[tuple[str, str, bytes | None, int | None, str]] = []
        self._refused_lock = threading.Lock()
        self.ready = threading.Event()

    def ownership(self) -> Ownership:
        """The input partitions this replica consumes, for the partition watchdog (any
        thread: `owned` is replaced, never changed in place, by the Kafka thread)."""
        owned = self.owned
        return Ownership(frozenset((topic, p) for topic in self.inputs for p in owned))

    # -- the loop ---------------------------------------------------------------------------

    def run_forever(
        self, stop: threading.Event, heartbeat: Callable[[], None] | None = None
    ) -> None:
        """Dispatch until `stop`; `heartbeat` is called on every turn (the liveness probe)."""
        self.delivery.start()
        try:
            self._load_globals()
            self.consumer.subscribe(
                list(self.inputs),
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_lost,
            )
            log.info("alert dispatcher started", extra={"group": self.settings.alerts_group_id})
            self.ready.set()
            while not stop.is_set():
                self.step()
                if heartbeat is not None:
                    heartbeat()
        finally:
            self._shutdown()

    def step(self) -> None:
        now = self.clock()
        due = self.engine.next_due()
        wait = self.poll_timeout_s
        if due is not None:
            wait = max(0.0, min(wait, (due - now).total_seconds()))
        first = self.consumer.poll(wait)
        batch = [first] if first is not None else []
        if first is not None:
            batch.extend(self.consumer.consume(num_messages=MAX_BATCH, timeout=0))
        now = self.clock()
        for message in batch:
            self._handle(message, now)
        self._read_globals()
        self._take_outcomes()
        for notification in self.engine.tick(self.clock()):
            self.delivery.submit(notification)
        self._persist_or_wait()

    # -- input --------------------------------------------------------------------------------

    def _handle(self, message: Message, now: datetime) -> None:
        error = message.error()
        if error is not None:
            if error.code() != KafkaError._PARTITION_EOF:
                if error.fatal():
                    raise KafkaException(error)
                log.warning("consumer error: %s", error)
            return
        topic, partition, offset = message.topic(), message.partition(), message.offset()
        assert topic is not None and partition is not None and offset is not None
        value = message.value()
        self.offsets[(topic, partition)] = offset + 1
        if value is None:
            return  # a compaction tombstone of a run: nothing to tell
        too_large = self.settings.kafka.value_problem(len(value))
        if too_large is not None:
            self._dead_letter(message, VALUE_TOO_LARGE, too_large)
            return
        is_anomaly = topic == self.names.anomalies
        try:
            parsed = Anomaly.from_bytes(value) if is_anomaly else RunState.from_bytes(value)
            # Its state goes to the partition of its input: a key that is not its run id would
            # put it where the replica that owns the run never looks.
            wrong_key = key_problem(ANOMALIES if is_anomaly else RUNS, message.key(), parsed)
            if wrong_key is not None:
                self._dead_letter(message, KEY_MISMATCH, wrong_key)
            elif isinstance(parsed, Anomaly):
                self.engine.observe_anomaly(parsed, partition, now)
            else:
                self.engine.observe_run(parsed, partition, now)
        except (ValidationError, ValueError) as exc:
            self._dead_letter(message, type(exc).__name__, str(exc))

    def _dead_letter(self, message: Message, error_type: str, error: str) -> None:
        letter = DeadLetter(
            origin_topic=message.topic() or "",
            origin_partition=message.partition(),
            origin_offset=message.offset(),
            origin_key=message.key(),
            raw_value=message.value() or b"",
            error=error,
            error_type=error_type,
            component=COMPONENT,
        )
        key = f"{letter.origin_topic}/{letter.origin_partition}/{letter.origin_offset}"
        self._produce(self.names.dlq, key, letter.to_bytes())
        metrics.DEAD_LETTERS.labels(COMPONENT).inc()
        log.warning("dead letter %s (%s): %s", key, error_type, error[:500])

    def _load_globals(self, timeout_s: float = 60.0) -> None:
        """Read every silence and pipeline-health record up to now, before any input."""
        topics = (self.names.silences, self.names.alert_pipelines)
        assigned = []
        for topic in topics:
            partitions = self._partitions(topic)
            assigned += [TopicPartition(topic, p, 0) for p in partitions]
        self.global_reader.assign(assigned)
        remaining = {(tp.topic, tp.partition) for tp in assigned}
        deadline = time.monotonic() + timeout_s
        while remaining and time.monotonic() < deadline:
            for message in self.global_reader.consume(num_messages=MAX_BATCH, timeout=0.5):
                error = message.error()
                if error is not None and error.code() == KafkaError._PARTITION_EOF:
                    remaining.discard((message.topic() or "", message.partition() or 0))
                elif error is None:
                    self._apply_global(message)
        if remaining:
            raise TimeoutError(f"silences / pipeline health not read within {timeout_s:.0f}s")

    def _partitions(self, topic: str, timeout_s: float = 30.0) -> list[int]:
        """The topic's partitions; waits a little for a topic created moments ago."""
        deadline = time.monotonic() + timeout_s
        while True:
            metadata = self.global_reader.list_topics(topic, timeout=10).topics[topic]
            if metadata.error is None and metadata.partitions:
                return sorted(metadata.partitions)
            if time.monotonic() > deadline:
                raise KafkaException(
                    f"topic {topic} is not there ({metadata.error}): run `sentinel topics create`"
                )
            time.sleep(0.5)

    def _read_globals(self) -> None:
        for message in self.global_reader.consume(num_messages=MAX_BATCH, timeout=0):
            if message.error() is None:
                self._apply_global(message)

    def _apply_global(self, message: Message) -> None:
        value = message.value()
        if value is None:
            return
        try:
            if message.topic() == self.names.silences:
                self.engine.observe_silence(Silence.from_bytes(value))
            else:
                self.engine.observe_pipeline_health(PipelineHealth.from_bytes(value))
        except (ValidationError, ValueError) as exc:
            log.warning("unreadable record on %s: %s", message.topic(), exc)

    def _take_outcomes(self) -> None:
        while True:
            try:
                outcome = self.delivery.outcomes.get_nowait()
            except queue.Empty:
                return
            result = outcome.result
            self.engine.completed(
                outcome.notification,
                outcome.sent,
                outcome.at,
                thread_ts=result.thread_ts if result else None,
                thread_channel=result.thread_channel if result else None,
            )

    # -- output -------------------------------------------------------------------------------

    def _record(self, delivery: AlertDelivery) -> None:
        """Every attempt on sentinel.alert-deliveries (called from the delivery thread too)."""
        key = f"{delivery.channel}/{delivery.group_key}"
        self._produce(self.names.alert_deliveries, key, delivery.to_bytes())
        metrics.ALERT_DELIVERIES.labels(
            delivery.channel, delivery.channel_type or "", delivery.outcome.value
        ).inc()

    def _produce(
        self, topic: str, key: str, value: bytes | None, partition: int | None = None
    ) -> None:
        def on_delivery(error: KafkaError | None, _message: Message) -> None:
            if error is not None:
                with self._refused_lock:
                    self._refused.append((topic, key, value, partition, f"{topic}: {error}"))

        if partition is None:
            self.producer.produce(topic, key=key, value=value, on_delivery=on_delivery)
        else:
            self.producer.produce(
                topic, key=key, value=value, partition=partition, on_delivery=on_delivery
            )
        self.producer.poll(0)

    def _persist_or_wait(self) -> None:
        try:
            self.persist()
        except PersistError as exc:
            # Nothing was committed: the same input is applied again after a restart; here the
            # state is still in memory, so the next step writes it again.
            log.error("could not persist alert state, retrying: %s", exc)
            time.sleep(1.0)

    def persist(self) -> None:
        """Write the changed state, wait for the broker's acknowledgement, then commit."""
        changes = self.engine.take_changes()
        if changes:
            self._write(changes)
        if not changes and not self.offsets:
            return
        remaining = self.producer.flush(self.settings.kafka.delivery_timeout_s)
        with self._refused_lock:
            refused, self._refused = self._refused, []
        if remaining or refused:
            # Exactly what was refused goes again: state, dead letters and delivery records
            # alike (the last two exist nowhere else: requeueing only the engine's changes lost
            # them once a later persist succeeded). Unacknowledged ones are still queued.
            for topic, key, value, partition, _error in refused:
                self._produce(topic, key, value, partition)
            errors = [error for *_message, error in refused]
            raise PersistError(f"{remaining} unacknowledged, errors: {errors[:3]}")
        if self.offsets:
            offsets = [TopicPartition(t, p, o) for (t, p), o in self.offsets.items()]
            self.consumer.commit(offsets=offsets, asynchronous=False)
            self.offsets.clear()

    def _write(self, changes: StateChanges) -> None:
        names = self.names
        for facts in changes.runs:
            self._produce(names.alert_runs, facts.run_id, facts.to_bytes(), facts.partition)
        for run_id, partition in changes.run_tombstones:
            self._produce(names.alert_runs, run_id, None, partition)
        for group in changes.groups:
            self._produce(names.alert_groups, group.group_key, group.to_bytes(), group.partition)
        for key, partition in changes.group_tombstones:
            self._produce(names.alert_groups, key, None, partition)
        for record in changes.pipelines:
            key = json.dumps([record.pipeline, record.branch])
            self._produce(names.alert_pipelines, key, record.to_bytes())
        for delivery in changes.deliveries:
            self._record(delivery)

    # -- partitions ---------------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        fresh = {tp.partition for tp in partitions} - self.owned
        if fresh:
            self._restore(fresh)
            self.owned = self.owned | fresh
        self._start_positions(consumer, partitions)
        log.info("alert partitions now %s", sorted(self.owned))

    def _start_positions(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Partitions the group never committed start at `alerting.start_at`; with "latest"
        that position is committed at once, so whatever comes after it is never skipped."""
        if not partitions or self.settings.alerting.start_at == "earliest":
            return
        committed = consumer.committed(partitions, timeout=10)
        never = [tp for tp in committed if tp.offset < 0]
        if not never:
            return
        for tp in never:
            _low, high = consumer.get_watermark_offsets(
                TopicPartition(tp.topic, tp.partition), timeout=10
            )
            tp.offset = high
        consumer.commit(offsets=never, asynchronous=False)
        consumer.assign(committed)
        log.info("started %s at their end (alerting.start_at: latest)", _names(never))

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        gone = {tp.partition for tp in partitions}
        try:
            self.persist()
        except (PersistError, KafkaException) as exc:
            log.warning("persist on revoke failed; the next owner re-reads: %s", exc)
        self._forget(gone)

    def _on_lost(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._forget({tp.partition for tp in partitions})

    def _forget(self, partitions: set[int]) -> None:
        self.engine.drop_partitions(partitions)
        self.owned = self.owned - partitions
        self.offsets = {k: v for k, v in self.offsets.items() if k[1] not in partitions}

    def _restore(self, partitions: set[int], timeout_s: float = 60.0) -> None:
        """Read partitions of the state topics from their start to their end (last value wins)."""
        reader = Consumer(
            consumer_config(
                self.settings,
                f"{self.settings.alerts_group_id}-restore",
                **{"enable.partition.eof": True},
            )
        )
        runs: dict[str, AlertRun | None] = {}
        groups: dict[str, AlertGroupState | None] = {}
        try:
            assigned = [
                TopicPartition(topic, p, 0)
                for topic in (self.names.alert_runs, self.names.alert_groups)
                for p in sorted(partitions)
            ]
            reader.assign(assigned)
            remaining = {(tp.topic, tp.partition) for tp in assigned}
            deadline = time.monotonic() + timeout_s
            while remaining and time.monotonic() < deadline:
                for message in reader.consume(num_messages=MAX_BATCH, timeout=0.5):
                    error = message.error()
                    if error is not None:
                        if error.code() == KafkaError._PARTITION_EOF:
                            remaining.discard((message.topic() or "", message.partition() or 0))
                        continue
                    self._restored(message, runs, groups)
            if remaining:
                raise TimeoutError(f"alert state {sorted(remaining)} not read in {timeout_s:.0f}s")
        finally:
            reader.close()
        now = self.clock()
        for facts in runs.values():
            if facts is not None:
                self.engine.restore_run(facts)
        for group in groups.values():
            if group is not None:
                self.engine.restore_group(group, now)
        log.info(
            "restored alert state of partitions %s: %d runs, %d groups",
            sorted(partitions),
            sum(v is not None for v in runs.values()),
            sum(v is not None for v in groups.values()),
        )

    def _restored(
        self,
        message: Message,
        runs: dict[str, AlertRun | None],
        groups: dict[str, AlertGroupState | None],
    ) -> None:
        key = (message.key() or b"").decode()
        value = message.value()
        try:
            if message.topic() == self.names.alert_runs:
                runs[key] = AlertRun.from_bytes(value) if value is not None else None
            else:
                groups[key] = AlertGroupState.from_bytes(value) if value is not None else None
        except (ValidationError, ValueError) as exc:
            log.error("unreadable alert state record %r: %s", key, exc)

    # -- stopping -----------------------------------------------------------------------------

    def _shutdown(self) -> None:
        try:
            self._take_outcomes()
            self.persist()
        except (PersistError, KafkaException) as exc:
            log.warning("final persist failed; the next start re-reads: %s", exc)
        finally:
            self.delivery.stop()
            self._take_outcomes()
            with contextlib.suppress(PersistError, KafkaException):
                self.persist()
            self.consumer.close()
            self.global_reader.close()
            self.producer.flush(self.settings.kafka.delivery_timeout_s)
            log.info("alert dispatcher stopped")


class DispatcherThread:
    """The dispatcher as a thread of another process (`sentinel up`), like the ClickHouse sink.

    Construction checks the alerting config (templates, secrets), so a bad one fails before
    anything starts; `start` connects once the broker's address is known.
    """

    def __init__(self, settings: Settings) -> None:
        check_templates(settings.alerting)
        self.channels = build_channels(settings.alerting)
        self.dispatcher: AlertDispatcher | None = None
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, settings: Settings) -> None:
        self.dispatcher = AlertDispatcher(settings, channels=self.channels)
        self._thread = threading.Thread(
            target=self._run, args=(self.dispatcher,), name="alert-dispatcher", daemon=True
        )
        self._thread.start()

    def _run(self, dispatcher: AlertDispatcher) -> None:
        self.error = None
        try:
            dispatcher.run_forever(self._stop)
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            log.exception("the alert dispatcher stopped on an error")

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def exit_reason(self) -> str:
        return f"stopped on {self.error}" if self.error else "stopped"

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)


def _names(partitions: list[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]@{tp.offset}" for tp in partitions)
