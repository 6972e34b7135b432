"""Test helpers: a real uvicorn server on a loopback port, GitHub signing, reading a topic."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn
from confluent_kafka import Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
)

from runtime.config import Settings
from runtime.kafka_clients import admin_config, consumer_config
from sentinel.brokers import free_port
from sentinel.stack import EmbeddedStack
from tests.support.paths import DATA

CORPUS = DATA / "github-webhooks"


def payload(path: str) -> bytes:
    return (CORPUS / path).read_bytes()


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def github_headers(event: str, delivery: str, body: bytes, secret: str | None) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
    }
    if secret is not None:
        headers["X-Hub-Signature-256"] = sign(secret, body)
    return headers


def post_webhook(
    url: str, event: str, delivery: str, path: str, secret: str | None
) -> httpx.Response:
    """POST a corpus payload to the GitHub webhook endpoint, signed with `secret`."""
    body = payload(path)
    return httpx.post(
        f"{url}/api/webhooks/github",
        content=body,
        headers=github_headers(event, delivery, body, secret),
        timeout=30,
    )


class ServerThread:
    """uvicorn serving an ASGI app on 127.0.0.1:<free port> in a background thread."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None)
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise TimeoutError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@contextmanager
def served_stack(settings: Settings) -> Iterator[tuple[EmbeddedStack, str]]:
    """An embedded stack on `settings` (worker, sink, store) with its API served on loopback."""
    stack = EmbeddedStack(settings)
    stack.start()
    try:
        assert stack.owner is not None
        with ServerThread(stack.owner.api()) as server:
            yield stack, server.url
    finally:
        stack.stop()


def wait_for_run(url: str, run_id: str, status: str, timeout: float = 90) -> dict[str, Any]:
    """Poll GET /api/runs until `run_id` shows `status`; the run as the API returned it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = httpx.get(f"{url}/api/runs", params={"limit": 500}, timeout=10)
        assert response.status_code == 200
        for run in response.json()["items"]:
            if run["run_id"] == run_id and run["status"] == status:
                return dict(run)
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} did not reach {status} in {timeout}s")


def read_topic(
    settings: Settings, topic: str, idle: float = 1.5
) -> list[tuple[bytes | None, bytes]]:
    """Every message on `topic` from the beginning, read until the end of every partition."""
    consumer = Consumer(
        consumer_config(settings, f"reader-{time.monotonic_ns()}", **{"enable.partition.eof": True})
    )
    metadata = consumer.list_topics(topic, timeout=10)
    partitions = list(metadata.topics[topic].partitions)
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    messages: list[tuple[bytes | None, bytes]] = []
    at_end: set[int] = set()
    deadline = time.monotonic() + 30
    while len(at_end) < len(partitions) and time.monotonic() < deadline:
        message = consumer.poll(idle)
        if message is None:
            continue
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                at_end.add(message.partition())
                continue
            raise RuntimeError(error.str())
        messages.append((message.key(), message.value()))
    consumer.close()
    return messages


def json_values(messages: list[tuple[bytes | None, bytes]]) -> list[dict[str, Any]]:
    return [json.loads(value) for _key, value in messages]


def create_topic_refusing_over(settings: Settings, topic: str, max_bytes: int) -> None:
    """Create `topic` (before the stack does) with a `max.message.bytes` that refuses larger
    messages: a dead-letter topic an operator misconfigured."""
    admin = AdminClient(admin_config(settings))
    made = NewTopic(
        topic,
        settings.topics.partitions,
        replication_factor=1,
        config={"max.message.bytes": str(max_bytes)},
    )
    admin.create_topics([made])[topic].result(30)


def set_max_message_bytes(settings: Settings, topic: str, max_bytes: int) -> None:
    """What the operator does to fix it."""
    admin = AdminClient(admin_config(settings))
    entry = ConfigEntry(
        "max.message.bytes", str(max_bytes), incremental_operation=AlterConfigOpType.SET
    )
    fix = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[entry])
    admin.incremental_alter_configs([fix])[fix].result(30)
