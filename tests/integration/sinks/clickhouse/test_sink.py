"""The ClickHouse sink against a real Kafka broker and the embedded ClickHouse engine."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from clickhouse_connect.driver.exceptions import OperationalError
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from runtime.config import Settings
from runtime.kafka_clients import admin_config, consumer_config, producer_config
from schemas.messages import DeadLetter, RunState, RunStatus
from sinks.clickhouse import Store
from sinks.clickhouse.sink import ClickHouseSink

pytestmark = pytest.mark.integration

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
GARBAGE = b"{not a run state"


class FlakyStore(Store):
    """A store whose first `failures` inserts raise, before or after the rows landed."""

    def __init__(self, inner: Store, failures: int, land_first: bool = False) -> None:
        super().__init__(inner.client, inner.database, serialize=True)
        self.failures_left = failures
        self.land_first = land_first
        self.calls = 0

    def insert(self, *args: Any, **kwargs: Any) -> int:
        self.calls += 1
        if self.failures_left <= 0:
            return super().insert(*args, **kwargs)
        self.failures_left -= 1
        if self.land_first:  # the insert landed but its acknowledgement was lost
            super().insert(*args, **kwargs)
        raise OperationalError("injected: store unavailable")


@pytest.fixture
def settings(kafka_bootstrap: str, make_settings: Callable[..., Settings]) -> Settings:
    made = make_settings(kafka_bootstrap)
    made = make_settings(
        kafka_bootstrap,
        sink={"group_id": f"{made.topics.prefix}sink", "batch_rows": 50, "batch_seconds": 0.2},
    )
    create_topics(made, made.topic_names.all())  # the sink subscribes to every stored topic
    return made


@pytest.fixture
def store(store: Store) -> Store:
    """The migrated store, without merges."""
    # No merges, not even within an insert block (optimize_on_insert collapses the versions
    # of a run inside one batch): count() then shows every row that landed, duplicates too.
    store.command("SYSTEM STOP MERGES runs")
    store.client.set_client_setting("optimize_on_insert", 0)
    return store


@pytest.fixture
def make_sink(settings: Settings) -> Iterator[Callable[..., ClickHouseSink]]:
    sinks: list[ClickHouseSink] = []

    def factory(store: Store, batch_seconds: float | None = None) -> ClickHouseSink:
        sink_settings = settings
        if batch_seconds is not None:
            sink = settings.sink.model_copy(update={"batch_seconds": batch_seconds})
            sink_settings = settings.model_copy(update={"sink": sink})
        made = ClickHouseSink(sink_settings, store, retry_initial_s=0.1, retry_max_s=0.4)
        sinks.append(made)
        return made

    yield factory
    for made in sinks:
        made.stop()


def create_topics(settings: Settings, names: list[str]) -> None:
    admin = AdminClient(admin_config(settings))
    topics = [NewTopic(name, num_partitions=settings.topics.partitions) for name in names]
    for future in admin.create_topics(topics, operation_timeout=10).values():
        future.result(10)


def run_state(run_id: str, version: int) -> RunState:
    return RunState(
        run_id=run_id,
        provider="github",
        provider_run_id=run_id,
        status=RunStatus.SUCCEEDED if version >= 3 else RunStatus.RUNNING,
        first_event_at=T0,
        updated_at=T0 + timedelta(seconds=version),
        version=version,
    )


def produce(settings: Settings, values: list[tuple[str, bytes]]) -> None:
    producer = Producer(producer_config(settings))
    for key, value in values:
        producer.produce(settings.topic_names.runs, key=key, value=value)
    assert producer.flush(10) == 0


def states(run_ids: list[str], versions: int) -> list[tuple[str, bytes]]:
    return [
        (run_id, run_state(run_id, version).to_bytes())
        for version in range(1, versions + 1)
        for run_id in run_ids
    ]


def drive(sink: ClickHouseSink, until: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not until():
        assert time.monotonic() < deadline, "condition not reached in time"
        sink.poll_once(0.1)


def latest_runs(store: Store) -> dict[str, int]:
    rows = store.query_rows("SELECT run_id, version FROM runs FINAL")
    return {row["run_id"]: row["version"] for row in rows}


def row_count(store: Store) -> int:
    return int(store.command("SELECT count() FROM runs"))


def committed_equals_end(settings: Settings) -> bool:
    consumer = Consumer(consumer_config(settings, settings.sink_group_id))
    try:
        topic = settings.topic_names.runs
        parts = [TopicPartition(topic, p) for p in range(settings.topics.partitions)]
        committed = {tp.partition: tp.offset for tp in consumer.committed(parts, timeout=10)}
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p))[1] for p in committed}
        return all(committed[p] == ends[p] or (ends[p] == 0 and committed[p] < 0) for p in ends)
    finally:
        consumer.close()


def dead_letters(settings: Settings, expected: int) -> list[DeadLetter]:
    consumer = Consumer(consumer_config(settings, f"{settings.topics.prefix}dlq-reader"))
    consumer.subscribe([settings.topic_names.dlq])
    letters: list[DeadLetter] = []
    deadline = time.monotonic() + 15
    try:
        while len(letters) < expected and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                letters.append(DeadLetter.from_bytes(message.value() or b""))
    finally:
        consumer.close()
    return letters


def test_latest_versions_land_and_garbage_goes_to_the_dlq(
    settings: Settings, store: Store, make_sink: Callable[..., ClickHouseSink]
) -> None:
    run_ids = [f"run-{i}" for i in range(20)]
    values = states(run_ids, versions=3)  # 60 snapshots: 3 versions of each run
    produce(settings, [*values[:30], ("junk", GARBAGE), *values[30:]])
    sink = make_sink(store)

    drive(sink, lambda: row_count(store) == 60 and sink.pending_messages == 0)

    assert latest_runs(store) == dict.fromkeys(run_ids, 3)
    assert committed_equals_end(settings)
    (letter,) = dead_letters(settings, expected=1)
    assert letter.origin_topic == settings.topic_names.runs
    assert letter.origin_key == b"junk"
    assert letter.raw_value == GARBAGE
    assert letter.origin_offset is not None and letter.origin_partition is not None
    assert "invalid RunState" in letter.error
    assert letter.component == "clickhouse-sink"


@pytest.mark.parametrize("land_first", [False, True], ids=["insert-fails", "ack-lost"])
def test_store_outage_pauses_and_loses_or_duplicates_nothing(
    settings: Settings,
    store: Store,
    make_sink: Callable[..., ClickHouseSink],
    land_first: bool,
) -> None:
    flaky = FlakyStore(store, failures=3, land_first=land_first)
    sink = make_sink(flaky)
    first = states([f"a-{i}" for i in range(10)], versions=2)
    produce(settings, first)

    drive(sink, lambda: sink.paused)
    held = sink.pending_messages
    assert 0 < held <= len(first)
    second = states([f"b-{i}" for i in range(10)], versions=1)
    produce(settings, second)
    while sink.paused:  # paused partitions fetch nothing: the batch must not grow
        sink.poll_once(0.05)
        assert sink.pending_messages <= len(first)

    drive(sink, lambda: row_count(store) >= 30 and sink.pending_messages == 0)
    time.sleep(0.3)
    sink.poll_once(0.1)

    assert flaky.failures_left == 0
    assert row_count(store) == 30  # every snapshot exactly once
    assert latest_runs(store) == {f"a-{i}": 2 for i in range(10)} | {f"b-{i}": 1 for i in range(10)}
    assert committed_equals_end(settings)


def test_stop_flushes_and_commits_what_is_pending(
    settings: Settings, store: Store, make_sink: Callable[..., ClickHouseSink]
) -> None:
    sink = make_sink(store, batch_seconds=600.0)
    produce(settings, states(["r-1", "r-2"], versions=2))

    drive(sink, lambda: sink.pending_messages == 4)
    assert row_count(store) == 0
    sink.stop()

    assert latest_runs(store) == {"r-1": 2, "r-2": 2}
    assert committed_equals_end(settings)


def test_revoked_partitions_are_flushed_before_the_new_owner_reads_them(
    settings: Settings, store: Store, make_sink: Callable[..., ClickHouseSink]
) -> None:
    first = make_sink(store, batch_seconds=600.0)
    values = states([f"r-{i}" for i in range(10)], versions=1)
    produce(settings, values)
    drive(first, lambda: first.pending_messages == len(values))

    second = make_sink(store, batch_seconds=600.0)  # joining the group revokes from `first`
    deadline = time.monotonic() + 30
    while first.pending_messages or row_count(store) < len(values):
        assert time.monotonic() < deadline, "rebalance did not flush in time"
        first.poll_once(0.1)
        second.poll_once(0.1)
    for _ in range(5):  # the new owner starts from the committed offsets: nothing to re-read
        first.poll_once(0.1)
        second.poll_once(0.1)

    assert second.pending_messages == 0
    assert row_count(store) == len(values)
    assert committed_equals_end(settings)


def test_partitions_taken_away_while_paused_are_read_again_when_they_come_back(
    settings: Settings, store: Store, make_sink: Callable[..., ClickHouseSink]
) -> None:
    """A sink paused on a failed flush loses its partitions (in the broker outage of issue 17
    its session expired) and gets them back: it must read them again. librdkafka keeps a
    partition's pause through a rebalance; the sink forgot it had paused them and never
    resumed them, so it stood still for good, with nothing said."""
    flaky = FlakyStore(store, failures=1_000_000)  # the store is down until said otherwise
    first = make_sink(flaky)
    produce(settings, states([f"a-{i}" for i in range(10)], versions=1))
    drive(first, lambda: first.paused)

    second = make_sink(store)  # joining takes partitions from the paused `first`, batch and all
    deadline = time.monotonic() + 30
    # Only the rebalance is awaited: `first` pauses again on what it keeps (its store is still
    # down), so waiting for it to be unpaused too raced with its next flush.
    while not (first.ownership().partitions and second.ownership().partitions):
        assert time.monotonic() < deadline, "rebalance did not happen in time"
        first.poll_once(0.1)
        second.poll_once(0.1)
    flaky.failures_left = 0  # the store is back
    second.stop()  # leaving gives every partition back to `first`
    produce(settings, states([f"b-{i}" for i in range(10)], versions=1))

    expected = {f"a-{i}": 1 for i in range(10)} | {f"b-{i}": 1 for i in range(10)}
    drive(first, lambda: latest_runs(store) == expected and first.pending_messages == 0)
    assert committed_equals_end(settings)
