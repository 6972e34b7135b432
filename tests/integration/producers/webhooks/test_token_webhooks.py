"""The Jenkins and generic webhook endpoints over real HTTP, publishing to a real Kafka broker;
capture and replay of their records; a Jenkins build through the real run-tracking worker."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from producers.captures.recording import CaptureWriter
from producers.captures.replay import replay
from runtime.config import Settings
from schemas.capture import read_capture
from sentinel.replay_wiring import build_replay_targets
from sentinel.stack import StoreOwner, WebhookIntake, token_routers
from sentinel.topic_admin import ensure_topics
from tests.support.helpers import (
    ServerThread,
    json_values,
    read_topic,
    served_stack,
    wait_for_run,
)
from tests.support.paths import DATA

pytestmark = pytest.mark.integration

JENKINS_TOKEN = "jenkins-token-3f9a"
GENERIC_TOKEN = "generic-token-77c1"
DATA = DATA / "jenkins"
RUN_ID = "jenkins:shop/api/feature%2Flogin:42"


def jenkins_body(phase: str, status: str | None = None, **build: Any) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((DATA / "multibranch_completed.json").read_text())
    body["build"]["phase"] = phase
    if status is None:
        body["build"].pop("status")
    else:
        body["build"]["status"] = status
    body["build"].update(build)
    return body


GENERIC = {
    "run_id": "buildkite:shop-e2e:1842",
    "pipeline": "shop-e2e",
    "status": "running",
    "event_time": "2026-11-27T10:00:05Z",
    "stage": {"id": "unit", "name": "Unit tests", "status": "succeeded"},
}


def post(
    url: str,
    provider: str,
    body: Any,
    bearer: str | None,
    raw: bytes | None = None,
    query_token: str | None = None,
) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if bearer is not None:
        headers["Authorization"] = f"Bearer {bearer}"
    content = raw if raw is not None else json.dumps(body).encode()
    return httpx.post(
        f"{url}/api/webhooks/{provider}",
        content=content,
        headers=headers,
        params={"token": query_token} if query_token is not None else None,
        timeout=30,
    )


@pytest.fixture
def tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENTINEL_JENKINS_WEBHOOK_TOKEN", JENKINS_TOKEN)
    monkeypatch.setenv("SENTINEL_GENERIC_WEBHOOK_TOKEN", GENERIC_TOKEN)


def serve(settings: Settings) -> Iterator[tuple[Settings, str]]:
    ensure_topics(settings)
    owner = StoreOwner(settings, run_sink=False)
    owner.start()
    try:
        with ServerThread(owner.api()) as server:
            yield settings, server.url
    finally:
        owner.stop()


@pytest.fixture
def receiver(
    kafka_bootstrap: str, make_settings: Callable[..., Settings], tokens: None
) -> Iterator[tuple[Settings, str]]:
    yield from serve(make_settings(kafka_bootstrap))


def test_jenkins_phases_are_published_once_each(receiver: tuple[Settings, str]) -> None:
    settings, url = receiver
    started = jenkins_body("STARTED", timestamp=1764230400000)
    first = post(url, "jenkins", started, JENKINS_TOKEN)
    assert first.status_code == 202, first.text
    assert first.json()["run_id"] == RUN_ID
    assert first.json()["via"] == "published"
    retried = post(url, "jenkins", started, JENKINS_TOKEN)  # the plugin's retry
    assert retried.status_code == 200
    assert retried.json()["status"] == "duplicate"
    assert retried.json()["delivery"] == first.json()["delivery"]
    # The Notification plugin cannot set headers: the token may come in the URL.
    completed = jenkins_body("COMPLETED", "FAILURE")
    by_query = post(url, "jenkins", completed, None, query_token=JENKINS_TOKEN)
    assert by_query.status_code == 202, by_query.text
    ignored = post(url, "jenkins", jenkins_body("NONE"), JENKINS_TOKEN)
    assert ignored.status_code == 202
    assert ignored.json()["status"] == "ignored"

    events = json_values(read_topic(settings, settings.topic_names.ci))
    assert [(e["run_id"], e["action"], e["status"]) for e in events] == [
        (RUN_ID, "started", "running"),
        (RUN_ID, "completed", "failed"),
    ]
    assert events[1]["conclusion"] == "FAILURE"
    assert events[0]["labels"]["jenkins.run_url"] == "job/shop/job/api/job/feature%252Flogin/42/"


def test_generic_post_publishes_run_and_stage_events_once(
    receiver: tuple[Settings, str],
) -> None:
    settings, url = receiver
    first = post(url, "generic", GENERIC, GENERIC_TOKEN)
    assert first.status_code == 202, first.text
    assert first.json()["events"] == 2
    again = post(url, "generic", copy.deepcopy(GENERIC), GENERIC_TOKEN)
    assert again.status_code == 200
    assert again.json()["status"] == "duplicate"

    events = json_values(read_topic(settings, settings.topic_names.ci))
    assert [(e["kind"], e["status"], e.get("stage_id")) for e in events] == [
        ("run", "running", None),
        ("stage", "succeeded", "unit"),
    ]
    assert {e["run_id"] for e in events} == {"buildkite:shop-e2e:1842"}


def test_bad_credentials_get_401_and_publish_nothing(receiver: tuple[Settings, str]) -> None:
    settings, url = receiver
    body = jenkins_body("STARTED")
    for provider, payload in (("jenkins", body), ("generic", GENERIC)):
        missing = post(url, provider, payload, None)
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"].startswith("Bearer")
        assert "bearer token" in missing.json()["detail"]
        assert post(url, provider, payload, "wrong").status_code == 401
        basic = httpx.post(
            f"{url}/api/webhooks/{provider}",
            json=payload,
            headers={"Authorization": f"Basic {JENKINS_TOKEN}"},
            timeout=30,
        )
        assert basic.status_code == 401
    # the other endpoint's token is not this one's
    assert post(url, "jenkins", body, GENERIC_TOKEN).status_code == 401
    assert post(url, "jenkins", body, None, query_token="wrong").status_code == 401
    # only the Jenkins endpoint takes the token in the URL
    assert post(url, "generic", GENERIC, None, query_token=GENERIC_TOKEN).status_code == 401

    assert read_topic(settings, settings.topic_names.ci) == []


def test_malformed_posts_get_400_with_the_reason(receiver: tuple[Settings, str]) -> None:
    settings, url = receiver
    broken = post(url, "jenkins", None, JENKINS_TOKEN, raw=b'{"build": {')
    assert broken.status_code == 400
    assert "not valid JSON" in broken.json()["detail"]
    listed = post(url, "generic", [GENERIC], GENERIC_TOKEN)
    assert listed.status_code == 400
    assert "JSON object" in listed.json()["detail"]

    no_number = jenkins_body("STARTED")
    del no_number["build"]["number"]
    response = post(url, "jenkins", no_number, JENKINS_TOKEN)
    assert response.status_code == 400
    assert response.json()["detail"] == "invalid jenkins payload: build.number is missing"

    bad_stage = {**GENERIC, "stage": {"id": "unit", "status": "green"}}
    response = post(url, "generic", bad_stage, GENERIC_TOKEN)
    assert response.status_code == 400
    assert "stage.status" in response.json()["detail"]
    response = post(url, "generic", {"status": "running"}, GENERIC_TOKEN)
    assert response.status_code == 400
    assert "event_time is missing" in response.json()["detail"]

    huge = b'{"pad": "' + b"x" * (settings.webhooks.max_body_bytes + 1) + b'"}'
    assert post(url, "generic", None, GENERIC_TOKEN, raw=huge).status_code == 413

    assert read_topic(settings, settings.topic_names.ci) == []


def test_without_a_token_the_endpoints_refuse_unless_opened_on_purpose(
    kafka_bootstrap: str,
    make_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.delenv("SENTINEL_JENKINS_WEBHOOK_TOKEN", raising=False)
    monkeypatch.delenv("SENTINEL_GENERIC_WEBHOOK_TOKEN", raising=False)
    token_file = tmp_path / "jenkins-token"
    token_file.write_text(JENKINS_TOKEN + "\n")
    settings = make_settings(
        kafka_bootstrap,
        webhooks={
            "jenkins": {"token_file": str(token_file), "instance": "ci-eu"},
            "generic": {"allow_unauthenticated": True},
        },
    )
    for _settings, url in serve(settings):
        # generic: no token configured, explicitly open
        assert post(url, "generic", GENERIC, None).status_code == 202
        # jenkins: token from the file
        assert post(url, "jenkins", jenkins_body("STARTED"), None).status_code == 401
        response = post(url, "jenkins", jenkins_body("STARTED"), JENKINS_TOKEN)
        assert response.status_code == 202, response.text
        assert response.json()["run_id"] == "jenkins:ci-eu:shop/api/feature%2Flogin:42"

    closed = make_settings(kafka_bootstrap)
    for _settings, url in serve(closed):
        assert post(url, "generic", GENERIC, None).status_code == 401
        assert post(url, "generic", GENERIC, "anything").status_code == 401
        assert post(url, "jenkins", jenkins_body("STARTED"), None).status_code == 401


def test_capture_records_and_replay_publishes_the_same_events(
    kafka_bootstrap: str, make_settings: Callable[..., Settings], tokens: None, tmp_path: Path
) -> None:
    settings = make_settings(kafka_bootstrap)
    capture_path = tmp_path / "capture.jsonl"
    writer = CaptureWriter(capture_path)
    app = FastAPI()  # as `sentinel capture` builds it: recording only, no broker
    for router in token_routers(settings, None, writer):
        app.include_router(router)
    with ServerThread(app) as server:
        assert post(server.url, "jenkins", jenkins_body("STARTED"), JENKINS_TOKEN).json() == {
            "status": "captured",
            "delivery": "",
        }
        assert post(server.url, "generic", GENERIC, GENERIC_TOKEN).status_code == 202
        assert post(server.url, "generic", GENERIC, None).status_code == 401  # not recorded
    writer.close()
    records = list(read_capture(capture_path))
    assert [(r.type, getattr(r, "provider", None)) for r in records] == [
        ("webhook", "jenkins"),
        ("webhook", "generic"),
    ]

    ensure_topics(settings)
    intake = WebhookIntake(settings)
    intake.start()
    try:
        targets = build_replay_targets(settings, intake)
        stats = asyncio.run(replay(records + records, targets))  # twice: deduplicated
    finally:
        intake.stop()
    assert stats.outcomes == {"accepted": 2, "duplicate": 2}, stats.rejected
    events = json_values(read_topic(settings, settings.topic_names.ci))
    assert sorted((e["provider"], e["kind"], e["status"]) for e in events) == [
        ("generic", "run", "running"),
        ("generic", "stage", "succeeded"),
        ("jenkins", "run", "running"),
    ]


# --- through the real worker ------------------------------------------------------------------


def test_jenkins_and_generic_builds_end_as_runs_through_the_worker(
    kafka_bootstrap: str, make_settings: Callable[..., Settings], tokens: None
) -> None:
    with served_stack(make_settings(kafka_bootstrap)) as (_stack, url):
        started = jenkins_body("STARTED", timestamp=1764230400000)
        assert post(url, "jenkins", started, JENKINS_TOKEN).status_code == 202
        running = wait_for_run(url, RUN_ID, "running")
        assert running["pipeline"] == "shop/api/feature%2Flogin"
        completed = jenkins_body("COMPLETED", "SUCCESS")
        assert post(url, "jenkins", completed, JENKINS_TOKEN).status_code == 202
        finalized = jenkins_body("FINALIZED", "SUCCESS", timestamp=1764230702500)
        assert post(url, "jenkins", finalized, JENKINS_TOKEN).status_code == 202
        run = wait_for_run(url, RUN_ID, "succeeded")
        assert run["conclusion"] == "SUCCESS"
        assert run["provider"] == "jenkins"
        assert run["branch"] == "feature/login"
        assert run["commit_sha"] == "9fceb02d0ae598e95dc970b74767f19372d61af8"
        # FINALIZED comes 2.5 s after COMPLETED (post-build work): the run still ends when
        # the build did, with the duration Jenkins shows (documented in
        # producers/webhooks/jenkins.py).
        assert run["duration_s"] == pytest.approx(300.0)

        generic_failed = {
            "pipeline": "nightly",
            "run_number": 311,
            "status": "failed",
            "event_time": "2026-11-27T10:05:00Z",
            "started_at": "2026-11-27T10:00:00Z",
            "finished_at": "2026-11-27T10:05:00Z",
        }
        assert post(url, "generic", generic_failed, GENERIC_TOKEN).status_code == 202
        failed = wait_for_run(url, "nightly#311", "failed")
        assert failed["duration_s"] == pytest.approx(300.0)
