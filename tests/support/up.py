"""`sentinel up` as a user runs it (a foreground process), and webhooks to throw at it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.support.helpers import github_headers, payload

SECRET = "up-secret"


class Up(subprocess.Popen[bytes]):
    """A `sentinel up` process; its output goes to `log_path` (a pipe nobody reads while the
    test runs would fill up and block its logging)."""

    log_path: Path

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_up(data_dir: Path, port: int, broker: str, secret: str = SECRET, *extra: str) -> Up:
    env = dict(os.environ, SENTINEL_GITHUB_WEBHOOK_SECRET=secret)
    env.pop("SENTINEL_CONFIG", None)
    command = [sys.executable, "-m", "sentinel", "up", "--data-dir", str(data_dir)]
    command += ["--api-port", str(port), "--broker", broker, *extra]
    log_path = data_dir.with_name(f"{data_dir.name}-up.log")
    with log_path.open("ab") as log:
        proc = Up(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    proc.log_path = log_path
    return proc


def wait_ready(proc: Up, url: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            output = proc.output()
            raise AssertionError(f"sentinel up exited with {proc.returncode}:\n{output[-3000:]}")
        try:
            if httpx.get(f"{url}/ready", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise AssertionError("sentinel up did not become ready")


def interrupt(proc: Up) -> str:
    """Ctrl-C; everything it wrote."""
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=90)
    output = proc.output()
    assert proc.returncode == 0, output[-3000:]
    return output


def child_pid(parent: int, *words: str) -> int:
    """The pid of the child of `parent` whose command line holds every one of `words`."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and all(word.encode() in argv for word in words):
            return int(entry.name)
    raise LookupError(f"no child of {parent} runs {' '.join(words)}")


def requested_runs(first: int, count: int) -> Iterator[tuple[str, str, bytes]]:
    """(run id, delivery id, body) of `count` distinct `workflow_run` requested webhooks."""
    template = json.loads(payload("workflow_run/requested.payload.json"))
    repository = template["repository"]["full_name"]
    for number in range(first, first + count):
        body = json.loads(json.dumps(template))
        body["workflow_run"]["id"] = 900_000 + number
        run_id = f"github:{repository}:{900_000 + number}:{body['workflow_run']['run_attempt']}"
        yield run_id, f"load-{number}", json.dumps(body).encode()


def post_all(url: str, hooks: list[tuple[str, str, bytes]], secret: str = SECRET) -> list[int]:
    """POST them over 8 connections; the status code of each."""

    def post(hook: tuple[str, str, bytes]) -> int:
        _run_id, delivery, body = hook
        headers = github_headers("workflow_run", delivery, body, secret)
        response = client.post(f"{url}/api/webhooks/github", content=body, headers=headers)
        return response.status_code

    with (
        httpx.Client(timeout=30, limits=httpx.Limits(max_connections=8)) as client,
        ThreadPoolExecutor(8) as pool,
    ):
        return list(pool.map(post, hooks))
