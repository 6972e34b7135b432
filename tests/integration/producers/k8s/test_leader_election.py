"""Two `sentinel k8s-watch` (and `log-stream`) replicas with leader election, on the fake API.

Both are real processes with the real client's LeaseLock; the fake serves the Lease with
resourceVersion conflicts as the API server does. Exactly one publishes; when it is killed
(SIGKILL: no release) the standby takes over within the lease duration, and every change is on
the topic. A clean stop (SIGTERM) releases the lease, so the standby takes over at once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from runtime.config import Settings
from sentinel.brokers import free_port
from sentinel.topic_admin import ensure_topics
from tests.fakes.kube_api import FakeKubeApi, make_pod
from tests.support.helpers import read_topic
from tests.support.k8s import FAST_K8S, wait_for
from tests.support.paths import REPO

pytestmark = pytest.mark.integration

LEASE_S, RENEW_S, RETRY_S = 3, 2, 1  # the smallest timings the official client accepts
LEASE = ("sentinel", "election-test")


@pytest.fixture
def start(
    fake: FakeKubeApi, make_settings: Callable[..., Settings], kafka_bootstrap: str, tmp_path: Path
) -> Iterator[tuple[Callable[[str], subprocess.Popen[bytes]], Settings]]:
    settings = make_settings(kafka_bootstrap)
    ensure_topics(settings)
    config = {
        "topics": {"prefix": settings.topics.prefix},
        "kafka": {"bootstrap_servers": kafka_bootstrap},
        "k8s": {
            **FAST_K8S,
            "kubeconfig": str(fake.write_kubeconfig(tmp_path / "kubeconfig")),
            "namespaces": ["ci"],
            "kinds": ["Pod"],
        },
        "leader_election": {
            "enabled": True,
            "namespace": LEASE[0],
            "lease_name": LEASE[1],
            "lease_duration_s": LEASE_S,
            "renew_deadline_s": RENEW_S,
            "retry_period_s": RETRY_S,
        },
        "logging": {"format": "json"},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTINEL_")}
    started: list[subprocess.Popen[bytes]] = []
    ports: dict[str, int] = {}

    def launch(name: str, command_name: str = "k8s-watch") -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "sentinel", "-c", str(tmp_path / "config.yaml")]
        ports[name] = free_port()  # its ops endpoint: /ready tells leader or standby
        process = subprocess.Popen(
            [*command, command_name],
            cwd=REPO,
            env={**env, "POD_NAME": name, "SENTINEL_OPS__PORT": str(ports[name])},
            stderr=(tmp_path / f"{name}.log").open("wb"),
        )
        started.append(process)
        return process

    yield launch, settings, ports
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def role(ports: dict[str, int], name: str) -> str:
    response = httpx.get(f"http://127.0.0.1:{ports[name]}/ready", timeout=5)
    assert response.status_code == 200  # a standby is ready too (rolling updates go on)
    return str(response.json()["role"])


def has_role(ports: dict[str, int], name: str, wanted: str) -> bool:
    try:
        return role(ports, name) == wanted
    except httpx.TransportError:
        return False  # its ops endpoint is not up yet


def holder(fake: FakeKubeApi) -> str | None:
    lease = fake.lease(*LEASE)
    return None if lease is None else (lease.get("spec") or {}).get("holderIdentity")


def published(settings: Settings) -> list[dict[str, Any]]:
    return [json.loads(v) for _k, v in read_topic(settings, settings.topic_names.k8s)]


def label(step: str) -> Callable[[dict[str, Any]], None]:
    return lambda obj: obj["metadata"]["labels"].update({"step": step})


def test_one_leader_publishes_and_the_standby_takes_over_within_the_lease(
    fake: FakeKubeApi, start: Any
) -> None:
    launch, settings, ports = start
    for name in ("a", "b", "c"):
        fake.add("pods", make_pod("ci", name, {"sentinel.io/run-id": "r1"}))
    first = launch("first")
    wait_for(lambda: (holder(fake) or "").startswith("first_"), timeout=30, what="first leads")
    wait_for(lambda: fake.open_watches == 1, timeout=30, what="leader watching")
    second = launch("second")
    wait_for(lambda: has_role(ports, "second", "standby"), timeout=30, what="standby")
    changed = [fake.modify("pods", "ci", "a", label("1")), fake.add("pods", make_pod("ci", "d"))]
    fake.delete("pods", "ci", "c")
    time.sleep(2 * RETRY_S + 0.5)  # the standby keeps trying and must still be standing by
    assert holder(fake).startswith("first_")
    assert fake.open_watches == 1 and fake.count_requests("/pods", watch="true") == 1
    assert (role(ports, "first"), role(ports, "second")) == ("leader", "standby")

    # Exactly one publisher so far: every (uid, resourceVersion) once, nothing missing.
    before = published(settings)
    assert_once(before)
    assert {(v["name"], v["resource_version"]) for v in before} >= {
        (o["metadata"]["name"], o["metadata"]["resourceVersion"]) for o in changed
    }
    assert ("DELETED", "c") in {(v["event_type"], v["name"]) for v in before}

    first.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    gap = [fake.modify("pods", "ci", "b", label("gap")), fake.add("pods", make_pod("ci", "e"))]
    wait_for(lambda: (holder(fake) or "").startswith("second_"), timeout=20, what="takeover")
    took = time.monotonic() - killed
    print(f"standby took over {took:.1f} s after the leader was killed (lease {LEASE_S} s)")
    wait_for(lambda: fake.open_watches == 1, timeout=20, what="new leader watching")
    after = [fake.modify("pods", "ci", "d", label("2"))]
    expected = {(o["metadata"]["uid"], o["metadata"]["resourceVersion"]) for o in [*gap, *after]}
    wait_for(lambda: expected <= _pairs(published(settings)), timeout=20, what="all changes")
    # The standby takes the lease once it has seen no renewal for LEASE_S, at its next try
    # (every RETRY_S); the rest is slack for a loaded CI machine.
    assert took <= LEASE_S + RETRY_S + 3, f"takeover took {took:.1f}s"
    assert second.poll() is None
    assert role(ports, "second") == "leader"

    # The new leader relists (RELISTED, same uid and resourceVersion: the overlap the
    # de-duplication downstream absorbs) and then watches; the standby never published
    # before it led, so the topic up to the kill is exactly what the first leader sent.
    values = published(settings)
    since_kill = Counter(map(_event, values)) - Counter(map(_event, before))
    assert sum(since_kill.values()) == len(values) - len(before)  # nothing before it changed
    assert [event for event, n in since_kill.items() if n > 1] == []
    live = {(o["metadata"]["uid"], o["metadata"]["resourceVersion"]) for o in _pods(fake)}
    assert live <= _pairs(values)


def test_a_clean_stop_releases_the_lease_for_an_immediate_takeover(
    fake: FakeKubeApi, start: Any
) -> None:
    launch, _settings, ports = start
    fake.add("pods", make_pod("ci", "a", {"sentinel.io/run-id": "r1"}))
    first = launch("first")
    wait_for(lambda: (holder(fake) or "").startswith("first_"), timeout=30, what="first leads")
    second = launch("second")
    wait_for(lambda: has_role(ports, "second", "standby"), timeout=30, what="standby")
    first.send_signal(signal.SIGTERM)
    assert first.wait(15) == 0
    stopped = time.monotonic()
    wait_for(lambda: (holder(fake) or "").startswith("second_"), timeout=10, what="takeover")
    handover = time.monotonic() - stopped
    print(f"standby took over {handover:.1f} s after the leader stopped cleanly")
    assert handover < LEASE_S, "the lease was not released on SIGTERM"
    methods = {method for method, _path in fake.lease_requests}
    assert methods <= {"GET", "POST", "PUT"}  # get, create, update: what the Role grants
    second.send_signal(signal.SIGTERM)
    assert second.wait(15) == 0


def test_log_stream_standby_takes_over_and_no_line_is_lost(fake: FakeKubeApi, start: Any) -> None:
    launch, settings, ports = start
    fake.add("pods", make_pod("ci", "build", {"sentinel.io/run-id": "r1"}))
    for n in (1, 2, 3):
        fake.append_log("ci", "build", "main", f"line {n}".encode())
    first = launch("first", "log-stream")
    wait_for(lambda: (holder(fake) or "").startswith("first_"), timeout=30, what="first leads")
    wait_for(lambda: len(lines(settings)) == 3, timeout=30, what="leader streaming")
    launch("second", "log-stream")
    wait_for(lambda: has_role(ports, "second", "standby"), timeout=30, what="standby")
    fake.append_log("ci", "build", "main", b"line 4")
    wait_for(lambda: len(lines(settings)) == 4, timeout=30, what="line 4")
    assert sorted(lines(settings)) == [f"line {n}" for n in (1, 2, 3, 4)]  # one streamer
    assert (role(ports, "first"), role(ports, "second")) == ("leader", "standby")

    first.send_signal(signal.SIGKILL)
    fake.append_log("ci", "build", "main", b"line 5")  # while nobody streams
    wait_for(lambda: (holder(fake) or "").startswith("second_"), timeout=20, what="takeover")
    fake.append_log("ci", "build", "main", b"line 6")
    wanted = {f"line {n}" for n in range(1, 7)}
    wait_for(lambda: set(lines(settings)) == wanted, timeout=30, what="every line")
    # Without a shared logs.state_file the new leader reads the container from the start:
    # lines 1-4 come again (docs/operations.md), none is missing.


def lines(settings: Settings) -> list[str]:
    return [json.loads(v)["line"] for _k, v in read_topic(settings, settings.topic_names.logs)]


def _event(value: dict[str, Any]) -> tuple[str, str, str]:
    return value["event_type"], value["uid"], value["resource_version"]


def _pairs(values: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(v["uid"], v["resource_version"]) for v in values}


def _pods(fake: FakeKubeApi) -> list[dict[str, Any]]:
    return [fake.get("pods", "ci", name) for name in ("a", "b", "d", "e")]


def assert_once(values: list[dict[str, Any]]) -> None:
    pairs = Counter((v["uid"], v["resource_version"]) for v in values)
    assert [p for p, n in pairs.items() if n > 1] == []
