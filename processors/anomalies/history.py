"""A finished run's entry in its pipeline's history, and judging it (pure: no Faust, no I/O).

The run tracker hands over a run once it has ended for good (its end-of-run checks done), with
its test results and its log analysis state; the history agent keeps, per (pipeline, branch) — a
table keyed like the history topic — a `PipelineHistory` (test detectors) and a
`PipelineLogBaseline` (log detectors), and judges each new run against them: flaky tests,
duration regressions, failure-rate spikes, missing tests, error spikes and new error templates.
A run delivered twice replaces its own test entry and is recorded once in the log baseline, and
its anomalies have the same ids, so redelivery changes nothing.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from processors.anomalies.infra import detect_infra, infra_affected_tests
from processors.anomalies.logs import LogAnalyzer, PipelineLogBaseline, RunLogState
from processors.anomalies.tests import (
    PipelineHistory,
    RunRecord,
    detect_tests,
    history_key,
    history_scope,
    record,
    summarise_run,
)
from processors.logs.templates import LogTemplateMiner
from runtime.config import InfraDetectorsConfig, TestDetectorsConfig
from schemas.messages import Anomaly, LogLine, RunState, TestResult

_JSON_LIST: TypeAdapter[list[dict[str, object]]] = TypeAdapter(list[dict[str, object]])


class HistoryEntry(BaseModel):
    """A finished run as the history agent receives it (topic run-history)."""

    run: RunRecord
    logs: RunLogState | None = None
    warm: bool = Field(
        default=False,
        description="Read back from the store at start-up (processors.anomalies.warm_start): "
        "recorded if the history does not know the run yet, never judged.",
    )


class PipelineRecord(BaseModel):
    """What the history agent keeps per (pipeline, branch) (table value)."""

    tests: PipelineHistory
    logs: PipelineLogBaseline | None = None


def history_entry(
    state: RunState,
    results: Sequence[TestResult],
    logs: RunLogState | None = None,
    infra: InfraDetectorsConfig | None = None,
) -> tuple[str, HistoryEntry] | None:
    """(history key, entry) of a finished run; None for a run with no pipeline to compare with.

    With `infra`, failed tests that ran during one of the run's infrastructure faults are
    marked infrastructure-caused (never flaky, never a regression) even when the run passed.
    """
    if not state.pipeline:
        return None
    infra_tests: Collection[str] = ()
    if infra is not None and state.attribution is None:
        end = state.finished_at or state.updated_at
        infra_tests = infra_affected_tests(results, detect_infra(state, end, infra)).keys()
    entry = summarise_run(
        state, results, infra_caused=state.attribution is not None, infra_tests=infra_tests
    )
    key = history_key(state.pipeline, state.branch, history_scope(state))
    return key, HistoryEntry(run=entry, logs=logs)


def miner_key(state: RunState | None) -> str | None:
    """Which template miner a run's log lines go to: one per pipeline and scope (see
    `history_scope`), so same-named pipelines of other teams never shape its templates."""
    if state is None or not state.pipeline:
        return None
    scope = history_scope(state)
    return state.pipeline if scope is None else f"{state.pipeline}\x1f{scope}"


@dataclass
class HistoryOutcome:
    record: PipelineRecord | None = None
    anomalies: list[Anomaly] = field(default_factory=list)
    error: str | None = None

    @property
    def history(self) -> PipelineHistory | None:
        return self.record.tests if self.record is not None else None


def judge(
    stored: bytes | None,
    raw: bytes,
    config: TestDetectorsConfig,
    logs: LogAnalyzer | None = None,
) -> HistoryOutcome:
    """Judge one finished run against its pipeline's history; the history with it recorded."""
    try:
        entry = HistoryEntry.model_validate_json(raw)
        kept = PipelineRecord.model_validate_json(stored) if stored is not None else None
    except ValidationError as exc:
        return HistoryOutcome(error=f"not a valid history entry: {exc}")
    run = entry.run
    if entry.warm and kept is not None and _knows(kept, run, config):
        return HistoryOutcome(record=kept)
    history = kept.tests if kept else PipelineHistory(pipeline=run.pipeline, branch=run.branch)
    anomalies = [] if entry.warm else detect_tests(history, run, config)
    baseline = kept.logs if kept else None
    if logs is not None and entry.logs is not None:
        if not run.infra_caused and not entry.warm:  # infrastructure errors are not the app's
            anomalies += logs.detect(entry.logs, baseline, run.run_id, run.finished_at, final=True)
        baseline = logs.update_baseline(baseline, entry.logs, window_stats=not run.infra_caused)
    updated = PipelineRecord(tests=record(history, run, config), logs=baseline)
    return HistoryOutcome(record=updated, anomalies=anomalies)


def _knows(kept: PipelineRecord, run: RunRecord, config: TestDetectorsConfig) -> bool:
    """Whether a warm entry would tell the history nothing: it has the run already, or the
    history is full of runs newer than it (recording it would only push a newer one out)."""
    runs = kept.tests.runs
    if any(known.run_id == run.run_id for known in runs):
        return True
    if kept.logs is not None and run.run_id in kept.logs.recorded:
        return True
    return len(runs) >= config.history_runs and run.order_key < runs[0].order_key


def encode_results(results: Sequence[TestResult]) -> bytes:
    """A run's test results as kept with it until it ends (messages dropped: not needed)."""
    compact = [r.model_dump(mode="json", exclude={"message", "received_at"}) for r in results]
    return _JSON_LIST.dump_json(compact)


def decode_results(raw: bytes | None) -> list[TestResult]:
    if raw is None:
        return []
    return [TestResult.model_validate(item) for item in _JSON_LIST.validate_json(raw)]


class RunLogs(BaseModel):
    """A run's log analysis state with the ids of the lines already in it (table value), so a
    line delivered again after a restart is not counted twice."""

    state: RunLogState
    seen: list[str] = Field(default_factory=list)

    @classmethod
    def load(cls, raw: bytes | None, run_id: str, analyzer: LogAnalyzer) -> RunLogs:
        if raw is None:
            return cls(state=analyzer.new_state(run_id))
        return cls.model_validate_json(raw)

    def feed(
        self, signal_id: str, line: LogLine, analyzer: LogAnalyzer, miner: LogTemplateMiner
    ) -> None:
        if signal_id in self.seen:
            return
        self.seen = [*self.seen[-(MAX_SEEN - 1) :], signal_id]
        analyzer.feed(self.state, line, miner)

    def note_activity(
        self, signal_id: str, pod: str, when: datetime, analyzer: LogAnalyzer
    ) -> None:
        """A pod of the run logged in this activity bucket (any level)."""
        if signal_id in self.seen:
            return
        self.seen = [*self.seen[-(MAX_SEEN - 1) :], signal_id]
        analyzer.note_activity(self.state, pod, when)

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()


# Redelivery after a crash repeats at most the lines since the worker's last commit (about a
# second of them); this many remembered ids cover that with room to spare.
MAX_SEEN = 2000
