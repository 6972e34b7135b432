"""`sentinel demo` as a newcomer runs it: the bundled history replayed into a real stack.

One demo per module, on the session's broker (`--bootstrap`: its own topic prefix), serving on
a free loopback port, with live runs played 20x faster: its summary lists exactly the injected
anomalies, the pages it names load, `sentinel doctor` passes every check that applies to it,
new runs keep coming, and Ctrl-C stops the stack it started (about 2 minutes in all).
"""

from __future__ import annotations

import json
import os
import signal
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
from sentinel.demo.history import load_expected
from tests.support.paths import REPO

# The module's demo starts in its first test: replaying the history takes 1-2 minutes, more on
# a loaded machine.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

EXPECTED = load_expected()


@dataclass
class Demo:
    url: str
    data_dir: Path
    proc: subprocess.Popen[bytes]
    summary: dict[str, Any]
    log: Path


@pytest.fixture(scope="module")
def demo(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    tmp = tmp_path_factory.mktemp("demo")
    data, port = tmp / "data", free_port()
    command = [sys.executable, "-m", "sentinel", "demo", "--json", "--bootstrap", kafka_bootstrap]
    command += ["--api-port", str(port), "--data-dir", str(data)]
    command += ["--live-every", "1", "--live-speed", "20"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTINEL_CONFIG")}
    log = tmp / "demo.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 420
        while not _serving(url, data):
            assert proc.poll() is None, log.read_text()[-4000:]
            assert time.monotonic() < deadline, log.read_text()[-4000:]
            time.sleep(1)
        summary = json.loads((data / "summary.json").read_text())
        yield Demo(url, data, proc, summary, log)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def _serving(url: str, data: Path) -> bool:
    if not (data / "summary.json").exists():
        return False
    try:
        return httpx.get(f"{url}/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_the_summary_lists_every_injected_anomaly_and_nothing_else(demo: Demo) -> None:
    summary = demo.summary
    want_types = sorted({a["type"] for a in EXPECTED["anomalies"]})
    assert sorted(summary["anomalies_by_type"]) == want_types
    assert summary["matches_expected"] is True
    assert summary["runs_by_status"] == {"failed": 2, "succeeded": 24, "timed_out": 1}
    for kind, entry in summary["anomalies_by_type"].items():
        assert entry["count"] == 1 and entry["evidence"], kind
    # Exactly the injected findings, run and subject too, as the API serves them.
    found = httpx.get(f"{demo.url}/api/anomalies", params={"limit": 200}, timeout=10).json()
    history = {r["run_id"] for r in EXPECTED["runs"]}
    got = sorted(
        (a["run_id"], a["type"], a["subject"]) for a in found["items"] if a["run_id"] in history
    )
    want = sorted((a["run_id"], a["type"], a["subject"]) for a in EXPECTED["anomalies"])
    assert got == want
    # The console receiver was told about every run with a finding, nothing else.
    assert summary["alerts"] and {a["receiver"] for a in summary["alerts"]} == {"console"}
    assert any(a["status"] == "firing" for a in summary["alerts"])


def test_the_pages_it_names_load(demo: Demo) -> None:
    links = demo.summary["links"]
    runs = httpx.get(links["runs_page"], timeout=20)
    assert runs.status_code == 200 and "shop-verify" in runs.text
    page = httpx.get(links["run_page"], timeout=20)
    assert page.status_code == 200 and "OOMKilled" in page.text
    docs = httpx.get(links["api_docs"], timeout=20)
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    assert "query -f schemas/queries/flakiest_tests.sql" in links["query"]


CHROMIUM = Path(os.environ.get("SENTINEL_CHROMIUM", "/usr/bin/chromium"))
# The README's screenshots are the demo's pages (SENTINEL_UPDATE_SCREENSHOTS=1 writes them).
UPDATE = os.environ.get("SENTINEL_UPDATE_SCREENSHOTS")
SHOTS = REPO / ("docs/img" if UPDATE else ".cache/screenshots")


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_pages_in_a_browser(demo: Demo, scheme: str) -> None:
    """The runs list and the featured run's timeline (its OOM kill marked), accessible in both
    colour schemes, as the README shows them."""
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            raise RuntimeError(f"CI must run the browser tests: no chromium at {CHROMIUM}")
        pytest.skip(f"no chromium at {CHROMIUM}: run `make browser` (apt-get install chromium)")
    from axe_playwright_python.sync_playwright import Axe
    from playwright.sync_api import sync_playwright

    links = demo.summary["links"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900}, color_scheme=scheme)
            page.goto(links["runs_page"])
            assert page.locator("tr.run-row").count() >= 27
            _shoot(page, Axe(), f"runs-list-{scheme}.png")
            page.goto(links["run_page"])
            oom = page.locator("g.lane-pod g.tick-oom")
            assert oom.count() == 1 and "OOMKilled" in (oom.locator("title").text_content() or "")
            _shoot(page, Axe(), f"run-page-{scheme}.png")
        finally:
            browser.close()


def _shoot(page: Any, axe: Any, name: str) -> None:
    serious = [
        v for v in axe.run(page).response["violations"] if v["impact"] in ("serious", "critical")
    ]
    assert serious == [], [(v["id"], v["help"]) for v in serious]
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / name), full_page=True)
    assert (SHOTS / name).stat().st_size > 10_000


def test_doctor_passes_every_check_that_applies(demo: Demo, tmp_path: Path) -> None:
    config = demo.data_dir / "sentinel.yaml"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SENTINEL_", "KUBECONFIG"))}
    env["HOME"] = str(tmp_path)  # no ~/.kube/config: the Kubernetes checks do not apply
    result = subprocess.run(
        [sys.executable, "-m", "sentinel", "--config", str(config), "doctor", "--json"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    for name in ("config", "kafka", "kafka topics", "store", "alert channel console (console)"):
        assert checks[name]["status"] == "ok", checks[name]
    assert "owned by the running sentinel" in checks["store"]["detail"]
    assert checks["kubernetes"]["status"] == "skip"
    assert {c["status"] for c in checks.values()} <= {"ok", "warn", "skip"}


def test_new_runs_keep_coming(demo: Demo) -> None:
    history = {r["run_id"] for r in EXPECTED["runs"]}
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        runs = httpx.get(f"{demo.url}/api/runs", params={"limit": 50}, timeout=10).json()
        new = [r for r in runs["items"] if r["run_id"] not in history]
        if any(r["status"] == "succeeded" for r in new):
            return
        time.sleep(2)
    raise AssertionError(f"no live run finished: {new}")


def test_ctrl_c_stops_the_stack(demo: Demo) -> None:
    demo.proc.send_signal(signal.SIGINT)
    assert demo.proc.wait(60) == 0, demo.log.read_text()[-3000:]
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{demo.url}/health", timeout=2)
    marker = f"SENTINEL_EMBEDDED__DATA_DIR={demo.data_dir}".encode()
    left = [p for p in Path("/proc").glob("[0-9]*") if marker in _environ(p)]
    assert left == [], "the worker outlived the demo"


def _environ(proc: Path) -> bytes:
    try:
        return (proc / "environ").read_bytes()
    except OSError:
        return b""
