"""Finished runs of one nightly pipeline and their test results, for the history tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from schemas.messages import RunState, RunStatus, TestCounts, TestResult
from schemas.messages import TestStatus as Outcome

T0 = datetime(2026, 4, 1, 2, 0, tzinfo=UTC)


def run(n: int, **fields: object) -> RunState:
    start = T0 + timedelta(days=n)
    values: dict[str, object] = {
        "run_id": f"job:qa/nightly-{n}",
        "provider": "kubernetes",
        "provider_run_id": f"nightly-{n}",
        "pipeline": "nightly",
        "status": RunStatus.SUCCEEDED,
        "started_at": start,
        "finished_at": start + timedelta(seconds=300),
        "first_event_at": start,
        "updated_at": start + timedelta(seconds=300),
        "tests": TestCounts(total=3, passed=3),
    }
    values.update(fields)
    return RunState.model_validate(values)


def results(state: RunState, slow: float = 1.0) -> list[TestResult]:
    at = state.finished_at or T0
    return [
        TestResult(
            run_id=state.run_id, suite="tests.test_api", name=name, status=Outcome.PASSED,
            duration_s=duration, source="pytest-log", event_time=at,
        )
        for name, duration in (("test_a", 1.0), ("test_b", 2.0), ("test_c", slow))
    ]  # fmt: skip
