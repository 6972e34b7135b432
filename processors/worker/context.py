"""What the worker's agents share: its topics, its tables and the pure objects they call.

Built once per app by `WorkerContext.build` (nothing connects until the worker starts). Table
names are part of the stored state (each is backed by a changelog topic named after it), so
they never change.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

import faust
from faust.types import EventT

from processors.anomalies.logs import LogAnalyzer
from processors.runs.log_signals import LogSignals
from processors.runs.tracking import RunTracker, TrackerConfig, decode_state
from runtime.config import (
    VALUE_TOO_LARGE,
    InfraDetectorsConfig,
    Settings,
    TestDetectorsConfig,
)
from runtime.metrics import DEAD_LETTERS, PUBLISH_FAILURES
from schemas.messages import DeadLetter, RunSignal, RunState
from schemas.topics import TopicNames

log = logging.getLogger("sentinel.worker")
MAX_VALUE_BYTES = 16 * 1024 * 1024
# Histories and a big run's test results outgrow Kafka's default 1 MB per message.
LARGE_VALUES = {"max.message.bytes": str(MAX_VALUE_BYTES)}
_RAW: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
# A dead letter the broker refuses is sent again after these waits (capped), never dropped.
DLQ_RETRY_FIRST_S, DLQ_RETRY_MAX_S = 0.5, 30.0


def bytes_table(app: faust.App, name: str, partitions: int, large: bool = False) -> Any:
    """A table of bytes keys and values: the pure code owns (de)serialisation."""
    return app.Table(
        name,
        default=None,
        partitions=partitions,
        key_type=bytes,
        value_type=bytes,
        extra_topic_configs=LARGE_VALUES if large else {},
    )


@dataclass
class Topics:
    tracker_input: Any  # sentinel.ci + run-signals
    source_input: Any  # sentinel.k8s + sentinel.logs
    links: Any
    signals: Any
    runs: Any
    tests: Any
    anomalies: Any
    history: Any
    dlq: Any

    @classmethod
    def declare(cls, app: faust.App, names: TopicNames, partitions: int) -> Topics:
        return cls(
            tracker_input=app.topic(names.ci, names.run_signals, partitions=partitions, **_RAW),
            source_input=app.topic(names.k8s, names.logs, partitions=partitions, **_RAW),
            links=app.topic(names.run_links, partitions=partitions, **_RAW),
            signals=app.topic(names.run_signals, partitions=partitions, **_RAW),
            runs=app.topic(names.runs, **_RAW),
            tests=app.topic(names.tests, **_RAW),
            anomalies=app.topic(names.anomalies, **_RAW),
            history=app.topic(names.run_history, partitions=partitions, **_RAW),
            dlq=app.topic(names.dlq, **_RAW),
        )


@dataclass
class Tables:
    runs: Any  # run id -> RunState
    links: Any  # correlation key -> LinkState
    tests: Any  # run id -> its test results until it ends (then its history entry has them)
    logs: Any  # run id -> its log analysis until it ends (likewise)
    history: Any  # pipeline + branch -> PipelineRecord
    # Where each log stream's first line is (partition, offset), keyed like sentinel.logs:
    # after a restart the router re-reads its streams from there (see log_recovery).
    stream_starts: Any

    @classmethod
    def declare(cls, app: faust.App, partitions: int) -> Tables:
        return cls(
            runs=bytes_table(app, "run-states", partitions),
            links=bytes_table(app, "run-links", partitions),
            tests=bytes_table(app, "run-tests", partitions, large=True),
            logs=bytes_table(app, "run-logs", partitions, large=True),
            history=bytes_table(app, "pipeline-history", partitions, large=True),
            stream_starts=bytes_table(app, "log-stream-starts", partitions),
        )


@dataclass
class WorkerContext:
    settings: Settings
    app: faust.App
    topics: Topics
    tables: Tables
    tracker: RunTracker
    log_analyzer: LogAnalyzer
    log_signals: LogSignals
    test_config: TestDetectorsConfig
    infra_config: InfraDetectorsConfig | None
    recovered: set[int] = field(default_factory=set)  # sentinel.logs partitions resumed

    @classmethod
    def build(cls, settings: Settings, app: faust.App) -> WorkerContext:
        partitions = settings.topics.partitions
        infra = settings.anomalies.infra
        return cls(
            settings=settings,
            app=app,
            topics=Topics.declare(app, settings.topic_names, partitions),
            tables=Tables.declare(app, partitions),
            tracker=RunTracker(TrackerConfig.from_settings(settings)),
            log_analyzer=LogAnalyzer(settings.anomalies.logs),
            log_signals=LogSignals(settings.tracking),
            test_config=settings.anomalies.tests,
            infra_config=infra if infra.enabled else None,
        )

    @property
    def names(self) -> TopicNames:
        return self.settings.topic_names

    def load_state(self, run_id: str) -> RunState | None:
        return decode_state(self.tables.runs.get(run_id.encode()))

    async def route(self, signal: RunSignal) -> None:
        """A signal to its run, or to the linker while no CI event has named its run."""
        if signal.run_id is not None:
            await self.topics.signals.send(key=signal.run_id.encode(), value=signal.to_bytes())
        elif signal.correlation_key is not None:
            key = signal.correlation_key.encode()
            await self.topics.links.send(key=key, value=signal.to_bytes())

    async def refused_as_too_large(self, event: EventT[Any], component: str) -> bool:
        """A value over `kafka.max_value_bytes` goes to the DLQ before anything parses it."""
        size = len(event.value) if isinstance(event.value, bytes) else 0
        problem = self.settings.kafka.value_problem(size)
        if problem is None:
            return False
        await self.dead_letter(event, problem, VALUE_TOO_LARGE, component)
        return True

    async def dead_letter(
        self,
        event: EventT[Any],
        error: str,
        error_type: str,
        component: str,
        value: bytes | None = None,
    ) -> None:
        DEAD_LETTERS.labels(component).inc()
        message = event.message
        log.warning(
            "dead-lettering %s[%d]@%d (%s): %s",
            message.topic,
            message.partition,
            message.offset,
            error_type,
            error,
            extra={
                "topic": message.topic,
                "partition": message.partition,
                "offset": message.offset,
            },
        )
        if value is None:
            value = event.value if isinstance(event.value, bytes) else bytes(event.value or b"")
        letter = DeadLetter(
            origin_topic=message.topic,
            origin_partition=message.partition,
            origin_offset=message.offset,
            origin_key=event.key,
            raw_value=value,
            error=error,
            error_type=error_type,
            component=component,
        )
        key = f"{message.topic}/{message.partition}/{message.offset}".encode()
        await self._deliver_letter(key, letter.to_bytes(), message.topic, message.partition)

    async def _deliver_letter(self, key: bytes, value: bytes, topic: str, partition: int) -> None:
        """Send a dead letter and wait for the broker's acknowledgement, retrying until it
        comes. The agent only returns (and Faust only acks, then commits, the message) once the
        letter is stored: a refused letter used to be logged and committed past, i.e. lost.
        Waiting holds this partition still, which the partition watchdog reports if it lasts."""
        delay = DLQ_RETRY_FIRST_S
        attempt = 1
        while True:
            try:
                delivered = await self.topics.dlq.send(key=key, value=value)
                await delivered
                return
            except Exception as exc:  # any refusal: the letter must not be lost
                PUBLISH_FAILURES.labels("worker", self.names.dlq).inc()
                log.error(
                    "dead letter for %s[%d] not stored (attempt %d), retrying in %.1fs: %s: %s",
                    topic,
                    partition,
                    attempt,
                    delay,
                    type(exc).__name__,
                    exc,
                    extra={"attempt": attempt, "retry_in_s": delay},
                )
            await asyncio.sleep(delay)
            delay, attempt = min(DLQ_RETRY_MAX_S, delay * 2), attempt + 1
