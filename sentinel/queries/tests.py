"""A run's test results grouped into test cases, flagged flaky and infrastructure-caused."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from processors.anomalies.infra import infra_affected_tests
from processors.anomalies.tests import result_key
from schemas.messages import Anomaly, TestResult, TestStatus
from sentinel.queries.common import aware
from sentinel.queries.models import TestAttempt, TestCase, TestCounts

FAILING = frozenset({TestStatus.FAILED, TestStatus.ERROR})
STATUS_FILTERS = ("failed", "passed", "skipped", "error", "flaky", "infra")


def run_tests_sql(database: str) -> str:
    return (
        "SELECT run_id, suite, name, attempt, status, duration_s, message, source, event_time,"
        f" received_at FROM {database}.test_results WHERE run_id = {{run_id:String}}"
        " ORDER BY suite, name, attempt, event_time"
    )


def row_to_result(row: dict[str, Any]) -> TestResult:
    return TestResult(
        run_id=row["run_id"],
        suite=row["suite"] or None,
        name=row["name"],
        status=TestStatus(row["status"]),
        duration_s=row["duration_s"],
        attempt=row["attempt"],
        message=row.get("message"),
        source=row["source"],
        event_time=aware(row["event_time"]),
        received_at=aware(row.get("received_at") or row["event_time"]),
    )


def test_cases(results: Sequence[TestResult], anomalies: Sequence[Anomaly]) -> list[TestCase]:
    """One case per test key, attempts in order (a duplicate report of one attempt, from logs
    and JUnit XML, counts once), sorted failed first, then flaky, then the rest by key."""
    by_key: dict[str, dict[int, TestResult]] = {}
    for result in results:
        attempts = by_key.setdefault(result_key(result.suite, result.name), {})
        attempts.setdefault(result.attempt, result)
    infra = infra_affected_tests(results, anomalies)
    flagged: dict[str, list[str]] = {}
    for anomaly in anomalies:
        if anomaly.category.value == "test":
            flagged.setdefault(anomaly.subject, []).append(anomaly.anomaly_id)
    flaky_subjects = {a.subject for a in anomalies if a.type == "flaky_test"}
    cases = [
        _case(key, attempts, key in infra, key in flaky_subjects, flagged.get(key, []))
        for key, attempts in by_key.items()
    ]
    return sorted(cases, key=sort_key)


def _case(
    key: str,
    attempts: dict[int, TestResult],
    infra_caused: bool,
    flaky_anomaly: bool,
    anomaly_ids: list[str],
) -> TestCase:
    ordered = [attempts[number] for number in sorted(attempts)]
    final = ordered[-1]
    statuses = {result.status for result in ordered}
    failures = [result.message for result in ordered if result.status in FAILING]
    return TestCase(
        key=key,
        suite=final.suite or "",
        name=final.name,
        status=final.status,
        attempts=[
            TestAttempt(
                attempt=r.attempt,
                status=r.status,
                duration_s=r.duration_s,
                message=r.message,
                source=r.source,
            )
            for r in ordered
        ],
        duration_s=final.duration_s,
        message=next((m for m in reversed(failures) if m), None),
        flaky=flaky_anomaly or (TestStatus.PASSED in statuses and bool(statuses & FAILING)),
        infra_caused=infra_caused,
        anomaly_ids=sorted(anomaly_ids),
    )


def sort_key(case: TestCase) -> tuple[int, str]:
    if case.status in FAILING:
        rank = 0
    elif case.flaky:
        rank = 1
    elif case.status == TestStatus.SKIPPED:
        rank = 3
    else:
        rank = 2
    return rank, case.key


def counts(cases: Iterable[TestCase]) -> TestCounts:
    total = TestCounts()
    for case in cases:
        total.total += 1
        setattr(total, case.status.value, getattr(total, case.status.value) + 1)
        total.flaky += case.flaky
        total.infra_caused += case.infra_caused
    return total


def run_test_counts_sql(database: str) -> str:
    """How many tests per final status (the last attempt's) and how many flaky (passed and
    failed within the run), counted by the store: what a page shows when it lists no tests."""
    return (
        "SELECT count() AS total, countIf(final = 'passed') AS passed,"
        " countIf(final = 'failed') AS failed, countIf(final = 'error') AS error,"
        " countIf(final = 'skipped') AS skipped, countIf(passes > 0 AND fails > 0) AS flaky"
        " FROM (SELECT argMax(status, attempt) AS final, countIf(status = 'passed') AS passes,"
        " countIf(status IN ('failed', 'error')) AS fails"
        f" FROM {database}.test_results WHERE run_id = {{run_id:String}} GROUP BY suite, name)"
    )


def row_to_counts(rows: Sequence[dict[str, Any]]) -> TestCounts:
    """The answer of `run_test_counts_sql` (infrastructure attribution needs the cases: 0)."""
    if not rows:
        return TestCounts()
    row = rows[0]
    return TestCounts(
        **{
            name: int(row[name] or 0)
            for name in ("total", "passed", "failed", "error", "skipped", "flaky")
        }
    )


def matches(case: TestCase, status: str | None, q: str | None) -> bool:
    if q and q.casefold() not in case.key.casefold():
        return False
    if status is None:
        return True
    if status == "flaky":
        return case.flaky
    if status == "infra":
        return case.infra_caused
    if status == "failed":
        return case.status in FAILING
    return case.status.value == status


def page(
    cases: Sequence[TestCase], after: tuple[int, str] | None, limit: int
) -> tuple[list[TestCase], tuple[int, str] | None]:
    """Cases after the sort key `after`, at most `limit`; and the key the next page follows."""
    rest = [case for case in cases if after is None or sort_key(case) > after]
    if len(rest) > limit:
        return rest[:limit], sort_key(rest[limit - 1])
    return rest, None
