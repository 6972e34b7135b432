"""`sentinel up` as a user runs it: a foreground process, stopped with Ctrl-C (SIGINT)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import httpx
import pytest

from sentinel.brokers import free_port
from tests.support.helpers import github_headers, payload, post_webhook
from tests.support.up import SECRET, interrupt, start_up, wait_ready

pytestmark = pytest.mark.integration

RUN_ID = "github:octo-org/octo-repo:289782451:1"


def processes_using(data_dir: Path) -> list[int]:
    """Live processes whose command line or environment mentions the data dir (broker, worker)."""
    needle = str(data_dir).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            blob = (entry / "cmdline").read_bytes() + (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().split()[2]
        except OSError:
            continue
        if needle in blob and state != "Z":
            found.append(int(entry.name))
    return found


def post(url: str, event: str, delivery: str, path: str) -> None:
    response = post_webhook(url, event, delivery, path, SECRET)
    assert response.status_code == 202, response.text


def wait_status(url: str, status: str, timeout: float = 60) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        response = httpx.get(f"{url}/api/runs/{RUN_ID}", timeout=5)
        if response.status_code == 200 and response.json()["status"] == status:
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"run never reached {status}")


def assert_structured(output: str, component: str) -> None:
    """Not on a terminal, every line is a JSON object with our fields; none is librdkafka's
    raw stderr line (``%3|...|FAIL|... Connection refused``), which a newcomer would read as
    something broken while the embedded broker starts."""
    lines = [line for line in output.splitlines() if line.strip()]
    assert lines
    raw = [line for line in lines if not line.startswith("{")]
    assert raw == [], "lines that are not JSON:\n" + "\n".join(raw[:10])
    entries = [json.loads(line) for line in lines]
    assert all({"time", "level", "component", "logger", "message"} <= e.keys() for e in entries)
    assert {e["component"] for e in entries} == {component}
    refused = [e for e in entries if "Connection refused" in e["message"]]
    assert [e for e in refused if e["level"] in ("warning", "error", "critical")] == []


@pytest.mark.parametrize("broker", ["apache-kafka", "tansu"])
def test_up_serves_runs_stops_on_ctrl_c_and_keeps_history(tmp_path: Path, broker: str) -> None:
    data_dir = tmp_path / "data"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_up(data_dir, port, broker)
    try:
        wait_ready(proc, url)
        post(url, "workflow_run", "up-1", "workflow_run/requested.payload.json")
        post(url, "workflow_run", "up-2", "workflow_run/completed.payload.json")
        seconds = wait_status(url, "succeeded")
        print(f"{broker}: webhook to API in {seconds:.2f}s")
    finally:
        if proc.poll() is None:
            output = interrupt(proc)
    assert "stopping the embedded stack" in output
    assert processes_using(data_dir) == [], "broker or worker left running after Ctrl-C"
    assert_structured(output, "up")
    assert_structured((data_dir / "logs" / "worker.log").read_text(), "worker")

    # Run history lives in the embedded store and survives a restart with either broker.
    again = start_up(data_dir, port, broker)
    try:
        wait_ready(again, url)
        run = httpx.get(f"{url}/api/runs/{RUN_ID}", timeout=5)
        assert run.status_code == 200
        assert run.json()["status"] == "succeeded"
        # A delivery accepted before the restart is still recognised as a duplicate.
        body = payload("workflow_run/completed.payload.json")
        repeat = httpx.post(
            f"{url}/api/webhooks/github",
            content=body,
            headers=github_headers("workflow_run", "up-2", body, SECRET),
        )
        assert repeat.json()["status"] == "duplicate"
    finally:
        if again.poll() is None:
            interrupt(again)
