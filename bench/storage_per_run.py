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
            loghub_report(Path(tmp) / "loghub")
        finally:
            if broker is not None:
                broker.stop()
    return 0


def report(data_dir: Path, bootstrap: str) -> None:
    # The captures' log lines are months old: a 14-day TTL would drop them at OPTIMIZE.
    base = load_settings(SCENARIOS / "clean_history.config.yaml", store={"log_ttl_days": 3650})
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
        messages = topic_messages(stack)
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
    print(f"runs: {runs}\n")
    print("| topic | messages | per run |\n|---|---|---|")
    for topic, count in messages.items():
        print(f"| {topic} | {count} | {count / runs:.1f} |")
    print()
    print("| table | rows | rows per run | compressed B/row | uncompressed B/row | ratio |")
    print("|---|---|---|---|---|---|")
    for table in TABLES:
        row = parts.get(table)
        rows = int(row["rows"]) if row is not None else 0
        if rows == 0:
            print(f"| {table} | 0 | 0 | - | - | - |")
            continue
        print(
            f"| {table} | {rows} | {rows / runs:.1f} | {row['compressed'] / rows:.0f} | "
            f"{row['raw'] / rows:.0f} | {row['raw'] / max(row['compressed'], 1):.1f}x |"
        )


def loghub_report(data_dir: Path) -> None:
    """Real log text (the Loghub 2k samples of tests/data/loghub, 12,000 lines from six
    systems) in log_lines: the scenario captures' pytest lines repeat far more than real logs."""
    from sinks.clickhouse import migrate, open_store

    settings = load_settings(
        None, embedded={"data_dir": str(data_dir)}, store={"log_ttl_days": 3650}
    )
    store = open_store(settings)
    try:
        migrate(store)
        start = datetime(2026, 1, 5, tzinfo=UTC)
        columns = ["event_time", "run_id", "namespace", "pod", "container", "line",
                   "truncated", "level", "template_id", "template", "correlation_key",
                   "received_at", "schema_version"]  # fmt: skip
        rows = []
        for path in sorted((REPO / "tests" / "data" / "loghub").glob("*/*_2k.log")):
            system = path.parent.name.lower()
            for n, line in enumerate(path.read_text(errors="replace").splitlines()):
                at = start + timedelta(milliseconds=10 * n)
                pod = f"{system}-runner-{n // 500}"
                rows.append([at, f"job:ci/{system}-{n // 500}", "ci", pod, "main", line,
                             False, "", "", "", f"job:ci/{system}-{n // 500}", at, 1])  # fmt: skip
        store.insert("log_lines", rows, columns)
        store.command("OPTIMIZE TABLE log_lines FINAL")
        (row,) = store.query_rows(
            "SELECT sum(rows) AS rows, sum(data_compressed_bytes) AS compressed, "
            "sum(data_uncompressed_bytes) AS raw FROM system.parts "
            "WHERE active AND database = currentDatabase() AND table = 'log_lines'"
        )
    finally:
        store.close()
    rows_n = int(row["rows"])
    print(
        f"| log_lines (Loghub text) | {rows_n} | - | {row['compressed'] / rows_n:.0f} | "
        f"{row['raw'] / rows_n:.0f} | {row['raw'] / max(row['compressed'], 1):.1f}x |"
    )


def topic_messages(stack: EmbeddedStack) -> dict[str, int]:
    """Messages written to each topic (sum of the partitions' end offsets)."""
    from confluent_kafka import Consumer, TopicPartition

    from runtime.kafka_clients import consumer_config

    names = stack.settings.topic_names
    topics = {
        "ci": names.ci,
        "k8s": names.k8s,
        "logs": names.logs,
        "run-signals": names.run_signals,
        "runs": names.runs,
        "tests": names.tests,
        "anomalies": names.anomalies,
    }
    probe = Consumer(consumer_config(stack.settings, "storage-bench-probe"))
    try:
        counts = {}
        for label, topic in topics.items():
            partitions = probe.list_topics(topic, timeout=10).topics[topic].partitions
            counts[label] = sum(
                probe.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in partitions
            )
        return counts
    finally:
        probe.close()


if __name__ == "__main__":
    sys.exit(main())
