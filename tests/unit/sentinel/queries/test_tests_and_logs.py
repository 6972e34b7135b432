"""A run's tests grouped and flagged; its log lines numbered, annotated, filtered, bucketed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from schemas.messages import Anomaly, AnomalyCategory, Severity, TestResult
from schemas.messages import TestStatus as Status
from sentinel.queries import logs as lq
from sentinel.queries import tests as tq

T0 = datetime(2026, 2, 4, 6, 0, tzinfo=UTC)
RUN = "job:ci/orders-api-tests-29503080"


def result(name: str, status: str, attempt: int = 1, at: float = 10, **extra: Any) -> TestResult:
    return TestResult(
        run_id=RUN,
        suite="tests.unit.test_orders",
        name=name,
        status=Status(status),
        attempt=attempt,
        duration_s=extra.pop("duration_s", 1.0),
        source=extra.pop("source", "pytest-log"),
        event_time=T0 + timedelta(seconds=at),
        **extra,
    )


def anomaly(type_: str, subject: str, start: float, end: float) -> Anomaly:
    return Anomaly(
        anomaly_id=f"{type_}-{subject}",
        run_id=RUN,
        category=AnomalyCategory.INFRA if type_ == "oom_killed" else AnomalyCategory.TEST,
        type=type_,
        severity=Severity.ERROR,
        subject=subject,
        summary="s",
        window_start=T0 + timedelta(seconds=start),
        window_end=T0 + timedelta(seconds=end),
    )


def test_cases_failed_first_then_flaky_and_duplicates_count_once() -> None:
    results = [
        result("test_ok", "passed"),
        result("test_retry", "failed", 1, message="AssertionError: 3 != 4"),
        result("test_retry", "passed", 2),
        result("test_broken", "failed", message="boom"),
        result("test_broken", "failed", source="junit-xml"),  # the same attempt, reported twice
        result("test_skip", "skipped"),
    ]
    cases = tq.test_cases(results, [])
    assert [c.name for c in cases] == ["test_broken", "test_retry", "test_ok", "test_skip"]
    broken, retry = cases[0], cases[1]
    assert len(broken.attempts) == 1 and broken.message == "boom"
    assert retry.flaky and retry.status == Status.PASSED
    assert retry.message == "AssertionError: 3 != 4"
    counts = tq.counts(cases)
    assert (counts.total, counts.passed, counts.failed, counts.skipped, counts.flaky) == (
        4,
        2,
        1,
        1,
        1,
    )


def test_a_failure_during_an_oom_kill_is_infrastructure_caused() -> None:
    results = [result("test_checkout", "failed", at=30, duration_s=10)]
    oom = anomaly("oom_killed", "pod-x/pytest", 25, 40)
    [case] = tq.test_cases(results, [oom])
    assert case.infra_caused
    [case] = tq.test_cases(results, [anomaly("oom_killed", "pod-x/pytest", 100, 110)])
    assert not case.infra_caused


def test_a_flaky_test_anomaly_marks_the_test_and_filters_page() -> None:
    key = "tests.unit.test_orders::test_a"
    cases = tq.test_cases(
        [result("test_a", "passed"), result("test_b", "passed")],
        [anomaly("flaky_test", key, 0, 1)],
    )
    assert [c.key for c in cases if c.flaky] == [key]
    assert cases[0].anomaly_ids == [f"flaky_test-{key}"]
    assert [c.name for c in cases if tq.matches(c, "flaky", None)] == ["test_a"]
    assert [c.name for c in cases if tq.matches(c, None, "TEST_B")] == ["test_b"]
    first, after = tq.page(cases, None, 1)
    rest, end = tq.page(cases, after, 1)
    assert [first[0].name, rest[0].name] == ["test_a", "test_b"] and end is None


def line_rows() -> list[dict[str, Any]]:
    texts = [
        "INFO starting",
        "ERROR payment 4711 failed: timeout after 30s",
        "ERROR payment 4712 failed: timeout after 31s",
        "WARNING retrying order 9",
        "plain output",
    ]
    return [
        {
            "n": i + 1,
            "event_time": T0 + timedelta(seconds=i * 10),
            "namespace": "ci",
            "pod": "p",
            "container": "c",
            "line": text,
            "truncated": False,
            "level": "",
            "template_id": "",
            "template": "",
        }
        for i, text in enumerate(texts)
    ]


def test_lines_get_levels_and_error_templates() -> None:
    lines = lq.annotate(line_rows())
    assert [line.level for line in lines] == ["info", "error", "error", "warning", ""]
    assert lines[1].template_id and lines[1].template_id == lines[2].template_id
    assert "<" in lines[1].template  # the numbers are masked
    assert lines[0].template_id == "" and lines[3].template_id != ""
    [top, *_] = lq.template_counts(lines)
    assert (top.lines, top.errors) == (2, 2)


def test_stored_annotations_win() -> None:
    rows = line_rows()
    rows[0].update(level="error", template_id="Tstored", template="stored <*>")
    line = lq.annotate(rows)[0]
    assert (line.level, line.template_id) == ("error", "Tstored")


def test_filters_keep_the_line_numbers_and_pages_follow_them() -> None:
    lines = lq.annotate(line_rows())
    errors, after = lq.page(lines, lq.LogFilters(level="error"), 0, 1)
    assert [line.n for line in errors] == [2] and after == 2
    more, end = lq.page(lines, lq.LogFilters(level="error"), after, 1)
    assert [line.n for line in more] == [3] and end is None
    found, _ = lq.page(lines, lq.LogFilters(q="RETRYING"), 0, 10)
    assert [line.n for line in found] == [4]
    warnings, _ = lq.page(lines, lq.LogFilters(level="warning"), 0, 10)
    assert [line.n for line in warnings] == [2, 3, 4]
    assert lq.after_for(50, 40) == 9 and lq.after_for(3, 40) == 0


def test_density_counts_errors_per_bucket() -> None:
    lines = lq.annotate(line_rows())
    width, buckets = lq.density(lines, T0, T0 + timedelta(seconds=40), 4)
    assert width == 10
    assert [(b.lines, b.errors) for b in buckets] == [(1, 0), (1, 1), (1, 1), (2, 0)]


def test_run_lines_sql_binds_the_run_and_its_keys() -> None:
    from schemas.messages import RunState, RunStatus

    run = RunState(
        run_id=RUN,
        provider="kubernetes",
        provider_run_id=RUN,
        status=RunStatus.RUNNING,
        correlation_keys=["job:ci/x"],
        first_event_at=T0,
        updated_at=T0,
    )
    sql, params = lq.run_lines_sql("db", run, 100)
    assert "db.log_lines" in sql and "{end:" not in sql  # a running run has no end yet
    assert params["keys"] == sorted({RUN, "job:ci/x"}) and params["limit"] == 100
    done = run.model_copy(update={"status": RunStatus.SUCCEEDED, "finished_at": T0})
    sql, params = lq.run_lines_sql("db", done, 100)
    assert "{end:DateTime64(3, 'UTC')}" in sql and params["end"] == T0


def test_annotated_lines_of_ended_runs_are_kept_within_a_line_budget() -> None:
    from sentinel.views.service import LineCache

    cache = LineCache(capacity=6)
    lines = lq.annotate(line_rows())  # 5 lines
    cache.put(("a",), lines)
    assert cache.get(("a",)) is lines
    cache.put(("b",), lines[:3])  # 8 lines in all: the least recently used goes
    assert cache.get(("a",)) is None and cache.get(("b",)) == lines[:3]
    cache.put(("c",), lines * 2)  # more than the whole budget: not kept
    assert cache.get(("c",)) is None
