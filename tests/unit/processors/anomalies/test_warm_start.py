"""Warm entries (processors.anomalies.warm_start) and how the history agent takes them
(processors.anomalies.history).

The rule a user relies on: a worker warm-started from the store judges the next run exactly as a
worker that lived through the history, and a warm start repeated (every start-up) or racing the
live worker changes nothing.
"""

from __future__ import annotations

from datetime import timedelta

from processors.anomalies.history import HistoryEntry, history_entry, judge
from processors.anomalies.logs import LogAnalyzer
from processors.anomalies.warm_start import StoredRun, warm_entries
from runtime.config import LogDetectorsConfig, TestDetectorsConfig
from schemas.messages import LogLine, RunState, RunStatus
from tests.support.nightly_runs import results, run

CONFIG = TestDetectorsConfig(min_samples=3, history_runs=4)
LOGS = LogAnalyzer(LogDetectorsConfig(min_samples=3))


def lines(state: RunState, *texts: str) -> list[LogLine]:
    start = state.started_at
    assert start is not None
    return [
        LogLine(
            namespace="qa", pod=f"{state.provider_run_id}-x1", container="e2e", line=text,
            correlation_key=state.run_id, event_time=start + timedelta(seconds=i),
        )
        for i, text in enumerate(texts)
    ]  # fmt: skip


NOISE = ("INFO starting", "ERROR payment gateway returned 503 for order 1234, retrying")
NEW = "ERROR ledger write failed: disk quota exceeded on volume pvc-77aa"


def stored_run(n: int, *texts: str) -> StoredRun:
    state = run(n)
    return StoredRun(state, results(state), lines(state, *texts))


def feed(stored: bytes | None, entries: list[tuple[str, HistoryEntry]]) -> tuple[bytes, list[str]]:
    found: list[str] = []
    for _key, entry in entries:
        judged = judge(stored, entry.model_dump_json().encode(), CONFIG, LOGS)
        assert judged.error is None and judged.record is not None
        found += [f"{a.type}:{a.run_id}" for a in judged.anomalies]
        stored = judged.record.model_dump_json().encode()
    assert stored is not None
    return stored, found


def live(state: RunState, *texts: str, slow: float = 1.0) -> list[tuple[str, HistoryEntry]]:
    logs = LOGS.new_state(state.run_id, state.pipeline)
    miner = LOGS.miner_for(state.pipeline)
    for line in lines(state, *texts):
        LOGS.feed(logs, line, miner)
    entry = history_entry(state, results(state, slow=slow), logs)
    assert entry is not None
    return [entry]


def test_warm_entries_are_the_finished_runs_with_a_pipeline_oldest_first() -> None:
    runs = [stored_run(2, *NOISE), stored_run(0, *NOISE), stored_run(1)]
    running = StoredRun(run(3, status=RunStatus.RUNNING, finished_at=None))
    lonely = StoredRun(run(4, pipeline=None))
    entries = warm_entries([*runs, running, lonely], LOGS)
    assert [entry.run.run_id for _, entry in entries] == [f"job:qa/nightly-{n}" for n in range(3)]
    assert all(entry.warm for _, entry in entries)
    assert {key for key, _ in entries} == {'["nightly", null]'}
    # Only the lines the worker analyses live (warnings, errors) are in the log state.
    by_id = {entry.run.run_id: entry for _, entry in entries}
    assert by_id["job:qa/nightly-1"].logs is None  # logged nothing
    state = by_id["job:qa/nightly-0"].logs
    assert state is not None and len(state.templates) == 1
    assert len(by_id["job:qa/nightly-0"].run.tests) == 3


def test_a_warm_started_history_judges_the_next_run_as_living_through_it_would() -> None:
    history = [stored_run(n, *NOISE) for n in range(3)]
    warmed, found = feed(None, warm_entries(history, LOGS))
    assert found == []  # warm entries are recorded, never judged
    lived, found = feed(None, [e for h in history for e in live(h.state, *NOISE)])
    assert found == []
    nxt = run(3)
    for stored in (warmed, lived):
        _, found = feed(stored, live(nxt, *NOISE, NEW, slow=9.0))
        assert sorted(found) == [
            "duration_regression:job:qa/nightly-3",
            "new_error_template:job:qa/nightly-3",
        ]


def test_warming_again_or_after_the_live_worker_moved_on_changes_nothing() -> None:
    history = [stored_run(n, *NOISE) for n in range(6)]
    warmed, _ = feed(None, warm_entries(history, LOGS))
    assert feed(warmed, warm_entries(history, LOGS))[0] == warmed  # every start-up
    # The live worker has judged newer runs since: the history (4 runs) is full of runs newer
    # than the oldest warm ones, which must not push those out.
    newer, _ = feed(warmed, [e for n in (6, 7) for e in live(run(n), *NOISE)])
    assert feed(newer, warm_entries(history, LOGS))[0] == newer
    # A pipeline the worker never saw is learned.
    other = [StoredRun(run(n, pipeline="weekly"), results(run(n))) for n in range(2)]
    weekly, _ = feed(None, warm_entries(other, LOGS))
    assert b"weekly" in weekly
