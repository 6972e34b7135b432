"""A real Prometheus Alertmanager on loopback, built once from its Go module source.

`alertmanager_binary` runs tools/build_alertmanager.sh (which caches the binary under
`.cache/alertmanager-<version>/`); it skips the test only when Go itself is missing — CI
installs Go, so there the tests run. `RunningAlertmanager` starts it with a route to a
webhook receiver of ours (`AmWebhookSink`), clustering off, and waits for /-/ready.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request

from sentinel.brokers import free_port
from tests.support.alert_servers import LoopbackServer
from tests.support.paths import REPO

BUILD_SCRIPT = REPO / "tools" / "build_alertmanager.sh"


def alertmanager_binary() -> Path:
    if shutil.which("go") is None and not os.environ.get("CI"):
        pytest.skip("Go is not installed: cannot build Alertmanager (tools/build_alertmanager.sh)")
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT)], capture_output=True, text=True, timeout=900, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"building Alertmanager failed:\n{result.stderr[-3000:]}")
    return Path(result.stdout.strip().splitlines()[-1])


class AmWebhookSink:
    """What Alertmanager's own routing delivered to its webhook receiver."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.notifications: list[dict[str, Any]] = []
        app = FastAPI()

        @app.post("/am-hook")
        async def hook(request: Request) -> dict[str, str]:
            body = await request.json()
            with self.lock:
                self.notifications.append(body)
            return {"status": "ok"}

        self.server = LoopbackServer(app)

    def alerts(self, status: str) -> list[dict[str, Any]]:
        with self.lock:
            return [
                alert
                for note in self.notifications
                for alert in note.get("alerts", [])
                if alert.get("status") == status
            ]


CONFIG = """\
route:
  receiver: sink
  group_by: ["anomaly_id"]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: sink
    webhook_configs:
      - url: {hook}
        send_resolved: true
"""


class RunningAlertmanager:
    def __init__(self, binary: Path, workdir: Path, hook_url: str) -> None:
        self.port = free_port()
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        config = workdir / "alertmanager.yml"
        config.write_text(CONFIG.format(hook=hook_url))
        self.log = (workdir / "alertmanager.log").open("wb")
        self.proc = subprocess.Popen(
            [
                str(binary),
                f"--config.file={config}",
                f"--storage.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",
                "--log.level=warn",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        self._wait_ready()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"alertmanager exited; see {self.workdir / 'alertmanager.log'}")
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError("alertmanager did not become ready")

    def alerts(self, **params: Any) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.url}/api/v2/alerts", params=params, timeout=10)
        response.raise_for_status()
        alerts: list[dict[str, Any]] = response.json()
        return alerts

    def silence(self, matchers: list[dict[str, Any]], minutes: float = 30) -> str:
        now = time.time()
        body = {
            "matchers": matchers,
            "startsAt": _iso(now - 1),
            "endsAt": _iso(now + minutes * 60),
            "createdBy": "test",
            "comment": "silenced in Alertmanager itself",
        }
        response = httpx.post(f"{self.url}/api/v2/silences", json=body, timeout=10)
        response.raise_for_status()
        return str(response.json()["silenceID"])

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.log.close()


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + "Z"
