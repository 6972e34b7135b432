"""`sentinel query "SQL"`: run one statement against the configured store and print the result.

Formatting is pure (`render`), the store access is one call (`run_query`). The embedded engine
can be opened by one process per data directory: while `sentinel up` (or a `sentinel sink` on the
embedded store) runs, this command cannot open it and says so (`StoreLockedError`).

The documented analyst queries live in `schemas/queries/*.sql` (docs/analyst-queries.md);
`sentinel query --file schemas/queries/flakiest_tests.sql` runs one of them.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from importlib import resources
from typing import Any
from uuid import UUID

from runtime.config import Settings

MAX_CELL = 200  # characters shown per cell in table format (csv and json are never cut)


class OutputFormat(StrEnum):
    TABLE = "table"
    CSV = "csv"
    JSON = "json"


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[Sequence[Any]]


def run_query(settings: Settings, sql: str) -> QueryResult:
    """Open the configured store, run `sql`, close the store. Raises the store's errors."""
    from sinks.clickhouse.store import open_store

    # No CREATE DATABASE: analysts often connect with read-only users.
    store = open_store(settings, create_database=False)
    try:
        result = store.client.query(sql.strip().rstrip(";"))
        return QueryResult(list(result.column_names), [list(r) for r in result.result_rows])
    finally:
        store.close()


def analyst_queries() -> dict[str, str]:
    """The shipped analyst queries, name → SQL (from `schemas/queries`)."""
    directory = resources.files("schemas") / "queries"
    return {
        entry.name.removesuffix(".sql"): entry.read_text("utf-8")
        for entry in sorted(directory.iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".sql")
    }


def render(result: QueryResult, fmt: OutputFormat) -> str:
    if fmt is OutputFormat.JSON:
        records = [dict(zip(result.columns, row, strict=True)) for row in result.rows]
        return json.dumps(records, default=_json_value, ensure_ascii=False, indent=2)
    if fmt is OutputFormat.CSV:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(result.columns)
        writer.writerows([[_text(value) for value in row] for row in result.rows])
        return out.getvalue().rstrip("\n")
    return _table(result)


def _table(result: QueryResult) -> str:
    cells = [[_cut(_text(value)) for value in row] for row in result.rows]
    widths = [len(name) for name in result.columns]
    for row in cells:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]
    lines = [
        " | ".join(name.ljust(width) for name, width in zip(result.columns, widths, strict=True)),
        "-+-".join("-" * width for width in widths),
    ]
    lines += [
        " | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in cells
    ]
    count = len(result.rows)
    lines.append(f"({count} row{'s' if count != 1 else ''})")
    return "\n".join(lines)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | tuple | dict):
        return json.dumps(value, default=_json_value, ensure_ascii=False)
    return str(value)


def _cut(text: str) -> str:
    text = text.replace("\n", "\\n")
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"cannot show {type(value).__name__} as JSON")
