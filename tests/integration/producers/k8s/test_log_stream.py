"""`sentinel log-stream` via the real kubernetes client against the fake API, into real Kafka."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from producers.k8s.client import api_client
from producers.k8s.log_lines import ns_to_datetime
from producers.k8s.log_stream import LogStreamer
from producers.publisher import KafkaPublisher
from runtime.config import Settings
from runtime.kafka_clients import producer_config
from sentinel.topic_admin import ensure_topics
from tests.fakes.kube_api import FakeKubeApi, make_pod
from tests.support.helpers import read_topic
from tests.support.k8s import k8s_settings, wait_for

pytestmark = pytest.mark.integration

RUN = {"sentinel.io/run-id": "run-1"}


class Running:
    def __init__(self, settings: Settings) -> None:
        ensure_topics(settings)
        self.settings = settings
        self.publisher = KafkaPublisher(producer_config(settings), component="test-logs")
        self.api = api_client(settings.k8s)
        self.streamer = LogStreamer(settings, self.publisher, self.api)
        self.streamer.start()

    def published(self) -> int:
        return self.streamer.published

    def stop_and_read(self) -> list[dict[str, Any]]:
        self.streamer.stop()
        self.publisher.close()
        self.api.close()
        messages = read_topic(self.settings, self.settings.topic_names.logs)
        values = [json.loads(value) for _key, value in messages]
        for key, value in messages:
            parsed = json.loads(value)
            assert key == f"{parsed['namespace']}/{parsed['pod']}/{parsed['container']}".encode()
        return values


@pytest.fixture
def start(
    make_settings: Callable[..., Settings], kafka_bootstrap: str, fake: FakeKubeApi, tmp_path: Path
) -> Iterator[Callable[..., Running]]:
    started: list[Running] = []

    def factory(**logs: Any) -> Running:
        settings = k8s_settings(
            make_settings, kafka_bootstrap, fake, tmp_path, {"namespaces": ["ci"]}, logs
        )
        running = Running(settings)
        started.append(running)
        return running

    yield factory
    for running in started:
        running.streamer.stop()


def lines_of(values: list[dict[str, Any]], container: str = "main") -> list[str]:
    return [v["line"] for v in values if v["container"] == container]


def test_follows_correlated_pods_and_resumes_after_a_drop_without_duplicates(
    fake: FakeKubeApi, start: Callable[..., Running]
) -> None:
    fake.add("pods", make_pod("ci", "build", RUN, containers=("main", "side")))
    fake.add("pods", make_pod("ci", "unrelated"))  # no correlation key: not followed
    fake.append_log("ci", "unrelated", "main", b"nobody reads me")
    t0 = fake.append_log("ci", "build", "main", b"line 1")
    fake.append_log("ci", "build", "main", b"line 2", ts_ns=t0 + 1_000)
    fake.append_log("ci", "build", "main", b"line 3", ts_ns=t0 + 1_000)  # same timestamp
    fake.append_log("ci", "build", "side", b"side 1")
    running = start()
    wait_for(lambda: running.published() == 4, what="first lines")
    fake.drop_log_streams()
    fake.append_log("ci", "build", "main", b"line 4", ts_ns=t0 + 1_000)  # still that timestamp
    fake.append_log("ci", "build", "main", b"line 5", ts_ns=t0 + 2_000)
    wait_for(lambda: running.published() == 6, what="lines after the drop")
    follower = running.streamer.followers[("ci", "build", "main")]
    wait_for(lambda: follower.streams >= 2, what="reconnect")
    time.sleep(0.3)  # would-be duplicates have time to show up
    values = running.stop_and_read()
    assert lines_of(values) == ["line 1", "line 2", "line 3", "line 4", "line 5"]
    assert lines_of(values, "side") == ["side 1"]
    resumed = [q for path, q in fake.requests if path.endswith("/log") and "sinceTime" in q]
    assert resumed and all(q["timestamps"] == "true" for q in resumed)
    assert {v["correlation_key"] for v in values} == {"run-1"}
    assert {v["pod"] for v in values} == {"build"}
    first = next(v for v in values if v["line"] == "line 1")
    assert datetime.fromisoformat(first["event_time"]) == ns_to_datetime(t0)


def test_a_restarted_container_keeps_the_end_of_its_previous_log(
    fake: FakeKubeApi, start: Callable[..., Running]
) -> None:
    fake.add("pods", make_pod("ci", "flaky", RUN))
    fake.append_log("ci", "flaky", "main", b"run 1: a")
    running = start()
    wait_for(lambda: running.published() == 1, what="first line")
    with fake.atomic():  # the stream breaks, then the container writes, crashes, restarts
        fake.drop_log_streams()
        fake.append_log("ci", "flaky", "main", b"run 1: last words")
        fake.restart_container("ci", "flaky", "main")
        fake.append_log("ci", "flaky", "main", b"run 2: a")
    wait_for(lambda: running.published() == 3, what="both instances")
    fake.append_log("ci", "flaky", "main", b"run 2: b")
    wait_for(lambda: running.published() == 4, what="following the new instance")
    follower = running.streamer.followers[("ci", "flaky", "main")]
    values = running.stop_and_read()
    assert lines_of(values) == ["run 1: a", "run 1: last words", "run 2: a", "run 2: b"]
    assert follower.previous_reads == 1
    assert fake.count_requests("/flaky/log", previous="true") == 1


def test_a_1_mib_line_is_truncated_and_flagged(
    fake: FakeKubeApi, start: Callable[..., Running]
) -> None:
    fake.add("pods", make_pod("ci", "noisy", RUN))
    fake.append_log("ci", "noisy", "main", "é".encode() * (512 * 1024))  # 1 MiB
    fake.append_log("ci", "noisy", "main", b"after")
    running = start(max_line_bytes=65536)
    wait_for(lambda: running.published() == 2, what="both lines")
    values = running.stop_and_read()
    long, after = values
    assert long["truncated"] is True
    assert long["line"] == "é" * 32768  # 64 KiB, cut between characters
    assert after == {**after, "line": "after", "truncated": False}


def test_invalid_utf8_is_replaced_and_the_stream_goes_on(
    fake: FakeKubeApi, start: Callable[..., Running]
) -> None:
    fake.add("pods", make_pod("ci", "binary", RUN))
    fake.append_log("ci", "binary", "main", b"bad \xff\xfe bytes \xc3")
    fake.append_log("ci", "binary", "main", b"\x00\x80 control and stray")
    fake.append_log("ci", "binary", "main", "good ünïcode".encode())
    running = start()
    wait_for(lambda: running.published() == 3, what="three lines")
    assert lines_of(running.stop_and_read()) == [
        "bad \ufffd\ufffd bytes \ufffd",
        "\x00\ufffd control and stray",
        "good ünïcode",
    ]


def test_streams_are_capped_and_the_queue_is_bounded(
    fake: FakeKubeApi, start: Callable[..., Running]
) -> None:
    for name in ("p1", "p2", "p3"):
        fake.add("pods", make_pod("ci", name, RUN))
        for i in range(100):
            fake.append_log("ci", name, "main", f"{name} {i}".encode())
    running = start(max_streams=2, queue_size=5)
    peak_streams = 0
    deadline = time.monotonic() + 10
    while running.published() < 200 and time.monotonic() < deadline:
        peak_streams = max(peak_streams, fake.open_log_streams)
        time.sleep(0.005)
    assert running.published() == 200
    time.sleep(0.3)
    assert running.published() == 200  # the third pod waits for a free stream
    followers = running.streamer.followers
    streaming = [name for (_, name, _), f in followers.items() if f.streams]
    assert len(followers) == 3 and len(streaming) == 2
    fake.finish_pod("ci", streaming[0])
    wait_for(lambda: running.published() == 300, what="third pod after a slot freed")
    assert running.streamer.peak_queue <= 5
    assert peak_streams <= 2
    values = running.stop_and_read()
    for name in ("p1", "p2", "p3"):
        assert [v["line"] for v in values if v["pod"] == name] == [
            f"{name} {i}" for i in range(100)
        ]


def test_a_finished_pod_is_read_to_the_end_once(
    fake: FakeKubeApi, start: Callable[..., Running]
) -> None:
    fake.add("pods", make_pod("ci", "short-job", RUN))
    fake.append_log("ci", "short-job", "main", b"started")
    fake.append_log("ci", "short-job", "main", b"done")
    fake.finish_pod("ci", "short-job")  # finished before log-stream ever saw it
    running = start()
    wait_for(lambda: running.published() == 2, what="its log")
    wait_for(lambda: not running.streamer.followers, what="follower done")
    fake.modify("pods", "ci", "short-job", lambda pod: pod["metadata"]["labels"].update(x="1"))
    time.sleep(0.5)  # a MODIFIED event must not start it again
    values = running.stop_and_read()
    assert lines_of(values) == ["started", "done"]
    assert fake.count_requests("/short-job/log") == 1


def test_a_restart_with_a_state_file_resumes_where_it_stopped(
    fake: FakeKubeApi, start: Callable[..., Running], tmp_path: Path
) -> None:
    state = tmp_path / "log-stream.json"
    fake.add("pods", make_pod("ci", "long", RUN))
    for i in (1, 2, 3):
        fake.append_log("ci", "long", "main", f"line {i}".encode())
    first = start(state_file=str(state), checkpoint_s=0.2)
    wait_for(lambda: first.published() == 3, what="first lines")
    first.streamer.stop()  # saves the position once the producer delivered the lines
    assert state.exists()

    fake.append_log("ci", "long", "main", b"line 4")  # while log-stream is down...
    fake.restart_container("ci", "long", "main")  # ...the container restarts
    fake.append_log("ci", "long", "main", b"line 5")

    second = start(state_file=str(state), checkpoint_s=0.2)
    wait_for(lambda: second.published() == 2, what="only the new lines")
    follower = second.streamer.followers[("ci", "long", "main")]
    time.sleep(0.3)
    values = second.stop_and_read()
    assert lines_of(values) == ["line 1", "line 2", "line 3", "line 4", "line 5"]
    assert follower.previous_reads == 1


def test_a_streamer_killed_between_checkpoints_is_not_repeated_by_its_successor(
    fake: FakeKubeApi, start: Callable[..., Running], tmp_path: Path
) -> None:
    """What a SIGKILL leaves: lines published (on the topic) after the last checkpoint the
    state file holds. The successor reads them back from the topic and skips them when it
    reads them again from the pod (stored twice in log_lines, and a test result counted as a
    retry, before: tests/integration/reliability/test_kill_each.py found it)."""
    state = tmp_path / "log-stream.json"
    fake.add("pods", make_pod("ci", "long", RUN))
    for i in (1, 2, 3):
        fake.append_log("ci", "long", "main", f"line {i}".encode())
    first = start(state_file=str(state), checkpoint_s=3600)  # no periodic checkpoint here
    wait_for(lambda: first.published() == 3, what="first lines")
    # Dies: its streams stop and what it handed to the producer is delivered, but no
    # checkpoint is written after the first one.
    streamer = first.streamer
    streamer.stopping.set()
    for watcher in streamer.pod_watchers:
        watcher.stop()
    for follower in list(streamer.followers.values()):
        follower.interrupt()
    assert first.publisher.flush(10) == 0

    fake.append_log("ci", "long", "main", b"line 4")  # while log-stream is down
    second = start(state_file=str(state), checkpoint_s=3600)
    wait_for(lambda: second.published() >= 1, what="the new line")
    time.sleep(0.5)  # would-be repeats have time to show up
    values = second.stop_and_read()
    assert lines_of(values) == ["line 1", "line 2", "line 3", "line 4"]


def test_a_previous_log_kubelet_no_longer_has_does_not_stall_the_stream(
    fake: FakeKubeApi, start: Callable[..., Running]
) -> None:
    fake.add("pods", make_pod("ci", "gc", RUN))
    fake.append_log("ci", "gc", "main", b"a")
    running = start()
    wait_for(lambda: running.published() == 1, what="first line")

    def restarted_without_a_previous_log(pod: dict[str, Any]) -> None:
        pod["status"]["containerStatuses"][0]["restartCount"] = 1

    with fake.atomic():
        fake.drop_log_streams()
        fake.modify("pods", "ci", "gc", restarted_without_a_previous_log)
        fake.append_log("ci", "gc", "main", b"b")
    wait_for(lambda: running.published() == 2, what="the current instance")
    values = running.stop_and_read()
    assert lines_of(values) == ["a", "b"]
    assert fake.count_requests("/gc/log", previous="true") == 1
