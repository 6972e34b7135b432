"""`sentinel k8s-watch` through the real kubernetes client against the fake API, into real Kafka.

Every test reads the topic back and checks that each (uid, resourceVersion) is on it exactly
once and that every change made on the server arrived.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from producers.k8s.client import api_client
from producers.k8s.watch import K8sWatcher
from producers.publisher import KafkaPublisher
from runtime.config import Settings
from runtime.kafka_clients import producer_config
from sentinel.topic_admin import ensure_topics
from tests.fakes.kube_api import FakeKubeApi, make_pod
from tests.support.helpers import read_topic
from tests.support.k8s import k8s_settings, wait_for

pytestmark = pytest.mark.integration


class Running:
    def __init__(self, settings: Settings) -> None:
        ensure_topics(settings)
        self.settings = settings
        self.publisher = KafkaPublisher(producer_config(settings), component="test-k8s")
        self.api = api_client(settings.k8s)
        self.watcher = K8sWatcher(settings, self.publisher, self.api)
        self.watcher.start()

    @property
    def reflector(self) -> Any:
        return self.watcher.reflectors[0]

    def published(self, event_type: str) -> int:
        return self.watcher.published[event_type]

    def stop_and_read(self) -> list[dict[str, Any]]:
        self.watcher.stop()
        self.publisher.close()
        self.api.close()
        messages = read_topic(self.settings, self.settings.topic_names.k8s)
        return [json.loads(value) for _key, value in messages]


@pytest.fixture
def start(
    make_settings: Callable[..., Settings], kafka_bootstrap: str, fake: FakeKubeApi, tmp_path: Path
) -> Iterator[Callable[..., Running]]:
    started: list[Running] = []

    def factory(**k8s: Any) -> Running:
        k8s = {"namespaces": ["ci"], "kinds": ["Pod"], **k8s}
        running = Running(k8s_settings(make_settings, kafka_bootstrap, fake, tmp_path, k8s))
        started.append(running)
        return running

    yield factory
    for running in started:
        running.watcher.stop()


def summary(values: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [(v["event_type"], v["name"], v["resource_version"]) for v in values]


def assert_no_duplicates(values: list[dict[str, Any]]) -> None:
    pairs = Counter((v["uid"], v["resource_version"]) for v in values)
    assert [p for p, n in pairs.items() if n > 1] == []


def label(key: str, value: str) -> Callable[[dict[str, Any]], None]:
    return lambda obj: obj["metadata"]["labels"].update({key: value})


@pytest.mark.parametrize("how", ["drop-then-410-event", "drop-then-410-http", "410-on-open-watch"])
def test_410_relist_publishes_exactly_what_changed_while_away(
    fake: FakeKubeApi, start: Callable[..., Running], how: str
) -> None:
    fake.gone_as_http = how == "drop-then-410-http"
    pods = [fake.add("pods", make_pod("ci", n, {"sentinel.io/run-id": "run-1"})) for n in "abcd"]
    fake.add("pods", make_pod("other", "elsewhere"))  # another namespace: not watched
    running = start()
    wait_for(lambda: running.published("RELISTED") == 4, what="initial list")
    wait_for(lambda: fake.open_watches == 1, what="watch open")
    a2 = fake.modify("pods", "ci", "a", label("step", "2"))
    wait_for(lambda: running.published("MODIFIED") == 1, what="watch event")

    with fake.atomic():  # while the watcher cannot see it, then history is compacted
        b2 = fake.modify("pods", "ci", "b", label("step", "2"))
        fake.delete("pods", "ci", "c")
        e1 = fake.add("pods", make_pod("ci", "e", {"sentinel.io/run-id": "run-1"}))
        fake.compact()
        list_rv = str(fake.resource_version)
        if how == "410-on-open-watch":
            fake.expire_watches()
        else:
            fake.drop_watches()
    wait_for(lambda: running.reflector.relists == 2, what="relist after 410")
    wait_for(lambda: fake.open_watches == 1, what="watch reopened")
    e2 = fake.modify("pods", "ci", "e", label("step", "2"))
    wait_for(lambda: running.published("MODIFIED") == 2, what="watch after relist")

    values = running.stop_and_read()
    assert running.reflector.restarts["gone"] >= 1
    assert_no_duplicates(values)
    initial = [("RELISTED", p["metadata"]["name"], p["metadata"]["resourceVersion"]) for p in pods]
    expected = [
        *initial,
        ("MODIFIED", "a", a2["metadata"]["resourceVersion"]),
        ("RELISTED", "b", b2["metadata"]["resourceVersion"]),  # changed while away
        ("RELISTED", "e", e1["metadata"]["resourceVersion"]),  # created while away
        ("DELETED", "c", list_rv),  # deleted while away
        ("MODIFIED", "e", e2["metadata"]["resourceVersion"]),
    ]
    # a and d did not change while away: not published again.
    assert sorted(summary(values)) == sorted(expected)
    assert {v["correlation_key"] for v in values} == {"run-1"}
    assert all("managedFields" not in v["object"]["metadata"] for v in values)


def test_reconnects_after_the_server_drops_the_stream(
    fake: FakeKubeApi, start: Callable[..., Running]
) -> None:
    fake.add("pods", make_pod("ci", "a"))
    running = start()
    wait_for(lambda: fake.open_watches == 1, what="watch open")
    for step in range(3):
        fake.drop_watches()
        fake.modify("pods", "ci", "a", label("step", str(step)))
        wait_for(lambda: running.published("MODIFIED") == step + 1, what=f"event {step}")  # noqa: B023
    values = running.stop_and_read()
    assert running.reflector.restarts["connection"] >= 3
    assert running.reflector.relists == 1  # resumed from its resourceVersion, no relist
    assert [v["event_type"] for v in values] == ["RELISTED", "MODIFIED", "MODIFIED", "MODIFIED"]
    assert_no_duplicates(values)


def test_a_silent_stream_is_treated_as_dead_and_reopened(
    fake: FakeKubeApi, start: Callable[..., Running]
) -> None:
    fake.add("pods", make_pod("ci", "a"))
    running = start(silence_limit_s=0.8)
    wait_for(lambda: fake.open_watches == 1, what="watch open")
    time.sleep(1.0)  # bookmarks keep a healthy but idle stream alive past the limit
    assert running.reflector.restarts["silent"] == 0
    fake.silence_watches()
    changed = time.monotonic()
    fake.modify("pods", "ci", "a", label("step", "1"))
    wait_for(lambda: running.published("MODIFIED") == 1, timeout=10, what="event after silence")
    took = time.monotonic() - changed
    values = running.stop_and_read()
    assert running.reflector.restarts["silent"] == 1
    assert 0.7 < took < 8.0  # not before the silence limit; the upper bound has slack for CI load
    assert [v["event_type"] for v in values] == ["RELISTED", "MODIFIED"]


def deep_size(root: object) -> int:
    """Bytes held by `root` and everything it references (each object counted once)."""
    seen: set[int] = set()
    stack = [root]
    total = 0
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        total += sys.getsizeof(item)
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            stack.extend(item)
    return total


def test_a_namespace_with_500_pods_keeps_memory_bounded(
    fake: FakeKubeApi, start: Callable[..., Running]
) -> None:
    for i in range(500):
        fake.add("pods", make_pod("ci", f"pod-{i:03}", {"job-name": f"job-{i % 50}"}))
    running = start(dedup_recent=1000, list_page_size=200)
    wait_for(lambda: running.published("RELISTED") == 500, timeout=30, what="initial list")
    ledger = running.reflector.ledger
    after_list = deep_size(ledger._live) + deep_size(ledger._recent)
    for round_ in range(4):
        for i in range(500):
            fake.modify("pods", "ci", f"pod-{i:03}", label("round", str(round_)))
    wait_for(lambda: running.published("MODIFIED") == 2000, timeout=60, what="2000 events")
    after_events = deep_size(ledger._live) + deep_size(ledger._recent)
    normalizer = len(running.watcher.normalizer)
    values = running.stop_and_read()

    assert len(values) == 2500
    assert_no_duplicates(values)
    assert fake.count_requests("/pods", limit="200") >= 3  # listed in pages
    assert ledger.live_count == 500 and ledger.recent_count == 1000
    assert normalizer == 500
    # What the watcher keeps: metadata summaries of live objects plus the bounded recent set.
    # It does not grow with the number of events (2000 more did not change its order).
    per_pod = after_events / 500
    print(
        f"retained after list {after_list} B, after 2000 events {after_events} B "
        f"({per_pod:.0f} B per pod)"
    )
    assert after_events < 2 * 1024 * 1024
    assert after_events < after_list * 2


def test_all_kinds_across_namespaces_with_events_correlated_to_their_pod(
    fake: FakeKubeApi, start: Callable[..., Running]
) -> None:
    job = fake.add("jobs", {"metadata": {"name": "nightly", "namespace": "ci"}, "spec": {}})
    pod = fake.add(
        "pods", make_pod("ci", "nightly-x7k", {"batch.kubernetes.io/job-name": "nightly"})
    )
    fake.add("services", {"metadata": {"name": "db", "namespace": "qa"}, "spec": {}})
    running = start(namespaces=[], kinds=["Pod", "Job", "Service", "Event"])
    wait_for(lambda: running.published("RELISTED") == 3, what="three kinds listed")
    wait_for(lambda: fake.open_watches == 4, what="four watches")
    event = {
        "metadata": {"name": "nightly-x7k.1", "namespace": "ci"},
        "involvedObject": {
            "kind": "Pod",
            "name": "nightly-x7k",
            "namespace": "ci",
            "uid": pod["metadata"]["uid"],
        },
        "reason": "OOMKilled",
        "type": "Warning",
        "lastTimestamp": "2026-01-01T10:00:00Z",
    }
    fake.add("events", event)
    wait_for(lambda: running.published("ADDED") == 1, what="event")
    values = running.stop_and_read()
    by_kind = {v["kind"]: v for v in values}
    assert set(by_kind) == {"Pod", "Job", "Service", "Event"}
    assert by_kind["Job"]["correlation_key"] == "job:ci/nightly"
    assert by_kind["Job"]["uid"] == job["metadata"]["uid"]
    assert by_kind["Pod"]["correlation_key"] == "job:ci/nightly"
    assert by_kind["Event"]["correlation_key"] == "job:ci/nightly"
    assert by_kind["Event"]["event_time"].startswith("2026-01-01T10:00:00")
    assert by_kind["Service"]["namespace"] == "qa" and by_kind["Service"]["correlation_key"] is None
    assert by_kind["Job"]["api_version"] == "batch/v1"  # list items carry no kind: filled in


def test_label_selector_is_applied_by_the_server(
    fake: FakeKubeApi, start: Callable[..., Running]
) -> None:
    fake.add("pods", make_pod("ci", "ci-pod", {"team": "ci"}))
    fake.add("pods", make_pod("ci", "web-pod", {"team": "web"}))
    running = start(label_selector="team=ci")
    wait_for(lambda: fake.open_watches == 1, what="watch open")
    fake.add("pods", make_pod("ci", "ci-pod-2", {"team": "ci"}))
    fake.add("pods", make_pod("ci", "web-pod-2", {"team": "web"}))
    wait_for(lambda: running.published("ADDED") == 1, what="selected pod")
    values = running.stop_and_read()
    assert sorted(v["name"] for v in values) == ["ci-pod", "ci-pod-2"]
    assert fake.count_requests("/pods", labelSelector="team=ci", watch="true") >= 1


def test_a_watcher_killed_between_checkpoints_is_not_repeated_by_its_successor(
    fake: FakeKubeApi, start: Callable[..., Running], tmp_path: Path
) -> None:
    """What a SIGKILL leaves: states published (on the topic) after the last checkpoint the
    state file holds. The successor reads them back from the topic instead of publishing them
    again as RELISTED (stored twice in k8s_events: tests/integration/reliability/
    test_kill_each.py found it)."""
    state = tmp_path / "state" / "k8s-watch.json"
    pods = [fake.add("pods", make_pod("ci", n, {"job-name": "nightly"})) for n in "ab"]
    first = start(state_file=str(state), checkpoint_s=3600)  # no periodic checkpoint here
    wait_for(lambda: first.published("RELISTED") == 2, what="initial list")
    c1 = fake.add("pods", make_pod("ci", "c", {"job-name": "nightly"}))
    a2 = fake.modify("pods", "ci", "a", label("step", "2"))
    wait_for(lambda: first.published("MODIFIED") == 1, what="watch events")
    # Dies: its reflectors stop and what it handed to the producer is delivered (a killed
    # process's producer may lose its last batch too; that is a state never published, which
    # a relist does publish), but no checkpoint is written after the first one.
    for reflector in first.watcher.reflectors:
        reflector.stop()
    assert first.publisher.flush(10) == 0

    b2 = fake.modify("pods", "ci", "b", label("step", "2"))  # while nobody watches
    second = start(state_file=str(state), checkpoint_s=3600)
    wait_for(lambda: second.published("RELISTED") >= 1, what="relist differences")
    values = second.stop_and_read()
    assert_no_duplicates(values)
    assert sorted(summary(values)) == sorted(
        [
            *[("RELISTED", p["metadata"]["name"], p["metadata"]["resourceVersion"]) for p in pods],
            ("ADDED", "c", c1["metadata"]["resourceVersion"]),
            ("MODIFIED", "a", a2["metadata"]["resourceVersion"]),
            ("RELISTED", "b", b2["metadata"]["resourceVersion"]),
        ]
    )


def test_a_restart_with_a_state_file_publishes_only_what_changed_while_down(
    fake: FakeKubeApi, start: Callable[..., Running], tmp_path: Path
) -> None:
    state = tmp_path / "state" / "k8s-watch.json"
    pods = [fake.add("pods", make_pod("ci", n, {"job-name": "nightly"})) for n in "abc"]
    first = start(state_file=str(state), checkpoint_s=0.2, kinds=["Pod", "Event"])
    wait_for(lambda: first.published("RELISTED") == 3, what="initial list")
    first.watcher.stop()  # writes the state once the producer has delivered everything
    assert state.exists()

    b2 = fake.modify("pods", "ci", "b", label("step", "2"))  # while nobody watches
    fake.delete("pods", "ci", "c")
    d1 = fake.add("pods", make_pod("ci", "d", {"job-name": "nightly"}))
    gone_at = str(fake.resource_version)

    second = start(state_file=str(state), checkpoint_s=0.2, kinds=["Pod", "Event"])
    wait_for(lambda: second.published("DELETED") == 1, what="relist differences")
    # Both reflectors (Pod, Event) watching: an Event added now comes as ADDED on the watch,
    # not in the Event reflector's initial list (which would make it RELISTED).
    wait_for(lambda: fake.open_watches == 2, what="both watches open")
    a_uid = pods[0]["metadata"]["uid"]
    fake.add(
        "events",
        {
            "metadata": {"name": "a.1", "namespace": "ci"},
            "involvedObject": {"kind": "Pod", "name": "a", "namespace": "ci", "uid": a_uid},
            "reason": "Started",
        },
    )
    wait_for(lambda: second.published("ADDED") == 1, what="event")
    values = second.stop_and_read()
    assert sorted(summary([v for v in values if v["kind"] == "Pod"])) == sorted(
        [
            *[("RELISTED", p["metadata"]["name"], p["metadata"]["resourceVersion"]) for p in pods],
            ("RELISTED", "b", b2["metadata"]["resourceVersion"]),
            ("DELETED", "c", gone_at),
            ("RELISTED", "d", d1["metadata"]["resourceVersion"]),
        ]
    )  # a was not published again
    event = next(v for v in values if v["kind"] == "Event")
    assert event["correlation_key"] == "job:ci/nightly"  # a's key, restored from the state
