"""The GitHub webhook endpoint over real HTTP, publishing to a real Apache Kafka broker."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest

from producers.webhooks.spool import Spool
from runtime.config import Settings
from sentinel.stack import StoreOwner
from sentinel.topic_admin import ensure_topics
from tests.support.helpers import ServerThread, github_headers, json_values, payload, read_topic

pytestmark = pytest.mark.integration

SECRET = "It's a Secret to Everybody"


@pytest.fixture
def receiver(
    kafka_bootstrap: str, make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Settings, str]]:
    monkeypatch.setenv("SENTINEL_GITHUB_WEBHOOK_SECRET", SECRET)
    settings = make_settings(kafka_bootstrap)
    ensure_topics(settings)
    owner = StoreOwner(settings, run_sink=False)
    owner.start()
    try:
        with ServerThread(owner.api()) as server:
            yield settings, server.url
    finally:
        owner.stop()


def post(
    url: str, event: str, delivery: str, body: bytes, secret: str | None = SECRET, **headers: str
) -> httpx.Response:
    sent = github_headers(event, delivery, body, secret)
    sent.update(headers)
    return httpx.post(f"{url}/api/webhooks/github", content=body, headers=sent, timeout=30)


def test_signed_events_are_published_once_per_delivery(receiver: tuple[Settings, str]) -> None:
    settings, url = receiver
    requested = payload("workflow_run/requested.payload.json")
    completed = payload("workflow_run/completed.payload.json")
    first = post(url, "workflow_run", "delivery-1", requested)
    assert first.status_code == 202, first.text
    assert first.json()["via"] == "published"
    assert post(url, "workflow_run", "delivery-2", completed).status_code == 202
    again = post(url, "workflow_run", "delivery-2", completed)
    assert again.status_code == 200
    assert again.json()["status"] == "duplicate"

    events = json_values(read_topic(settings, settings.topic_names.ci))
    assert [e["event_id"] for e in events] == ["delivery-1", "delivery-2"]
    assert {e["run_id"] for e in events} == {"github:octo-org/octo-repo:289782451:1"}
    assert [e["status"] for e in events] == ["pending", "succeeded"]


def test_bad_requests_are_refused_with_reasons_and_publish_nothing(
    receiver: tuple[Settings, str],
) -> None:
    settings, url = receiver
    body = payload("workflow_run/completed.payload.json")

    wrong = post(url, "workflow_run", "d-wrong", body, secret="not the secret")
    assert wrong.status_code == 401
    assert "X-Hub-Signature-256" in wrong.json()["detail"]
    unsigned = post(url, "workflow_run", "d-unsigned", body, secret=None)
    assert unsigned.status_code == 401
    tampered_headers = github_headers("workflow_run", "d-tampered", body, SECRET)
    tampered = httpx.post(
        f"{url}/api/webhooks/github", content=body + b" ", headers=tampered_headers
    )
    assert tampered.status_code == 401

    malformed = post(url, "workflow_run", "d-malformed", b'{"action": "completed",')
    assert malformed.status_code == 400
    assert "not valid JSON" in malformed.json()["detail"]
    not_object = post(url, "workflow_run", "d-list", b"[1, 2]")
    assert not_object.status_code == 400

    missing_field = json.loads(body)
    del missing_field["workflow_run"]["id"]
    invalid = post(url, "workflow_run", "d-invalid", json.dumps(missing_field).encode())
    assert invalid.status_code == 400
    assert "id" in invalid.json()["detail"]

    no_event = post(url, "", "d-noevent", body)
    assert no_event.status_code == 400

    pushed = post(url, "push", "d-push", payload("push/payload.json"))
    assert pushed.status_code == 202
    assert pushed.json()["status"] == "ignored"
    ping = post(url, "ping", "d-ping", payload("ping/payload.json"))
    assert ping.status_code == 200
    assert ping.json() == {"status": "pong"}

    assert read_topic(settings, settings.topic_names.ci) == []


def test_oversized_body_gets_413(receiver: tuple[Settings, str]) -> None:
    settings, url = receiver
    huge = b'{"padding": "' + b"x" * (settings.webhooks.max_body_bytes + 1) + b'"}'
    response = post(url, "workflow_run", "d-huge", huge)
    assert response.status_code == 413
    assert "limit" in response.json()["detail"]


def test_broker_outage_spools_then_delivers(
    kafka_bootstrap: str,
    make_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """With the broker unreachable the event is written to disk and answered 202; it is
    published when a receiver with a reachable broker starts on the same spool."""
    monkeypatch.delenv("SENTINEL_GITHUB_WEBHOOK_SECRET", raising=False)
    spool_dir = tmp_path / "spool"
    reachable = make_settings(kafka_bootstrap, webhooks={"spool_dir": str(spool_dir)})
    ensure_topics(reachable)
    # Nothing listens on this port: every send times out after delivery_timeout_s.
    dead = make_settings(
        "127.0.0.1:1", webhooks={"spool_dir": str(spool_dir)}, kafka={"delivery_timeout_s": 1.0}
    )
    owner = StoreOwner(dead, run_sink=False)
    owner.start()
    try:
        with ServerThread(owner.api()) as server:
            body = payload("workflow_run/completed.payload.json")
            response = post(server.url, "workflow_run", "d-spooled", body, secret=None)
            assert response.status_code == 202, response.text
            assert response.json()["via"] == "spooled"
            ready = httpx.get(f"{server.url}/ready", timeout=30)
            assert ready.status_code == 503
            assert ready.json()["failing"] == ["broker"]
    finally:
        owner.stop()
    assert len(Spool(spool_dir)) == 1

    recovered = StoreOwner(reachable, run_sink=False)
    recovered.start()  # drains the spool at start
    recovered.stop()
    assert len(Spool(spool_dir)) == 0
    events = json_values(read_topic(reachable, reachable.topic_names.ci))
    assert [e["event_id"] for e in events] == ["d-spooled"]


def test_form_encoded_payload_is_accepted(receiver: tuple[Settings, str]) -> None:
    """GitHub's second content type: the JSON in a `payload` form field, signed as sent."""
    settings, url = receiver
    body = urlencode({"payload": payload("workflow_run/requested.payload.json").decode()}).encode()
    headers = github_headers("workflow_run", "d-form", body, SECRET)
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    response = httpx.post(f"{url}/api/webhooks/github", content=body, headers=headers)
    assert response.status_code == 202, response.text
    no_field = urlencode({"other": "x"}).encode()
    headers = github_headers("workflow_run", "d-form-2", no_field, SECRET)
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    refused = httpx.post(f"{url}/api/webhooks/github", content=no_field, headers=headers)
    assert refused.status_code == 400
    assert "payload" in refused.json()["detail"]
    events = json_values(read_topic(settings, settings.topic_names.ci))
    assert [e["event_id"] for e in events] == ["d-form"]
