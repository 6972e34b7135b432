"""Rebuilding the log parsers of a partition's open streams after a restart.

A log stream's parsers (test sessions, Jenkins stages) hold state built from earlier lines. A
restarted worker re-reads each open stream of a `sentinel.logs` partition from its first line
up to what the previous worker had processed, without sending anything again, so that open
stages and test sessions carry on as if the worker had never stopped.
"""

from __future__ import annotations

import json

from processors.runs.log_signals import StreamKey
from processors.runs.source_signals import signals_from_source
from processors.worker.context import WorkerContext, log
from runtime.kafka_clients import committed_offset, read_range
from schemas.keys import stream_key


def note_stream_start(ctx: WorkerContext, key: bytes, partition: int, offset: int) -> None:
    """Remember where a stream's first line is, the first time the stream is seen."""
    if key and ctx.tables.stream_starts.get(key) is None:
        where = {"p": partition, "o": offset}
        ctx.tables.stream_starts[key] = json.dumps(where).encode()


def forget_streams(ctx: WorkerContext, streams: list[StreamKey]) -> None:
    """Streams the router finished (silent for retain_ended_s, or evicted): a restart must not
    re-read them, and their entries must not stay forever (issue 17)."""
    starts = ctx.tables.stream_starts
    for namespace, pod, container in streams:
        key = stream_key(namespace, pod, container).encode()
        if starts.get(key) is not None:  # Faust sends the tombstone, then raises if missing
            del starts[key]


def resume_log_streams(ctx: WorkerContext, partition: int, offset: int) -> None:
    """Feed the partition's open streams what the previous worker had processed of them.

    What it processed ends at the group's committed offset, not at the first offset delivered
    to this worker: Faust may deliver from elsewhere before it seeks to the committed offset.
    Lines past the commit were not processed: they give their signals when they come (and lines
    before it, delivered again, give nothing).
    """
    settings, names = ctx.settings, ctx.names
    starts_table = ctx.tables.stream_starts
    known = {
        bytes(key): int(where["o"])
        for key, where in ((k, json.loads(v)) for k, v in list(starts_table.items()))
        if where["p"] == partition
    }
    if not known:
        return  # no stream of this partition to resume: nothing to ask the broker
    committed = committed_offset(settings, settings.worker_app_id, names.logs, partition)
    end = offset if committed is None else committed
    starts = {key: start for key, start in known.items() if start < end}
    oldest_kept = end - settings.tracking.log_recovery_lines
    for stale in [key for key, start in starts.items() if start < oldest_kept]:
        del starts_table[stale]  # too far back: that stream starts over
        del starts[stale]
    if not starts:
        return
    # Read in the event loop on purpose: nothing else of this worker runs until its parsers
    # are rebuilt.
    lines = read_range(settings, names.logs, partition, min(starts.values()), end)
    for key, value, at in lines:
        if key is None or value is None or at < starts.get(key, end):
            continue
        # Processed before the restart: the outputs were sent then. A line refused then (too
        # large, or under another key) is refused again here, and gives nothing.
        if ctx.settings.kafka.value_problem(len(value)) is None:
            signals_from_source(False, value, ctx.log_signals, (partition, at), key=key)
    log.info(
        "resumed %d log streams of %s[%d] from %d lines",
        len(starts),
        names.logs,
        partition,
        len(lines),
    )
