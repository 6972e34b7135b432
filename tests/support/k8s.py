"""Shared pieces of the Kubernetes producer tests: settings aimed at the fake API, waiting."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runtime.config import Settings
from tests.fakes.kube_api import FakeKubeApi

# Small timeouts so a dead stream or a retry costs fractions of a second in tests.
FAST_K8S: dict[str, Any] = {
    "silence_limit_s": 1.0,
    "connect_timeout_s": 2.0,
    "watch_timeout_s": 60,
    "backoff_base_s": 0.05,
    "backoff_cap_s": 0.5,
}


def k8s_settings(
    make_settings: Callable[..., Settings],
    bootstrap: str,
    fake: FakeKubeApi,
    tmp_path: Path,
    k8s: dict[str, Any] | None = None,
    logs: dict[str, Any] | None = None,
) -> Settings:
    kubeconfig = fake.write_kubeconfig(tmp_path / "kubeconfig")
    return make_settings(
        bootstrap,
        k8s={**FAST_K8S, "kubeconfig": str(kubeconfig), **(k8s or {})},
        logs=logs or {},
    )


def wait_for(condition: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(0.02)
