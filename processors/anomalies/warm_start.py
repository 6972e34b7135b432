"""Warm start: finished runs read back from the store become history entries (pure).

A worker that starts with empty baselines (a new deployment beside a ClickHouse that already
holds months of runs, changelog topics lost or a new app id) would judge every pipeline with
cold-start margins and then against a handful of runs. The store already
has what the baselines are made of: each finished run, its test results and its log lines. At
start-up they are read back (sentinel/warm_start.py) and turned here into the same
`HistoryEntry` the tracker sends when a run ends, marked `warm`: the history agent records a
warm entry without judging it (its anomalies, if any, were reported when it ran) and only when
its pipeline's history does not know the run yet, so warming twice, or after the live worker
has moved on, changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from processors.anomalies.history import HistoryEntry, history_entry, miner_key
from processors.anomalies.logs import LogAnalyzer
from processors.logs.levels import worth_analysing
from runtime.config import InfraDetectorsConfig
from schemas.messages import LogLine, RunState, TestResult


@dataclass(frozen=True)
class StoredRun:
    """A finished run as the store holds it, with its test results and log lines."""

    state: RunState
    results: Sequence[TestResult] = ()
    lines: Sequence[LogLine] = ()


def warm_entries(
    runs: Iterable[StoredRun], analyzer: LogAnalyzer, infra: InfraDetectorsConfig | None = None
) -> list[tuple[str, HistoryEntry]]:
    """(history key, warm entry) per finished run with a pipeline, oldest first.

    Tests are attributed to infrastructure faults as when the run ended live (`infra`). Log
    lines are analysed exactly as the worker analyses them live (only warning/error lines
    and stack-trace continuations, in event-time order, on the pipeline's miner), so the log
    baseline a warm start builds is the one living through those runs would have built.
    """
    stored = sorted(
        (run for run in runs if run.state.status.terminal and run.state.pipeline),
        key=lambda run: (run.state.finished_at or run.state.updated_at, run.state.run_id),
    )
    out: list[tuple[str, HistoryEntry]] = []
    for run in stored:
        state = run.state
        logs = None
        analysed = sorted(
            (line for line in run.lines if worth_analysing(line.line)),
            key=lambda line: (line.event_time, line.pod, line.container),
        )
        if run.lines:
            logs = analyzer.new_state(state.run_id, state.pipeline)
            miner = analyzer.miner_for(miner_key(state))
            for line in analysed:
                analyzer.feed(logs, line, miner)
            for line in run.lines:  # every line, as the live worker's activity signals
                analyzer.note_activity(logs, line.pod, line.event_time)
        entry = history_entry(state, run.results, logs, infra)
        if entry is not None:
            key, message = entry
            out.append((key, message.model_copy(update={"warm": True})))
    return out
