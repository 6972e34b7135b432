"""Alert delivery attempts in the store (`alert_deliveries`), newest first (pure: SQL text).

Keyset-paginated on (attempted_at, channel, delivery_id, attempt); bounds outside the store's
time range and cursors this API did not make are a `BadRequest`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sentinel.queries.common import decode_cursor, encode_cursor, in_store_range


def deliveries_sql(
    database: str, filters: dict[str, Any], limit: int, cursor: str | None
) -> tuple[str, dict[str, Any]]:
    where: list[str] = []
    params: dict[str, Any] = {"limit": limit + 1}
    for column in ("channel", "channel_type", "outcome", "status", "group_key"):
        if filters.get(column) is not None:
            where.append(f"{column} = {{{column}:String}}")
            params[column] = filters[column]
    for column, name in (("run_ids", "run_id"), ("anomaly_ids", "anomaly_id")):
        if filters.get(name) is not None:
            where.append(f"has({column}, {{{name}:String}})")
            params[name] = filters[name]
    if filters.get("since") is not None:
        where.append("attempted_at >= {since:DateTime64(3, 'UTC')}")
        params["since"] = in_store_range(filters["since"], "since")
    if filters.get("until") is not None:
        where.append("attempted_at < {until:DateTime64(3, 'UTC')}")
        params["until"] = in_store_range(filters["until"], "until")
    if cursor is not None:
        at, channel, delivery, attempt = decode_cursor(cursor, (datetime, str, str, int))
        where.append(
            "(attempted_at, channel, delivery_id, attempt) < ({c_at:DateTime64(3, 'UTC')}, "
            "{c_channel:String}, {c_delivery:String}, {c_attempt:UInt16})"
        )
        params.update(c_at=at, c_channel=channel, c_delivery=delivery, c_attempt=attempt)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    sql = (
        "SELECT channel, channel_type, group_key, delivery_id, attempt, anomaly_ids, run_ids,"
        " outcome, status, title, status_code, error, retry_in_s, silence_ids, attempted_at,"
        f" schema_version FROM {database}.alert_deliveries FINAL {clause}"
        " ORDER BY attempted_at DESC, channel DESC, delivery_id DESC, attempt DESC"
        " LIMIT {limit:UInt32}"
    )
    return sql, params


def deliveries_cursor(row: dict[str, Any]) -> str:
    """The cursor after `row` (the last of a page)."""
    return encode_cursor(row["attempted_at"], row["channel"], row["delivery_id"], row["attempt"])
