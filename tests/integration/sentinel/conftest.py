"""Fixtures shared by the read API and page tests: scenario runs served by `sentinel api`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from sentinel.brokers import free_port
from tests.support.paths import REPO

OOM_RUN = "job:ci/orders-api-tests-29501700"
FLAKY_RUN = "job:ci/orders-api-tests-29503080"
FLAKY_TEST = "tests.unit.test_orders.TestRefunds::test_partial_refund"
STAGED_RUN = "github:octo-org/octo-repo:12790345118:1"


@dataclass
class ScenarioApi:
    url: str
    data_dir: Path
    info: dict[str, Any]


@pytest.fixture(scope="session")
def scenario_api(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ScenarioApi]:
    """The arc_github_run, oom_mid_test and flaky_test scenarios replayed through the real
    pipeline into one store, served by a `sentinel api` process on a loopback port (about 90 s,
    once per session). SENTINEL_TEST_SCENARIO_API=<url> reuses one already serving them
    (`python -m tests.support.scenario_store DIR BOOTSTRAP NAMES...`, then `sentinel api`)."""
    reuse = os.environ.get("SENTINEL_TEST_SCENARIO_API")
    if reuse:
        yield ScenarioApi(url=reuse.rstrip("/"), data_dir=Path(), info={})
        return
    data = tmp_path_factory.mktemp("ui-store")
    names = ["arc_github_run", "oom_mid_test", "flaky_test"]  # in the order they happened
    command = [sys.executable, "-m", "tests.support.scenario_store", str(data), kafka_bootstrap]
    replay = subprocess.run(
        [*command, *names], cwd=REPO, capture_output=True, text=True, timeout=480, check=False
    )
    assert replay.returncode == 0, replay.stderr[-4000:]
    info = json.loads((data / "scenario.json").read_text())
    port = free_port()
    env = dict(os.environ)
    env.update(
        SENTINEL_EMBEDDED__DATA_DIR=str(data),
        SENTINEL_KAFKA__BOOTSTRAP_SERVERS=kafka_bootstrap,
        SENTINEL_TOPICS__PREFIX=info["prefix"],
        SENTINEL_API__PORT=str(port),
        SENTINEL_STORE__LOG_TTL_DAYS="3650",
        SENTINEL_LOGGING__FORMAT="text",
    )
    env.pop("SENTINEL_CONFIG", None)
    log = (data / "api.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "sentinel", "api"],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc, data / "api.log")
        yield ScenarioApi(url=url, data_dir=data, info=info)
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sentinel api exited: {log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"sentinel api not ready: {log.read_text()[-3000:]}")
