"""The worker's partition watchdog: a worker whose loop still turns but that stopped moving
fails its liveness probe (so Kubernetes restarts it), and says which partition and why.

The worker is the production one with one fault (tests/support/stalling_worker.py): on a
signal file it pauses every partition its consumer owns — the silent stall of
faust-streaming/faust #175, #523, #532 — while its event loop and heartbeat keep turning.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from producers.publisher import KafkaPublisher
from runtime.config import Settings
from runtime.kafka_clients import producer_config
from sentinel.stack import EmbeddedStack
from tests.integration.processors.worker.test_worker import RUN_ID, ci_event
from tests.support.ops import metric, wait_health
from tests.support.stalling_worker import STALL_FILE

pytestmark = pytest.mark.integration


def test_a_worker_that_stops_moving_fails_its_health_check(
    kafka_bootstrap: str,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stall = tmp_path / "stall-now"
    monkeypatch.setenv(STALL_FILE, str(stall))  # the worker child inherits the environment
    settings = make_settings(
        kafka_bootstrap, ops={"partition_stall_s": 2.0, "progress_check_s": 0.3}
    )
    stack = EmbeddedStack(
        settings, worker_command=[sys.executable, "-m", "tests.support.stalling_worker"]
    )
    stack.start()
    publisher = KafkaPublisher(producer_config(stack.settings))
    try:
        assert stack.worker is not None
        url = f"http://127.0.0.1:{stack.worker.ops_port}"
        ci = stack.settings.topic_names.ci
        requested = ci_event("workflow_run", "s-1", "workflow_run/requested.payload.json")
        publisher.publish_sync(ci, RUN_ID.encode(), requested.to_bytes(), timeout=10)
        stack.wait_consumed(timeout=60)
        time.sleep(3 * 0.3 + 2.0)  # idle and caught up for longer than partition_stall_s
        assert wait_health(url, 200, timeout=5)["status"] == "ok"

        stall.touch()
        time.sleep(1.0)  # the fault's timer pauses the partitions
        completed = ci_event("workflow_run", "s-2", "workflow_run/completed.payload.json")
        _partition, _offset = publisher.publish_sync(ci, RUN_ID.encode(), completed.to_bytes(), 10)

        health = wait_health(url, 503, timeout=30)
        assert health["status"] == "stalled"
        [stalled] = health["stalled_partitions"]
        assert stalled.startswith(f"{ci}[{_partition}]: committed offset 1 of 2 (1 behind)")
        ready = httpx.get(f"{url}/ready", timeout=5)
        assert ready.status_code == 503 and "partitions" in ready.json()["failing"]
        metrics = httpx.get(f"{url}/metrics", timeout=5).text
        assert metric(metrics, "sentinel_partition_stalls_total", component="worker") == 1
        labels = {"component": "worker", "topic": ci, "partition": str(_partition)}
        assert metric(metrics, "sentinel_partition_stalled", **labels) == 1
        assert "partition stalled" in stack.worker.log_path.read_text()
    finally:
        publisher.close()
        stack.stop()
