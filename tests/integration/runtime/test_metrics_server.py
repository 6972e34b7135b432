"""The /metrics and /health server of the components without an API, on a loopback port."""

from __future__ import annotations

import httpx
import pytest

from runtime.metrics import ALERT_DELIVERIES
from runtime.metrics_server import serve_metrics

pytestmark = pytest.mark.integration


def test_metrics_and_a_heartbeat_health_check() -> None:
    now = [1000.0]
    heartbeat, server = serve_metrics(
        "127.0.0.1", 0, "k8s-watch", stale_after_s=30, clock=lambda: now[0]
    )
    assert server is not None
    url = f"http://127.0.0.1:{server.port}"
    try:
        ALERT_DELIVERIES.labels("slack", "slack", "sent").inc()
        metrics = httpx.get(f"{url}/metrics", timeout=10)
        assert metrics.headers["content-type"].startswith("text/plain; version=")
        assert 'sentinel_alert_deliveries_total{channel="slack",type="slack",outcome="sent"}' in (
            metrics.text
        )
        assert 'sentinel_heartbeat_timestamp_seconds{component="k8s-watch"}' in metrics.text
        assert httpx.get(f"{url}/health", timeout=10).json()["status"] == "ok"
        now[0] += 31  # the loop has not beaten for 31 s
        stale = httpx.get(f"{url}/health", timeout=10)
        assert stale.status_code == 503 and stale.json()["heartbeat_age_s"] == 31
        heartbeat.beat()
        assert httpx.get(f"{url}/health", timeout=10).status_code == 200
        assert httpx.get(f"{url}/other", timeout=10).status_code == 404
    finally:
        server.stop()


def test_no_port_no_server() -> None:
    heartbeat, server = serve_metrics("127.0.0.1", None, "sink")
    assert server is None and heartbeat.healthy()
