"""The alert dispatcher on real Kafka, for integration tests: its input, its process, waits.

`Input` publishes what the worker would (run snapshots and anomalies keyed by run id);
`Dispatcher` runs `sentinel alerts` as its own process (so a test can SIGKILL it), its JSON log
in a file; `wait_committed` waits until the dispatcher's group committed all of its input, i.e.
its state is persisted.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer

from runtime.config import Settings
from runtime.kafka_clients import consumer_config, producer_config
from schemas.messages import Anomaly, RunState
from sentinel.stack import consumed


class Input:
    """Publishes what the worker would: run snapshots and anomalies keyed by run id."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.producer = Producer(producer_config(settings))

    def send(self, *messages: RunState | Anomaly) -> None:
        names = self.settings.topic_names
        for message in messages:
            topic = names.runs if isinstance(message, RunState) else names.anomalies
            self.producer.produce(topic, key=message.run_id.encode(), value=message.to_bytes())
        assert self.producer.flush(10) == 0


def wait_for(check: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"{what} not met within {timeout}s")


def wait_committed(settings: Settings, timeout: float = 30.0) -> None:
    """Until the dispatcher's group has committed everything on its inputs (state persisted)."""
    names = settings.topic_names
    probe = Consumer(consumer_config(settings, settings.alerts_group_id))
    try:
        wait_for(
            lambda: all(consumed(probe, topic) for topic in (names.anomalies, names.runs)),
            timeout=timeout,
            what="the dispatcher's offsets committed",
        )
    finally:
        probe.close()


class Dispatcher:
    """`sentinel alerts` as its own process, its JSON log in a file."""

    def __init__(self, config: Path, log: Path, partitions: int = 3) -> None:
        self.log = log
        self.out = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sentinel", "--config", str(config), "alerts"],
            stdout=self.out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(os.environ),
        )
        owned = f"alert partitions now {list(range(partitions))}"
        wait_for(
            lambda: owned in self.text(),
            timeout=90,
            what=f"the dispatcher owning every partition (log {log})",
        )

    def text(self) -> str:
        if self.proc.poll() is not None:
            raise AssertionError(f"the dispatcher exited: {self.log.read_text()[-3000:]}")
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.out.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.out.close()
