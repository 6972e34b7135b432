"""`GET /metrics` and `GET /health` for a component that serves no HTTP API (the worker, the
sink, k8s-watch, log-stream): a small threaded HTTP server from the standard library.

Health is a heartbeat: the component's main loop calls `Heartbeat.beat()`; /health answers 503
once the last beat is older than `stale_after_s` (a loop that is stuck or dead), else 200.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from runtime.metrics import HEARTBEAT

log = logging.getLogger("sentinel.metrics")


class Heartbeat:
    def __init__(
        self,
        component: str,
        stale_after_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.component = component
        self.stale_after_s = stale_after_s
        self._clock = clock
        self._last = clock()

    def beat(self) -> None:
        self._last = self._clock()
        HEARTBEAT.labels(self.component).set(time.time())

    def age(self) -> float:
        return self._clock() - self._last

    def healthy(self) -> bool:
        return self.age() <= self.stale_after_s


class MetricsServer:
    """Serves the process's metrics registry and its heartbeat on host:port (0: a free port)."""

    def __init__(self, host: str, port: int, heartbeat: Heartbeat) -> None:
        self.heartbeat = heartbeat
        self._server = ThreadingHTTPServer((host, port), _handler(heartbeat))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics-http", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> MetricsServer:
        self._thread.start()
        host = self._server.server_address[0]
        log.info("metrics and health at http://%s:%d/metrics, /health", host, self.port)
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler(heartbeat: Heartbeat) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] == "/metrics":
                self._send(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)
            elif self.path.split("?")[0] == "/health":
                age = round(heartbeat.age(), 3)
                ok = heartbeat.healthy()
                body = {"status": "ok" if ok else "stale", "heartbeat_age_s": age}
                self._send(200 if ok else 503, json.dumps(body).encode(), "application/json")
            else:
                self._send(404, b'{"detail": "not found"}', "application/json")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # scrapes are not news
            return

    return Handler


def serve_metrics(
    host: str,
    port: int | None,
    component: str,
    stale_after_s: float = 30.0,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[Heartbeat, MetricsServer | None]:
    """A heartbeat for `component`, and its server when `port` is set (None: not served)."""
    heartbeat = Heartbeat(component, stale_after_s, clock)
    heartbeat.beat()
    if port is None:
        return heartbeat, None
    return heartbeat, MetricsServer(host, port, heartbeat).start()


def beat_until(heartbeat: Heartbeat, stop: threading.Event, interval_s: float = 1.0) -> None:
    """Beat from a thread of its own until `stop`: for components whose liveness is the
    process's (k8s-watch, log-stream keep their own reconnect loops)."""

    def run() -> None:
        while not stop.wait(interval_s):
            heartbeat.beat()

    threading.Thread(target=run, name="heartbeat", daemon=True).start()
