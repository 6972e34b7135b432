"""Recording live input with `sentinel capture`, and replaying captures with `sentinel replay`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from runtime.config import Settings
from sentinel.brokers import free_port
from sentinel.stack import StoreOwner
from sentinel.topic_admin import ensure_topics
from tests.support.helpers import ServerThread, github_headers, payload, read_topic
from tests.support.paths import DATA

pytestmark = pytest.mark.integration

SECRET = "capture-secret"
CAPTURES = DATA / "captures"
DELIVERIES = [
    ("ping", "c-0", "ping/payload.json"),
    ("workflow_run", "c-1", "workflow_run/requested.payload.json"),
    ("workflow_job", "c-2", "workflow_job/in_progress.payload.json"),
    ("push", "c-3", "push/payload.json"),
    ("workflow_run", "c-4", "workflow_run/completed.payload.json"),
    ("workflow_run", "c-4", "workflow_run/completed.payload.json"),  # redelivery
]


def sentinel(*args: str, env: dict[str, str] | None = None, **kw: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "sentinel", *args],
        env={**os.environ, "SENTINEL_GITHUB_WEBHOOK_SECRET": SECRET, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def post_all(url: str) -> list[int]:
    codes = []
    for event, delivery, path in DELIVERIES:
        body = payload(path)
        response = httpx.post(
            f"{url}/api/webhooks/github",
            content=body,
            timeout=30,
            headers=github_headers(event, delivery, body, SECRET),
        )
        codes.append(response.status_code)
    return codes


def capture_of_deliveries() -> str:
    """DELIVERIES as a capture file's text, as if recorded."""
    return "".join(
        json.dumps(
            {
                "type": "webhook",
                "ts": "2026-11-27T10:00:00Z",
                "provider": "github",
                "headers": {"X-GitHub-Event": e, "X-GitHub-Delivery": d},
                "body": json.loads(payload(p)),
            }
        )
        + "\n"
        for e, d, p in DELIVERIES
    )


def replay_into_other_topics(
    capture: Path,
    live: Settings,
    make_settings: Callable[..., Settings],
    bootstrap: str,
    tmp_path: Path,
) -> tuple[Settings, subprocess.CompletedProcess[str]]:
    """`sentinel replay` of `capture` into fresh topics beside `live`'s (prefix + "replay.")."""
    replayed = make_settings(
        bootstrap,
        topics={"prefix": live.topics.prefix + "replay."},
        embedded={"data_dir": str(tmp_path / "replay-data")},
    )
    ensure_topics(replayed)
    done = subprocess.run(
        [sys.executable, "-m", "sentinel", "replay", str(capture)],
        env={
            **os.environ,
            "SENTINEL_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
            "SENTINEL_TOPICS__PREFIX": replayed.topics.prefix,
            "SENTINEL_EMBEDDED__DATA_DIR": str(replayed.embedded.data_dir),
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return replayed, done


def topic_messages(settings: Settings, topic: str) -> list[tuple[bytes | None, dict[str, Any]]]:
    """(key, value) of every message on `topic`, without `received_at`: ingestion time is the
    only thing allowed to differ between live input and its replay."""
    found = []
    for key, value in read_topic(settings, topic):
        message = json.loads(value)
        message.pop("received_at")
        found.append((key, message))
    return found


def analyze_runs(capture: Path) -> list[dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, "-m", "sentinel", "analyze", str(capture), "--json"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return list(json.loads(done.stdout)["runs"])


def test_capture_then_analyze_reproduces_the_runs(tmp_path: Path) -> None:
    out = tmp_path / "recorded.jsonl"
    port = free_port()
    proc = sentinel("capture", str(out), env={"SENTINEL_API__PORT": str(port)})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{url}/health", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and proc.poll() is None, proc.stderr
                time.sleep(0.2)
        assert post_all(url) == [202] * len(DELIVERIES)
        body = payload("workflow_run/completed.payload.json")
        forged = httpx.post(
            f"{url}/api/webhooks/github",
            content=body,
            headers=github_headers("workflow_run", "c-x", body, "wrong"),
        )
        assert forged.status_code == 401  # not recorded: capture is not a back door
    finally:
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr[-2000:]
    assert f"recorded {len(DELIVERIES)} records" in stdout
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["headers"]["X-GitHub-Delivery"] for r in lines] == [d for _, d, _ in DELIVERIES]

    # The same input, analysed from what was recorded and from the posted payloads, gives the
    # same runs.
    original = tmp_path / "original.jsonl"
    original.write_text(capture_of_deliveries())
    recorded_runs = analyze_runs(out)
    assert recorded_runs == analyze_runs(original)
    statuses = {run["run_id"]: run["status"] for run in recorded_runs}
    assert statuses["github:octo-org/octo-repo:289782451:1"] == "succeeded"


def test_replay_publishes_what_live_input_publishes(
    kafka_bootstrap: str,
    make_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("SENTINEL_GITHUB_WEBHOOK_SECRET", SECRET)
    live = make_settings(kafka_bootstrap)
    ensure_topics(live)
    owner = StoreOwner(live, run_sink=False)
    owner.start()
    try:
        with ServerThread(owner.api()) as server:
            post_all(server.url)
    finally:
        owner.stop()

    capture = tmp_path / "input.jsonl"
    capture.write_text(capture_of_deliveries())
    replayed, done = replay_into_other_topics(
        capture, live, make_settings, kafka_bootstrap, tmp_path
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "6 records" in done.stdout

    def messages(settings: Settings) -> list[tuple[bytes | None, dict[str, Any]]]:
        found = topic_messages(settings, settings.topic_names.ci)
        return sorted(found, key=lambda item: item[1]["event_id"])

    live_messages = messages(live)
    assert [event["event_id"] for _key, event in live_messages] == ["c-1", "c-2", "c-4"]
    assert messages(replayed) == live_messages


def test_recorded_watch_events_and_log_lines_replay_to_the_same_messages(
    kafka_bootstrap: str, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """The watcher and log streamer publish live while their capture observers record; replaying
    that capture into other topics publishes the same messages (ingestion times aside)."""
    from producers.captures.recording import CaptureWriter
    from producers.k8s.client import api_client
    from producers.k8s.log_stream import LogStreamer
    from producers.k8s.watch import K8sWatcher
    from producers.publisher import KafkaPublisher
    from runtime.kafka_clients import producer_config
    from tests.fakes.kube_api import FakeKubeApi, make_pod
    from tests.support.k8s import k8s_settings, wait_for

    capture = tmp_path / "k8s.jsonl"
    writer = CaptureWriter(capture)
    with FakeKubeApi(bookmark_interval=0.1) as fake:
        live = k8s_settings(make_settings, kafka_bootstrap, fake, tmp_path, {"namespaces": ["ci"]})
        ensure_topics(live)
        fake.add("pods", make_pod("ci", "e2e-0", {"sentinel.io/run-id": "run-7"}))
        fake.add("pods", make_pod("ci", "other"))
        fake.append_log("ci", "e2e-0", "main", b"collected 3 items")
        fake.append_log("ci", "e2e-0", "main", b"\xff\xfe not utf-8")
        publisher = KafkaPublisher(producer_config(live), component="test")
        api = api_client(live.k8s)
        watcher = K8sWatcher(live, publisher, api, [writer.k8s])
        streamer = LogStreamer(live, publisher, api, [writer.log])
        watcher.start()
        streamer.start()
        try:
            wait_for(lambda: sum(watcher.published.values()) == 2, what="listed pods")
            wait_for(lambda: streamer.published == 2, what="first log lines")
            fake.append_log("ci", "e2e-0", "main", b"3 passed in 0.12s")
            fake.delete("pods", "ci", "other")
            wait_for(lambda: sum(watcher.published.values()) == 3, what="deletion")
            wait_for(lambda: streamer.published == 3, what="last log line")
        finally:
            streamer.stop()
            watcher.stop()
            publisher.close()
            api.close()
            writer.close()

    replayed, done = replay_into_other_topics(
        capture, live, make_settings, kafka_bootstrap, tmp_path
    )
    assert done.returncode == 0, done.stderr[-3000:]

    def messages(settings: Settings, topic: str) -> list[tuple[bytes | None, dict[str, Any]]]:
        found = topic_messages(settings, topic)
        return sorted(found, key=lambda item: json.dumps(item[1], sort_keys=True))

    live_k8s = messages(live, live.topic_names.k8s)
    assert [m["event_type"] for _k, m in live_k8s].count("DELETED") == 1
    assert messages(replayed, replayed.topic_names.k8s) == live_k8s
    live_logs = messages(live, live.topic_names.logs)
    assert sorted(m["line"] for _k, m in live_logs) == [
        "3 passed in 0.12s",
        "collected 3 items",
        "\ufffd\ufffd not utf-8",
    ]
    assert {m["correlation_key"] for _k, m in live_logs} == {"run-7"}
    assert messages(replayed, replayed.topic_names.logs) == live_logs
