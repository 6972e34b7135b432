"""`sentinel k8s-watch` and `sentinel log-stream` as processes: start, publish, stop on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from runtime.config import Settings
from sentinel.topic_admin import ensure_topics
from tests.fakes.kube_api import FakeKubeApi, make_pod
from tests.support.helpers import read_topic
from tests.support.k8s import FAST_K8S, wait_for
from tests.support.paths import REPO

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("command", ["k8s-watch", "log-stream"])
def test_command_publishes_and_stops_cleanly_on_sigterm(
    make_settings: Callable[..., Settings],
    kafka_bootstrap: str,
    tmp_path: Path,
    unique_prefix: str,
    command: str,
) -> None:
    with FakeKubeApi(bookmark_interval=0.1) as fake:
        fake.add("pods", make_pod("ci", "build", {"sentinel.io/run-id": "r1"}))
        fake.append_log("ci", "build", "main", b"hello")
        config = {
            "topics": {"prefix": unique_prefix},
            "kafka": {"bootstrap_servers": kafka_bootstrap},
            "k8s": {
                **FAST_K8S,
                "kubeconfig": str(fake.write_kubeconfig(tmp_path / "kubeconfig")),
                "namespaces": ["ci"],
            },
            "logging": {"format": "text"},
        }
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
        settings = make_settings(kafka_bootstrap)
        ensure_topics(settings)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SENTINEL_")}
        process = subprocess.Popen(
            [sys.executable, "-m", "sentinel", "-c", str(tmp_path / "config.yaml"), command],
            cwd=REPO,
            env=env,
        )
        try:
            if command == "k8s-watch":
                wait_for(lambda: fake.open_watches == 4, timeout=30, what="watches")
            else:
                wait_for(lambda: fake.count_requests("/log") >= 1, timeout=30, what="log read")
            time.sleep(0.3)
            process.send_signal(signal.SIGTERM)
            assert process.wait(15) == 0
        finally:
            if process.poll() is None:
                process.kill()
    topic = settings.topic_names.k8s if command == "k8s-watch" else settings.topic_names.logs
    values = [json.loads(v) for _k, v in read_topic(settings, topic)]
    if command == "k8s-watch":
        assert [(v["event_type"], v["name"]) for v in values] == [("RELISTED", "build")]
    else:
        assert [v["line"] for v in values] == ["hello"]
