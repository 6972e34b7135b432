"""The worker's agents: each reads its topic, calls the pure logic, and sends what it returns.

    run-signals  sentinel.k8s + sentinel.logs -> RunSignals (processors.runs.k8s_signals,
                 .log_signals), to run-signals by run id, or to run-links by correlation key
                 while no CI event named the run
    run-linker   run-links -> run-signals once the key is bound (processors.runs.linking)
    run-tracker  sentinel.ci + run-signals -> RunStates, test results, structure and infra
                 anomalies, BINDs; keeps each run's test results and log analysis until it ends,
                 and deletes its entries once it is retired (tracking.retain_ended_s)
                 (processors.runs.tracking, processors.anomalies.logs)
    run-history  run-history (by pipeline, branch) -> test and log anomalies against the
                 pipeline's history (processors.anomalies.history)

Agent names are part of the stored state (consumer group members, changelogs): never rename.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiokafka.partitioner import murmur2  # type: ignore[import-untyped]
from faust.types import TP, StreamT
from mode import BaseSignalT

from processors.anomalies.history import (
    RunLogs,
    decode_results,
    encode_results,
    history_entry,
    judge,
    miner_key,
)
from processors.runs.linking import LinkState, link
from processors.runs.source_signals import signals_from_source, watermark_signal
from processors.runs.tracking import LATE_FOR_RETIRED, Outcome, decode_state
from processors.worker.context import WorkerContext, log
from processors.worker.log_recovery import (
    forget_streams,
    note_stream_start,
    resume_log_streams,
)
from processors.worker.metrics import observe_latency
from runtime.metrics import LATE_FOR_RETIRED as LATE_INPUTS
from runtime.metrics import RUNS_RETIRED
from schemas.keys import stream_key
from schemas.messages import LogLine, RunSignal, RunState, TestResult


def add_signal_router(ctx: WorkerContext) -> None:
    names = ctx.names
    partitions = ctx.settings.topics.partitions

    owned: set[int] = set()  # this worker's sentinel.logs partitions, as of the last assignment

    @ctx.app.on_partitions_assigned.connect
    async def release_streams_of_lost_partitions(
        _app: Any, /, *args: Any, signal: BaseSignalT[Any], **_kwargs: Any
    ) -> None:
        """A `sentinel.logs` partition this worker no longer owns takes its streams' parsers
        with it; should it come back later, it is resumed from its stream starts (issue 17,
        scale-out: a worker that got a partition back carried on with parsers that had missed
        the other worker's lines). Decided at assignment, not at revocation: Faust revokes
        every partition at every rebalance, and one assigned straight back was read by nobody
        else meanwhile, so its parsers stay (a rebuild reaches back only
        `tracking.log_recovery_lines`)."""
        assigned: set[TP] = args[0]  # the whole new assignment
        now = {tp.partition for tp in assigned if tp.topic == names.logs}
        gone = owned - now
        owned.clear()
        owned.update(now)
        if not gone:
            return
        ctx.recovered.difference_update(gone)
        released = ctx.log_signals.release(
            lambda key: _partition_of(stream_key(*key).encode(), partitions) in gone
        )
        log.info("released %d log streams of partitions %s, now elsewhere", released, sorted(gone))

    @ctx.app.agent(ctx.topics.source_input, name="run-signals")
    async def signal_router(stream: StreamT[Any]) -> None:
        async for event in stream.events():
            message = event.message
            if message.topic == names.logs:
                if message.partition not in ctx.recovered:
                    ctx.recovered.add(message.partition)
                    resume_log_streams(ctx, message.partition, message.offset)
                note_stream_start(ctx, bytes(event.key or b""), message.partition, message.offset)
            if await ctx.refused_as_too_large(event, "signal-router"):
                continue
            outcome = signals_from_source(
                message.topic == names.k8s,
                event.value,
                ctx.log_signals,
                (message.partition, message.offset),
                key=event.key,
            )
            if outcome.error is not None:
                await ctx.dead_letter(event, outcome.error, outcome.error_type, "signal-router")
            if outcome.signals:
                observe_latency(message.topic, min(s.event_time for s in outcome.signals))
            for signal in outcome.signals:
                await ctx.route(signal)
            forget_streams(ctx, ctx.log_signals.drain_forgotten())


def add_run_linker(ctx: WorkerContext) -> None:
    max_buffer = ctx.settings.tracking.max_link_buffer
    table = ctx.tables.links

    @ctx.app.agent(ctx.topics.links, name="run-linker")
    async def run_linker(stream: StreamT[Any]) -> None:
        async for event in stream.events():
            key = bytes(event.key or b"")
            try:
                signal = RunSignal.model_validate_json(event.value)
                state = LinkState.from_bytes(table.get(key), key.decode())
                outcome = link(state, signal, max_buffer)
            except ValueError as exc:  # pydantic's ValidationError is a ValueError
                await ctx.dead_letter(event, str(exc), type(exc).__name__, "run-linker")
                continue
            if outcome.forget:
                if table.get(key) is not None:  # the tombstone goes out before a KeyError
                    del table[key]
            elif outcome.changed:
                table[key] = outcome.state.to_bytes()
            for forward in outcome.forward:
                await ctx.route(forward)
            for dropped in outcome.overflow:
                reason = (
                    f"no CI event named the run of {state.key} while "
                    f"tracking.max_link_buffer={max_buffer} signals waited"
                )
                await ctx.dead_letter(
                    event, reason, "LinkBufferFull", "run-linker", dropped.to_bytes()
                )


def add_run_tracker(ctx: WorkerContext) -> None:
    names, partitions = ctx.names, ctx.settings.topics.partitions

    @ctx.app.on_partitions_revoked.connect
    async def forget_revoked(
        _app: Any, /, *args: Any, signal: BaseSignalT[Any], **_kwargs: Any
    ) -> None:
        revoked: set[TP] = args[0]  # Faust sends the revoked set as the one argument
        for tp in revoked:
            if tp.topic in (names.ci, names.run_signals):
                ctx.tracker.forget(tp.partition)

    @ctx.app.agent(ctx.topics.tracker_input, name="run-tracker")
    async def run_tracker(stream: StreamT[Any]) -> None:
        async for event in stream.events():
            partition = event.message.partition
            if ctx.tracker.needs_rebuild(partition):
                states = _states_of(ctx.tables.runs, partition, partitions)
                ctx.tracker.rebuild(partition, states)
            kind = "ci" if event.message.topic == names.ci else "signal"
            if kind == "ci" and await ctx.refused_as_too_large(event, "run-tracker"):
                continue
            outcome = ctx.tracker.on_message(
                kind, event.value, partition, ctx.load_state, event.key
            )
            if outcome.error is not None:
                error_type = outcome.error_type or "Error"
                if error_type == LATE_FOR_RETIRED:
                    LATE_INPUTS.inc()
                await ctx.dead_letter(event, outcome.error, error_type, "run-tracker")
                continue
            await _send_tracked(ctx, outcome)
            _keep_run_inputs(ctx, outcome)
            await _send_finished(ctx, outcome)
            _retire(ctx, outcome.retired)
            observe_latency(event.message.topic, outcome.event_time)


async def _send_tracked(ctx: WorkerContext, outcome: Outcome) -> None:
    """Run states (table first: it is what the next message reads), tests, anomalies, BINDs."""
    topics = ctx.topics
    for state in outcome.states:
        key, value = state.run_id.encode(), state.to_bytes()
        ctx.tables.runs[key] = value
        await topics.runs.send(key=key, value=value)
    for result in outcome.tests:
        await topics.tests.send(key=result.run_id.encode(), value=result.to_bytes())
    for anomaly in outcome.anomalies:
        await topics.anomalies.send(key=anomaly.run_id.encode(), value=anomaly.to_bytes())
    for bind in outcome.binds:
        await ctx.route(bind)


def _keep_run_inputs(ctx: WorkerContext, outcome: Outcome) -> None:
    """A running run's test results and log analysis, kept until it ends."""
    tables, analyzer = ctx.tables, ctx.log_analyzer
    for run_id, results in _by_run(outcome.batch_results).items():
        key = run_id.encode()
        kept = decode_results(tables.tests.get(key))
        tables.tests[key] = encode_results([*kept, *results])
    for run_id, lines in _lines_by_run(outcome.log_lines).items():
        key = run_id.encode()
        run_logs = RunLogs.load(tables.logs.get(key), run_id, analyzer)
        known = ctx.load_state(run_id)
        miner = analyzer.miner_for(miner_key(known))
        for signal_id, line in lines:
            run_logs.feed(signal_id, line, analyzer, miner)
        tables.logs[key] = run_logs.to_bytes()
    for run_id, signal_id, pod, when in outcome.log_activity:
        key = run_id.encode()
        run_logs = RunLogs.load(tables.logs.get(key), run_id, analyzer)
        run_logs.note_activity(signal_id, pod, when, analyzer)
        tables.logs[key] = run_logs.to_bytes()


async def _send_finished(ctx: WorkerContext, outcome: Outcome) -> None:
    """A finished run's history entry, to be judged against its pipeline's history."""
    tables = ctx.tables
    for finished in outcome.finished:
        key = finished.run_id.encode()
        run_logs = RunLogs.load(tables.logs.get(key), finished.run_id, ctx.log_analyzer)
        results = decode_results(tables.tests.get(key))
        entry = history_entry(finished, results, run_logs.state, ctx.infra_config)
        if entry is not None:
            history_key, message = entry
            value = message.model_dump_json().encode()
            await ctx.topics.history.send(key=history_key.encode(), value=value)


def _retire(ctx: WorkerContext, run_ids: list[str]) -> None:
    """Forget retired runs: `del` writes a tombstone to each table's changelog, so a restarted
    worker does not recover them either. Their final state stays on the runs topic."""
    tables = ctx.tables
    for run_id in run_ids:
        key = run_id.encode()
        for table in (tables.runs, tables.tests, tables.logs):
            # Faust sends the tombstone before it deletes, and a missing key would raise after.
            if table.get(key) is not None:
                del table[key]
        RUNS_RETIRED.inc()


def add_run_history(ctx: WorkerContext) -> None:
    table = ctx.tables.history

    @ctx.app.agent(ctx.topics.history, name="run-history")
    async def run_history(stream: StreamT[Any]) -> None:
        async for event in stream.events():
            key = bytes(event.key or b"")
            judged = judge(table.get(key), event.value, ctx.test_config, ctx.log_analyzer)
            if judged.error is not None or judged.record is None:
                error = judged.error or "?"
                await ctx.dead_letter(event, error, "ValidationError", "run-history")
                continue
            table[key] = judged.record.model_dump_json().encode()
            for anomaly in judged.anomalies:
                value = anomaly.to_bytes()
                await ctx.topics.anomalies.send(key=anomaly.run_id.encode(), value=value)


def add_wall_clock(ctx: WorkerContext) -> None:
    """Live mode: the wall clock moves event time on while no input arrives (hung runs)."""
    partitions = ctx.settings.topics.partitions

    @ctx.app.timer(interval=1.0)  # type: ignore[untyped-decorator]
    async def wall_clock() -> None:
        # Ticks go through the tracker's own input, so it changes its table in-stream.
        now = datetime.now(UTC)
        for partition in range(partitions):
            tick = watermark_signal(now, final=False)
            await ctx.topics.signals.send(key=None, value=tick.to_bytes(), partition=partition)


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


def _partition_of(key: bytes, partitions: int) -> int:
    """The partition the producers put `key` in (the Java client's murmur2)."""
    return int((murmur2(key) & 0x7FFFFFFF) % partitions)


def _states_of(table: Any, partition: int, partitions: int) -> list[RunState]:
    """The runs of one partition in the table (key hashed as the producers hash it)."""
    states = []
    for key, value in list(table.items()):
        if _partition_of(bytes(key), partitions) != partition:
            continue
        state = decode_state(value)
        if state is not None:
            states.append(state)
    return states
