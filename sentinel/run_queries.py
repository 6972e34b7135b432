"""SQL for the read API's run queries, built from validated filters with bound parameters.

Listing is keyset-paginated on (sort_at DESC, run_id DESC), where sort_at is when the run was
created (or first seen): it never changes for a run, so pages stay stable while runs progress.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

SORT_AT = "ifNull(created_at, first_event_at)"


class BadCursor(ValueError):
    pass


@dataclass(frozen=True)
class RunFilters:
    status: str | None = None
    provider: str | None = None
    repository: str | None = None
    pipeline: str | None = None
    branch: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def encode_cursor(sort_at: datetime, run_id: str) -> str:
    raw = json.dumps([sort_at.isoformat(), run_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        sort_at, run_id = json.loads(base64.urlsafe_b64decode(padded))
        return datetime.fromisoformat(sort_at), str(run_id)
    except (ValueError, TypeError, binascii.Error) as exc:
        raise BadCursor("cursor is not one this API returned") from exc


def list_runs_sql(
    database: str, filters: RunFilters, limit: int, cursor: str | None
) -> tuple[str, dict[str, Any]]:
    where: list[str] = []
    params: dict[str, Any] = {"limit": limit + 1}
    for column in ("status", "provider", "repository", "pipeline", "branch"):
        value = getattr(filters, column)
        if value is not None:
            where.append(f"{column} = {{{column}:String}}")
            params[column] = value
    if filters.since is not None:
        where.append(f"{SORT_AT} >= {{since:DateTime64(3, 'UTC')}}")
        params["since"] = filters.since
    if filters.until is not None:
        where.append(f"{SORT_AT} < {{until:DateTime64(3, 'UTC')}}")
        params["until"] = filters.until
    if cursor is not None:
        after_at, after_id = decode_cursor(cursor)
        where.append(
            f"({SORT_AT} < {{after_at:DateTime64(3, 'UTC')}} OR "
            f"({SORT_AT} = {{after_at:DateTime64(3, 'UTC')}} AND run_id < {{after_id:String}}))"
        )
        params["after_at"] = after_at
        params["after_id"] = after_id
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    sql = (
        f"SELECT *, {SORT_AT} AS sort_at FROM {database}.runs FINAL {clause} "
        f"ORDER BY sort_at DESC, run_id DESC LIMIT {{limit:UInt32}}"
    )
    return sql, params


def get_run_sql(database: str) -> str:
    return f"SELECT * FROM {database}.runs FINAL WHERE run_id = {{run_id:String}} LIMIT 1"
