"""ClickHouse storage per run and per log line, from runs that went through the real pipeline.

    .venv/bin/python bench/storage_per_run.py [--bootstrap host:port]

Replays every capture of tests/data/anomaly_scenarios (eight pipelines' histories: 58 runs with
their Jobs, pods, Events, pytest log lines and test results) through an embedded stack (Faust
worker, ClickHouse sink, embedded ClickHouse engine), merges each table's parts (OPTIMIZE ...
FINAL: the steady state a server reaches), then reads system.parts: rows, compressed and
uncompressed bytes per table, and rows per run. The uncompressed size is the baseline: the
ratio is ClickHouse's compression on this data. Prints Markdown rows for BENCHMARKS.md; the
capacity table of docs/operations.md is computed from them.

Without --bootstrap it starts an Apache Kafka broker in a temporary directory.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from runtime.config import load_settings  # noqa: E402
from schemas.capture import read_capture  # noqa: E402
from sentinel.analyze import analysis_settings, end_of_input  # noqa: E402
from sentinel.brokers import ApacheKafkaBroker  # noqa: E402
from sentinel.stack import EmbeddedStack  # noqa: E402
from tests.support.history_replay import replay_letting_time_pass  # noqa: E402

SCENARIOS = REPO / "tests" / "data" / "anomaly_scenarios"
TABLES = ("runs", "stages", "k8s_events", "log_lines", "test_results", "anomalies")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", help="an existing Kafka broker (default: start one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sentinel-storage-") as tmp:
        broker = None
        bootstrap = args.bootstrap
        if not bootstrap:
            broker = ApacheKafkaBroker(Path(tmp) / "kafka")
            bootstrap = broker.start(timeout=120)
        try:
            report(Path(tmp) / "stack", bootstrap)
        finally:
            if broker is not None:
                broker.stop()
    return 0


def report(data_dir: Path, bootstrap: str) -> None:
    base = load_settings(SCENARIOS / "clean_history.config.yaml")
    stack = EmbeddedStack(analysis_settings(base, data_dir, bootstrap))
    stack.start()
    try:
        last = datetime.min.replace(tzinfo=UTC)
        for capture in sorted(SCENARIOS.glob("*.jsonl")):
            records = list(read_capture(capture))
            replay_letting_time_pass(stack, records)
            last = max(last, max(record.ts for record in records))
        stack.wait_consumed(timeout=300)
        end_of_input(stack.settings, last + timedelta(hours=1))
        stack.wait_consumed(timeout=300)
        assert stack.owner is not None and stack.owner.store is not None
        store = stack.owner.store
        # Before merging: every RunState snapshot the sink wrote (the run's versions).
        snapshots = store.query_rows("SELECT count() AS n FROM runs")[0]["n"]
        for table in TABLES:
            store.command(f"OPTIMIZE TABLE {table} FINAL")
        runs = store.query_rows("SELECT count() AS n FROM runs FINAL")[0]["n"]
        parts = {
            row["table"]: row
            for row in store.query_rows(
                "SELECT table, sum(rows) AS rows, sum(data_compressed_bytes) AS compressed, "
                "sum(data_uncompressed_bytes) AS raw FROM system.parts "
                "WHERE active AND database = currentDatabase() GROUP BY table"
            )
        }
    finally:
        stack.stop()
    print(f"runs: {runs}; run snapshots written: {snapshots} ({snapshots / runs:.1f} per run)\n")
    print("| table | rows | rows per run | compressed B/row | uncompressed B/row | ratio |")
    print("|---|---|---|---|---|---|")
    for table in TABLES:
        row = parts.get(table)
        if row is None:
            print(f"| {table} | 0 | 0 | - | - | - |")
            continue
        rows = int(row["rows"])
        print(
            f"| {table} | {rows} | {rows / runs:.1f} | {row['compressed'] / rows:.0f} | "
            f"{row['raw'] / rows:.0f} | {row['raw'] / max(row['compressed'], 1):.1f}x |"
        )


if __name__ == "__main__":
    sys.exit(main())
