"""`sentinel doctor` names each problem: a stopped broker, missing topics, a bad ClickHouse DSN,
migrations not applied, a Kubernetes API that denies pods/log, an unreachable alert channel;
and reaches a channel without sending unless --send-test. (Against a running stack it passes
every check that applies: tests/integration/sentinel/test_demo.py.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from sentinel.brokers import free_port
from tests.fakes.kube_api import FakeKubeApi
from tests.support.paths import REPO

pytestmark = pytest.mark.integration


def doctor(tmp: Path, *args: str, config: dict[str, Any] | None = None, **env: str) -> Any:
    """Run `sentinel doctor --json` with a clean environment; (exit status, checks by name)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SENTINEL_", "KUBECONFIG"))}
    clean.update(HOME=str(tmp), SENTINEL_EMBEDDED__DATA_DIR=str(tmp / "data"), **env)
    command = [sys.executable, "-m", "sentinel"]
    if config is not None:
        path = tmp / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        command += ["--config", str(path)]
    result = subprocess.run(
        [*command, "doctor", "--json", *args],
        cwd=REPO,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.stdout, result.stderr[-3000:]
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    return result.returncode, checks


def test_a_stopped_broker_is_named(tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_port()}"
    code, checks = doctor(tmp_path, SENTINEL_KAFKA__BOOTSTRAP_SERVERS=address)
    assert code == 1
    kafka = checks["kafka"]
    assert kafka["status"] == "fail"
    assert f"nothing accepts connections at {address}" in kafka["detail"]
    assert "docs/troubleshooting.md#broker-unreachable" in kafka["fix"]


def test_missing_topics_are_named_until_they_are_created(
    tmp_path: Path, kafka_bootstrap: str, unique_prefix: str, make_settings: Any
) -> None:
    env = {"SENTINEL_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap}
    env["SENTINEL_TOPICS__PREFIX"] = unique_prefix
    code, checks = doctor(tmp_path, **env)
    assert code == 1
    assert checks["kafka"]["status"] == "ok"
    topics = checks["kafka topics"]
    assert topics["status"] == "fail" and f"{unique_prefix}ci" in topics["detail"]
    assert "sentinel topics create" in topics["fix"]
    from sentinel.topic_admin import ensure_topics

    ensure_topics(make_settings(kafka_bootstrap))
    code, checks = doctor(tmp_path, **env)
    assert checks["kafka topics"]["status"] == "ok", checks["kafka topics"]


def test_a_bad_clickhouse_dsn_is_named(tmp_path: Path) -> None:
    dsn = f"http://default@127.0.0.1:{free_port()}"
    code, checks = doctor(tmp_path, SENTINEL_STORE__DSN=dsn)
    assert code == 1
    store = checks["store"]
    assert store["status"] == "fail" and "127.0.0.1" in store["detail"]
    assert "store.dsn" in store["fix"] and "#store-unreachable" in store["fix"]


def test_migrations_not_applied_are_named_until_migrate(tmp_path: Path) -> None:
    # A store that saw only the first migration (an old version's), then `sentinel migrate`.
    partial = tmp_path / "sql"
    partial.mkdir()
    first = sorted((REPO / "schemas" / "sql").glob("*.sql"))[0]
    (partial / first.name).write_text(first.read_text())
    script = (
        "from runtime.config import load_settings\n"
        "from sinks.clickhouse.store import open_store\n"
        "from sinks.clickhouse.migrations import migrate\n"
        "from pathlib import Path\n"
        "store = open_store(load_settings(None))\n"
        f"migrate(store, Path({str(partial)!r}))\n"
        "store.close()\n"
    )
    env = dict(os.environ, SENTINEL_EMBEDDED__DATA_DIR=str(tmp_path / "data"))
    subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, check=True, timeout=120)
    code, checks = doctor(tmp_path)
    assert code == 1
    assert checks["store"]["status"] == "ok"
    migrations = checks["store migrations"]
    assert migrations["status"] == "fail" and "not applied: 0002" in migrations["detail"]
    assert "sentinel migrate" in migrations["fix"]
    subprocess.run(
        [sys.executable, "-m", "sentinel", "migrate"], cwd=REPO, env=env, check=True, timeout=120
    )
    code, checks = doctor(tmp_path)
    assert checks["store migrations"]["status"] == "ok"


def test_a_cluster_that_denies_pods_log_is_named(tmp_path: Path) -> None:
    with FakeKubeApi() as fake:
        kubeconfig = fake.write_kubeconfig(tmp_path / "kubeconfig")
        code, checks = doctor(tmp_path, KUBECONFIG=str(kubeconfig))
        assert code == 0, checks
        assert (
            checks["kubernetes"]["status"] == "ok" and "v1.31.4" in checks["kubernetes"]["detail"]
        )
        asked = {(a["verb"], a["resource"], a.get("subresource", "")) for a in fake.access_reviews}
        assert ("get", "pods", "log") in asked and ("watch", "jobs", "") in asked
        fake.deny("pods/log", "get")
        code, checks = doctor(tmp_path, KUBECONFIG=str(kubeconfig))
    assert code == 1
    streamer = checks["kubernetes RBAC (log-stream)"]
    assert streamer["status"] == "fail"
    assert streamer["detail"] == "not allowed: get pods/log cluster-wide"
    assert "#logs-not-streaming" in streamer["fix"]
    assert checks["kubernetes RBAC (k8s-watch)"]["status"] == "ok"


def test_an_unreachable_kubernetes_api_is_named(tmp_path: Path) -> None:
    with FakeKubeApi() as fake:
        kubeconfig = fake.write_kubeconfig(tmp_path / "kubeconfig")
    code, checks = doctor(tmp_path, KUBECONFIG=str(kubeconfig))  # the server is gone now
    assert code == 1
    assert checks["kubernetes"]["status"] == "fail"
    assert "#kubernetes-connection-failed" in checks["kubernetes"]["fix"]


@pytest.fixture
def hook_server() -> Iterator[tuple[str, list[bytes]]]:
    received: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(self.rfile.read(int(self.headers.get("content-length", 0))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        server.shutdown()
        server.server_close()


def hook_config(url: str) -> dict[str, Any]:
    return {
        "alerting": {
            "receivers": [{"name": "hook", "webhook": {"url": url}}],
            "route": {"receivers": ["hook"]},
        }
    }


def test_alert_channels_are_reached_without_a_message_unless_send_test(
    tmp_path: Path, hook_server: tuple[str, list[bytes]]
) -> None:
    url, received = hook_server
    code, checks = doctor(tmp_path, config=hook_config(url))
    channel = checks["alert channel hook (webhook)"]
    assert code == 0 and channel["status"] == "ok"
    assert "nothing sent" in channel["detail"] and received == []
    code, checks = doctor(tmp_path, "--send-test", config=hook_config(url))
    assert checks["alert channel hook (webhook)"]["status"] == "ok"
    assert len(received) == 1 and b"sentinel doctor" in received[0]


def test_an_unreachable_alert_channel_is_named(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/hook"
    code, checks = doctor(tmp_path, config=hook_config(url))
    assert code == 1
    channel = checks["alert channel hook (webhook)"]
    assert channel["status"] == "fail" and "#alerts-not-sending" in channel["fix"]
