"""A finished run's entry in its pipeline's history, and judging it (pure: no Faust, no I/O).

The run tracker hands over a run once it has ended for good (its end-of-run checks done); the
history agent keeps one `PipelineHistory` per (pipeline, branch) — a table keyed like the
history topic — and judges each new run against the runs that finished before it
(`processors.test_detectors`). A run delivered twice replaces its own entry, and its anomalies
have the same ids, so redelivery changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from pydantic import TypeAdapter, ValidationError

from processors.test_detectors import (
    PipelineHistory,
    RunRecord,
    detect_tests,
    history_key,
    record,
    summarise_run,
)
from schemas.messages import Anomaly, RunState, TestResult
from sentinel.config import TestDetectorsConfig

_JSON_LIST: TypeAdapter[list[dict[str, object]]] = TypeAdapter(list[dict[str, object]])


def history_entry(state: RunState, results: Sequence[TestResult]) -> tuple[str, RunRecord] | None:
    """(history key, entry) of a finished run; None for a run with no pipeline to compare with."""
    if not state.pipeline:
        return None
    entry = summarise_run(state, results, infra_caused=state.attribution is not None)
    return history_key(state.pipeline, state.branch), entry


@dataclass
class HistoryOutcome:
    history: PipelineHistory | None = None
    anomalies: list[Anomaly] = field(default_factory=list)
    error: str | None = None


def judge(stored: bytes | None, raw: bytes, config: TestDetectorsConfig) -> HistoryOutcome:
    """Judge one run entry against its pipeline's history; the history with it recorded."""
    try:
        entry = RunRecord.model_validate_json(raw)
    except ValidationError as exc:
        return HistoryOutcome(error=f"not a valid RunRecord: {exc}")
    history = (
        PipelineHistory.model_validate_json(stored)
        if stored is not None
        else PipelineHistory(pipeline=entry.pipeline, branch=entry.branch, runs=[])
    )
    anomalies = detect_tests(history, entry, config)
    return HistoryOutcome(history=record(history, entry, config), anomalies=anomalies)


def encode_results(results: Sequence[TestResult]) -> bytes:
    """A run's test results as kept with it until it ends (messages dropped: not needed)."""
    compact = [r.model_dump(mode="json", exclude={"message", "received_at"}) for r in results]
    return _JSON_LIST.dump_json(compact)


def decode_results(raw: bytes | None) -> list[TestResult]:
    if raw is None:
        return []
    return [TestResult.model_validate(item) for item in _JSON_LIST.validate_json(raw)]
