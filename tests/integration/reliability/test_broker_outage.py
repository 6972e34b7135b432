"""Reliability suite (issue 17), item 2: the broker stopped for 30 s and started again while
webhooks keep coming: the same runs, each once with its final status; every webhook accepted
meanwhile was spooled (202, as DESIGN.md says: answer 2xx once the event is safe, on the broker
or on disk) and is published once afterwards; the worker and the sink carry on by themselves.

A private Apache Kafka broker (own data directory, fixed ports) is stopped and started the way
`sentinel up`'s supervisor restarts it (`broker.stop()`, `broker.start()`: same ports, same
data), under the embedded stack (worker process, ClickHouse sink, webhook intake with its spool)
with its API served on loopback. Nothing in the stack is restarted by the test, and nothing
supervises it: what recovers, recovers by itself.

65-90 s when it passes (two broker starts, the 30 s outage, the backlog), and it still exposes
an open fault, so `apart` from CI: in one of five runs after the fixes it led to (the sink's
`_forget_paused`, `runtime.progress_monitor.BrokerOffsets`, the spool drainer's wait) the
ClickHouse sink stopped committing `sentinel.runs` after the broker was back, with no error
logged, no session timeout and the worker healthy: `wait_consumed` timed out on that topic.
The failure message now says what the sink held then.
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

import httpx
import pytest

from producers.webhooks.spool import Spool
from runtime.config import Settings
from sentinel.brokers import ApacheKafkaBroker, free_port
from sentinel.stack import EmbeddedStack
from tests.conftest import TEST_KAFKA_VERSION
from tests.support.helpers import github_headers, payload, read_topic, served_stack

pytestmark = [pytest.mark.integration, pytest.mark.reliability, pytest.mark.apart]

SECRET = "outage-secret"
OUTAGE_S = 30.0
BEFORE_S = AFTER_S = 5.0
POSTERS = 6
PAUSE_S = 0.1  # between two posts of one poster: ~60 webhooks/s while the broker is up
REQUESTED = json.loads(payload("workflow_run/requested.payload.json"))
COMPLETED = json.loads(payload("workflow_run/completed.payload.json"))
REPOSITORY = REQUESTED["repository"]["full_name"]


def run_id(n: int) -> str:
    return f"github:{REPOSITORY}:{700_000 + n}:1"


def final_status(n: int) -> str:
    return "failed" if n % 3 == 0 else "succeeded"


def webhook(n: int, completed: bool) -> tuple[str, bytes]:
    """(delivery id, body) of run n's `requested` or `completed` workflow_run webhook."""
    body: dict[str, Any] = json.loads(json.dumps(COMPLETED if completed else REQUESTED))
    body["workflow_run"]["id"] = 700_000 + n
    if completed:
        body["workflow_run"]["conclusion"] = "failure" if n % 3 == 0 else "success"
    return f"outage-{n}-{'completed' if completed else 'requested'}", json.dumps(body).encode()


@dataclass(frozen=True)
class Post:
    delivery: str
    run: int
    status_code: int
    body: dict[str, Any]
    retry_after: str | None
    started: float
    seconds: float


class Posters:
    """POSTERS threads posting signed webhooks, run after run (requested, then completed),
    until stopped; every answer kept."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.posts: list[Post] = []
        self._next = iter(range(1_000_000))
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(POSTERS)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def _run(self) -> None:
        with httpx.Client(timeout=60) as client:
            while not self._stop.is_set():
                with self._lock:
                    n = next(self._next)
                for completed in (False, True):
                    self._post(client, n, completed)
                    self._stop.wait(PAUSE_S)

    def _post(self, client: httpx.Client, n: int, completed: bool) -> None:
        delivery, body = webhook(n, completed)
        headers = github_headers("workflow_run", delivery, body, SECRET)
        started = time.monotonic()
        response = client.post(f"{self.url}/api/webhooks/github", content=body, headers=headers)
        post = Post(
            delivery,
            n,
            response.status_code,
            response.json(),
            response.headers.get("retry-after"),
            started,
            time.monotonic() - started,
        )
        with self._lock:
            self.posts.append(post)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[ApacheKafkaBroker]:
    """Not the session broker: this one is stopped and started again (same port, same data)."""
    kafka = ApacheKafkaBroker(tmp_path / "broker", TEST_KAFKA_VERSION, port=free_port())
    kafka.start(timeout=120)
    try:
        yield kafka
    finally:
        kafka.stop()


@pytest.fixture
def stack(
    broker: ApacheKafkaBroker,
    make_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Iterator[tuple[EmbeddedStack, str]]:
    monkeypatch.setenv("SENTINEL_GITHUB_WEBHOOK_SECRET", SECRET)
    settings = make_settings(broker.bootstrap, webhooks={"spool_dir": str(tmp_path / "spool")})
    with served_stack(settings) as served:
        yield served


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


def sink_state(embedded: EmbeddedStack) -> str:
    owner = embedded.owner
    assert owner is not None and owner.sink is not None
    sink = owner.sink
    return (
        f"alive={owner.sink_alive()} error={owner.sink_error} paused={sink.paused} "
        f"pending={sink.pending_messages} owned={sorted(sink.ownership().partitions)} "
        f"{sink.describe()} now={time.monotonic()}"
    )


def test_a_broker_down_for_30_s_under_load_loses_and_repeats_nothing(
    broker: ApacheKafkaBroker, stack: tuple[EmbeddedStack, str]
) -> None:
    embedded, url = stack
    settings = embedded.settings
    assert embedded.worker is not None and embedded.worker.proc is not None
    assert embedded.owner is not None and embedded.owner.sink is not None
    worker_pid, sink = embedded.worker.proc.pid, embedded.owner.sink
    spool = Spool(settings.spool_dir)

    posters = Posters(url)
    posters.start()
    time.sleep(BEFORE_S)
    down = time.monotonic()
    broker.stop()
    time.sleep(OUTAGE_S)
    up = time.monotonic()
    broker.start(timeout=120)
    time.sleep(AFTER_S)
    posters.stop()
    posts = posters.posts

    # Every webhook was accepted: while the broker was down, by writing it to the spool.
    refused = [p for p in posts if p.status_code != 202]
    assert refused == [], refused[:5]
    assert all(p.body["status"] == "accepted" for p in posts)
    during = [p for p in posts if down + 1 < p.started and p.started + p.seconds < up]
    assert len(during) >= POSTERS, "too few webhooks while the broker was down"
    assert {p.body["via"] for p in during} == {"spooled"}
    spooled = {p.delivery for p in posts if p.body["via"] == "spooled"}
    # ...and answered within GitHub's 10 s delivery timeout (kafka.delivery_timeout_s is 5 s).
    assert max(p.seconds for p in posts) < 10, max(p.seconds for p in posts)

    # The spool empties by itself, and each webhook is on the CI topic exactly once.
    wait_until(lambda: len(spool) == 0, timeout=60, what="the spool to empty")
    assert list(settings.spool_dir.glob("*.corrupt")) == []
    try:
        embedded.wait_consumed(timeout=180)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}; the sink then: {sink_state(embedded)}") from exc
    on_topic = Counter(
        json.loads(value)["event_id"]
        for _key, value in read_topic(settings, settings.topic_names.ci)
    )
    assert {d for d, n in on_topic.items() if n > 1} == set()
    assert set(on_topic) == {p.delivery for p in posts}
    assert spooled <= set(on_topic)

    # Every run posted is in the store once, with the status of its last webhook.
    store = embedded.owner.store
    assert store is not None
    runs = {p.run for p in posts}
    completed = {p.run for p in posts if p.delivery.endswith("-completed")}
    expected = {run_id(n): final_status(n) if n in completed else "pending" for n in runs}

    def stored() -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for row in store.query_rows("SELECT run_id, status FROM runs FINAL"):
            found.setdefault(row["run_id"], []).append(row["status"])
        return found

    wait_until(
        lambda: {r: s[0] for r, s in stored().items()} == expected,
        timeout=60,
        what="every run's final status in the store",
    )
    assert all(len(statuses) == 1 for statuses in stored().values())

    # The worker and the sink recovered by themselves: same process, same thread, serving.
    assert embedded.worker.proc.pid == worker_pid and embedded.worker.alive()
    assert embedded.worker.serving()
    assert embedded.owner.sink is sink and embedded.owner.sink_alive()
    assert embedded.owner.sink_error is None
    print(
        f"{len(posts)} webhooks for {len(runs)} runs, {len(spooled)} spooled; "
        f"slowest answer {max(p.seconds for p in posts):.1f} s"
    )
