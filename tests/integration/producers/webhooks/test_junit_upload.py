"""`POST /api/runs/{id}/junit` over real HTTP: results on `sentinel.tests`, then in ClickHouse."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from runtime.config import Settings
from sentinel.stack import EmbeddedStack
from tests.support.helpers import read_topic, served_stack, wait_for_run
from tests.support.paths import DATA

pytestmark = pytest.mark.integration

TOKEN = "junit-token"
RUN = "github:acme/shop:77:1"
LOGS = DATA / "test-logs"


@pytest.fixture
def served(
    kafka_bootstrap: str, make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[EmbeddedStack, str]]:
    monkeypatch.setenv("SENTINEL_GENERIC_WEBHOOK_TOKEN", TOKEN)
    with served_stack(make_settings(kafka_bootstrap)) as stack_and_url:
        yield stack_and_url


def upload(url: str, name: str, token: str | None = TOKEN, run: str = RUN) -> httpx.Response:
    headers = {"Content-Type": "application/xml"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    body = (LOGS / name).read_bytes()
    return httpx.post(f"{url}/api/runs/{run}/junit", content=body, headers=headers, timeout=30)


def test_upload_publishes_each_test_case_once_and_the_sink_stores_them(
    served: tuple[EmbeddedStack, str],
) -> None:
    stack, url = served
    response = upload(url, "junit-pytest.xml")
    assert response.status_code == 202, response.text
    assert response.json()["tests"] == 7
    assert response.json()["by_status"] == {"passed": 3, "failed": 1, "skipped": 2, "error": 1}
    again = upload(url, "junit-pytest.xml")  # a retried CI step
    assert again.status_code == 200 and again.json()["status"] == "duplicate"

    settings = stack.settings
    results = [json.loads(v) for _k, v in read_topic(settings, settings.topic_names.tests)]
    assert len(results) == 7
    assert {r["run_id"] for r in results} == {RUN}
    failed = next(r for r in results if r["status"] == "failed")
    assert failed["name"] == "test_total[discount [10%]]"
    assert failed["suite"] == "tests.unit.test_cart"

    assert stack.owner is not None and stack.owner.store is not None
    store = stack.owner.store
    deadline = time.monotonic() + 60
    while True:
        rows = store.query_rows(
            "SELECT status, count() AS n FROM test_results WHERE run_id = {run:String} "
            "GROUP BY status ORDER BY status",
            {"run": RUN},
        )
        if sum(row["n"] for row in rows) >= 7 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert {row["status"]: row["n"] for row in rows} == {
        "error": 1,
        "failed": 1,
        "passed": 3,
        "skipped": 2,
    }
    # The run counts the upload once (the retried post was not published again).
    run = wait_for_run(url, RUN, "pending")
    deadline = time.monotonic() + 60
    while run["tests"]["total"] < 7 and time.monotonic() < deadline:
        time.sleep(0.2)
        run = httpx.get(f"{url}/api/runs/{RUN}", timeout=10).json()
    assert run["tests"] == {"total": 7, "passed": 3, "failed": 1, "skipped": 2, "error": 1}


def test_bad_uploads_are_refused_with_the_reason(served: tuple[EmbeddedStack, str]) -> None:
    stack, url = served
    assert upload(url, "junit-pytest.xml", token=None).status_code == 401
    assert upload(url, "junit-pytest.xml", token="wrong").status_code == 401
    malformed = upload(url, "junit-malformed-mismatched.xml")
    assert malformed.status_code == 400
    assert "line" in malformed.json()["detail"] and "column" in malformed.json()["detail"]
    bomb = upload(url, "junit-bomb.xml")
    assert bomb.status_code == 400
    assert upload(url, "junit-not-junit.xml").status_code == 400
    settings = stack.settings
    assert read_topic(settings, settings.topic_names.tests) == []
