"""The operations endpoint: `/health`, `/ready`, `/metrics` on a small HTTP server thread.

Served by every long-running component (worker, sink, k8s-watch, log-stream, api) on
`ops.port`, so probes and Prometheus scraping look the same for all of them:

- ``GET /health`` (liveness): 200 while the component's main loop turns (`Heartbeat`) and no
  partition it consumes has lag without its committed offset moving (`ProgressMonitor`), else
  503 — restarting the process is the cure;
- ``GET /ready`` (readiness): 200 when what the component needs answers (broker, store), else
  503 with ``failing`` naming it — waiting is the cure;
- ``GET /metrics``: the Prometheus registry of the process;
- what the component adds (the worker: ``GET /progress``, what it has finished).

The standard library's threading HTTP server: no event loop to share with the component (the
Faust worker's loop may be the thing that hangs).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from runtime.metrics import HEARTBEAT
from runtime.progress_monitor import ProgressMonitor

log = logging.getLogger("sentinel.ops")

# A readiness check: None when fine, else what is wrong.
Check = Callable[[], str | None]


class Heartbeat:
    """Touched by a component's main loop on every turn; old = the loop is stuck.

    With a `component`, each beat is also the `sentinel_heartbeat_timestamp_seconds` gauge, so
    Prometheus can alert on a stuck loop the same way the liveness probe sees it.
    """

    def __init__(self, component: str | None = None) -> None:
        self._last = time.monotonic()
        self._gauge = HEARTBEAT.labels(component) if component is not None else None

    def beat(self) -> None:
        self._last = time.monotonic()
        if self._gauge is not None:
            self._gauge.set(time.time())

    def age(self) -> float:
        return time.monotonic() - self._last


class OpsServer:
    def __init__(
        self,
        host: str,
        port: int,
        component: str,
        heartbeat: Heartbeat | None = None,
        stall_s: float = 60.0,
        ready_checks: Mapping[str, Check] | None = None,
        details: Callable[[], Mapping[str, Any]] | None = None,
        progress: ProgressMonitor | None = None,
        routes: Mapping[str, Callable[[], Mapping[str, Any]]] | None = None,
    ) -> None:
        self.component = component
        self.progress = progress
        self.routes = dict(routes or {})
        self.heartbeat = heartbeat
        self.stall_s = stall_s
        self.ready_checks = dict(ready_checks or {})
        self.details = details
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def health(self) -> tuple[int, dict[str, Any]]:
        body: dict[str, Any] = {"status": "ok", "component": self.component}
        if self.heartbeat is not None:
            age = self.heartbeat.age()
            body["loop_age_s"] = round(age, 3)
            if age > self.stall_s:
                body["status"] = "stalled"
                return 503, body
        if self.progress is not None:
            owned = self.progress.now_owned()
            body["partitions"] = len(owned.partitions)
            if owned.excuse is not None:
                body["standing_still"] = owned.excuse
            stalled = self.progress.stalled
            if stalled:
                body["status"] = "stalled"
                body["stalled_partitions"] = [stall.describe() for stall in stalled]
                return 503, body
        return 200, body

    def ready(self) -> tuple[int, dict[str, Any]]:
        failing: dict[str, str] = {}
        for name, check in self.ready_checks.items():
            try:
                problem = check()
            except Exception as exc:  # a check that breaks says "not ready", never 500
                problem = f"check failed: {exc}"
            if problem is not None:
                failing[name] = problem
        code, body = self.health()
        if code != 200 and "stalled_partitions" in body:
            failing["partitions"] = "; ".join(body["stalled_partitions"])
        elif code != 200:
            failing["loop"] = f"main loop stalled for {body['loop_age_s']} s"
        body = {"status": "ready" if not failing else "not ready", "component": self.component}
        if failing:
            body["failing"] = sorted(failing)
            body["problems"] = failing
        if self.details is not None:
            body.update(self.details())
        return (200 if not failing else 503), body

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(200, generate_latest(), CONTENT_TYPE_LATEST)
                    return
                routes = {"/health": server.health, "/ready": server.ready}
                if path in server.routes:
                    self._json(200, server.routes[path]())
                    return
                if path not in routes:
                    known = ", ".join(["/health", "/ready", "/metrics", *server.routes])
                    self._json(404, {"detail": f"no such path {path}; try {known}"})
                    return
                self._json(*routes[path]())

            def _json(self, code: int, body: Mapping[str, Any]) -> None:
                self._send(code, json.dumps(body).encode(), "application/json")

            def _send(self, code: int, data: bytes, content_type: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # probes every few seconds: not worth a log line each

        return Handler

    def start(self) -> OpsServer:
        if self.progress is not None:
            self.progress.start()
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="ops-server", daemon=True
        )
        self._thread.start()
        log.info("ops endpoint on port %d: /health /ready /metrics", self.port)
        return self

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
        self._server.shutdown()
        self._server.server_close()
