"""Reading a component's ops endpoint (/health, /ready, /metrics) from tests."""

from __future__ import annotations

import time
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families


def wait_health(url: str, code: int, timeout: float = 30.0) -> dict[str, Any]:
    """Poll `url`/health until it answers `code`; its JSON body."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            response = httpx.get(f"{url}/health", timeout=5)
            last = (response.status_code, response.text)
            if response.status_code == code:
                return dict(response.json())
        except httpx.TransportError as exc:
            last = exc
        time.sleep(0.2)
    raise AssertionError(f"{url}/health never answered {code}; last: {last}")


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample of a Prometheus text exposition (0 if absent)."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0
