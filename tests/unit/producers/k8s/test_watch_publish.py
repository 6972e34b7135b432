"""K8sWatcher's publishing step without a cluster or a broker: keys, topics, dead letters."""

from __future__ import annotations

import concurrent.futures
import json
from collections.abc import Callable
from typing import Any

from kubernetes import client

from producers.k8s.watch import K8sWatcher
from producers.k8s.watch_state import Emit
from runtime.config import load_settings
from schemas.messages import DeadLetter, K8sObjectEvent


class RecordingPublisher:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes]] = []

    def submit(
        self, topic: str, key: bytes | None, value: bytes, headers: dict[str, bytes] | None = None
    ) -> concurrent.futures.Future[tuple[int, int]]:
        self.sent.append((topic, key, value))
        future: concurrent.futures.Future[tuple[int, int]] = concurrent.futures.Future()
        future.set_result((0, len(self.sent)))
        return future

    def send(
        self, topic: str, key: bytes | None, value: bytes, on_failure: Callable[[Any], None]
    ) -> None:
        self.sent.append((topic, key, value))

    def flush(self, timeout: float = 10.0) -> int:
        return 0


def watcher(publisher: RecordingPublisher, observed: list[Any]) -> K8sWatcher:
    settings = load_settings(None, topics={"prefix": "x."}, k8s={"namespaces": ["ci"]})
    return K8sWatcher(
        settings,
        publisher,
        client.ApiClient(),  # no request is made here
        observers=[lambda *args: observed.append(args)],
    )


def test_events_are_keyed_by_namespace_and_name_and_observed() -> None:
    publisher, observed = RecordingPublisher(), list[Any]()
    pod = {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {"name": "p", "namespace": "ci", "uid": "u1", "resourceVersion": "5"},
    }
    watcher(publisher, observed)._publish(Emit("ADDED", pod))
    [(topic, key, value)] = publisher.sent
    assert (topic, key) == ("x.k8s", b"ci/p")
    assert K8sObjectEvent.from_bytes(value).resource_version == "5"
    assert [(kind, obj["metadata"]["name"]) for kind, obj, _at in observed] == [("ADDED", "p")]


def test_an_object_that_cannot_be_normalised_goes_to_the_dead_letter_topic() -> None:
    publisher, observed = RecordingPublisher(), list[Any]()
    broken = {"kind": "Pod", "metadata": {"name": "p", "namespace": 5, "uid": "u"}}
    w = watcher(publisher, observed)
    w._publish(Emit("MODIFIED", broken))
    [(topic, _key, value)] = publisher.sent
    assert topic == "x.dlq"
    letter = DeadLetter.from_bytes(value)
    assert letter.component == "k8s-watch" and letter.origin_topic == "x.k8s"
    assert json.loads(letter.raw_value)["object"] == broken
    assert observed == []
