"""The read API over the real ClickHouse engine (embedded), served by uvicorn on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from runtime.config import Settings
from schemas.messages import Anomaly, AnomalyCategory, RunState, RunStatus, Severity, StageState
from sentinel.api import create_api
from sinks.clickhouse.migrations import migrate
from sinks.clickhouse.rows import RUN_COLUMNS, run_state_to_row
from sinks.clickhouse.store import Store, open_store
from sinks.clickhouse.topic_rows import ANOMALY_COLUMNS, anomaly_row
from tests.support.helpers import ServerThread

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def run(n: int, status: RunStatus, **fields: Any) -> RunState:
    created = T0 + timedelta(minutes=n)
    values: dict[str, Any] = {
        "run_id": f"github:acme/app:{1000 + n}:1",
        "provider": "github",
        "provider_run_id": str(1000 + n),
        "repository": "acme/app",
        "pipeline": "ci",
        "branch": "main",
        "status": status,
        "created_at": created,
        "first_event_at": created,
        "updated_at": created + timedelta(minutes=5),
    }
    values.update(fields)
    return RunState(**values)


RUNS = [
    run(0, RunStatus.SUCCEEDED),
    run(1, RunStatus.FAILED, branch="feature/x"),
    run(2, RunStatus.RUNNING, pipeline="nightly-e2e"),
    run(3, RunStatus.SUCCEEDED, repository="acme/lib"),
    run(4, RunStatus.CANCELLED, provider="jenkins", run_id="jenkins:e2e:55"),
    run(5, RunStatus.PENDING),
    # Created at the same instant as run 5: the cursor must tell them apart by run id.
    run(5, RunStatus.TIMED_OUT, run_id="github:acme/app:9999:2", provider_run_id="9999"),
]


def insert(store: Store, *states: RunState) -> None:
    store.insert("runs", [run_state_to_row(s) for s in states], RUN_COLUMNS)


@pytest.fixture
def api(make_settings: Callable[..., Settings]) -> Iterator[tuple[Store, str, list[bool]]]:
    store = open_store(make_settings())
    migrate(store)
    insert(store, *RUNS)
    broker_up = [True]
    try:
        with ServerThread(create_api(store, broker_ready=lambda: broker_up[0])) as server:
            yield store, server.url, broker_up
    finally:
        store.close()


def ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["run_id"] for item in response.json()["items"]]


def test_list_is_newest_first_and_filters_combine(api: tuple[Store, str, list[bool]]) -> None:
    _store, url, _ = api
    everything = ids(httpx.get(f"{url}/api/runs"))
    assert everything == [
        "github:acme/app:9999:2",
        "github:acme/app:1005:1",
        "jenkins:e2e:55",
        "github:acme/app:1003:1",
        "github:acme/app:1002:1",
        "github:acme/app:1001:1",
        "github:acme/app:1000:1",
    ]
    get = lambda **params: ids(httpx.get(f"{url}/api/runs", params=params))  # noqa: E731
    assert get(status="succeeded") == ["github:acme/app:1003:1", "github:acme/app:1000:1"]
    assert get(provider="jenkins") == ["jenkins:e2e:55"]
    assert get(repository="acme/lib") == ["github:acme/app:1003:1"]
    assert get(pipeline="nightly-e2e") == ["github:acme/app:1002:1"]
    assert get(branch="feature/x") == ["github:acme/app:1001:1"]
    assert get(status="succeeded", repository="acme/app") == ["github:acme/app:1000:1"]
    since, until = (T0 + timedelta(minutes=1)).isoformat(), (T0 + timedelta(minutes=3)).isoformat()
    assert get(since=since, until=until) == ["github:acme/app:1002:1", "github:acme/app:1001:1"]
    assert get(status="failed", branch="main") == []


def test_pages_are_stable_while_runs_change(api: tuple[Store, str, list[bool]]) -> None:
    store, url, _ = api
    seen: list[str] = []
    cursor = None
    page = 0
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        body = httpx.get(f"{url}/api/runs", params=params).json()
        seen += [item["run_id"] for item in body["items"]]
        cursor = body["next_cursor"]
        if page == 0:
            # Between pages, a listed run progresses and a brand-new run arrives.
            changed = RUNS[1].model_copy(update={"status": RunStatus.SUCCEEDED, "version": 2})
            newer = run(9, RunStatus.PENDING, run_id="github:acme/app:2000:1")
            insert(store, changed, newer)
        page += 1
        if cursor is None:
            break
    assert seen == [
        r["run_id"]
        for r in sorted(
            ({"run_id": s.run_id, "at": s.created_at} for s in RUNS),
            key=lambda r: (r["at"], r["run_id"]),
            reverse=True,
        )
    ]
    assert len(seen) == len(set(seen)) == len(RUNS)


def test_one_run_latest_version_and_404(api: tuple[Store, str, list[bool]]) -> None:
    store, url, _ = api
    later = RUNS[2].model_copy(
        update={
            "status": RunStatus.FAILED,
            "version": 3,
            "stages": [
                StageState(stage_id="7", name="build", status=RunStatus.FAILED, updated_at=T0)
            ],
        }
    )
    insert(store, later)
    response = httpx.get(f"{url}/api/runs/github:acme/app:1002:1")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "failed"
    assert body["version"] == 3
    assert body["stages"][0]["name"] == "build"
    assert "merge_keys" not in body  # tracker bookkeeping is not part of the API
    missing = httpx.get(f"{url}/api/runs/github:acme/app:424242:1")
    assert missing.status_code == 404
    assert "github:acme/app:424242:1" in missing.json()["detail"]


def test_a_runs_anomalies_with_their_evidence_and_404(api: tuple[Store, str, list[bool]]) -> None:
    store, url, _ = api
    oom = Anomaly(
        anomaly_id="a" * 32,
        run_id=RUNS[1].run_id,
        category=AnomalyCategory.INFRA,
        type="oom_killed",
        severity=Severity.ERROR,
        subject="e2e-x2kzq/tests",
        summary="pod e2e-x2kzq container tests was OOMKilled (exit 137) on node n1",
        evidence={"exit_code": 137, "node": "n1"},
        window_start=T0,
        window_end=T0 + timedelta(minutes=2),
        detected_at=T0 + timedelta(minutes=2),
    )
    store.insert("anomalies", [anomaly_row(oom)], ANOMALY_COLUMNS)
    response = httpx.get(f"{url}/api/runs/{RUNS[1].run_id}/anomalies")
    assert response.status_code == 200
    [found] = response.json()
    assert (found["type"], found["subject"]) == ("oom_killed", "e2e-x2kzq/tests")
    assert found["evidence"] == {"exit_code": 137, "node": "n1"}
    assert httpx.get(f"{url}/api/runs/{RUNS[0].run_id}/anomalies").json() == []
    assert httpx.get(f"{url}/api/runs/github:acme/app:424242:1/anomalies").status_code == 404


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"limit": 0}, "limit"),
        ({"limit": 100000}, "limit"),
        ({"since": "yesterday"}, "since"),
        ({"status": "exploded"}, "status"),
    ],
)
def test_bad_query_parameters_are_4xx_with_the_reason(
    api: tuple[Store, str, list[bool]], params: dict[str, Any], reason: str
) -> None:
    _store, url, _ = api
    response = httpx.get(f"{url}/api/runs", params=params)
    assert 400 <= response.status_code < 500
    assert reason in response.text


def test_ready_names_what_is_unreachable_and_spec_is_served(
    api: tuple[Store, str, list[bool]],
) -> None:
    _store, url, broker_up = api
    assert httpx.get(f"{url}/health").json() == {"status": "ok"}
    assert httpx.get(f"{url}/ready").status_code == 200
    broker_up[0] = False
    not_ready = httpx.get(f"{url}/ready")
    assert not_ready.status_code == 503
    assert not_ready.json()["failing"] == ["broker"]
    spec = httpx.get(f"{url}/openapi.json").json()
    assert {"/health", "/ready", "/api/runs", "/api/runs/{run_id}"} <= set(spec["paths"])
    assert "sentinel_webhooks_total" in httpx.get(f"{url}/metrics").text
