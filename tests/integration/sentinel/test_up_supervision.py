"""`sentinel up` supervises its children: the worker child killed with SIGKILL while webhooks
keep coming is restarted, `/ready` says so until it is back, and every webhook accepted before,
during and after gives its run exactly once (what a new user saw not happen: issue 17)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from sentinel.brokers import free_port
from tests.support.ops import metric
from tests.support.up import child_pid, interrupt, post_all, requested_runs, start_up, wait_ready

pytestmark = pytest.mark.integration


def wait_not_ready(url: str, component: str, timeout: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = httpx.get(f"{url}/ready", timeout=5)
        if response.status_code == 503 and component in response.json()["failing"]:
            return dict(response.json())
        time.sleep(0.1)
    raise AssertionError(f"/ready never named {component}")


def listed_runs(url: str) -> dict[str, list[dict[str, Any]]]:
    """Every run the API lists, by id (a list each: a run listed twice would show)."""
    found: dict[str, list[dict[str, Any]]] = {}
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 500, **({"cursor": cursor} if cursor else {})}
        page = httpx.get(f"{url}/api/runs", params=params, timeout=10).json()
        for run in page["items"]:
            found.setdefault(run["run_id"], []).append(run)
        cursor = page.get("next_cursor")
        if not cursor:
            return found


def test_a_worker_killed_under_load_is_restarted_and_every_webhook_gives_its_run_once(
    tmp_path: Path,
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_up(tmp_path / "data", port, "apache-kafka")
    output = ""
    try:
        wait_ready(proc, url)
        hooks = list(requested_runs(0, 300))
        assert set(post_all(url, hooks[:150])) == {202}
        worker = child_pid(proc.pid, "sentinel", "worker")
        os.kill(worker, signal.SIGKILL)  # while it works through the first 150

        ready = wait_not_ready(url, "worker")
        assert "was killed by SIGKILL" in ready["problems"]["worker"]
        assert set(post_all(url, hooks[150:])) == {202}  # accepted while it is down
        wait_ready(proc, url, timeout=120)
        assert child_pid(proc.pid, "sentinel", "worker") != worker

        expected = {run_id for run_id, _delivery, _body in hooks}
        deadline = time.monotonic() + 120
        runs = listed_runs(url)
        while set(runs) != expected and time.monotonic() < deadline:
            time.sleep(1)
            runs = listed_runs(url)
        assert set(runs) == expected, f"{len(expected - set(runs))} runs missing"
        assert all(len(listed) == 1 for listed in runs.values())
        assert {listed[0]["status"] for listed in runs.values()} == {"pending"}

        metrics = httpx.get(f"{url}/metrics", timeout=10).text
        assert metric(metrics, "sentinel_child_restarts_total", child="worker") == 1
        assert metric(metrics, "sentinel_child_up", child="worker") == 1
        assert metric(metrics, "sentinel_child_restarts_total", child="sink") == 0
    finally:
        if proc.poll() is None:
            output = interrupt(proc)
    [died] = [line for line in output.splitlines() if "was killed by SIGKILL" in line]
    assert "restarting it in 1.0 s" in died and "worker.log" in died
    assert "worker restarted (restart 1)" in output and "worker is back (restart 1)" in output
