"""Warm-start the worker's baselines from the store's history (the adapter; logic in
processors.anomalies.warm_start).

Reads, per (pipeline, branch), the newest `anomalies.tests.history_runs` runs that finished
within `anomalies.warm_start.lookback_days` (and at least `min_age_s` ago), their test results
and their log lines, and publishes one warm `HistoryEntry` per run to the worker's run-history
topic, oldest first. The history agent records those its tables do not know yet and judges
none of them, so running this at every start-up is safe. Called by the process that owns the
store (`sentinel up`, `sentinel api`, `sentinel sink`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from processors.anomalies.logs import LogAnalyzer
from processors.anomalies.warm_start import StoredRun, warm_entries
from producers.publisher import KafkaPublisher
from runtime.config import Settings
from runtime.kafka_clients import producer_config
from schemas.messages import TERMINAL_STATUSES, LogLine, RunState, TestResult
from schemas.utc import as_utc as _utc
from sinks.clickhouse.rows import row_to_run_state
from sinks.clickhouse.store import Store

log = logging.getLogger("sentinel.warm_start")


@dataclass(frozen=True)
class WarmStartStats:
    runs: int
    pipelines: int
    test_results: int
    log_lines: int
    seconds: float


def read_history(store: Store, settings: Settings, now: datetime) -> list[StoredRun]:
    """The finished runs a warm start replays, with their test results and log lines."""
    warm = settings.anomalies.warm_start
    db = store.database
    runs_sql = (
        f"SELECT * FROM {db}.runs FINAL"
        " WHERE status IN {statuses:Array(String)} AND pipeline IS NOT NULL AND pipeline != ''"
        " AND finished_at >= {since:DateTime64(3, 'UTC')}"
        " AND finished_at <= {until:DateTime64(3, 'UTC')}"
        " ORDER BY finished_at DESC, run_id DESC"
        " LIMIT {per_history:UInt32} BY pipeline, branch, repository, namespace"
    )
    params: dict[str, Any] = {
        "statuses": sorted(status.value for status in TERMINAL_STATUSES),
        "since": now - timedelta(days=warm.lookback_days),
        "until": now - timedelta(seconds=warm.min_age_s),
        "per_history": settings.anomalies.tests.history_runs,
    }
    states = [row_to_run_state(row) for row in store.query_rows(runs_sql, params)]
    if not states:
        return []
    ids = [state.run_id for state in states]
    results: dict[str, list[TestResult]] = defaultdict(list)
    tests_sql = (
        "SELECT run_id, suite, name, attempt, status, duration_s, source, event_time,"
        f" received_at FROM {db}.test_results WHERE run_id IN {{ids:Array(String)}}"
    )
    for row in store.query_rows(tests_sql, {"ids": ids}):
        results[row["run_id"]].append(_test_result(row))
    lines = _log_lines(store, states, warm.max_log_lines_per_run)
    return [
        StoredRun(state, results.get(state.run_id, []), lines.get(state.run_id, []))
        for state in states
    ]


def _log_lines(store: Store, states: list[RunState], per_run: int) -> dict[str, list[LogLine]]:
    """Each run's lines: stored with its run id, or with one of its correlation keys (the sink
    stores lines as they come, before the worker has tied a pod to its run) within its time.
    One query for every run; the lines are then given to their runs here."""
    if per_run == 0:
        return {}
    windows: dict[str, tuple[datetime, datetime]] = {}
    by_key: dict[str, list[str]] = defaultdict(list)
    for state in states:
        start = state.started_at or state.created_at or state.first_event_at
        end = state.finished_at or state.updated_at
        windows[state.run_id] = (start, max(end, state.last_activity_at or end))
        # A run of its own (a Job, a Tekton run) is keyed by its run id.
        for key in {state.run_id, *state.correlation_keys}:
            by_key[key].append(state.run_id)
    sql = (
        "SELECT event_time, run_id, namespace, pod, container, line, correlation_key,"
        f" received_at FROM {store.database}.log_lines"
        " WHERE (run_id IN {ids:Array(String)} OR correlation_key IN {keys:Array(String)})"
        " AND event_time >= {start:DateTime64(3, 'UTC')}"
        " AND event_time <= {end:DateTime64(3, 'UTC')}"
        " ORDER BY event_time"
    )
    params = {
        "ids": list(windows),
        "keys": list(by_key),
        "start": min(start for start, _ in windows.values()),
        "end": max(end for _, end in windows.values()),
    }
    out: dict[str, list[LogLine]] = defaultdict(list)
    for row in store.query_rows(sql, params):
        at = _utc(row["event_time"])
        owners = by_key.get(row["run_id"], []) + by_key.get(row["correlation_key"], [])
        for run_id in dict.fromkeys(owners):
            start, end = windows[run_id]
            if start <= at <= end and len(out[run_id]) < per_run:
                out[run_id].append(
                    LogLine(
                        namespace=row["namespace"],
                        pod=row["pod"],
                        container=row["container"],
                        line=row["line"],
                        correlation_key=row["correlation_key"] or None,
                        run_id=run_id,
                        event_time=at,
                        received_at=_utc(row["received_at"]),
                    )
                )
    return out


def _test_result(row: dict[str, Any]) -> TestResult:
    return TestResult(
        run_id=row["run_id"],
        suite=row["suite"] or None,
        name=row["name"],
        attempt=row["attempt"],
        status=row["status"],
        duration_s=row["duration_s"],
        source=row["source"],
        event_time=_utc(row["event_time"]),
        received_at=_utc(row["received_at"]),
    )


def warm_start(
    settings: Settings, store: Store, now: datetime | None = None
) -> WarmStartStats | None:
    """Publish the store's recent history to the worker's run-history topic (None when off)."""
    if not settings.anomalies.warm_start.enabled:
        return None
    began = time.monotonic()
    stored = read_history(store, settings, now or datetime.now(UTC))
    infra = settings.anomalies.infra if settings.anomalies.infra.enabled else None
    entries = warm_entries(stored, LogAnalyzer(settings.anomalies.logs), infra)
    if entries:
        publisher = KafkaPublisher(producer_config(settings), component="warm-start")
        try:
            topic = settings.topic_names.run_history
            futures = [
                publisher.submit(topic, key.encode(), entry.model_dump_json().encode())
                for key, entry in entries
            ]
            for future in futures:
                future.result(settings.kafka.delivery_timeout_s + 30)
        finally:
            publisher.close()
    stats = WarmStartStats(
        runs=len(entries),
        pipelines=len({key for key, _ in entries}),
        test_results=sum(len(run.results) for run in stored),
        log_lines=sum(len(run.lines) for run in stored),
        seconds=time.monotonic() - began,
    )
    log.info(
        "warm start: %d finished runs of %d pipeline histories sent to the worker "
        "(%d test results, %d log lines read back) in %.1f s",
        stats.runs,
        stats.pipelines,
        stats.test_results,
        stats.log_lines,
        stats.seconds,
    )
    return stats


def start_warm_start(settings: Settings, store: Store) -> threading.Thread | None:
    """Warm-start in the background (a long history must not hold up start-up); a failure is
    logged with what to do, and the worker then learns its baselines from live runs only."""
    if not settings.anomalies.warm_start.enabled:
        return None

    def run() -> None:
        try:
            warm_start(settings, store)
        except Exception:
            log.exception(
                "warm start failed: the worker will build its baselines from new runs only "
                "(check that the store is readable and the broker reachable, then restart; "
                "or set anomalies.warm_start.enabled: false)"
            )

    thread = threading.Thread(target=run, name="warm-start", daemon=True)
    thread.start()
    return thread
