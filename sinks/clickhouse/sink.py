"""The ClickHouse sink: Kafka topics → ClickHouse tables, in batches, exactly once per offset range.

A thin adapter; the row conversion lives in `sinks.clickhouse.rows` (pure). One loop step:

1. consume messages; each becomes rows for the table(s) its topic is routed to (`sentinel.runs`
   feeds `runs` and `stages`), or a dead letter: a value over `kafka.max_value_bytes`
   (ValueTooLarge), one that cannot be converted, or one whose key is not the key its value
   gives (KeyMismatch, `schemas.keys`);
2. when the batch is full (`sink.batch_rows` messages) or old (`sink.batch_seconds`), flush:
   commit each partition slice's plan (its offset range, as commit metadata: see
   `sinks.clickhouse.policy`), insert its rows per table with an insert deduplication token made
   from that range and the table (a retried or replayed batch never lands twice, even after a
   crash), bisect an insert the server rejects for its data so that only the bad rows become
   dead letters (with the server's reason), deliver the dead letters, then commit offset+1
   synchronously. Nothing is committed before its rows and dead letters are durable;
3. if the flush fails (store down, DLQ unreachable), keep the batch, pause every assigned
   partition (so memory stays bounded: paused partitions fetch nothing) and retry with capped
   exponential backoff; on success resume.

Dead letters are delivered at least once: a crash after the DLQ ack and before the commit sends
them again on restart (each carries its origin topic, partition and offset to de-duplicate on).

Rebalances: revoked partitions are flushed once if possible, else their pending messages are
dropped uncommitted so the new owner re-reads them; lost partitions are dropped uncommitted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from runtime.config import VALUE_TOO_LARGE, Settings
from runtime.kafka_clients import consumer_config, producer_config
from runtime.metrics import (
    CONSUMED,
    DEAD_LETTERS,
    PUBLISHED,
    SINK_BATCHES,
    SINK_FLUSH_FAILURES,
    SINK_INSERT_SECONDS,
    SINK_ROWS,
)
from runtime.progress_monitor import Ownership
from runtime.troubleshooting import STORE_UNREACHABLE, see
from schemas.keys import KEY_MISMATCH, key_problem
from schemas.messages import DeadLetter
from schemas.topics import ALL_TOPICS
from sinks.clickhouse.policy import parse_plan, plan_metadata, rejection_reason
from sinks.clickhouse.rows import RUNS_ROUTE, Row, TableRoute, dedup_token
from sinks.clickhouse.store import Store, store_errors
from sinks.clickhouse.topic_rows import routes_for

log = logging.getLogger("sentinel.sink")

COMPONENT = "clickhouse-sink"
PartitionKey = tuple[str, int]


RouteSpec = TableRoute | Sequence[TableRoute]
Routes = Mapping[str, RouteSpec] | Iterable[tuple[str, RouteSpec]]
REJECTED_ERROR_TYPE = "RejectedByStore"


def runs_route(settings: Settings) -> tuple[str, TableRoute]:
    """`sentinel.runs` (with the configured prefix) → the `runs` table only."""
    return settings.topic_names.runs, RUNS_ROUTE


def default_routes(settings: Settings) -> dict[str, tuple[TableRoute, ...]]:
    """Every topic that lands in ClickHouse and the table(s) it feeds (`topic_rows.routes_for`)."""
    return routes_for(settings.topic_names)


def normalise_routes(routes: Routes) -> dict[str, tuple[TableRoute, ...]]:
    """topic → its routes; a topic given twice (pairs) feeds every table it was given."""
    pairs = routes.items() if isinstance(routes, Mapping) else routes
    merged: dict[str, tuple[TableRoute, ...]] = {}
    for topic, spec in pairs:
        more = (spec,) if isinstance(spec, TableRoute) else tuple(spec)
        merged[topic] = (*merged.get(topic, ()), *more)
        tables = [route.table for route in merged[topic]]
        if len(set(tables)) != len(tables):
            raise ValueError(f"topic {topic!r} is routed to the same table twice: {tables}")
    return merged


class DeadLetterDeliveryError(RuntimeError):
    """The DLQ topic did not acknowledge a dead letter; the batch is retried, not committed."""


@dataclass(frozen=True)
class Origin:
    """A consumed message as the DLQ needs it, should the store reject one of its rows."""

    offset: int
    key: bytes | None
    value: bytes | None


@dataclass
class TableRows:
    """The rows one partition slice sends to one table; `origins[i]` is row i's message."""

    route: TableRoute
    rows: list[Row] = field(default_factory=list)
    origins: list[int] = field(default_factory=list)
    inserted: bool = False


@dataclass
class PartitionSlice:
    """One partition's share of a batch: its offset range, rows per table and dead letters."""

    topic: str
    partition: int
    first_offset: int
    last_offset: int
    messages: list[Origin] = field(default_factory=list)
    tables: dict[str, TableRows] = field(default_factory=dict)
    dead: list[DeadLetter] = field(default_factory=list)
    # A plan fixes the range: the slice must end exactly at `planned_last` (a re-read after a
    # crash), or it was committed as a plan and must not grow any more.
    planned_last: int | None = None
    plan_committed: bool = False
    sealed: bool = False
    # Progress marks, so a retry after a partial failure redoes only what is missing.
    dead_sent: bool = False

    @property
    def rows(self) -> list[Row]:
        return [row for table in self.tables.values() for row in table.rows]

    @property
    def frozen(self) -> bool:
        """No more messages may join: its range is complete (or committed as a plan)."""
        return self.sealed

    @property
    def ready(self) -> bool:
        """May be flushed now: not waiting for the rest of a planned range."""
        return self.planned_last is None or self.sealed

    def token(self, table: str | None = None) -> str:
        return dedup_token(self.topic, self.partition, self.first_offset, self.last_offset, table)

    def extend_to(self, offset: int) -> None:
        self.last_offset = offset
        if self.planned_last is not None and offset >= self.planned_last:
            self.sealed = True


class Batch:
    """Messages consumed but not yet committed, grouped by partition."""

    def __init__(self) -> None:
        self.slices: dict[PartitionKey, PartitionSlice] = {}
        self.messages = 0
        self.started_at: float | None = None

    def slice_for(self, topic: str, partition: int, offset: int) -> PartitionSlice:
        if self.started_at is None:
            self.started_at = time.monotonic()
        self.messages += 1
        key = (topic, partition)
        current = self.slices.get(key)
        if current is None:
            current = self.slices[key] = PartitionSlice(topic, partition, offset, offset)
        current.extend_to(offset)
        return current

    def due(self, max_messages: int, max_age_s: float, now: float) -> bool:
        if self.messages >= max_messages:
            return True
        return self.started_at is not None and now - self.started_at >= max_age_s

    def seconds_until_due(self, max_age_s: float, now: float) -> float | None:
        if self.started_at is None:
            return None
        return max(0.0, self.started_at + max_age_s - now)

    def take(self, keys: Iterable[PartitionKey]) -> list[PartitionSlice]:
        return [self.slices[key] for key in keys if key in self.slices]

    def drop(self, keys: Iterable[PartitionKey]) -> int:
        dropped = 0
        for key in keys:
            removed = self.slices.pop(key, None)
            if removed is not None:
                dropped += len(removed.messages)
        self.messages = sum(len(s.messages) for s in self.slices.values())
        if not self.slices:
            self.started_at = None
        return dropped


@dataclass
class Backoff:
    """Capped exponential backoff between flush retries."""

    initial_s: float = 0.5
    max_s: float = 30.0
    attempts: int = 0
    retry_at: float = 0.0

    @property
    def active(self) -> bool:
        return self.attempts > 0

    def failed(self, now: float) -> float:
        delay = min(self.max_s, self.initial_s * 2.0**self.attempts)
        self.attempts += 1
        self.retry_at = now + delay
        return delay

    def reset(self) -> None:
        self.attempts = 0
        self.retry_at = 0.0


class ClickHouseSink:
    """Consumes the routed topics and writes them to the store; see the module docstring.

    `topic_table_map` maps topic name → `TableRoute` or a sequence of them (one topic may feed
    several tables); a mapping, or (topic, route) pairs such as `[runs_route(settings)]`.
    Default: `default_routes(settings)`, every topic that lands in ClickHouse.
    """

    def __init__(
        self,
        settings: Settings,
        store: Store,
        topic_table_map: Routes | None = None,
        *,
        poll_timeout_s: float = 0.5,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 30.0,
        consumer_overrides: Mapping[str, Any] | None = None,
    ) -> None:
        self._settings = settings
        self._store = store
        self._routes = normalise_routes(
            default_routes(settings) if topic_table_map is None else topic_table_map
        )
        self._dlq_topic = settings.topic_names.dlq
        self._specs = {spec.name(settings.topics.prefix): spec for spec in ALL_TOPICS}
        self._poll_timeout_s = poll_timeout_s
        self._backoff = Backoff(retry_initial_s, retry_max_s)
        self._retryable: tuple[type[BaseException], ...] = (
            *store_errors(),
            KafkaException,
            DeadLetterDeliveryError,
        )
        self._batch = Batch()
        # Plans found in the committed offsets of newly assigned partitions: (first, last).
        self._plans: dict[PartitionKey, tuple[int, int]] = {}
        # Messages that arrived for a partition whose slice is frozen; handled after its flush.
        self._held: list[Message] = []
        self._paused: list[TopicPartition] = []
        self._owned: frozenset[PartitionKey] = frozenset()
        self._closed = False
        self._consumer = Consumer(
            consumer_config(settings, settings.sink_group_id, **dict(consumer_overrides or {}))
        )
        self._producer = Producer(producer_config(settings))
        self._consumer.subscribe(
            list(self._routes),
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )

    # -- state, for callers and tests -------------------------------------------------------

    @property
    def paused(self) -> bool:
        """True while a failed flush is waiting for its retry (partitions paused)."""
        return self._backoff.active

    @property
    def pending_messages(self) -> int:
        return self._batch.messages + len(self._held)

    def describe(self) -> str:
        """What the sink holds, for a stuck sink's diagnosis (any thread; a snapshot may be
        torn, which is fine for reading): each slice's range and plan, held messages, plans
        read at assignment, and which partitions librdkafka reports paused."""
        parts = [
            f"{p.topic}[{p.partition}] {p.first_offset}-{p.last_offset} "
            f"planned_last={p.planned_last} plan_committed={p.plan_committed} "
            f"sealed={p.sealed} ready={p.ready} messages={len(p.messages)}"
            for p in list(self._batch.slices.values())
        ]
        held = sorted({(m.topic(), m.partition()) for m in list(self._held)})
        return (
            f"slices=[{'; '.join(parts)}] held={len(self._held)} in {held} "
            f"plans={dict(self._plans)} paused_by_us={_names(list(self._paused))} "
            f"backoff_attempts={self._backoff.attempts} batch_started_at={self._batch.started_at}"
        )

    def ownership(self) -> Ownership:
        """The partitions this sink consumes, for the partition watchdog (any thread); while a
        failed flush waits for its retry it stands still on purpose (readiness says why)."""
        excuse = "the store or the DLQ failed a flush; retrying" if self._backoff.active else None
        return Ownership(self._owned, excuse)

    # -- the loop ---------------------------------------------------------------------------

    def run_forever(
        self, stop_event: threading.Event, heartbeat: Callable[[], None] | None = None
    ) -> None:
        """Poll until `stop_event`; `heartbeat` is called on every turn (the liveness probe)."""
        log.info("sink started", extra={"topics": sorted(self._routes)})
        try:
            while not stop_event.is_set():
                self.poll_once()
                if heartbeat is not None:
                    heartbeat()
        finally:
            self.stop()

    def poll_once(self, timeout_s: float | None = None) -> int:
        """One loop step: consume what is there, flush if due (or retry if backing off).

        Returns the number of messages consumed.
        """
        timeout = self._poll_timeout_s if timeout_s is None else timeout_s
        if self._backoff.active:
            return self._poll_while_paused(timeout)
        consumed = self._consume(self._consume_timeout(timeout))
        if self._batch.due(
            self._settings.sink.batch_rows, self._settings.sink.batch_seconds, time.monotonic()
        ):
            self._flush_or_back_off()
        return consumed

    def stop(self) -> None:
        """Flush and commit what is pending (one attempt), then close the clients.

        Call it from the thread that runs the loop (`run_forever` does, on its way out).
        """
        if self._closed:
            return
        self._closed = True
        try:
            self._final_flush()
        finally:
            self._consumer.close()
            self._producer.flush(self._settings.kafka.delivery_timeout_s)
            self._producer.close()
            log.info("sink stopped")

    def _final_flush(self) -> None:
        if not self._batch.slices:
            return
        try:
            self._flush(list(self._batch.slices))
        except self._retryable as exc:
            log.warning(
                "final flush failed; %d messages stay uncommitted and are re-read on restart",
                self._batch.messages,
                extra={"error": str(exc)},
            )

    # -- consuming --------------------------------------------------------------------------

    def _consume_timeout(self, timeout: float) -> float:
        if not any(part.ready for part in self._batch.slices.values()):
            return timeout  # only the rest of a planned range can make progress: wait for it
        until_due = self._batch.seconds_until_due(
            self._settings.sink.batch_seconds, time.monotonic()
        )
        return timeout if until_due is None else min(timeout, until_due)

    def _consume(self, timeout: float) -> int:
        room = max(1, self._settings.sink.batch_rows - self._batch.messages)
        for part in self._batch.slices.values():
            if not part.ready and part.planned_last is not None:
                room = max(room, part.planned_last - part.last_offset)
        messages = self._consumer.consume(num_messages=room, timeout=timeout)
        for message in messages:
            self._handle(message)
        return len(messages)

    def _poll_while_paused(self, timeout: float) -> int:
        # Polling keeps the group membership alive and runs rebalance callbacks; paused
        # partitions fetch nothing, so the batch does not grow while the store is down.
        wait = max(0.0, min(timeout, self._backoff.retry_at - time.monotonic()))
        consumed = self._consume(wait)
        self._pause_assigned()  # partitions assigned by a rebalance meanwhile start unpaused
        if time.monotonic() >= self._backoff.retry_at:
            self._flush_or_back_off()
        return consumed

    def _handle(self, message: Message) -> None:
        error = message.error()
        if error is not None:
            self._handle_consumer_error(error)
            return
        topic, partition, offset = _origin(message)
        part = self._slice_for(message, topic, partition, offset)
        if part is None:
            self._held.append(message)
            return
        CONSUMED.labels(COMPONENT, topic).inc()
        routes = self._routes.get(topic, ())
        value = message.value()
        too_large = self._settings.kafka.value_problem(len(value or b""))
        if too_large is not None:
            self._refuse(part, message, VALUE_TOO_LARGE, too_large)
            return
        try:
            if not routes:
                raise LookupError(f"no table is routed for topic {topic!r}")
            converted = [(route, route.convert(value)) for route in routes]
        except Exception as exc:  # errors as data: any unconvertible message is a dead letter
            self._refuse(part, message, type(exc).__name__, str(exc))
            return
        wrong_key = self._key_problem(topic, message.key(), converted)
        if wrong_key is not None:
            self._refuse(part, message, KEY_MISMATCH, wrong_key)
            return
        for route, rows in converted:
            table = part.tables.setdefault(route.table, TableRows(route))
            table.rows.extend(rows)
            table.origins.extend([len(part.messages) - 1] * len(rows))

    def _slice_for(
        self, message: Message, topic: str, partition: int, offset: int
    ) -> PartitionSlice | None:
        """The slice this message joins, or None if it must wait for a frozen slice's flush."""
        key = (topic, partition)
        current = self._batch.slices.get(key)
        if current is not None and (
            current.frozen or (current.planned_last is not None and offset > current.planned_last)
        ):
            current.sealed = True  # a later offset exists: a planned range is complete
            return None
        if (
            current is None
            and self._held
            and any((m.topic(), m.partition()) == key for m in self._held)
        ):
            return None  # keep the partition's order: older messages are still waiting
        plan = self._plans.pop(key, None) if current is None else None
        if plan is not None and offset > plan[1]:
            plan = None  # the planned offsets are gone (compaction); nothing left to match
        part = self._batch.slice_for(topic, partition, offset)
        if plan is not None:
            part.first_offset, part.planned_last, part.plan_committed = plan[0], plan[1], True
            part.extend_to(offset)
        part.messages.append(Origin(offset, message.key(), message.value()))
        return part

    def _handle_consumer_error(self, error: KafkaError) -> None:
        if error.code() == KafkaError._PARTITION_EOF:
            return
        if error.fatal():
            raise KafkaException(error)
        log.warning("consumer error: %s", error, extra={"error": str(error)})

    def _key_problem(
        self, topic: str, key: bytes | None, converted: list[tuple[TableRoute, list[Row]]]
    ) -> str | None:
        """Why the key does not match the value, checked on the value's first row (every table
        a topic feeds carries the columns its key is made of)."""
        spec = self._specs.get(topic)
        rows = next((rows for _route, rows in converted if rows), None)
        if spec is None or rows is None:
            return None
        return key_problem(spec, key, rows[0])

    def _refuse(self, part: PartitionSlice, message: Message, error_type: str, error: str) -> None:
        """The message becomes a dead letter of its slice (sent before the slice commits)."""
        topic, partition, offset = _origin(message)
        part.dead.append(
            DeadLetter(
                origin_topic=topic,
                origin_partition=partition,
                origin_offset=offset,
                origin_key=message.key(),
                raw_value=message.value() or b"",
                error=error,
                error_type=error_type,
                component=COMPONENT,
            )
        )
        log.warning(
            "dead letter %s[%d]@%d (%s): %s",
            topic,
            partition,
            offset,
            error_type,
            error[:500],
            extra={"topic": topic, "partition": partition, "offset": offset},
        )

    def _rejected_letter(self, part: PartitionSlice, origin: Origin, reason: str) -> DeadLetter:
        return DeadLetter(
            origin_topic=part.topic,
            origin_partition=part.partition,
            origin_offset=origin.offset,
            origin_key=origin.key,
            raw_value=origin.value or b"",
            error=reason,
            error_type=REJECTED_ERROR_TYPE,
            component=COMPONENT,
        )

    # -- flushing ---------------------------------------------------------------------------

    def _flush_or_back_off(self) -> None:
        try:
            self._flush(list(self._batch.slices))
        except self._retryable as exc:
            SINK_FLUSH_FAILURES.inc()
            delay = self._backoff.failed(time.monotonic())
            self._pause_assigned()
            log.error(
                "flush failed (attempt %d), %d messages held, paused, retry in %.1fs: %s (%s)",
                self._backoff.attempts,
                self._batch.messages,
                delay,
                exc,
                see(STORE_UNREACHABLE),
                extra={"attempt": self._backoff.attempts, "retry_in_s": delay},
            )
            return
        if self._backoff.active:
            log.info("flush succeeded after %d failed attempts; resuming", self._backoff.attempts)
            self._backoff.reset()
            self._resume_paused()

    def _flush(self, keys: list[PartitionKey]) -> None:
        """Plan, insert, deliver dead letters, commit — for the ready slices among `keys`."""
        self._seal_at_partition_end(keys)
        slices = [part for part in self._batch.take(keys) if part.ready]
        if not slices:
            return
        started = time.monotonic()
        self._commit_plans(slices)
        for part in slices:
            self._insert(part)
        self._send_dead_letters(slices)
        self._commit(slices)
        SINK_BATCHES.inc()
        rows = sum(len(table.rows) for part in slices for table in part.tables.values())
        dead = sum(len(part.dead) for part in slices)
        self._batch.drop([(part.topic, part.partition) for part in slices])
        if self._batch.slices:
            self._batch.started_at = time.monotonic()
        self._release_held()
        log.info(
            "flushed %d rows, %d dead letters from %d partitions in %.3fs",
            rows,
            dead,
            len(slices),
            time.monotonic() - started,
            extra={"rows": rows, "dead_letters": dead, "partitions": len(slices)},
        )

    def _seal_at_partition_end(self, keys: list[PartitionKey]) -> None:
        # A planned range whose tail was compacted away never reaches its last offset; once the
        # slice holds everything up to the partition's end, it is as complete as it can be.
        for part in self._batch.take(keys):
            if part.ready:
                continue
            tp = TopicPartition(part.topic, part.partition)
            _low, high = self._consumer.get_watermark_offsets(tp, cached=True) or (-1, -1)
            if high >= 0 and part.last_offset >= high - 1:
                part.sealed = True

    def _commit_plans(self, slices: list[PartitionSlice]) -> None:
        fresh = [part for part in slices if not part.plan_committed]
        if not fresh:
            return
        plans = [
            TopicPartition(
                p.topic,
                p.partition,
                p.first_offset,
                metadata=plan_metadata(p.first_offset, p.last_offset),
            )
            for p in fresh
        ]
        self._consumer.commit(offsets=plans, asynchronous=False)
        for part in fresh:
            # From now on the range is fixed: a retry or a restarted sink inserts exactly it.
            part.plan_committed, part.planned_last, part.sealed = True, part.last_offset, True

    def _insert(self, part: PartitionSlice) -> None:
        for table in part.tables.values():
            if table.inserted or not table.rows:
                continue
            rejected: dict[int, str] = {}
            self._insert_rows(part, table, 0, len(table.rows), rejected)
            for index, reason in sorted(rejected.items()):
                origin = part.messages[index]
                part.dead.append(
                    self._rejected_letter(part, origin, f"{table.route.table}: {reason}")
                )
                log.warning(
                    "row rejected by the store %s[%d]@%d: %s",
                    part.topic,
                    part.partition,
                    origin.offset,
                    reason,
                    extra={"table": table.route.table, "offset": origin.offset},
                )
            table.inserted = True

    def _insert_rows(
        self, part: PartitionSlice, table: TableRows, lo: int, hi: int, rejected: dict[int, str]
    ) -> None:
        """Insert rows[lo:hi]; if the server rejects their data, bisect down to the bad rows.

        Every sub-range has its own deterministic token, so a retry after a later failure lands
        nothing twice. Errors that are not about the data propagate (pause and retry).
        """
        route = table.route
        token = part.token(route.table)
        if (lo, hi) != (0, len(table.rows)):
            token = f"{token}/rows:{lo}-{hi - 1}"
        try:
            with SINK_INSERT_SECONDS.labels(route.table).time():
                self._store.insert(route.table, table.rows[lo:hi], route.columns, dedup_token=token)
            SINK_ROWS.labels(route.table).inc(hi - lo)
        except Exception as exc:
            reason = rejection_reason(exc)
            if reason is None:
                raise
            if hi - lo == 1:
                rejected.setdefault(table.origins[lo], reason)
                return
            mid = (lo + hi) // 2
            self._insert_rows(part, table, lo, mid, rejected)
            self._insert_rows(part, table, mid, hi, rejected)

    def _release_held(self) -> None:
        held, self._held = self._held, []
        for message in held:
            self._handle(message)

    def _send_dead_letters(self, slices: list[PartitionSlice]) -> None:
        waiting = [part for part in slices if part.dead and not part.dead_sent]
        if not waiting:
            return
        failures: list[str] = []

        def on_delivery(error: KafkaError | None, _message: Message) -> None:
            if error is not None:
                failures.append(str(error))

        for part in waiting:
            for letter in part.dead:
                key = f"{letter.origin_topic}/{letter.origin_partition}/{letter.origin_offset}"
                self._producer.produce(
                    self._dlq_topic, value=letter.to_bytes(), key=key, on_delivery=on_delivery
                )
        remaining = self._producer.flush(self._settings.kafka.delivery_timeout_s)
        if failures or remaining:
            raise DeadLetterDeliveryError(
                f"{self._dlq_topic}: {len(failures)} failed, {remaining} unacknowledged"
                + (f" ({failures[0]})" if failures else "")
            )
        for part in waiting:
            part.dead_sent = True
            DEAD_LETTERS.labels(COMPONENT).inc(len(part.dead))
            PUBLISHED.labels(COMPONENT, self._dlq_topic).inc(len(part.dead))

    def _commit(self, slices: list[PartitionSlice]) -> None:
        offsets = [TopicPartition(p.topic, p.partition, p.last_offset + 1) for p in slices]
        self._consumer.commit(offsets=offsets, asynchronous=False)

    # -- pause / resume ---------------------------------------------------------------------

    def _pause_assigned(self) -> None:
        assigned = self._consumer.assignment()
        if assigned:
            self._consumer.pause(assigned)
        self._paused = assigned

    def _resume_paused(self) -> None:
        assigned = {(tp.topic, tp.partition) for tp in self._consumer.assignment()}
        still = [tp for tp in self._paused if (tp.topic, tp.partition) in assigned]
        if still:
            self._consumer.resume(still)
        self._paused = []

    # -- rebalance callbacks (run inside consume) -------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("assigned %s", _names(partitions))
        self._owned = self._owned | {(tp.topic, tp.partition) for tp in partitions}
        if not partitions:
            return
        try:
            committed = consumer.committed(partitions, timeout=10)
        except KafkaException as exc:
            # Without the plans a re-read batch may be cut differently and land twice; say so.
            log.error("could not read committed offsets for batch plans: %s", exc)
            return
        for tp in committed:
            plan = parse_plan(getattr(tp, "metadata", None), tp.offset)
            if plan is not None:
                log.info("%s[%d]: re-reading planned range %d-%d", tp.topic, tp.partition, *plan)
                self._plans[(tp.topic, tp.partition)] = plan

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        keys = [(tp.topic, tp.partition) for tp in partitions]
        if self._batch.take(keys) and not self._backoff.active:
            try:
                self._flush(keys)
            except self._retryable as exc:
                log.warning("flush on revoke failed: %s", exc, extra={"error": str(exc)})
        self._drop(keys, "revoked")

    def _on_lost(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._drop([(tp.topic, tp.partition) for tp in partitions], "lost")

    def _drop(self, keys: list[PartitionKey], why: str) -> None:
        self._owned = self._owned - set(keys)
        dropped = self._batch.drop(keys)
        revoked = set(keys)
        for key in revoked:
            self._plans.pop(key, None)
        held = len(self._held)
        self._held = [m for m in self._held if (m.topic(), m.partition()) not in revoked]
        dropped += held - len(self._held)
        self._forget_paused(revoked)
        if dropped:
            log.warning(
                "partitions %s: %d uncommitted messages dropped; the next owner re-reads them",
                why,
                dropped,
                extra={"dropped": dropped},
            )
        if not self._batch.slices and self._backoff.active:
            # Nothing left to retry: the revoked partitions were the ones blocking.
            self._backoff.reset()
            self._resume_paused()

    def _forget_paused(self, gone: set[PartitionKey]) -> None:
        """Resume the paused partitions among `gone` before forgetting them: librdkafka keeps
        a partition's pause through a rebalance, so one assigned here again (the same sink
        rejoining after its session expired in a broker outage) would stay paused for good,
        with nothing left to resume it: the sink would silently stop consuming it."""
        leaving = [tp for tp in self._paused if (tp.topic, tp.partition) in gone]
        self._paused = [tp for tp in self._paused if (tp.topic, tp.partition) not in gone]
        if not leaving:
            return
        try:
            self._consumer.resume(leaving)
        except KafkaException as exc:
            log.error("could not resume %s before letting them go: %s", _names(leaving), exc)


def _origin(message: Message) -> tuple[str, int, int]:
    topic, partition, offset = message.topic(), message.partition(), message.offset()
    # Only error events lack these, and those are handled before a message gets here.
    if topic is None or partition is None or offset is None:
        raise KafkaException(f"message without topic/partition/offset: {message!r}")
    return topic, partition, offset


def _names(partitions: list[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions) or "(none)"
