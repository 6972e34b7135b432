"""ClickHouse sink throughput beside a raw insert of the same batches through the same Store.

    .venv/bin/python bench/sink_throughput.py [--messages 200000] [--batch-rows 10000]
        [--topic logs|tests|runs] [--bootstrap host:port]

Produces N messages to one topic (log lines by default, the pipeline's highest-volume topic),
then measures, on the embedded ClickHouse engine in a temporary data dir:

- sink: a `ClickHouseSink` from the first poll until every message is inserted and committed
  (consume, validate and convert, plan commit, insert with deduplication token, offset commit);
- raw: the very same insert calls the sink made (recorded: table, rows, columns, token), replayed
  through the same `Store` into the emptied table — the floor the sink cannot beat.

The ratio raw/sink is the figure to compare between machines. Without --bootstrap it starts an
Apache Kafka broker in the temp dir (as the tests do). Prints a Markdown row for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench_kafka import kafka  # noqa: E402

from runtime.config import Settings, load_settings  # noqa: E402
from runtime.kafka_clients import producer_config  # noqa: E402
from schemas.messages import (  # noqa: E402
    LogLine,
    Message,
    RunState,
    RunStatus,
    StageState,
    TestResult,
    TestStatus,
)
from sentinel.topic_admin import ensure_topics  # noqa: E402
from sinks.clickhouse import Store, migrate, open_store  # noqa: E402
from sinks.clickhouse.sink import ClickHouseSink, default_routes  # noqa: E402

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


class RecordingStore(Store):
    """The same store, remembering every insert call so it can be replayed raw."""

    def __init__(self, inner: Store) -> None:
        super().__init__(inner.client, inner.database, serialize=True)
        self.calls: list[tuple[str, Any, Any, str | None]] = []

    def insert(self, table: str, rows: Any, column_names: Any, dedup_token: str | None = None,
               *, column_oriented: bool = False) -> int:  # fmt: skip
        self.calls.append((table, rows, column_names, dedup_token))
        return super().insert(table, rows, column_names, dedup_token)


def message(topic: str, index: int) -> tuple[str, Message]:
    at = T0 + timedelta(milliseconds=index)
    if topic == "logs":
        pod = f"runner-{index % 24}"
        line = f"2026-11-27T10:00:00Z INFO step {index} took {index % 997} ms on {pod} [ok]"
        return f"ci/{pod}/main", LogLine(
            namespace="ci", pod=pod, container="main", line=line, run_id=f"r{index % 50}",
            event_time=at,
        )  # fmt: skip
    if topic == "tests":
        run_id = f"r{index % 50}"
        return run_id, TestResult(
            run_id=run_id, suite="api", name=f"test_{index}", status=TestStatus.PASSED,
            duration_s=(index % 300) / 100, source="junit-xml", event_time=at,
        )  # fmt: skip
    run_id = f"r{index}"
    stages = [
        StageState(stage_id=f"s{i}", name=f"stage {i}", status=RunStatus.SUCCEEDED, updated_at=at)
        for i in range(3)
    ]
    return run_id, RunState(
        run_id=run_id, provider="github", provider_run_id=run_id, pipeline="ci",
        status=RunStatus.SUCCEEDED, first_event_at=at, updated_at=at, stages=stages,
    )  # fmt: skip


def produce(settings: Settings, topic: str, count: int) -> None:
    producer = Producer(producer_config(settings, **{"linger.ms": 20}))
    name = getattr(settings.topic_names, topic)
    for index in range(count):
        key, value = message(topic, index)
        while True:
            try:
                producer.produce(name, key=key, value=value.to_bytes())
                break
            except BufferError:
                producer.poll(0.1)
    assert producer.flush(60) == 0


def rows_in(store: Store, tables: list[str]) -> int:
    return sum(int(store.command(f"SELECT count() FROM {t}")) for t in tables)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--batch-rows", type=int, default=10_000)
    parser.add_argument("--topic", default="logs", choices=["logs", "tests", "runs"])
    parser.add_argument("--bootstrap", default=os.environ.get("SENTINEL_TEST_KAFKA_BOOTSTRAP"))
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="sentinel-bench-") as tmp,
        kafka(args.bootstrap, Path(tmp) / "kafka") as bootstrap,
    ):
        run(args, tmp, bootstrap)


def run(args: argparse.Namespace, tmp: str, bootstrap: str) -> None:
    prefix = f"bench{time.time_ns() % 10**9}."
    settings = load_settings(
        None,
        topics={"prefix": prefix},
        kafka={"bootstrap_servers": bootstrap},
        embedded={"data_dir": tmp},
        sink={"batch_rows": args.batch_rows, "batch_seconds": 1.0},
        logging={"level": "WARNING"},
    )
    ensure_topics(settings)
    print(f"producing {args.messages} {args.topic} messages...", file=sys.stderr)
    produce(settings, args.topic, args.messages)
    store = open_store(settings)
    try:
        migrate(store)
        recording = RecordingStore(store)
        topic = getattr(settings.topic_names, args.topic)
        routes = {topic: default_routes(settings)[topic]}
        tables = [route.table for route in routes[topic]]
        sink = ClickHouseSink(settings, recording, routes)
        # Wait for the assignment outside the timed part: group join is not throughput.
        while not sink._consumer.assignment():
            sink.poll_once(0.1)
        started = time.perf_counter()
        expected = expected_rows(args.topic, args.messages)
        # Counted from the recorded inserts: querying the store here would slow the sink down.
        while sink.pending_messages or sum(len(c[1]) for c in recording.calls) < expected:
            sink.poll_once(0.05)
        sink_s = time.perf_counter() - started
        sink.stop()
        rows = rows_in(store, tables)
        for table in tables:
            store.command(f"TRUNCATE TABLE {table}")
        print(f"sink: {rows} rows in {sink_s:.2f}s; replaying raw...", file=sys.stderr)
        started = time.perf_counter()
        for index, (table, batch, columns, token) in enumerate(recording.calls):
            store.insert(table, batch, columns, dedup_token=f"raw:{index}:{token}")
        raw_s = time.perf_counter() - started
        assert rows_in(store, tables) == rows, "raw replay did not land the same rows"
    finally:
        store.close()
    inserts = len(recording.calls)
    print(
        "| topic | messages | rows | batch_rows | inserts | sink | sink rows/s "
        "| raw insert | raw rows/s | sink/raw time |\n"
        "|---|---|---|---|---|---|---|---|---|---|\n"
        f"| {args.topic} | {args.messages} | {rows} | {args.batch_rows} | {inserts} "
        f"| {sink_s:.2f} s | {rows / sink_s:,.0f} | {raw_s:.2f} s | {rows / raw_s:,.0f} "
        f"| {sink_s / raw_s:.1f}x |"
    )


def expected_rows(topic: str, messages: int) -> int:
    return messages * 4 if topic == "runs" else messages


if __name__ == "__main__":
    main()
