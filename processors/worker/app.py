"""The Faust app: thin agents around the pure logic in `processors` (docs/runs.md).

Built by `create_app(settings)` (never at import time, so nothing connects on import). Agents:

    run-signals  sentinel.k8s + sentinel.logs -> RunSignals (processors.signals), to run-signals
                 by run id, or to run-links by correlation key while no CI event named the run
    run-linker   run-links -> run-signals once the key is bound (processors.linking)
    run-tracker  sentinel.ci + run-signals -> RunStates, test results, structure and infra
                 anomalies, BINDs; keeps each run's test results and log analysis until it ends
                 (processors.tracking, processors.log_detectors)
    run-history  run-history (by pipeline, branch) -> test and log anomalies against the
                 pipeline's history (processors.history)

Every table is backed by a changelog topic, so a restarted worker recovers it; each table is
keyed like the topic its agent reads, which keeps it co-partitioned with its input.
"""

from __future__ import annotations

import faulthandler
import json
import logging
import signal as os_signal
from datetime import UTC, datetime
from typing import Any

import faust
from aiokafka.partitioner import murmur2  # type: ignore[import-untyped]
from faust.types import EventT, StreamT

from processors.anomalies.history import (
    RunLogs,
    decode_results,
    encode_results,
    history_entry,
    judge,
)
from processors.anomalies.logs import LogAnalyzer
from processors.runs.linking import LinkState, link
from processors.runs.log_signals import LogSignals
from processors.runs.source_signals import signals_from_source, watermark_signal
from processors.runs.tracking import RunTracker, TrackerConfig, decode_state
from runtime.config import Settings
from runtime.kafka_clients import bootstrap_servers, committed_offset, read_range
from runtime.metrics import DEAD_LETTERS
from schemas.messages import DeadLetter, LogLine, RunSignal, RunState, TestResult

log = logging.getLogger("sentinel.worker")
MAX_VALUE_BYTES = 16 * 1024 * 1024
# Histories and a big run's test results outgrow Kafka's default 1 MB per message.
LARGE_VALUES = {"max.message.bytes": str(MAX_VALUE_BYTES)}


def faust_settings(settings: Settings) -> dict[str, Any]:
    web_port = settings.tracking.web_port
    return {
        "broker": f"kafka://{bootstrap_servers(settings).replace(',', ';kafka://')}",
        "store": "memory://",
        "topic_partitions": settings.topics.partitions,
        "topic_replication_factor": settings.topics.replication_factor,
        "topic_allow_declare": True,  # the table's changelog topic is Faust's own
        "consumer_auto_offset_reset": "earliest",
        # Short group timeouts: a restarted worker rejoins in seconds, not the default ~30 s.
        "broker_session_timeout": 10.0,
        "broker_heartbeat_interval": 1.0,
        "broker_rebalance_timeout": 20.0,
        "broker_commit_every": 100,
        "broker_commit_interval": settings.tracking.commit_interval_s,
        "producer_acks": -1,
        "producer_max_request_size": MAX_VALUE_BYTES,
        "web_enabled": web_port is not None,
        "web_port": 6066 if web_port is None else web_port,
        # Faust keeps per-app files (table stores) here; never in the current directory.
        "datadir": str(settings.embedded.data_dir / "worker"),
        "web_bind": "127.0.0.1",
        "table_standby_replicas": 0,
        "worker_redirect_stdouts": False,
    }


def create_app(settings: Settings) -> faust.App:
    """The worker: three thin agents around the pure logic (see the module docstring)."""
    names = settings.topic_names
    app = faust.App(settings.worker_app_id, **faust_settings(settings))
    partitions = settings.topics.partitions
    raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
    tracker_input = app.topic(names.ci, names.run_signals, partitions=partitions, **raw)
    source_input = app.topic(names.k8s, names.logs, partitions=partitions, **raw)
    links_topic = app.topic(names.run_links, partitions=partitions, **raw)
    signals_topic = app.topic(names.run_signals, partitions=partitions, **raw)
    runs_topic = app.topic(names.runs, **raw)
    tests_topic = app.topic(names.tests, **raw)
    anomalies_topic = app.topic(names.anomalies, **raw)
    dlq_topic = app.topic(names.dlq, **raw)
    runs_table = _bytes_table(app, "run-states", partitions)
    links_table = _bytes_table(app, "run-links", partitions)
    # A run's test results until it ends (then its history entry carries them).
    tests_table = _bytes_table(app, "run-tests", partitions, large=True)
    history_topic = app.topic(names.run_history, partitions=partitions, **raw)
    history_table = _bytes_table(app, "pipeline-history", partitions, large=True)
    test_config = settings.anomalies.tests
    infra_config = settings.anomalies.infra if settings.anomalies.infra.enabled else None
    # A run's log analysis state until it ends (then its history entry carries it).
    logs_table = _bytes_table(app, "run-logs", partitions, large=True)
    log_analyzer = LogAnalyzer(settings.anomalies.logs)
    tracker = RunTracker(TrackerConfig.from_settings(settings))
    log_signals = LogSignals(settings.tracking)
    max_link_buffer = settings.tracking.max_link_buffer

    def load_state(run_id: str) -> RunState | None:
        return decode_state(runs_table.get(run_id.encode()))

    async def dead_letter(
        event: EventT[Any], error: str, error_type: str, component: str, value: bytes | None = None
    ) -> None:
        DEAD_LETTERS.labels(component).inc()
        message = event.message
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
        await dlq_topic.send(key=key, value=letter.to_bytes())

    async def route(signal: RunSignal) -> None:
        if signal.run_id is not None:
            await signals_topic.send(key=signal.run_id.encode(), value=signal.to_bytes())
        elif signal.correlation_key is not None:
            await links_topic.send(key=signal.correlation_key.encode(), value=signal.to_bytes())

    # Where each log stream's first line is (partition, offset): after a restart the router
    # re-reads its streams from there, so open Jenkins stages and test sessions carry on as if
    # the worker had never stopped (keyed like sentinel.logs, so co-partitioned with it).
    stream_starts = _bytes_table(app, "log-stream-starts", partitions)
    recovered: set[int] = set()

    recovery_lines = settings.tracking.log_recovery_lines

    async def resume_log_streams(partition: int, offset: int) -> None:
        # What the previous worker processed ends at the group's committed offset, not at the
        # first offset delivered to this one: Faust may deliver from elsewhere before it seeks
        # to the committed offset. Lines past the commit were not processed: they must give
        # their signals when they come (and lines before it, delivered again, give nothing).
        known = {
            bytes(key): int(where["o"])
            for key, where in ((k, json.loads(v)) for k, v in list(stream_starts.items()))
            if where["p"] == partition
        }
        if not known:
            return  # no stream of this partition to resume: nothing to ask the broker
        committed = committed_offset(settings, settings.worker_app_id, names.logs, partition)
        end = offset if committed is None else committed
        starts = {key: start for key, start in known.items() if start < end}
        for stale in [k for k, start in starts.items() if start < end - recovery_lines]:
            del stream_starts[stale]  # too far back: that stream starts over
            del starts[stale]
        if not starts:
            return
        first = min(starts.values())
        # Read in the event loop on purpose: nothing else of this worker runs until its
        # parsers are rebuilt.
        lines = read_range(settings, names.logs, partition, first, end)
        for key, value, at in lines:
            if key is not None and value is not None and at >= starts.get(key, end):
                # Processed before the restart: the outputs were sent then.
                signals_from_source(False, value, log_signals, (partition, at))
        log.info(
            "resumed %d log streams of %s[%d] from %d lines",
            len(starts),
            names.logs,
            partition,
            len(lines),
        )

    @app.agent(source_input, name="run-signals")
    async def signal_router(stream: StreamT[Any]) -> None:
        async for event in stream.events():
            message = event.message
            if message.topic == names.logs:
                partition = message.partition
                if partition not in recovered:
                    recovered.add(partition)
                    await resume_log_streams(partition, message.offset)
                key = bytes(event.key or b"")
                if key and stream_starts.get(key) is None:
                    where = {"p": message.partition, "o": message.offset}
                    stream_starts[key] = json.dumps(where).encode()
            outcome = signals_from_source(
                message.topic == names.k8s,
                event.value,
                log_signals,
                (message.partition, message.offset),
            )
            if outcome.error is not None:
                await dead_letter(event, outcome.error, "ValidationError", "signal-router")
            for signal in outcome.signals:
                await route(signal)

    @app.agent(links_topic, name="run-linker")
    async def run_linker(stream: StreamT[Any]) -> None:
        async for event in stream.events():
            key = bytes(event.key or b"")
            try:
                signal = RunSignal.model_validate_json(event.value)
                state = LinkState.from_bytes(links_table.get(key), key.decode())
                outcome = link(state, signal, max_link_buffer)
            except ValueError as exc:  # pydantic's ValidationError is a ValueError
                await dead_letter(event, str(exc), type(exc).__name__, "run-linker")
                continue
            if outcome.changed:
                links_table[key] = outcome.state.to_bytes()
            for forward in outcome.forward:
                await route(forward)
            for dropped in outcome.overflow:
                reason = (
                    f"no CI event named the run of {state.key} while "
                    f"tracking.max_link_buffer={max_link_buffer} signals waited"
                )
                await dead_letter(event, reason, "LinkBufferFull", "run-linker", dropped.to_bytes())

    @app.agent(tracker_input, name="run-tracker")
    async def run_tracker(stream: StreamT[Any]) -> None:
        async for event in stream.events():
            partition = event.message.partition
            if tracker.needs_rebuild(partition):
                tracker.rebuild(partition, _states_of(runs_table, partition, partitions))
            kind = "ci" if event.message.topic == names.ci else "signal"
            outcome = tracker.on_message(kind, event.value, partition, load_state)
            if outcome.error is not None:
                log.warning("dead-lettering %s: %s", event.message.offset, outcome.error)
                await dead_letter(
                    event, outcome.error, outcome.error_type or "Error", "run-tracker"
                )
                continue
            for state in outcome.states:
                key = state.run_id.encode()
                value = state.to_bytes()
                runs_table[key] = value
                await runs_topic.send(key=key, value=value)
            for result in outcome.tests:
                await tests_topic.send(key=result.run_id.encode(), value=result.to_bytes())
            for anomaly in outcome.anomalies:
                await anomalies_topic.send(key=anomaly.run_id.encode(), value=anomaly.to_bytes())
            for bind in outcome.binds:
                await route(bind)
            for run_id, results in _by_run(outcome.batch_results).items():
                key = run_id.encode()
                kept = decode_results(tests_table.get(key))
                tests_table[key] = encode_results([*kept, *results])
            for run_id, lines in _lines_by_run(outcome.log_lines).items():
                key = run_id.encode()
                run_logs = RunLogs.load(logs_table.get(key), run_id, log_analyzer)
                known = load_state(run_id)
                miner = log_analyzer.miner_for(known.pipeline if known else None)
                for signal_id, line in lines:
                    run_logs.feed(signal_id, line, log_analyzer, miner)
                logs_table[key] = run_logs.to_bytes()
            for finished in outcome.finished:
                key = finished.run_id.encode()
                run_logs = RunLogs.load(logs_table.get(key), finished.run_id, log_analyzer)
                entry = history_entry(
                    finished, decode_results(tests_table.get(key)), run_logs.state, infra_config
                )
                if entry is not None:
                    history_key, history_message = entry
                    await history_topic.send(
                        key=history_key.encode(), value=history_message.model_dump_json().encode()
                    )

    @app.agent(history_topic, name="run-history")
    async def run_history(stream: StreamT[Any]) -> None:
        async for event in stream.events():
            key = bytes(event.key or b"")
            judged = judge(history_table.get(key), event.value, test_config, log_analyzer)
            if judged.error is not None or judged.record is None:
                await dead_letter(event, judged.error or "?", "ValidationError", "run-history")
                continue
            history_table[key] = judged.record.model_dump_json().encode()
            for anomaly in judged.anomalies:
                await anomalies_topic.send(key=anomaly.run_id.encode(), value=anomaly.to_bytes())

    if settings.tracking.idle_watermark_s is not None:

        @app.timer(interval=1.0)  # type: ignore[untyped-decorator]
        async def wall_clock() -> None:
            # Ticks go through the tracker's own input, so it changes its table in-stream.
            now = datetime.now(UTC)
            for partition in range(partitions):
                tick = watermark_signal(now, final=False)
                await signals_topic.send(key=None, value=tick.to_bytes(), partition=partition)

    return app


def _bytes_table(app: faust.App, name: str, partitions: int, large: bool = False) -> Any:
    """A table of bytes keys and values: the pure code owns (de)serialisation."""
    return app.Table(
        name,
        default=None,
        partitions=partitions,
        key_type=bytes,
        value_type=bytes,
        extra_topic_configs=LARGE_VALUES if large else {},
    )


def _lines_by_run(
    lines: list[tuple[str, str, LogLine]],
) -> dict[str, list[tuple[str, LogLine]]]:
    grouped: dict[str, list[tuple[str, LogLine]]] = {}
    for run_id, signal_id, line in lines:
        grouped.setdefault(run_id, []).append((signal_id, line))
    return grouped


def _by_run(results: list[TestResult]) -> dict[str, list[TestResult]]:
    grouped: dict[str, list[TestResult]] = {}
    for result in results:
        grouped.setdefault(result.run_id, []).append(result)
    return grouped


def _states_of(table: Any, partition: int, partitions: int) -> list[RunState]:
    """The runs of one partition in the table (key hashed as the producers hash it)."""
    states = []
    for key, value in list(table.items()):
        if (murmur2(bytes(key)) & 0x7FFFFFFF) % partitions != partition:
            continue
        state = decode_state(value)
        if state is not None:
            states.append(state)
    return states


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    """Run the worker in the foreground until SIGINT/SIGTERM (the `sentinel worker` command)."""
    from faust.worker import Worker

    # `kill -USR1 <pid>` writes every thread's stack to the log: how to see where a stuck
    # worker is stuck, without stopping it.
    faulthandler.register(os_signal.SIGUSR1, all_threads=True)
    app = create_app(settings)
    worker = Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()
