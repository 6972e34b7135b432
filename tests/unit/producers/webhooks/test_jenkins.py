"""Jenkins Notification plugin normalisation (producers/webhooks/jenkins.py).

Payloads in tests/data/jenkins follow the plugin's JSON (Gson, snake_case, nulls omitted); the
expected values below were written by reading them, not produced by the code.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from producers.webhooks.jenkins import (
    RAW_LOG_CHARS,
    delivery_id,
    job_full_name,
    map_status,
    normalize,
)
from producers.webhooks.payload import Ignored, PayloadError
from schemas.messages import CiEvent, CiEventKind, RunStatus
from tests.support.paths import DATA

DATA = DATA / "jenkins"
RECEIVED = datetime(2026, 11, 27, 9, 0, 0, tzinfo=UTC)


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / name).read_text())
    return data


def event(payload: dict[str, Any], instance: str | None = None) -> CiEvent:
    result = normalize(payload, RECEIVED, instance)
    assert isinstance(result, CiEvent)
    return result


def with_build(payload: dict[str, Any], **fields: Any) -> dict[str, Any]:
    changed = copy.deepcopy(payload)
    for key, value in fields.items():
        if value is None:
            changed["build"].pop(key, None)
        else:
            changed["build"][key] = value
    return changed


def test_multibranch_completed_unstable_build() -> None:
    e = event(load("multibranch_completed.json"))
    assert e.provider == "jenkins"
    assert e.event_type == "build"
    assert e.action == "completed"
    assert e.kind is CiEventKind.RUN
    # Folder shop, multibranch project api, branch job "feature/login" (item name feature%2Flogin).
    assert e.run_id == "jenkins:shop/api/feature%2Flogin:42"
    assert e.provider_run_id == "shop/api/feature%2Flogin#42"
    assert e.pipeline == "shop/api/feature%2Flogin"
    assert e.status is RunStatus.FAILED
    assert e.raw_status == "COMPLETED"
    assert e.conclusion == "UNSTABLE"
    assert e.repository == "https://github.com/shop/api.git"
    assert e.branch == "feature/login"
    assert e.commit_sha == "9fceb02d0ae598e95dc970b74767f19372d61af8"
    assert e.url == "https://ci.example.com/job/shop/job/api/job/feature%252Flogin/42/"
    assert e.labels == {
        "jenkins.run_url": "job/shop/job/api/job/feature%252Flogin/42/",
        "jenkins.job_url": "job/shop/job/api/job/feature%252Flogin/",
        "jenkins.queue_id": "1187",
        "jenkins.scm_branch": "origin/feature/login",
    }
    # timestamp of COMPLETED = start + duration: 08:05:00; duration 300 s -> started 08:00:00.
    assert e.event_time == datetime(2025, 11, 27, 8, 5, tzinfo=UTC)
    assert e.finished_at == datetime(2025, 11, 27, 8, 5, tzinfo=UTC)
    assert e.started_at == datetime(2025, 11, 27, 8, 0, tzinfo=UTC)
    assert e.created_at is None
    assert e.received_at == RECEIVED
    assert e.raw == load("multibranch_completed.json")


def test_started_phase_is_running_and_ignores_the_stale_status() -> None:
    e = event(load("freestyle_started.json"))
    assert e.run_id == "jenkins:nightly-e2e:7"
    assert e.status is RunStatus.RUNNING
    assert e.raw_status == "STARTED"
    assert e.conclusion is None  # "FAILURE" on STARTED is not this build's outcome
    assert e.started_at == datetime(2025, 11, 27, 8, 0, tzinfo=UTC)
    assert e.event_time == e.started_at
    assert e.finished_at is None
    assert e.repository is None and e.branch is None and e.commit_sha is None
    assert e.labels["jenkins.run_url"] == "job/nightly-e2e/7/"


def test_instance_name_goes_into_run_id_and_event_id() -> None:
    payload = load("freestyle_started.json")
    plain, named = event(payload), event(payload, instance="ci-eu")
    assert named.run_id == "jenkins:ci-eu:nightly-e2e:7"
    assert named.labels["jenkins.instance"] == "ci-eu"
    assert plain.event_id != named.event_id


@pytest.mark.parametrize(
    ("phase", "status", "expected"),
    [
        ("QUEUED", None, RunStatus.PENDING),
        ("STARTED", None, RunStatus.RUNNING),
        ("STARTED", "SUCCESS", RunStatus.RUNNING),
        ("COMPLETED", "SUCCESS", RunStatus.SUCCEEDED),
        ("FINALIZED", "SUCCESS", RunStatus.SUCCEEDED),
        ("COMPLETED", "FAILURE", RunStatus.FAILED),
        ("FINALIZED", "UNSTABLE", RunStatus.FAILED),
        ("COMPLETED", "ABORTED", RunStatus.CANCELLED),
        ("FINALIZED", "NOT_BUILT", RunStatus.CANCELLED),
        ("COMPLETED", None, RunStatus.UNKNOWN),
        ("COMPLETED", "SOMETHING_NEW", RunStatus.UNKNOWN),
        ("NONE", "SUCCESS", None),
        ("DELETED", None, None),
    ],
)
def test_status_mapping(phase: str, status: str | None, expected: RunStatus | None) -> None:
    assert map_status(phase, status) is expected


def test_untracked_phase_is_ignored() -> None:
    result = normalize(with_build(load("freestyle_started.json"), phase="NONE"), RECEIVED)
    assert isinstance(result, Ignored)
    assert "NONE" in result.reason


def test_queued_phase_uses_the_queue_time_as_created_at() -> None:
    payload = with_build(load("freestyle_started.json"), phase="QUEUED", timestamp=1764230390000)
    e = event(payload)
    assert e.status is RunStatus.PENDING
    assert e.created_at == datetime(2025, 11, 27, 7, 59, 50, tzinfo=UTC)
    assert e.started_at is None and e.finished_at is None


def test_finalized_without_duration_finishes_at_its_timestamp() -> None:
    payload = with_build(
        load("freestyle_started.json"), phase="FINALIZED", status="SUCCESS", duration=None
    )
    payload["build"]["timestamp"] = 1764230702500
    e = event(payload)
    assert e.status is RunStatus.SUCCEEDED
    assert e.conclusion == "SUCCESS"
    assert e.finished_at == datetime(2025, 11, 27, 8, 5, 2, 500000, tzinfo=UTC)
    assert e.started_at is None


def test_missing_or_zero_timestamp_falls_back_to_received_at() -> None:
    for stamp in (None, 0):
        e = event(with_build(load("freestyle_started.json"), timestamp=stamp))
        assert e.event_time == RECEIVED
        assert e.started_at is None


def test_event_id_is_deterministic_per_job_number_and_phase() -> None:
    payload = load("multibranch_completed.json")
    first, again = event(payload), event(copy.deepcopy(payload))
    assert first.event_id == again.event_id  # a retried post dedupes
    finalized = event(with_build(payload, phase="FINALIZED"))
    next_build = event(with_build(payload, number=43))
    assert len({first.event_id, finalized.event_id, next_build.event_id}) == 3
    assert first.event_id == delivery_id(None, "shop/api/feature%2Flogin", 42, "COMPLETED")
    # The run id is shared by all phases of the build.
    assert {first.run_id, finalized.run_id} == {"jenkins:shop/api/feature%2Flogin:42"}


@pytest.mark.parametrize(
    ("job_url", "name", "expected"),
    [
        ("job/app/", "app", "app"),
        ("job/team/job/app/", "app", "team/app"),
        ("/job/a/job/b/job/main/", "main", "a/b/main"),
        ("job/org/job/repo/job/PR-12/", "PR-12", "org/repo/PR-12"),
        ("job/my%20job/", "my job", "my job"),
        ("view/all/job/app/", "app", "app"),  # not a canonical job url: the name
        (None, "app", "app"),
        ("", None, None),
    ],
)
def test_job_full_name(job_url: str | None, name: str | None, expected: str | None) -> None:
    assert job_full_name(job_url, name) == expected


def test_long_log_is_cut_in_raw_only() -> None:
    payload = with_build(load("freestyle_started.json"), log="x" * (RAW_LOG_CHARS + 10) + "END")
    e = event(payload)
    assert e.raw is not None
    assert len(e.raw["build"]["log"]) == RAW_LOG_CHARS
    assert e.raw["build"]["log"].endswith("END")
    assert e.raw["build"]["log_truncated"] is True
    assert len(payload["build"]["log"]) == RAW_LOG_CHARS + 13  # the input is not modified


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda p: p.pop("build"), "build"),
        (lambda p: p.__setitem__("build", []), "build"),
        (lambda p: p["build"].pop("phase"), "build.phase"),
        (lambda p: p["build"].__setitem__("phase", 3), "build.phase"),
        (lambda p: p["build"].pop("number"), "build.number"),
        (lambda p: p["build"].__setitem__("number", "42"), "build.number"),
        (lambda p: p["build"].__setitem__("number", True), "build.number"),
        (lambda p: (p.pop("name"), p.pop("url")), "name"),
        (lambda p: p["build"].__setitem__("timestamp", "yesterday"), "build.timestamp"),
        (lambda p: p["build"].__setitem__("timestamp", -5), "build.timestamp"),
        (lambda p: p["build"].__setitem__("timestamp", 1e300), "build.timestamp"),
        (lambda p: p["build"].__setitem__("duration", "long"), "build.duration"),
    ],
)
def test_payload_errors_name_the_field(mutate: Any, field: str) -> None:
    payload = load("multibranch_completed.json")
    mutate(payload)
    with pytest.raises(PayloadError) as caught:
        normalize(payload, RECEIVED)
    assert caught.value.field == field
    assert str(caught.value).startswith(field)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
build_keys = st.sampled_from(
    ["phase", "status", "number", "timestamp", "duration", "url", "full_url", "scm", "queue_id"]
)
phases = st.sampled_from(["QUEUED", "STARTED", "COMPLETED", "FINALIZED", "NONE", ""])


def check(body: Any) -> None:
    try:
        result = normalize(body, RECEIVED)
    except PayloadError as exc:
        assert str(exc)
        return
    if isinstance(result, CiEvent):
        CiEvent.model_validate_json(result.to_bytes())  # publishable


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.dictionaries(st.text(max_size=10), json_values, max_size=5))
def test_fuzz_arbitrary_objects_only_raise_payload_error(body: dict[str, Any]) -> None:
    check(body)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    phase=phases,
    changes=st.dictionaries(build_keys, json_values, max_size=4),
    top=st.dictionaries(st.sampled_from(["name", "url"]), json_values, max_size=2),
)
def test_fuzz_mutated_builds_only_raise_payload_error(
    phase: str, changes: dict[str, Any], top: dict[str, Any]
) -> None:
    body = load("multibranch_completed.json")
    body["build"]["phase"] = phase
    body["build"].update(changes)
    body.update(top)
    check(body)
