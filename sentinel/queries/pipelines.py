"""Pipelines: the list with their failure rates, daily trends, slowest and flakiest tests."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sentinel.queries.common import TIME_PARAM, aware
from sentinel.queries.models import FlakyTest, PipelineSummary, TestStat, TrendDay

SORT_AT = "ifNull(created_at, first_event_at)"
FINISHED = "('succeeded', 'failed', 'cancelled', 'timed_out')"
FAILED = "('failed', 'timed_out')"


def pipelines_sql(database: str) -> str:
    """Every pipeline with runs since {since}: counts, failure rate, median duration, last run."""
    return (
        "SELECT provider, ifNull(repository, '') AS repository, ifNull(pipeline, '') AS pipeline,"
        " count() AS runs, countIf(status = 'succeeded') AS succeeded,"
        f" countIf(status IN {FAILED}) AS failed, countIf(status IN {FINISHED}) AS finished,"
        " quantileExactIf(0.5)(duration_s, duration_s IS NOT NULL) AS p50,"
        f" argMax(run_id, {SORT_AT}) AS last_run_id, argMax(status, {SORT_AT}) AS last_status,"
        f" max({SORT_AT}) AS last_run_at"
        f" FROM {database}.runs FINAL WHERE {SORT_AT} >= {{since:{TIME_PARAM}}}"
        " AND ifNull(pipeline, '') != ''"
        " GROUP BY provider, repository, pipeline"
        " ORDER BY failed / greatest(finished, 1) DESC, runs DESC, pipeline, repository, provider"
        " LIMIT {limit:UInt32}"
    )


def row_to_pipeline(row: dict[str, Any]) -> PipelineSummary:
    finished = int(row["finished"])
    p50 = row.get("p50")
    return PipelineSummary(
        provider=row["provider"],
        repository=row["repository"],
        pipeline=row["pipeline"],
        runs=int(row["runs"]),
        succeeded=int(row["succeeded"]),
        failed=int(row["failed"]),
        failure_rate=round(int(row["failed"]) / finished, 4) if finished else 0.0,
        duration_p50_s=_number(p50),
        last_run_id=row["last_run_id"],
        last_status=row["last_status"],
        last_run_at=aware(row["last_run_at"]),
    )


def _number(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if number != number else number  # NaN: no finished run had a duration


def _pipeline_where(alias: str = "") -> str:
    prefix = f"{alias}." if alias else ""
    return (
        f"ifNull({prefix}pipeline, '') = {{pipeline:String}}"
        " AND ({repository:String} = ''"
        f" OR ifNull({prefix}repository, '') = {{repository:String}})"
    )


def pipeline_exists_sql(database: str) -> str:
    return f"SELECT count() AS runs FROM {database}.runs FINAL WHERE {_pipeline_where()}"


def daily_sql(database: str) -> str:
    """Failure rate and duration p50/p95 per UTC day (exact, from the latest run snapshots)."""
    return (
        f"SELECT toDate({SORT_AT}) AS day, countIf(status IN {FINISHED}) AS runs,"
        f" countIf(status IN {FAILED}) AS failed,"
        " quantilesExactIf(0.5, 0.95)(duration_s, duration_s IS NOT NULL) AS q"
        f" FROM {database}.runs FINAL WHERE {_pipeline_where()}"
        f" AND {SORT_AT} >= {{since:{TIME_PARAM}}} GROUP BY day ORDER BY day"
    )


def row_to_day(row: dict[str, Any]) -> TrendDay:
    runs, failed = int(row["runs"]), int(row["failed"])
    q = list(row.get("q") or [])
    return TrendDay(
        day=row["day"],
        runs=runs,
        failed=failed,
        failure_rate=round(failed / runs, 4) if runs else 0.0,
        duration_p50_s=_number(q[0]) if len(q) > 0 else None,
        duration_p95_s=_number(q[1]) if len(q) > 1 else None,
    )


def _runs_of_pipeline(database: str) -> str:
    return (
        f"SELECT run_id FROM {database}.runs FINAL WHERE {_pipeline_where()}"
        f" AND {SORT_AT} >= {{since:{TIME_PARAM}}}"
    )


def slowest_tests_sql(database: str) -> str:
    return (
        "SELECT if(suite = '', name, concat(suite, '::', name)) AS key, count() AS results,"
        " quantileExact(0.5)(duration_s) AS p50, quantileExact(0.95)(duration_s) AS p95,"
        f" max(duration_s) AS max_s FROM {database}.test_results"
        f" WHERE run_id IN ({_runs_of_pipeline(database)}) AND duration_s IS NOT NULL"
        " AND status = 'passed' GROUP BY key ORDER BY p50 DESC, max_s DESC, key"
        " LIMIT {limit:UInt32}"
    )


def row_to_stat(row: dict[str, Any]) -> TestStat:
    return TestStat(
        key=row["key"],
        results=int(row["results"]),
        p50_s=float(row["p50"]),
        p95_s=float(row["p95"]),
        max_s=float(row["max_s"]),
    )


def flaky_tests_sql(database: str, pipeline: bool) -> str:
    """Tests that both passed and failed on one commit (or within one run, without a commit):
    the same rule as schemas/queries/flakiest_tests.sql; with `pipeline`, of that pipeline."""
    scope = f" AND t.run_id IN ({_runs_of_pipeline(database)})" if pipeline else ""
    return (
        "SELECT suite, name, count() AS flaky_commits, sum(passes) AS passes,"
        " sum(fails) AS failures, max(last_seen) AS last_seen,"
        " arrayDistinct(arrayFlatten(groupArray(pipelines))) AS pipelines,"
        " arraySlice(arrayDistinct(arrayFlatten(groupArray(runs))), 1, 5) AS sample_run_ids"
        " FROM (SELECT t.suite AS suite, t.name AS name,"
        " if(ifNull(r.commit_sha, '') = '', t.run_id, r.commit_sha) AS commit,"
        " countIf(t.status = 'passed') AS passes,"
        " countIf(t.status IN ('failed', 'error')) AS fails, max(t.event_time) AS last_seen,"
        " groupUniqArray(r.pipeline) AS pipelines, groupUniqArray(t.run_id) AS runs"
        f" FROM {database}.test_results AS t LEFT JOIN (SELECT run_id, commit_sha,"
        f" ifNull(pipeline, '') AS pipeline FROM {database}.runs FINAL) AS r"
        " ON t.run_id = r.run_id"
        f" WHERE t.event_time >= {{since:{TIME_PARAM}}}{scope}"
        " GROUP BY suite, name, commit HAVING passes > 0 AND fails > 0)"
        " GROUP BY suite, name ORDER BY flaky_commits DESC, failures DESC, suite, name"
        " LIMIT {limit:UInt32}"
    )


def row_to_flaky(row: dict[str, Any]) -> FlakyTest:
    suite, name = row["suite"], row["name"]
    return FlakyTest(
        key=f"{suite}::{name}" if suite else name,
        suite=suite,
        name=name,
        flaky_commits=int(row["flaky_commits"]),
        passes=int(row["passes"]),
        failures=int(row["failures"]),
        last_seen=aware(row["last_seen"]),
        pipelines=sorted(p for p in row["pipelines"] if p),
        sample_run_ids=sorted(row["sample_run_ids"]),
    )


def pipeline_params(pipeline: str, repository: str | None, since: datetime) -> dict[str, Any]:
    return {"pipeline": pipeline, "repository": repository or "", "since": since}
