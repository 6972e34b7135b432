"""The ops endpoint: liveness from the main loop's heartbeat, readiness from named checks."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from runtime.ops_server import Heartbeat, OpsServer

pytestmark = pytest.mark.integration


class Stalled(Heartbeat):
    def age(self) -> float:
        return 120.0


@pytest.fixture
def serve() -> Iterator[list[OpsServer]]:
    servers: list[OpsServer] = []
    yield servers
    for server in servers:
        server.stop()


def test_a_turning_loop_with_answering_dependencies_is_live_and_ready(
    serve: list[OpsServer],
) -> None:
    server = OpsServer("127.0.0.1", 0, "sink", Heartbeat(), 60.0, {"broker": lambda: None})
    serve.append(server.start())
    url = f"http://127.0.0.1:{server.port}"
    assert httpx.get(f"{url}/health").json()["status"] == "ok"
    ready = httpx.get(f"{url}/ready")
    assert ready.status_code == 200 and ready.json()["component"] == "sink"
    assert "python_info" in httpx.get(f"{url}/metrics").text
    assert httpx.get(f"{url}/nope").status_code == 404


def test_a_stalled_loop_fails_liveness_and_a_missing_dependency_readiness(
    serve: list[OpsServer],
) -> None:
    def broken() -> str | None:
        raise OSError("DNS lookup failed")

    checks = {"broker": lambda: "no broker at kafka:9092", "store": broken}
    server = OpsServer("127.0.0.1", 0, "worker", Stalled(), 60.0, checks)
    serve.append(server.start())
    url = f"http://127.0.0.1:{server.port}"
    health = httpx.get(f"{url}/health")
    assert health.status_code == 503 and health.json()["status"] == "stalled"
    ready = httpx.get(f"{url}/ready")
    assert ready.status_code == 503
    assert ready.json()["failing"] == ["broker", "loop", "store"]
    assert "DNS lookup failed" in ready.json()["problems"]["store"]


def test_a_component_serves_its_own_routes_beside_the_probes(serve: list[OpsServer]) -> None:
    progress = {"processed": [{"topic": "t", "partition": 0, "offset": 7}], "sends_in_flight": 0}
    server = OpsServer(
        "127.0.0.1", 0, "worker", Heartbeat(), 60.0, routes={"/progress": lambda: progress}
    )
    serve.append(server.start())
    url = f"http://127.0.0.1:{server.port}"
    assert httpx.get(f"{url}/progress").json() == progress
    missing = httpx.get(f"{url}/nope")
    assert missing.status_code == 404 and "/progress" in missing.json()["detail"]
