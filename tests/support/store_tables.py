"""What a store holds, table by table, in the columns two installations fed the same input must
agree on: for comparing an installation that went through faults with one that did not.

`python -m tests.support.store_tables` prints it as JSON for the store of `SENTINEL_CONFIG`:
the embedded engine opens a data directory from one process only, and a test that runs each
component as its own process reads the store after the store's owner has stopped.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from sinks.clickhouse.store import Store

REPLACING = ("runs", "stages", "anomalies")  # ReplacingMergeTree: read with FINAL
APPEND_ONLY = ("k8s_events", "log_lines", "test_results")
# Columns that legitimately differ between two installations fed the same input:
NOT_COMPARED = {
    "ingested_at",  # the wall-clock time the sink wrote the row
    # A snapshot's version counts the tracker's state changes; a worker that recovers a
    # partition from its changelog and re-reads uncommitted input counts again (the same
    # exclusion as `visible` for the runs topic). The content of the latest version is compared.
    "version",
    "run_version",
}
KEYS = {
    "runs": "run_id",
    "stages": "(run_id, stage_id)",
    "anomalies": "(run_id, anomaly_id)",
}


def tables(store: Store, not_compared: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Per table: its rows (the columns that must agree, less `not_compared`) as a multiset,
    and for the replacing tables whether FINAL left one row per key."""
    found: dict[str, Any] = {}
    db = store.database
    for table in (*REPLACING, *APPEND_ONLY):
        columns = [
            row["name"]
            for row in store.query_rows(
                "SELECT name FROM system.columns WHERE database = {db:String}"
                " AND table = {t:String} ORDER BY position",
                {"db": db, "t": table},
            )
            if row["name"] not in NOT_COMPARED | not_compared
        ]
        final = " FINAL" if table in REPLACING else ""
        listed = ", ".join(f"toString({c}) AS {c}" for c in columns)
        rows = store.query_rows(f"SELECT {listed} FROM {db}.{table}{final}", {})
        found[table] = Counter(tuple(row[c] for c in columns) for row in rows)
        found[f"{table} columns"] = columns
    for table, key in KEYS.items():
        count, keys = store.query_rows(
            f"SELECT count() AS n, uniqExact({key}) AS k FROM {db}.{table} FINAL", {}
        )[0].values()
        found[f"{table} duplicates"] = int(count) - int(keys)
    return found


def to_json(found: dict[str, Any]) -> str:
    return json.dumps(
        {
            name: [[list(row), n] for row, n in value.items()]
            if isinstance(value, Counter)
            else value
            for name, value in found.items()
        }
    )


def from_json(text: str) -> dict[str, Any]:
    return {
        name: Counter({tuple(row): n for row, n in value})
        if name in (*REPLACING, *APPEND_ONLY)
        else value
        for name, value in json.loads(text).items()
    }


def main() -> None:
    """Arguments: more columns not to compare (a live installation's wall-clock times)."""
    import sys

    from runtime.config import load_settings
    from sinks.clickhouse.store import open_store

    store = open_store(load_settings())
    try:
        print(to_json(tables(store, frozenset(sys.argv[1:]))))
    finally:
        store.close()


if __name__ == "__main__":
    main()
