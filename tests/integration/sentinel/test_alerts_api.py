"""GET /api/alerts over the real ClickHouse engine; /api/silences over real Kafka."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from runtime.config import Settings
from schemas.messages import AlertDelivery, DeliveryOutcome
from sentinel.alerts_api import alerts_router
from sentinel.api import create_api
from sentinel.topic_admin import ensure_topics
from sinks.alerts.silence_store import SilenceStore
from sinks.clickhouse.migrations import migrate
from sinks.clickhouse.store import open_store
from sinks.clickhouse.topic_rows import DELIVERY_COLUMNS, delivery_row
from tests.support.helpers import ServerThread

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def delivery(n: int, outcome: DeliveryOutcome, **fields: Any) -> AlertDelivery:
    values: dict[str, Any] = {
        "delivery_id": f"d{n // 2}",
        "channel": "slack-web",
        "channel_type": "slack",
        "group_key": f'root:p0:{{run_id="r{n // 2}"}}',
        "anomaly_ids": [f"a{n}"],
        "run_ids": [f"github:acme/app:{n // 2}:1"],
        "attempt": 1 + n % 2,
        "outcome": outcome,
        "status": "firing",
        "title": f"message {n}",
        "attempted_at": T0 + timedelta(seconds=n),
    }
    values.update(fields)
    return AlertDelivery(**values)


DELIVERIES = [
    delivery(0, DeliveryOutcome.RETRYING, status_code=429, retry_in_s=2.0),
    delivery(1, DeliveryOutcome.SENT, status_code=200),
    delivery(2, DeliveryOutcome.SENT, channel="mail", channel_type="email"),
    delivery(3, DeliveryOutcome.FAILED, channel="mail", channel_type="email", status_code=535),
    delivery(4, DeliveryOutcome.SUPPRESSED, silence_ids=["s1"]),
]


@pytest.fixture
def api(
    kafka_bootstrap: str, make_settings: Callable[..., Settings]
) -> Iterator[tuple[str, Settings]]:
    settings = make_settings(kafka_bootstrap)
    ensure_topics(settings)
    store = open_store(settings)
    migrate(store)
    store.insert("alert_deliveries", [delivery_row(d) for d in DELIVERIES], DELIVERY_COLUMNS)
    app = create_api(
        store,
        broker_ready=lambda: True,
        extra_routers=[alerts_router(store, SilenceStore(settings), page_size_max=100)],
    )
    try:
        with ServerThread(app) as server:
            yield server.url, settings
    finally:
        store.close()


def test_deliveries_are_listed_newest_first_with_filters_and_a_stable_cursor(
    api: tuple[str, Settings],
) -> None:
    url, _settings = api
    page = httpx.get(f"{url}/api/alerts", params={"limit": 2}, timeout=10).json()
    assert [item["title"] for item in page["items"]] == ["message 4", "message 3"]
    rest = httpx.get(
        f"{url}/api/alerts", params={"limit": 10, "cursor": page["next_cursor"]}, timeout=10
    ).json()
    assert [item["title"] for item in rest["items"]] == ["message 2", "message 1", "message 0"]
    assert rest["next_cursor"] is None
    failed = httpx.get(f"{url}/api/alerts", params={"outcome": "failed"}, timeout=10).json()
    assert [(i["channel"], i["status_code"]) for i in failed["items"]] == [("mail", 535)]
    by_run = httpx.get(
        f"{url}/api/alerts", params={"run_id": "github:acme/app:0:1"}, timeout=10
    ).json()
    assert [i["outcome"] for i in by_run["items"]] == ["sent", "retrying"]
    assert by_run["items"][1]["retry_in_s"] == 2.0
    muted = httpx.get(f"{url}/api/alerts", params={"anomaly_id": "a4"}, timeout=10).json()
    assert [(i["outcome"], i["silence_ids"]) for i in muted["items"]] == [("suppressed", ["s1"])]
    since = httpx.get(
        f"{url}/api/alerts", params={"since": (T0 + timedelta(seconds=3)).isoformat()}, timeout=10
    ).json()
    assert len(since["items"]) == 2


def test_bad_filters_are_refused_with_a_reason(api: tuple[str, Settings]) -> None:
    url, _settings = api
    bad_cursor = httpx.get(f"{url}/api/alerts", params={"cursor": "nope"}, timeout=10)
    assert bad_cursor.status_code == 400 and "cursor" in bad_cursor.json()["detail"]
    # Every client mistake is a 400 with the reason (the API's convention, issue 14).
    bad_outcome = httpx.get(f"{url}/api/alerts", params={"outcome": "lost"}, timeout=10)
    assert bad_outcome.status_code == 400 and "outcome" in bad_outcome.text
    bad_limit = httpx.get(f"{url}/api/alerts", params={"limit": 0}, timeout=10)
    assert bad_limit.status_code == 400 and "limit" in bad_limit.text
    ancient = httpx.get(f"{url}/api/alerts", params={"since": "0330-07-03T00:15:42Z"}, timeout=10)
    assert ancient.status_code == 400 and "since" in ancient.json()["detail"]
    unix_time = httpx.get(f"{url}/api/alerts", params={"until": "0.5"}, timeout=10)
    assert unix_time.status_code == 400


def test_silences_are_created_listed_and_expired_through_the_api(
    api: tuple[str, Settings],
) -> None:
    url, settings = api
    created = httpx.post(
        f"{url}/api/silences",
        json={
            "matchers": [
                'team="payments"',
                {"name": "severity", "value": "error|critical", "is_regex": True},
            ],
            "created_by": "ops",
            "comment": "deploy window",
            "duration": "2h",
        },
        timeout=30,
    )
    assert created.status_code == 201, created.text
    silence = created.json()
    assert silence["state"] == "active" and len(silence["matchers"]) == 2
    listed = httpx.get(f"{url}/api/silences", params={"state": "active"}, timeout=30).json()
    assert [s["silence_id"] for s in listed] == [silence["silence_id"]]
    one = httpx.get(f"{url}/api/silences/{silence['silence_id']}", timeout=30)
    assert one.status_code == 200 and one.json()["comment"] == "deploy window"
    # The dispatcher reads the same topic: the silence is there for it.
    assert silence["silence_id"] in SilenceStore(settings).all()

    expired = httpx.delete(f"{url}/api/silences/{silence['silence_id']}", timeout=30)
    assert expired.status_code == 200 and expired.json()["state"] == "expired"
    assert httpx.get(f"{url}/api/silences", params={"state": "active"}, timeout=30).json() == []
    missing = httpx.delete(f"{url}/api/silences/does-not-exist", timeout=30)
    assert missing.status_code == 404 and "no silence" in missing.json()["detail"]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"matchers": ['team=~".*"'], "duration": "1h"}, "must not match an empty label"),
        ({"matchers": ["team payments"], "duration": "1h"}, "not a matcher"),
        ({"matchers": ['team="x"'], "duration": "soon"}, "not a duration"),
        ({"matchers": ['team="x"']}, "either an end time or a duration"),
        (
            {"matchers": ['team="x"'], "ends_at": "2020-01-01T00:00:00Z"},
            "the end must be after the start",
        ),
    ],
)
def test_an_invalid_silence_is_a_400_with_the_reason(
    api: tuple[str, Settings], body: dict[str, Any], reason: str
) -> None:
    url, _settings = api
    response = httpx.post(
        f"{url}/api/silences",
        json={"created_by": "ops", "comment": "c", **body},
        timeout=30,
    )
    assert response.status_code == 400, response.text
    assert reason in response.json()["detail"]
