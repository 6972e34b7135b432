"""Anomalies: one run's, a listing across runs with filters, and counts per run."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from schemas.messages import Anomaly
from sentinel.queries.common import TIME_PARAM, aware, decode_cursor, encode_cursor, json_field
from sentinel.queries.models import AnomalyItem

_COLUMNS = (
    "anomaly_id",
    "run_id",
    "category",
    "type",
    "severity",
    "subject",
    "summary",
    "evidence",
    "window_start",
    "window_end",
    "detected_at",
)


@dataclass(frozen=True)
class AnomalyFilters:
    type: str | None = None
    category: str | None = None
    severity: str | None = None
    pipeline: str | None = None
    run_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def run_anomalies_sql(database: str) -> str:
    return (
        f"SELECT {', '.join(_COLUMNS)} FROM {database}.anomalies FINAL"
        " WHERE run_id = {run_id:String} ORDER BY window_start, type, subject"
    )


def list_anomalies_sql(
    database: str, filters: AnomalyFilters, limit: int, cursor: str | None
) -> tuple[str, dict[str, Any]]:
    """Newest first (window start, then id), keyset-paginated; pipeline/repository/branch
    from the run."""
    where: list[str] = []
    params: dict[str, Any] = {"limit": limit + 1}
    for column in ("type", "category", "severity", "run_id"):
        value = getattr(filters, column)
        if value is not None:
            where.append(f"a.{column} = {{{column}:String}}")
            params[column] = value
    if filters.pipeline is not None:
        where.append("r.pipeline = {pipeline:String}")
        params["pipeline"] = filters.pipeline
    if filters.since is not None:
        where.append(f"a.window_start >= {{since:{TIME_PARAM}}}")
        params["since"] = filters.since
    if filters.until is not None:
        where.append(f"a.window_start < {{until:{TIME_PARAM}}}")
        params["until"] = filters.until
    if cursor is not None:
        after_at, after_id = decode_cursor(cursor, (datetime, str))
        where.append(
            f"(a.window_start < {{after_at:{TIME_PARAM}}} OR (a.window_start ="
            f" {{after_at:{TIME_PARAM}}} AND a.anomaly_id < {{after_id:String}}))"
        )
        params.update(after_at=after_at, after_id=after_id)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    columns = ", ".join(f"a.{name} AS {name}" for name in _COLUMNS)
    sql = (
        f"SELECT {columns}, r.pipeline AS pipeline, r.repository AS repository,"
        f" r.branch AS branch FROM {database}.anomalies AS a FINAL"
        " LEFT JOIN (SELECT run_id, ifNull(pipeline, '') AS pipeline,"
        " ifNull(repository, '') AS repository, ifNull(branch, '') AS branch"
        f" FROM {database}.runs FINAL) AS r ON a.run_id = r.run_id{clause}"
        " ORDER BY a.window_start DESC, a.anomaly_id DESC LIMIT {limit:UInt32}"
    )
    return sql, params


def anomaly_counts_sql(database: str) -> str:
    return (
        f"SELECT run_id, count() AS anomalies FROM {database}.anomalies FINAL"
        " WHERE run_id IN {ids:Array(String)} GROUP BY run_id"
    )


def row_to_anomaly(row: dict[str, Any]) -> Anomaly:
    data = {name: row[name] for name in _COLUMNS}
    data["evidence"] = json_field(data.get("evidence"), {})
    for name in ("window_start", "window_end", "detected_at"):
        data[name] = aware(data[name])
    return Anomaly.model_validate(data)


def row_to_item(row: dict[str, Any]) -> AnomalyItem:
    anomaly = row_to_anomaly(row)
    return AnomalyItem(
        **anomaly.model_dump(),
        pipeline=row.get("pipeline") or None,
        repository=row.get("repository") or None,
        branch=row.get("branch") or None,
    )


def next_cursor(items: list[AnomalyItem]) -> str:
    last = items[-1]
    return encode_cursor(last.window_start, last.anomaly_id)
