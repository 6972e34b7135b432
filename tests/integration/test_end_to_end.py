"""The walking skeleton end to end on real Apache Kafka.

Webhook → run tracker → ClickHouse → API.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from runtime.config import Settings
from sentinel.stack import EmbeddedStack
from tests.support.helpers import post_webhook, served_stack, wait_for_run

pytestmark = pytest.mark.integration

SECRET = "e2e-secret"
RUN_ID = "github:octo-org/octo-repo:289782451:1"


@pytest.fixture
def stack_url(
    kafka_bootstrap: str, make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[EmbeddedStack, str]]:
    monkeypatch.setenv("SENTINEL_GITHUB_WEBHOOK_SECRET", SECRET)
    with served_stack(make_settings(kafka_bootstrap)) as served:
        yield served


def post_event(url: str, event: str, delivery: str, path: str) -> None:
    response = post_webhook(url, event, delivery, path, SECRET)
    assert response.status_code == 202, response.text


def test_requested_then_completed_shows_a_succeeded_run(
    stack_url: tuple[EmbeddedStack, str],
) -> None:
    _stack, url = stack_url
    assert httpx.get(f"{url}/ready", timeout=10).json() == {"status": "ready"}

    post_event(url, "workflow_run", "e2e-1", "workflow_run/requested.payload.json")
    pending = wait_for_run(url, RUN_ID, "pending")
    assert pending["pipeline"] == "test"
    post_event(url, "workflow_run", "e2e-2", "workflow_run/completed.payload.json")
    run = wait_for_run(url, RUN_ID, "succeeded")
    assert run["conclusion"] == "success"
    assert run["repository"] == "octo-org/octo-repo"
    assert run["branch"] == "master"
    assert run["commit_sha"] == "3484a3fb816e0859fd6e1cea078d76385ff50625"

    one = httpx.get(f"{url}/api/runs/{RUN_ID}", timeout=10)
    assert one.status_code == 200
    assert one.json()["status"] == "succeeded"
    missing = httpx.get(f"{url}/api/runs/github:nobody/nothing:1:1", timeout=10)
    assert missing.status_code == 404
    assert "no run" in missing.json()["detail"]

    # Exactly one row per run survives, whatever number of snapshots the sink wrote.
    listing = httpx.get(f"{url}/api/runs", params={"repository": "octo-org/octo-repo"}).json()
    assert [r["run_id"] for r in listing["items"]] == [RUN_ID]
