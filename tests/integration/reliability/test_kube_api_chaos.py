"""Reliability suite (issue 17), item 4: the Kubernetes API answering 410 Gone to every watch
and cutting every stream 1 s after it opened, for a minute: the watcher's and the log
streamer's output equals a clean run's.

Two fake API servers get the same scripted minute of pod and job changes and log lines, step by
step: one behaves, the other is in chaos for the first 60 s (watches answered 410, as an ERROR
event for the first half and as an HTTP 410 for the second, the two ways a real server says it;
log streams cut after 1 s). A real `K8sWatcher` and a real `LogStreamer` run against each, into
their own real Kafka topics. Both runs at once, so the test takes the script's length (~70 s).

"Equal" is the dedup contract of `producers.k8s.watch` / `watch_state`: under 410 the watcher
learns of changes by relisting, so it reports a state as RELISTED instead of ADDED/MODIFIED and
a deletion at the list's resourceVersion. What must match is, per object, the sequence of
states published (their resourceVersions, each once) and whether it was deleted. The script
keeps every state alive for 1.5 s, far longer than a relist round, so no state may be missed;
a state shorter than a relist round could be, by Kubernetes' own contract. Log lines: each
exactly once, in order, per container, and all of them in both runs.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from producers.k8s.client import api_client
from producers.k8s.log_stream import LogStreamer
from producers.k8s.watch import K8sWatcher
from producers.publisher import KafkaPublisher
from runtime.config import Settings
from runtime.kafka_clients import producer_config
from sentinel.topic_admin import ensure_topics
from tests.fakes.kube_api import FakeKubeApi, make_pod
from tests.support.helpers import read_topic
from tests.support.k8s import FAST_K8S, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

CHAOS_S = 60.0
STEP_S = 1.5  # every state lives this long: many relist rounds under chaos
LOG_EVERY_S = 0.2
NS = "ci"
RUNS = 8
Step = Callable[[FakeKubeApi], None]


def job(n: int) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"job-{n}",
            "namespace": NS,
            "uid": f"job-uid-{n}",
            "labels": {"sentinel.io/run-id": f"chaos-{n}"},
        },
        "spec": {"backoffLimit": 0},
        "status": {"active": 1},
    }


def pod(n: int) -> dict[str, Any]:
    containers = ("main", "side") if n % 2 else ("main",)
    labels = {"sentinel.io/run-id": f"chaos-{n}", "job-name": f"job-{n}"}
    obj = make_pod(NS, f"pod-{n}", labels, containers=containers)
    obj["metadata"]["uid"] = f"pod-uid-{n}"
    return obj


def containers(n: int) -> tuple[str, ...]:
    return ("main", "side") if n % 2 else ("main",)


def job_done(n: int, failed: bool) -> Callable[[dict[str, Any]], None]:
    def change(obj: dict[str, Any]) -> None:
        condition = "Failed" if failed else "Complete"
        obj["status"] = {
            "succeeded": 0 if failed else 1,
            "failed": 1 if failed else 0,
            "conditions": [{"type": condition, "status": "True"}],
        }

    return change


def script() -> list[tuple[float, str, Step]]:
    """(second, what, change) of eight overlapping runs: job, pod, progress, maybe a container
    restart, the pod's end, the job's condition, the deletions. Last change at ~65 s."""
    steps: list[tuple[float, str, Step]] = []
    for n in range(RUNS):
        at = n * 7.5
        failed = n % 3 == 0

        def add_job(api: FakeKubeApi, n: int = n) -> None:
            api.add("jobs", job(n))

        def add_pod(api: FakeKubeApi, n: int = n) -> None:
            api.add("pods", pod(n))

        def progress(api: FakeKubeApi, n: int = n) -> None:
            api.modify("pods", NS, f"pod-{n}", lambda o: o["metadata"]["labels"].update(step="2"))

        def restart(api: FakeKubeApi, n: int = n) -> None:
            api.restart_container(NS, f"pod-{n}", "main")

        def finish(api: FakeKubeApi, n: int = n, failed: bool = failed) -> None:
            api.finish_pod(NS, f"pod-{n}", "Failed" if failed else "Succeeded")

        def condition(api: FakeKubeApi, n: int = n, failed: bool = failed) -> None:
            api.modify("jobs", NS, f"job-{n}", job_done(n, failed))

        def delete_pod(api: FakeKubeApi, n: int = n) -> None:
            api.delete("pods", NS, f"pod-{n}")

        def delete_job(api: FakeKubeApi, n: int = n) -> None:
            api.delete("jobs", NS, f"job-{n}")

        steps += [
            (at, f"add job-{n}", add_job),
            (at + STEP_S, f"add pod-{n}", add_pod),
            (at + 2 * STEP_S, f"progress pod-{n}", progress),
        ]
        if n in (2, 5):
            steps.append((at + 3 * STEP_S, f"restart pod-{n}/main", restart))
        steps += [
            (at + 4 * STEP_S, f"finish pod-{n}", finish),
            (at + 5 * STEP_S, f"condition job-{n}", condition),
            (at + 6 * STEP_S, f"delete pod-{n}", delete_pod),
        ]
        if n % 2 == 0:
            steps.append((at + 7 * STEP_S, f"delete job-{n}", delete_job))
    return sorted(steps, key=lambda step: step[0])


@dataclass
class Side:
    """One fake API with a watcher and a log streamer on it, publishing to its own topics."""

    name: str
    api: FakeKubeApi
    settings: Settings
    publisher: KafkaPublisher
    watcher: K8sWatcher
    streamer: LogStreamer
    clients: list[Any]
    stopped: bool = False

    def caught_up(self) -> bool:
        """Every reflector has seen the server's latest resourceVersion (a bookmark or event)."""
        latest = str(self.api.resource_version)
        reflectors = [*self.watcher.reflectors, *self.streamer.pod_watchers]
        return all(r.resource_version == latest for r in reflectors)

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        self.watcher.stop()
        self.streamer.stop()
        self.publisher.close()
        for client in self.clients:
            client.close()

    def k8s_events(self) -> list[dict[str, Any]]:
        topic = self.settings.topic_names.k8s
        return [json.loads(v) for _k, v in read_topic(self.settings, topic)]

    def log_lines(self) -> list[dict[str, Any]]:
        topic = self.settings.topic_names.logs
        return [json.loads(v) for _k, v in read_topic(self.settings, topic)]


@pytest.fixture
def sides(
    kafka_bootstrap: str,
    make_settings: Callable[..., Settings],
    unique_prefix: str,
    tmp_path: Path,
) -> Iterator[tuple[Side, Side]]:
    made: list[Side] = []
    with FakeKubeApi(bookmark_interval=0.1) as clean, FakeKubeApi(bookmark_interval=0.1) as chaos:
        try:
            for name, api in (("clean", clean), ("chaos", chaos)):
                kubeconfig = api.write_kubeconfig(tmp_path / f"{name}.kubeconfig")
                k8s = {
                    **FAST_K8S,
                    "kubeconfig": str(kubeconfig),
                    "namespaces": [NS],
                    "kinds": ["Pod", "Job"],
                }
                settings = make_settings(
                    kafka_bootstrap, k8s=k8s, topics={"prefix": f"{unique_prefix}{name}."}
                )
                ensure_topics(settings)
                publisher = KafkaPublisher(producer_config(settings), component=f"k8s-{name}")
                watch_api, logs_api = api_client(settings.k8s), api_client(settings.k8s)
                side = Side(
                    name,
                    api,
                    settings,
                    publisher,
                    K8sWatcher(settings, publisher, watch_api),
                    LogStreamer(settings, publisher, logs_api),
                    [watch_api, logs_api],
                )
                made.append(side)
                side.watcher.start()
                side.streamer.start()
            yield made[0], made[1]
        finally:
            for side in made:
                side.stop()


class LogWriter:
    """Appends a numbered line to every running container of both servers every 0.2 s; the
    same lines, in the same order, on both."""

    def __init__(self, apis: tuple[FakeKubeApi, ...]) -> None:
        self.apis = apis
        self.running: set[tuple[str, str]] = set()  # (pod, container)
        self.written: dict[tuple[str, str], list[str]] = {}
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="log-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(LOG_EVERY_S):
            self.write_once()

    def write_once(self) -> None:
        with self.lock:
            for pod_name, container in sorted(self.running):
                lines = self.written.setdefault((pod_name, container), [])
                line = f"{pod_name}/{container} line {len(lines) + 1}"
                for api in self.apis:
                    api.append_log(NS, pod_name, container, line.encode())
                lines.append(line)

    def apply(self, what: str, change: Step) -> None:
        """A scripted change on both servers, between two rounds of lines."""
        with self.lock:
            for api in self.apis:
                change(api)
            verb, _, target = what.partition(" ")
            if verb == "add" and target.startswith("pod-"):
                n = int(target.removeprefix("pod-"))
                self.running |= {(target, c) for c in containers(n)}
            elif verb == "finish":
                self.running = {(p, c) for p, c in self.running if p != target}


def states(events: list[dict[str, Any]]) -> dict[tuple[str, str], tuple[list[str], bool]]:
    """Per (kind, name): the resourceVersions of the states published, in topic order, and
    whether a deletion was published (as its last event)."""
    found: dict[tuple[str, str], tuple[list[str], bool]] = {}
    for event in events:
        versions, deleted = found.get((event["kind"], event["name"]), ([], False))
        assert not deleted, f"an event after the deletion of {event['kind']} {event['name']}"
        if event["event_type"] == "DELETED":
            deleted = True
        else:
            versions = [*versions, event["resource_version"]]
        found[(event["kind"], event["name"])] = (versions, deleted)
    return found


def lines_by_container(values: list[dict[str, Any]]) -> dict[tuple[str, str], list[str]]:
    found: dict[tuple[str, str], list[str]] = {}
    for value in values:
        found.setdefault((value["pod"], value["container"]), []).append(value["line"])
    return found


def test_a_minute_of_410s_and_cut_streams_gives_the_output_of_a_clean_run(
    sides: tuple[Side, Side],
) -> None:
    clean, chaos = sides
    wait_for(lambda: clean.caught_up() and chaos.caught_up(), what="initial lists")
    writer = LogWriter((clean.api, chaos.api))
    chaos.api.gone_every_watch = True
    chaos.api.stream_lifetime_s = 1.0
    chaos.api.drop_watches()  # the watches open now are the first to go
    started = time.monotonic()
    writer.start()
    try:
        for at, what, change in script():
            elapsed = time.monotonic() - started
            if elapsed >= CHAOS_S / 2:
                chaos.api.gone_as_http = True  # the second half: 410 as an HTTP status
            if elapsed >= CHAOS_S:
                chaos.api.gone_every_watch = False
                chaos.api.stream_lifetime_s = None
            time.sleep(max(0.0, at - elapsed))
            writer.apply(what, change)
        chaos.api.gone_every_watch = False
        chaos.api.stream_lifetime_s = None
    finally:
        writer.stop()
    lists = [
        p for p, q in chaos.api.requests if p.endswith(("/pods", "/jobs")) and "watch" not in q
    ]
    resumed = [p for p, q in chaos.api.requests if p.endswith("/log") and "sinceTime" in q]

    expected_lines = sum(len(lines) for lines in writer.written.values())
    for side in (clean, chaos):
        wait_for(side.caught_up, timeout=30, what=f"{side.name} watchers caught up")
        wait_for(
            lambda side=side: side.streamer.published >= expected_lines,  # type: ignore[misc]
            timeout=30,
            what=f"{side.name} log lines",
        )
    time.sleep(1.0)  # would-be duplicates have time to show up
    for side in (clean, chaos):
        side.stop()

    # The chaos was real: watches were refused and streams cut, many times.
    gone = sum(r.restarts["gone"] for r in chaos.watcher.reflectors)
    assert gone > 10, gone
    assert len(resumed) > 20, len(resumed)
    # Without hammering the API server: relists after a refused watch are spaced by the
    # backoff (at least half its cap once it is there), not a tight loop (it listed 21,335
    # times in this minute, ~355 a second, before the backoff).
    reflectors = len(chaos.watcher.reflectors) + len(chaos.streamer.pod_watchers)
    bound = reflectors * (CHAOS_S / (FAST_K8S["backoff_cap_s"] / 2) + 10)
    assert len(lists) <= bound, (len(lists), bound)

    clean_events, chaos_events = clean.k8s_events(), chaos.k8s_events()
    for events in (clean_events, chaos_events):
        pairs = Counter((e["uid"], e["resource_version"]) for e in events)
        assert [pair for pair, n in pairs.items() if n > 1] == []
    assert {e["event_type"] for e in clean_events} == {"ADDED", "MODIFIED", "DELETED"}
    assert "RELISTED" in {e["event_type"] for e in chaos_events}
    clean_states, chaos_states = states(clean_events), states(chaos_events)
    # Every job and pod, each state once in order, deleted where the script deleted it.
    assert len(clean_states) == RUNS * 2
    assert chaos_states == clean_states

    clean_lines = lines_by_container(clean.log_lines())
    chaos_lines = lines_by_container(chaos.log_lines())
    assert clean_lines == writer.written
    assert chaos_lines == writer.written
    print(f"chaos: {gone} watches refused (410), {len(lists)} lists, {len(resumed)} log resumes")
