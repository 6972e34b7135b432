"""The partition watchdog of the sink and the alert dispatcher: each serves /health that fails
when a partition it consumes has lag but its committed offset stands still, though its loop
still turns; provoked by pausing the component's own consumer from inside, in its own thread
(tests/support/pausing_consumer.py), which it does not know about (the way a client library
that silently stops fetching looks from outside)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from confluent_kafka import Consumer, Producer

from runtime.config import Settings
from runtime.kafka_clients import consumer_config, producer_config
from runtime.ops_server import Heartbeat, OpsServer
from schemas.messages import RunStatus
from sentinel.cli.ops import start_ops
from sentinel.stack import consumed
from sentinel.topic_admin import ensure_topics
from sinks.alerts.service import AlertDispatcher
from sinks.clickhouse.migrations import migrate
from sinks.clickhouse.sink import ClickHouseSink
from sinks.clickhouse.store import open_store
from tests.support.alerts import anomaly, run_state
from tests.support.ops import metric, wait_health
from tests.support.pausing_consumer import PausingConsumer

pytestmark = pytest.mark.integration

WATCHDOG = {"port": 0, "partition_stall_s": 2.0, "progress_check_s": 0.3}


@pytest.fixture
def settings(kafka_bootstrap: str, make_settings: Callable[..., Settings]) -> Settings:
    made = make_settings(kafka_bootstrap, ops=WATCHDOG)
    ensure_topics(made)
    return made


def produce(settings: Settings, topic: str, key: str, value: bytes) -> int:
    producer = Producer(producer_config(settings))
    partitions: list[int] = []
    producer.produce(
        topic, key=key, value=value, on_delivery=lambda _e, m: partitions.append(m.partition())
    )
    producer.flush(10)
    return partitions[0]


def wait_committed(settings: Settings, group: str, topic: str, timeout: float = 30) -> None:
    probe = Consumer(consumer_config(settings, group))
    try:
        deadline = time.monotonic() + timeout
        while not consumed(probe, topic):
            assert time.monotonic() < deadline, f"{group} did not commit {topic}"
            time.sleep(0.2)
    finally:
        probe.close()


def check_stall(
    settings: Settings,
    server: OpsServer,
    component: str,
    group: str,
    topic: str,
    send: Callable[[], int],
    pause: Callable[[], None],
) -> None:
    url = f"http://127.0.0.1:{server.port}"
    send()
    wait_committed(settings, group, topic)
    time.sleep(2.5)  # idle and caught up for longer than partition_stall_s: still healthy
    assert wait_health(url, 200, timeout=5)["status"] == "ok"
    pause()
    partition = send()
    health = wait_health(url, 503, timeout=30)
    [stalled] = health["stalled_partitions"]
    assert stalled.startswith(f"{topic}[{partition}]: committed offset ")
    assert "1 behind" in stalled
    metrics = httpx.get(f"{url}/metrics", timeout=5).text
    assert metric(metrics, "sentinel_partition_stalls_total", component=component) >= 1
    labels = {"component": component, "topic": topic, "partition": str(partition)}
    assert metric(metrics, "sentinel_partition_stalled", **labels) == 1


@pytest.fixture
def running() -> Iterator[list[Any]]:
    """(stop event, thread, ops server) triples to stop after the test."""
    started: list[Any] = []
    yield started
    for stop, thread, server in started:
        stop.set()
        thread.join(30)
        server.stop()


def test_a_sink_that_stops_moving_fails_its_health_check(
    settings: Settings, running: list[Any]
) -> None:
    store = open_store(settings)
    migrate(store)
    sink = ClickHouseSink(settings, store)
    inside = sink._consumer = PausingConsumer(sink._consumer)  # type: ignore[assignment]
    heartbeat, stop = Heartbeat("sink"), threading.Event()
    thread = threading.Thread(target=sink.run_forever, args=(stop, heartbeat.beat), daemon=True)
    thread.start()
    server = start_ops(
        settings, "sink", heartbeat, progress=(settings.sink_group_id, sink.ownership)
    )
    assert server is not None
    running.append((stop, thread, server))
    versions = iter(range(1, 100))
    runs = settings.topic_names.runs

    def send() -> int:
        state = run_state("github:acme/shop:7:1", RunStatus.RUNNING, version=next(versions))
        return produce(settings, runs, state.run_id, state.to_bytes())

    try:
        check_stall(settings, server, "sink", settings.sink_group_id, runs, send, inside.pause_soon)
    finally:
        stop.set()
        thread.join(30)
        store.close()


def test_a_dispatcher_that_stops_moving_fails_its_health_check(
    settings: Settings, running: list[Any]
) -> None:
    dispatcher = AlertDispatcher(settings)  # the default: everything to the console
    inside = dispatcher.consumer = PausingConsumer(dispatcher.consumer)  # type: ignore[assignment]
    heartbeat, stop = Heartbeat("alerts"), threading.Event()
    thread = threading.Thread(
        target=dispatcher.run_forever, args=(stop, heartbeat.beat), daemon=True
    )
    thread.start()
    group = settings.alerts_group_id
    server = start_ops(settings, "alerts", heartbeat, progress=(group, dispatcher.ownership))
    assert server is not None
    running.append((stop, thread, server))
    subjects = iter(range(100))
    topic = settings.topic_names.anomalies

    def send() -> int:
        found = anomaly(subject=f"pod-{next(subjects)}")
        return produce(settings, topic, found.run_id, found.to_bytes())

    check_stall(settings, server, "alerts", group, topic, send, inside.pause_soon)
