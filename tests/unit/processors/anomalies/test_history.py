"""A finished run's history entry and its judgement (processors.anomalies.history), as the
agents use them."""

from __future__ import annotations

from datetime import timedelta

from processors.anomalies.history import (
    HistoryEntry,
    decode_results,
    encode_results,
    history_entry,
    judge,
)
from runtime.config import InfraDetectorsConfig, TestDetectorsConfig
from schemas.messages import (
    ContainerState,
    PodState,
    RunAttribution,
    RunStatus,
    TestResult,
)
from schemas.messages import TestStatus as Outcome
from tests.support.nightly_runs import results, run

CONFIG = TestDetectorsConfig(min_samples=3)


def test_results_kept_with_a_run_survive_the_table_encoding() -> None:
    kept = results(run(0))
    back = decode_results(encode_results(kept))
    fields = {"received_at", "message"}  # not kept: the results topic has them
    assert [r.model_dump(exclude=fields) for r in back] == [
        r.model_dump(exclude=fields) for r in kept
    ]
    assert decode_results(None) == []


def test_a_slower_test_is_reported_against_the_history_once_it_has_enough_runs() -> None:
    stored: bytes | None = None
    for n in range(4):
        entry = history_entry(run(n), results(run(n), slow=1.0 + n * 0.01))
        assert entry is not None
        key, record = entry
        assert key == '["nightly", null]'
        judged = judge(stored, record.model_dump_json().encode(), CONFIG)
        assert judged.anomalies == [] and judged.record is not None
        stored = judged.record.model_dump_json().encode()
    slow = run(4)
    entry = history_entry(slow, results(slow, slow=9.0))
    assert entry is not None
    raw = entry[1].model_dump_json().encode()
    judged = judge(stored, raw, CONFIG)
    assert [(a.type, a.subject) for a in judged.anomalies] == [
        ("duration_regression", "tests.test_api::test_c")
    ]
    assert judged.record is not None and judged.history is not None
    # Delivered again (after a restart): same finding, same id, the history unchanged in size.
    again = judge(judged.record.model_dump_json().encode(), raw, CONFIG)
    assert [a.anomaly_id for a in again.anomalies] == [a.anomaly_id for a in judged.anomalies]
    assert again.history is not None and len(again.history.runs) == len(judged.history.runs)


def test_an_infrastructure_failure_is_not_judged_as_a_test_problem() -> None:
    broken = run(9, status=RunStatus.FAILED, attribution=RunAttribution(
        cause="infrastructure", types=["oom_killed"], anomaly_ids=["x"], summary="OOMKilled",
    ))  # fmt: skip
    entry = history_entry(broken, [])
    assert entry is not None and entry[1].run.infra_caused


def test_runs_without_a_pipeline_have_no_history() -> None:
    assert history_entry(run(0, pipeline=None), []) is None


def test_a_broken_entry_is_an_error_not_a_crash() -> None:
    assert judge(None, b"{}", CONFIG).error is not None


def test_a_test_that_failed_while_its_pod_was_oom_killed_is_not_flaky() -> None:
    """The run passed on a retry, so it is not infrastructure-caused as a whole; but the first
    attempt failed while the container was being OOMKilled: that is the node, not the test."""
    state = run(5)
    start = state.started_at
    assert start is not None
    oom = ContainerState(
        name="pytest", state="running", restarts=1, started_at=start + timedelta(seconds=130),
        last_reason="OOMKilled", last_exit_code=137,
        last_started_at=start + timedelta(seconds=5),
        last_finished_at=start + timedelta(seconds=120),
    )  # fmt: skip
    pod = PodState(
        uid="u-5", name="nightly-5-x", phase="Running", containers=[oom],
        created_at=start, started_at=start, updated_at=start + timedelta(seconds=130),
    )  # fmt: skip
    state = state.model_copy(update={"pods": [pod]})

    def attempt(n: int, status: Outcome, second: float) -> TestResult:
        return TestResult(
            run_id=state.run_id, suite="tests.test_api", name="test_pay", status=status,
            attempt=n, duration_s=30.0, source="pytest-log",
            event_time=start + timedelta(seconds=second),
        )  # fmt: skip

    retried = [attempt(1, Outcome.FAILED, 110), attempt(2, Outcome.PASSED, 200)]
    blind = history_entry(state, retried)
    aware = history_entry(state, retried, infra=InfraDetectorsConfig())
    assert blind is not None and aware is not None
    assert [(a.type, a.subject) for a in judge(None, _raw(blind), CONFIG).anomalies] == [
        ("flaky_test", "tests.test_api::test_pay")
    ]
    assert judge(None, _raw(aware), CONFIG).anomalies == []
    assert aware[1].run.tests["tests.test_api::test_pay"].infra_caused
    # A failure outside the OOM window is still the test's own.
    later = [attempt(1, Outcome.FAILED, 170), attempt(2, Outcome.PASSED, 200)]
    still = history_entry(state, later, infra=InfraDetectorsConfig())
    assert still is not None
    assert [a.type for a in judge(None, _raw(still), CONFIG).anomalies] == ["flaky_test"]


def _raw(entry: tuple[str, HistoryEntry]) -> bytes:
    return entry[1].model_dump_json().encode()
